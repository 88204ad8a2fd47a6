"""node/consensus is a pure state machine: it imports nothing that does I/O, keeps time,
draws randomness or logs, directly or through other node modules it imports."""

from __future__ import annotations

import ast
from pathlib import Path

import node
import rxledger

NODE_DIR = Path(node.__file__).parent
ROOTS = {"node": NODE_DIR, "rxledger": Path(rxledger.__file__).parent}
FORBIDDEN = {
    "asyncio", "socket", "ssl", "selectors", "select", "subprocess", "threading", "multiprocessing",
    "time", "datetime", "random", "secrets", "logging", "os", "io", "pathlib", "shutil", "tempfile",
    "http", "urllib", "plyvel", "uvicorn", "fastapi", "starlette", "httpx", "requests", "web3",
    "node.storage", "node.rpc", "node.runtime", "node.service", "node.cli", "node.chain", "node.execution",
    "node.node", "node.config",
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for item in ast.walk(tree):
        if isinstance(item, ast.Import):
            found.update(alias.name for alias in item.names)
        elif isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
            found.add(item.module)
    return found


def module_path(name: str) -> Path | None:
    root = ROOTS[name.split(".")[0]]
    rel = Path(*name.split(".")[1:])
    for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_consensus_imports_nothing_that_does_io():
    todo = [p for p in (NODE_DIR / "consensus").glob("*.py")]
    seen: set[Path] = set()
    offenders: list[str] = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imports_of(path):
            if is_forbidden(name):
                offenders.append(f"{path.relative_to(NODE_DIR.parent)} imports {name}")
            elif name.startswith(("node.", "rxledger.")):
                target = module_path(name)
                if target is not None:
                    todo.append(target)
    assert not offenders, "\n".join(offenders)
    assert NODE_DIR / "consensus" / "qbft.py" in seen and ROOTS["rxledger"] / "core" / "types" / "headers.py" in seen


def test_the_check_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom node.storage import chain_store\n")
    assert {n for n in imports_of(bad) if is_forbidden(n)} == {"time", "node.storage"}
