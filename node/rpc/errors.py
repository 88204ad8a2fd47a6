"""JSON-RPC errors and the one table that maps node exceptions to error codes."""

from __future__ import annotations

from typing import Any

from rxledger.core.errors import (
    ExecutionError,
    InvalidBlock,
    InvalidTransaction,
    NodeError,
    NotFound,
    Reverted,
    StorageError,
)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
EXECUTION_REVERTED = 3


class RpcError(Exception):
    """An error answered to the client as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class InvalidParams(RpcError):
    def __init__(self, message: str) -> None:
        super().__init__(INVALID_PARAMS, message)


# Most specific first: the first matching class decides the code.
ERROR_CODES: tuple[tuple[type[NodeError], int], ...] = (
    (Reverted, EXECUTION_REVERTED),
    (InvalidTransaction, SERVER_ERROR),
    (ExecutionError, SERVER_ERROR),
    (InvalidBlock, SERVER_ERROR),
    (NotFound, SERVER_ERROR),
    (StorageError, INTERNAL_ERROR),
    (NodeError, SERVER_ERROR),
)


def to_rpc_error(exc: NodeError) -> RpcError:
    """Translate a node error into the JSON-RPC error the client sees."""
    for cls, code in ERROR_CODES:
        if isinstance(exc, cls):
            if isinstance(exc, Reverted):
                return RpcError(code, str(exc), "0x" + exc.data.hex())
            return RpcError(code, str(exc))
    raise AssertionError("unreachable: NodeError is last in ERROR_CODES")
