"""The seam between the EVM and native Python chaincode.

A call (from a transaction or from another contract) whose code address is one of the
reserved chaincode addresses does not run EVM bytecode: py-evm hands it to the
`ChaincodeHost` through a precompile entry (see `node.execution.evm`). The host returns
output, logs and gas, or a revert with data, and the EVM turns that into the same
receipt, logs and revert data a Solidity contract would produce.

Chaincode state is journaled by the host: the EVM state calls `snapshot()`, `revert()`
and `commit()` on the block session alongside its own journal, so a reverted call
reverts the chaincode's writes too. At the end of a block the session returns its
writes (applied in the block's atomic storage batch) and a 32-byte commitment that the
executor folds into the header's state root.

The chaincodes themselves (PrescriptionRegistry, Governance, AnchorRegistry) live in
`chaincode_py`; this module only defines what the node expects of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rxledger.core.addresses import ANCHOR_REGISTRY, GOVERNANCE, PRESCRIPTION_REGISTRY
from rxledger.core.errors import ExecutionError
from rxledger.core.types.receipts import Log

if TYPE_CHECKING:
    from node.genesis import GenesisConfig

RESERVED_ADDRESSES = (PRESCRIPTION_REGISTRY, GOVERNANCE, ANCHOR_REGISTRY)
# Code placed at a host's addresses in genesis, never run (the precompile entry answers
# first): it makes EXTCODESIZE non-zero, which Solidity checks before a high-level call to
# a function without return values, and eth_getCode show a contract. PUSH0 PUSH0 REVERT.
PLACEHOLDER_CODE = bytes.fromhex("5f5ffd")


class StaleChaincodeState(ExecutionError):
    """The chaincode state asked for is not the one the store holds (not the head).

    A host that keeps only the head's state raises it from a session opened on an older
    parent, or from a call that saw the head move; the RPC layer answers a query of the
    latest block by running it again on the new head."""


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """What chaincode may know of the block it runs in (no wall clock)."""

    number: int
    timestamp: int
    coinbase: bytes
    chain_id: int


@dataclass(frozen=True, slots=True)
class ChaincodeCall:
    """One message to a chaincode address."""

    address: bytes
    sender: bytes
    origin: bytes
    value: int
    data: bytes
    gas: int
    is_static: bool
    block: BlockInfo


@dataclass(slots=True)
class ChaincodeResult:
    """What a chaincode call produced. `reverted` calls keep `output` as revert data."""

    output: bytes = b""
    gas_used: int = 0
    logs: list[Log] = field(default_factory=list)
    reverted: bool = False


class ChaincodeSession(Protocol):
    """Chaincode execution within one block (or one eth_call)."""

    def call(self, call: ChaincodeCall) -> ChaincodeResult: ...

    def snapshot(self) -> int: ...

    def revert(self, checkpoint: int) -> None: ...

    def commit(self, checkpoint: int) -> None: ...

    def finish(self) -> tuple[Mapping[bytes, bytes | None], bytes]:
        """Storage writes (full keys; None deletes) and the new 32-byte state commitment."""
        ...


class ChaincodeHost(Protocol):
    """Opens sessions over the chaincode state committed by a parent block.

    `parent_commitment` is the parent block's chaincode commitment (slot 0 of 0x…1000 in
    the parent's state, zero when it has none).
    """

    def addresses(self) -> tuple[bytes, ...]: ...

    def open_session(self, parent_commitment: bytes, block: BlockInfo) -> ChaincodeSession: ...


@runtime_checkable
class ChaincodeGenesis(Protocol):
    """A host with genesis state: `Chain` writes it in the genesis block's batch, and the
    commitment into the genesis state root. Hosts without it start empty (commitment 0)."""

    def genesis(self, config: GenesisConfig) -> tuple[Mapping[bytes, bytes | None], bytes]: ...


@runtime_checkable
class EnrolmentSource(Protocol):
    """A host that knows who may send transactions (Governance at the head), for the
    txpool's sender check."""

    def is_enrolled(self, address: bytes) -> bool: ...


class NoChaincode:
    """The host of a chain without native chaincode: no reserved address is intercepted."""

    def addresses(self) -> tuple[bytes, ...]:
        return ()

    def open_session(self, parent_commitment: bytes, block: BlockInfo) -> ChaincodeSession:
        raise AssertionError("NoChaincode serves no address")
