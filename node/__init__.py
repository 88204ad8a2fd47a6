"""RxLedger: a permissioned QBFT blockchain node for electronic prescriptions."""

__version__ = "0.1.0"
