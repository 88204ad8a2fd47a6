"""Access to the compiled Solidity contract artifacts committed under ``contracts/artifacts``.

The artifacts are produced by ``python contracts/build.py`` (solcjs pinned in
``contracts/package.json``, ``evmVersion`` prague, no metadata hash) and are
JSON objects with the keys ``contractName``, ``sourceName``, ``compiler``
(``{"version": ...}``), ``evmVersion``, ``abi``, ``bytecode`` and
``deployedBytecode`` (both ``0x``-prefixed hex strings).

``contracts/`` is not a Python package; it is located relative to the
repository root, i.e. the parent directory of the ``node`` package (the
project is installed in editable mode).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["ARTIFACTS_DIR", "REPO_ROOT", "load_artifact"]

#: Repository root: the directory that contains the ``rxledger`` package.
REPO_ROOT: Path = Path(__file__).resolve().parents[2]

#: Directory holding one ``<ContractName>.json`` artifact per compiled contract.
ARTIFACTS_DIR: Path = REPO_ROOT / "contracts" / "artifacts"

_NAME_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def load_artifact(name: str) -> dict[str, Any]:
    """Return the parsed artifact for contract ``name`` (e.g. ``"Counter"``).

    Reads ``contracts/artifacts/<name>.json``.  Raises ``ValueError`` if
    ``name`` is not a valid Solidity identifier (which also rules out path
    traversal) and ``FileNotFoundError`` naming the expected path if the
    artifact does not exist.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid contract name {name!r}: expected a Solidity identifier")
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"contract artifact {name!r} not found at {path}; "
            "run `python contracts/build.py` to compile contracts/src/*.sol"
        ) from None
    artifact: dict[str, Any] = json.loads(text)
    return artifact
