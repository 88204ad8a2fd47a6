"""The layer contracts in pyproject.toml ([tool.importlinter]) catch the imports they forbid;
no package imports another package's private modules.

scripts/test runs `lint-imports` on the repository; these tests show that the check can
fail: on a copy of the packages, one contract is kept, then a forbidden import is added
and the same contract is reported broken, naming the module and the line.

Private modules (a name part starting with `_`, as httpx's) are what import-linter's
module expressions cannot name, so that rule is checked here on the same import graph.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rxledger", "node", "network", "chaincode_py", "client_sdk")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "_artifacts"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def lint(root: Path, contract: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--contract", contract],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def add_import(module: Path, line: str) -> int:
    """Append `line` to `module`; return its line number."""
    text = module.read_text()
    module.write_text(text + ("" if text.endswith("\n") else "\n") + line + "\n")
    return len(module.read_text().splitlines())


@pytest.mark.parametrize(("contract", "module", "line", "expected"), [
    ("core-imports-only-core", "rxledger/core/wire.py", "import node.chain  # noqa",
     "rxledger.core.wire -> node.chain"),
    ("sdk-needs-no-server", "client_sdk/_anchor.py", "import node.runtime  # noqa",
     "client_sdk._anchor -> node.runtime"),
    ("chaincode-below-network", "chaincode_py/host.py", "import network.pki  # noqa",
     "chaincode_py.host -> network.pki"),
    ("node-layers", "node/consensus/qbft.py", "import node.storage  # noqa",
     "node.consensus.qbft -> node.storage"),
    ("node-imports-only-core", "node/cli.py", "import client_sdk.cli  # noqa",
     "node.cli -> client_sdk.cli"),
    ("packages", "network/cli.py", "import rxledger.cli  # noqa",
     "network.cli -> rxledger.cli"),
    ("rpc-through-service", "node/rpc/methods.py", "import node.chain  # noqa",
     "node.rpc.methods -> node.chain"),
])
def test_a_forbidden_import_breaks_the_contract(copy: Path, contract: str, module: str, line: str,
                                                expected: str) -> None:
    before = lint(copy, contract)
    assert before.returncode == 0, before.stdout + before.stderr
    assert "1 kept, 0 broken" in before.stdout

    number = add_import(copy / module, line)
    after = lint(copy, contract)
    assert after.returncode == 1, after.stdout + after.stderr
    assert "0 kept, 1 broken" in after.stdout
    assert f"{expected} (l.{number})" in after.stdout


def package_of(module: str) -> str:
    """The package a module belongs to: its top-level package, or for the thin `rxledger`
    package its first subpackage (`rxledger.core` and `rxledger.cli` are separate layers)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "rxledger" and len(parts) > 1 else parts[0]


def private_imports_across_packages(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """(importer, imported) where `imported` has a private name part and lives in another
    top-level package than `importer`."""
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            top, *rest = imported.split(".")
            private = any(part.startswith("_") and not part.startswith("__") for part in rest)
            if private and package_of(importer) != package_of(imported):
                found.append((importer, imported))
    return found


def test_no_package_imports_another_packages_private_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert private_imports_across_packages(graph) == []


def test_the_private_module_check_finds_one(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_import(copy / "network" / "cli.py", "import client_sdk._token  # noqa")
    monkeypatch.syspath_prepend(str(copy))
    for name in [m for m in sys.modules if m.split(".")[0] in PACKAGES]:
        monkeypatch.delitem(sys.modules, name)  # build the copy's graph, not the checkout's
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert ("network.cli", "client_sdk._token") in private_imports_across_packages(graph)
