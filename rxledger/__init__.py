"""RxLedger: a permissioned QBFT blockchain for electronic prescriptions.

This top-level package holds the console entry (`rxledger.cli`) and the dependency-light
core (`rxledger.core`) that the node and the client SDK share.
"""

from rxledger.core import __version__

__all__ = ["__version__"]
