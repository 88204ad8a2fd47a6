"""Whether the optional parts of the `rxledger` distribution are installed.

The base distribution (`pip install rxledger`) carries the core and the client SDK; the
node, the native chaincode and the consortium tools need the `node` extra
(`pip install 'rxledger[node]'`: py-evm, plyvel, fastapi, uvicorn, tomli-w). The console
entry calls `require_node_extra()` before it imports a command that runs or sets up a
node, so that a hospital's SDK install answers such a command with one line, not an
ImportError's traceback.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["NODE_EXTRA_MESSAGE", "missing_node_modules", "require_node_extra"]

#: Import names of the distributions only the `node` extra installs (py-evm's is `eth`).
NODE_MODULES = ("eth", "plyvel", "fastapi", "uvicorn", "tomli_w")

NODE_EXTRA_MESSAGE = "the node is not installed: pip install 'rxledger[node]'"


def missing_node_modules() -> list[str]:
    """The modules of the `node` extra that cannot be imported here (found, not imported)."""
    return [name for name in NODE_MODULES if importlib.util.find_spec(name) is None]


def require_node_extra() -> None:
    """Return if the `node` extra is installed; otherwise print one line and exit 1."""
    missing = missing_node_modules()
    if missing:
        print(f"rxledger: {NODE_EXTRA_MESSAGE} (missing: {', '.join(missing)})", file=sys.stderr)
        raise SystemExit(1)
