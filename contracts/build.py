#!/usr/bin/env python3
"""Compile RxLedger's Solidity sources into committed, reproducible JSON artifacts.

Usage::

    python contracts/build.py [--out DIR] [--check]

Every ``contracts/src/*.sol`` file is compiled in a single standard-JSON
invocation of the solcjs compiler pinned in ``contracts/package.json``
(``contracts/node_modules/solc``), run through Node.  Settings are fixed:
``evmVersion: "prague"``, optimizer enabled with 200 runs, and no metadata
hash / CBOR trailer appended to the bytecode, so that the output depends only
on the source code and the compiler version.

One artifact per contract is written to ``<out>/<ContractName>.json``
(default ``contracts/artifacts``) with sorted keys, two-space indentation and
a trailing newline, so rebuilding is byte-identical.

``--check`` compiles into a temporary directory and compares the result with
the artifacts in ``--out``; it exits 1 with a summary if any artifact is
missing, extra or different.

If ``contracts/node_modules`` does not hold the pinned compiler, ``npm ci``
is run in ``contracts/`` first.  Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import difflib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CONTRACTS_DIR = Path(__file__).resolve().parent
SRC_DIR = CONTRACTS_DIR / "src"
DEFAULT_OUT_DIR = CONTRACTS_DIR / "artifacts"
NODE_MODULES = CONTRACTS_DIR / "node_modules"
SOLC_DIR = NODE_MODULES / "solc"

EVM_VERSION = "prague"
OPTIMIZER_RUNS = 200

# Runs solcjs' in-process compile() on the standard-JSON input read from
# stdin.  The solcjs CLI (solc.js --standard-json) is deliberately not used:
# it prints a ">>> Cannot retry compilation with SMT ..." banner to stdout in
# front of the JSON, which makes its output unparsable.  No import callback is
# registered: all sources under src/ are passed in together, so imports between
# them resolve without touching the filesystem.
_NODE_SCRIPT = r"""
const solc = require(process.argv[1]);
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const input = Buffer.concat(chunks).toString("utf8");
  const output = solc.compile(input);
  process.stdout.write(JSON.stringify({ version: solc.version(), output: output }));
});
"""


class BuildError(Exception):
    """A build failure with a message meant for the user."""


def _pinned_solc_version() -> str:
    package = json.loads((CONTRACTS_DIR / "package.json").read_text(encoding="utf-8"))
    deps = {**package.get("dependencies", {}), **package.get("devDependencies", {})}
    try:
        return deps["solc"]
    except KeyError:
        raise BuildError("contracts/package.json does not pin the 'solc' package") from None


def _installed_solc_version() -> str | None:
    manifest = SOLC_DIR / "package.json"
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text(encoding="utf-8")).get("version")


def ensure_compiler() -> None:
    """Make sure ``node`` is available and ``node_modules`` holds the pinned solc."""
    if shutil.which("node") is None:
        raise BuildError("'node' was not found on PATH; Node.js is required to run solcjs")
    pinned = _pinned_solc_version()
    installed = _installed_solc_version()
    if installed == pinned:
        return
    if installed is None:
        reason = "contracts/node_modules/solc is missing"
    else:
        reason = f"installed solc {installed} does not match pinned {pinned}"
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(
            f"{reason}, and 'npm' was not found on PATH; install Node.js/npm "
            "and run `npm ci` in contracts/"
        )
    print(f"build.py: {reason}; running `npm ci` in {CONTRACTS_DIR}", file=sys.stderr)
    result = subprocess.run([npm, "ci"], cwd=CONTRACTS_DIR, stdout=sys.stderr)
    if result.returncode != 0:
        raise BuildError(f"`npm ci` failed with exit code {result.returncode}")
    installed = _installed_solc_version()
    if installed != pinned:
        raise BuildError(f"after `npm ci`, installed solc is {installed}, expected {pinned}")


def standard_json_input() -> dict:
    """Build the solc standard-JSON input for every ``src/*.sol`` file."""
    sources = sorted(SRC_DIR.glob("*.sol"))
    if not sources:
        raise BuildError(f"no Solidity sources found in {SRC_DIR}")
    return {
        "language": "Solidity",
        "sources": {
            path.relative_to(CONTRACTS_DIR).as_posix(): {
                "content": path.read_text(encoding="utf-8")
            }
            for path in sources
        },
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "metadata": {"bytecodeHash": "none", "appendCBOR": False},
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def run_solc(compiler_input: dict) -> tuple[str, dict]:
    """Run solcjs on ``compiler_input``; return (compiler version, standard-JSON output)."""
    node = shutil.which("node")
    assert node is not None  # checked by ensure_compiler()
    result = subprocess.run(
        [node, "-e", _NODE_SCRIPT, str(SOLC_DIR)],
        cwd=CONTRACTS_DIR,
        input=json.dumps(compiler_input).encode("utf-8"),
        capture_output=True,
    )
    if result.returncode != 0:
        raise BuildError(
            f"solcjs (node) exited with code {result.returncode}:\n"
            + result.stderr.decode("utf-8", "replace")
        )
    try:
        wrapper = json.loads(result.stdout)
        return wrapper["version"], json.loads(wrapper["output"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BuildError(
            f"could not parse solcjs output ({exc}):\n"
            + result.stdout.decode("utf-8", "replace")[:2000]
        ) from None


def _check_diagnostics(output: dict) -> None:
    errors = []
    for diag in output.get("errors", []):
        message = diag.get("formattedMessage") or diag.get("message") or json.dumps(diag)
        if diag.get("severity") == "error":
            errors.append(message)
        else:
            print(message.rstrip(), file=sys.stderr)
    if errors:
        raise BuildError(
            "compilation failed:\n" + "\n".join(message.rstrip() for message in errors)
        )


def compile_artifacts() -> dict[str, str]:
    """Compile all sources; return ``{file name: serialized artifact}``."""
    ensure_compiler()
    version, output = run_solc(standard_json_input())
    _check_diagnostics(output)
    artifacts: dict[str, str] = {}
    for source_name, contracts in sorted(output.get("contracts", {}).items()):
        for contract_name, contract in sorted(contracts.items()):
            file_name = f"{contract_name}.json"
            if file_name in artifacts:
                raise BuildError(f"duplicate contract name {contract_name!r} ({source_name})")
            evm = contract["evm"]
            artifact = {
                "contractName": contract_name,
                "sourceName": source_name,
                "compiler": {"version": version},
                "evmVersion": EVM_VERSION,
                "abi": contract["abi"],
                "bytecode": "0x" + evm["bytecode"]["object"],
                "deployedBytecode": "0x" + evm["deployedBytecode"]["object"],
            }
            artifacts[file_name] = json.dumps(artifact, sort_keys=True, indent=2) + "\n"
    if not artifacts:
        raise BuildError("the compiler produced no contracts")
    return artifacts


def _is_artifact(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"contractName", "bytecode", "abi"} <= data.keys()


def write_artifacts(artifacts: dict[str, str], out_dir: Path, *, verbose: bool = True) -> None:
    """Write ``artifacts`` into ``out_dir`` and remove stale artifacts there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in sorted(out_dir.glob("*.json")):
        if stale.name not in artifacts and _is_artifact(stale):
            print(f"removing stale artifact {stale}", file=sys.stderr)
            stale.unlink()
    for file_name, text in sorted(artifacts.items()):
        (out_dir / file_name).write_bytes(text.encode("utf-8"))
        if verbose:
            print(f"wrote {out_dir / file_name}")


def check_artifacts(out_dir: Path) -> int:
    """Rebuild into a temporary directory and compare with ``out_dir``; return exit code."""
    with tempfile.TemporaryDirectory(prefix="rxledger-artifacts-") as tmp:
        fresh_dir = Path(tmp)
        write_artifacts(compile_artifacts(), fresh_dir, verbose=False)
        fresh = {p.name: p.read_bytes() for p in fresh_dir.glob("*.json")}
    committed = {}
    if out_dir.is_dir():
        committed = {p.name: p.read_bytes() for p in out_dir.glob("*.json") if _is_artifact(p)}

    problems = []
    for name in sorted(fresh.keys() - committed.keys()):
        problems.append(f"missing: {out_dir / name} (not built/committed)")
    for name in sorted(committed.keys() - fresh.keys()):
        problems.append(f"extra:   {out_dir / name} (no longer produced by the sources)")
    for name in sorted(fresh.keys() & committed.keys()):
        if fresh[name] != committed[name]:
            diff = list(
                difflib.unified_diff(
                    committed[name].decode("utf-8", "replace").splitlines(),
                    fresh[name].decode("utf-8", "replace").splitlines(),
                    fromfile=f"committed/{name}",
                    tofile=f"rebuilt/{name}",
                    lineterm="",
                    n=1,
                )
            )
            shown = [line if len(line) <= 160 else line[:157] + "..." for line in diff[:40]]
            if len(diff) > 40:
                shown.append(f"... ({len(diff) - 40} more diff lines)")
            problems.append(f"differs: {out_dir / name}\n    " + "\n    ".join(shown))

    if problems:
        print("artifacts are out of date; run `python contracts/build.py`:", file=sys.stderr)
        for problem in problems:
            print("  " + problem, file=sys.stderr)
        return 1
    print(f"artifacts in {out_dir} are up to date ({len(fresh)} contract(s))")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"artifact directory (default: {DEFAULT_OUT_DIR})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild into a temp dir and fail if the artifacts in --out differ",
    )
    args = parser.parse_args(argv)
    out_dir = args.out.resolve()
    try:
        if args.check:
            return check_artifacts(out_dir)
        write_artifacts(compile_artifacts(), out_dir)
        return 0
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
