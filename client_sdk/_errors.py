"""The SDK's one error tree. Every error a caller can see is a `ClientError`::

    ClientError
    ├── TransportError        the node could not be reached or answered nonsense
    ├── RpcError              the node answered a JSON-RPC error that is not a refusal
    ├── NotFound              no such prescription, transaction or block
    ├── Refused               the ledger said no: a contract revert or a txpool refusal
    ├── NotFinal              a transaction did not become final in time
    ├── InvalidFhir           a FHIR document is invalid or cannot be put on the ledger
    ├── CommitmentMismatch    a document or salt does not match the ledger's commitment
    └── VerificationFailed    an offline proof (anchor receipt, header seals) is wrong

Lower-level errors (httpx, eth-abi, pydantic, cryptography) are translated into the most
specific of these with ``raise ... from exc``, so the original stays in ``__cause__``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ClientError",
    "CommitmentMismatch",
    "InvalidFhir",
    "NotFinal",
    "NotFound",
    "Refused",
    "RpcError",
    "TransportError",
    "VerificationFailed",
]


class ClientError(Exception):
    """Root of every error the SDK raises."""


class TransportError(ClientError):
    """The node could not be reached, or its answer was not JSON-RPC."""


class RpcError(ClientError):
    """A JSON-RPC error answer that is not a refusal (bad params, unknown method, …)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class NotFound(ClientError):
    """The thing asked for does not exist on the ledger."""


class Refused(ClientError):
    """The ledger refused: `reason` is the contract's revert reason or the txpool's."""

    def __init__(self, reason: str, *, tx_hash: str | None = None) -> None:
        where = f" (transaction {tx_hash})" if tx_hash else ""
        super().__init__(f"refused: {reason}{where}")
        self.reason = reason
        self.tx_hash = tx_hash


class NotFinal(ClientError):
    """A transaction was sent but is not final within the time allowed."""

    def __init__(self, tx_hash: str, waited: float) -> None:
        super().__init__(f"transaction {tx_hash} is not final after {waited:.1f} s")
        self.tx_hash = tx_hash
        self.waited = waited


class InvalidFhir(ClientError):
    """A FHIR resource is invalid, or valid but not representable on the ledger.

    `field` is the FHIR path of the offending element (e.g. ``dispenseRequest.quantity``).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CommitmentMismatch(ClientError):
    """The document and salt do not hash to the commitment recorded on the ledger."""


class VerificationFailed(ClientError):
    """An offline verification failed; `reason` names the first thing that is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
