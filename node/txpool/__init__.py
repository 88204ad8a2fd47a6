"""The transaction pool: admission rules with readable refusals, nonce-ordered output."""

from node.txpool.pool import PoolLimits, TxPool

__all__ = ["PoolLimits", "TxPool"]
