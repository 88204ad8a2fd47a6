"""Native chaincode is deterministic: every validator must compute the same state.

The chaincode modules (the API and the three chaincodes) import nothing that reads a
clock, draws randomness, does I/O or logs, directly or through the node modules they
import; and their code uses no floating point, no sets (iteration order), no `hash()`/`id()`
(per-process values) and no I/O builtins. The host (`chaincode_py/host.py`), which reads
the store, and the genesis translation are not chaincode and are not scanned.

One exception, by design: `rxledger.core.artifacts` reads the contracts' ABI from disk once, when
`chaincode_py.api` is imported (so both engines share one ABI); nothing reachable from a
call reads a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import chaincode_py
import node
import rxledger

CHAINCODE_DIR = Path(chaincode_py.__file__).parent
NODE_DIR = Path(node.__file__).parent
RXLEDGER_DIR = Path(rxledger.__file__).parent
CHAINCODE_MODULES = ("api.py", "prescriptions.py", "governance.py", "anchors.py")
FORBIDDEN_IMPORTS = {
    "asyncio", "socket", "ssl", "selectors", "select", "subprocess", "threading", "multiprocessing",
    "time", "datetime", "random", "secrets", "uuid", "logging", "os", "io", "pathlib", "shutil",
    "tempfile", "glob", "sqlite3", "pickle", "http", "urllib", "plyvel", "uvicorn", "fastapi",
    "starlette", "httpx", "requests", "web3", "math", "decimal", "fractions", "statistics",
    "node.storage", "node.rpc", "node.runtime", "node.service", "node.cli", "node.chain", "node.node", "node.config",
    "node.p2p", "node.consensus", "node.txpool", "chaincode_py.host", "chaincode_py.genesis",
}
LOAD_TIME_ONLY = {"rxledger.core.artifacts"}  # reads the ABI once at import (see the docstring)
FORBIDDEN_CALLS = {"float", "set", "frozenset", "hash", "id", "open", "print", "input", "eval",
                   "exec", "compile", "__import__", "globals", "vars", "breakpoint"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for item in ast.walk(tree):
        if isinstance(item, ast.Import):
            found.update(alias.name for alias in item.names)
        elif isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
            found.add(item.module)
            if item.module in ("node", "chaincode_py", "rxledger", "rxledger.core"):  # from package import module
                found.update(f"{item.module}.{alias.name}" for alias in item.names)
    return found


def module_path(name: str) -> Path | None:
    root = {"node": NODE_DIR, "chaincode_py": CHAINCODE_DIR, "rxledger": RXLEDGER_DIR}.get(name.split(".")[0])
    if root is None:
        return None
    parts = name.split(".")[1:]
    if not parts:  # the package's public surface (chaincode_py/__init__ exports the host)
        return None
    rel = Path(*parts)
    for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IMPORTS)


def nondeterministic_syntax(path: Path) -> list[str]:
    """Floats, sets, true division and forbidden builtins in one module's code."""
    problems = []
    for item in ast.walk(ast.parse(path.read_text())):
        where = f"{path.name}:{getattr(item, 'lineno', '?')}"
        if isinstance(item, ast.Constant) and isinstance(item.value, (float, complex)):
            problems.append(f"{where} floating-point literal {item.value!r}")
        elif isinstance(item, (ast.Set, ast.SetComp)):
            problems.append(f"{where} set")
        elif isinstance(item, ast.BinOp) and isinstance(item.op, ast.Div):
            problems.append(f"{where} true division (floating point)")
        elif isinstance(item, ast.AugAssign) and isinstance(item.op, ast.Div):
            problems.append(f"{where} true division (floating point)")
        elif (isinstance(item, ast.Call) and isinstance(item.func, ast.Name)
              and item.func.id in FORBIDDEN_CALLS):
            problems.append(f"{where} call of {item.func.id}()")
    return problems


def test_chaincode_imports_nothing_nondeterministic() -> None:
    todo = [CHAINCODE_DIR / m for m in CHAINCODE_MODULES]
    seen: set[Path] = set()
    offenders: list[str] = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imports_of(path):
            if name in LOAD_TIME_ONLY:
                continue
            if is_forbidden(name):
                offenders.append(f"{path} imports {name}")
            else:
                target = module_path(name)
                if target is not None:
                    todo.append(target)
    assert not offenders, "\n".join(offenders)
    assert CHAINCODE_DIR / "governance.py" in seen and RXLEDGER_DIR / "core" / "types" / "receipts.py" in seen


def test_chaincode_code_has_no_floats_sets_or_io() -> None:
    problems = [p for m in CHAINCODE_MODULES for p in nondeterministic_syntax(CHAINCODE_DIR / m)]
    assert not problems, "\n".join(problems)


def test_the_checks_catch_offenders(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom node.storage import chain_store\nfrom chaincode_py.host import X\n"
                   "x = 1.5\ny = {1, 2}\nz = 3 / 2\nw = hash('a')\nfor k in set(): pass\n")
    assert {n for n in imports_of(bad) if is_forbidden(n)} == {"time", "node.storage", "chaincode_py.host"}
    found = nondeterministic_syntax(bad)
    assert len(found) == 5, found
