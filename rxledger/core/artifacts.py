"""Access to the compiled Solidity contract artifacts.

The artifacts are produced by ``python contracts/build.py`` (solcjs pinned in
``contracts/package.json``, ``evmVersion`` prague, no metadata hash), committed under
``contracts/artifacts`` (the one source of truth), and are JSON objects with the keys
``contractName``, ``sourceName``, ``compiler`` (``{"version": ...}``), ``evmVersion``,
``abi``, ``bytecode`` and ``deployedBytecode`` (both ``0x``-prefixed hex strings).

They are package data of ``rxledger.core``, read with ``importlib.resources``: in a
checkout ``rxledger/core/_artifacts`` is a symbolic link to ``contracts/artifacts``, and a
wheel built from it carries copies of the files there (pyproject.toml's package-data), so
an installed ``rxledger`` finds them without the repository.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["ARTIFACTS_DIR", "load_artifact"]

#: Directory holding one ``<ContractName>.json`` artifact per compiled contract (in a
#: checkout, through the link, ``contracts/artifacts``).
ARTIFACTS_DIR: Path = Path(str(resources.files(__package__ or "rxledger.core") / "_artifacts"))

_NAME_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def load_artifact(name: str) -> dict[str, Any]:
    """Return the parsed artifact for contract ``name`` (e.g. ``"Counter"``).

    Raises ``ValueError`` if ``name`` is not a valid Solidity identifier (which also rules
    out path traversal) and ``FileNotFoundError`` naming the expected path if the artifact
    does not exist.
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
