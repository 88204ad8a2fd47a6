"""RxLedger: a permissioned QBFT blockchain node for electronic prescriptions."""

from rxledger.core import __version__

__all__ = ["__version__"]
