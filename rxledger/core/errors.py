"""The node's exception tree.

    NodeError
    ├── StorageError            a backend failed (plyvel errors are translated into it)
    ├── InvalidTransaction      a transaction breaks a rule (decode, signature, chain id, ...)
    │   └── TxPoolRefused       the txpool will not admit it (nonce, sender, size, full)
    ├── InvalidBlock            a block breaks a rule (header, execution result)
    ├── ExecutionError          the EVM or a chaincode could not run a call
    │   └── Reverted            a call reverted; carries the revert data and decoded reason
    └── NotFound                a block, transaction or receipt that is not (yet) final

Each error carries a message a person can read; the JSON-RPC layer maps these to
error codes in one table (`node.rpc.errors`).
"""

from __future__ import annotations


class NodeError(Exception):
    """Root of every error the node raises on purpose."""


class StorageError(NodeError):
    """A storage backend failed (I/O, corruption, closed database)."""


class InvalidTransaction(NodeError):
    """A transaction is malformed or breaks a validity rule."""


class TxPoolRefused(InvalidTransaction):
    """The txpool refuses to admit a transaction (nonce, sender, size, capacity)."""


class InvalidBlock(NodeError):
    """A block or header breaks a validity rule."""


class ExecutionError(NodeError):
    """A call could not be executed (out of gas, invalid opcode, bad input)."""


class Reverted(ExecutionError):
    """A call reverted. `data` is the raw revert data, `reason` the decoded Error(string)."""

    def __init__(self, message: str, data: bytes = b"", reason: str | None = None) -> None:
        super().__init__(message)
        self.data = data
        self.reason = reason


class NotFound(NodeError):
    """The requested block, transaction or receipt does not exist or is not final."""
