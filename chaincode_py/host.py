"""The native chaincode host: sessions over the chaincode state, the journal, the commitment.

`NativeChaincodeHost` implements `node.execution.chaincode.ChaincodeHost` for the three
built-in chaincodes (PrescriptionRegistry 0x…1001, Governance 0x…1002, AnchorRegistry
0x…1003). The EVM hands it every call to those addresses (see `node.execution.evm`).

State lives in the store under the `c` keyspace (`node.storage.chain_store.CHAINCODE`):
`c ‖ chaincode address (20) ‖ key` → value. The store holds the state of the head block
only; a block's writes reach it in the block's own atomic batch (`finish()` returns them).

A `NativeSession` is one block (or one eth_call): reads go through the session's pending
writes, then a read cache, then the store; writes stay pending, recorded in a journal so
that `snapshot()`/`revert()`/`commit()` (called by the EVM state with its own journal)
undo exactly the writes of a reverted call, nested to any depth.

Commitment (ARCHITECTURE.md, "Chaincode"): an accumulator over what each block read and
wrote,

    C_N = keccak256(C_{N-1} ‖ keccak256(RLP([reads, writes])))
    reads  = sorted [(key, value before block N)] of every key block N read or wrote
    writes = sorted [(key, value after block N)] of every key whose value changed

with keys without the keyspace byte (address ‖ key), absent or deleted values empty, and
C_N = C_{N-1} for a block that touches no chaincode state. The executor stores C_N in
slot 0 of 0x…1000, so the header's state root commits to it with one trie update per
block. The commitment of the head is also kept in the store (`COMMITMENT_KEY`): a session
for another commitment cannot call chaincode (the store has the head's state only), and a
call during which the head moved is refused too, rather than answered from two states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chaincode_py.anchors import AnchorRegistry
from chaincode_py.api import Abort, Chaincode, Context, Gas, Meter, Revert, namespace
from chaincode_py.genesis import GenesisError, governance_arguments
from chaincode_py.governance import Governance
from chaincode_py.governance import is_enrolled as governance_is_enrolled
from chaincode_py.prescriptions import PrescriptionRegistry
from node.execution.chaincode import BlockInfo, ChaincodeCall, ChaincodeResult, StaleChaincodeState
from node.genesis import GenesisConfig
from node.storage.base import KeyValueStore
from node.storage.chain_store import CHAINCODE
from rxledger.core.addresses import GOVERNANCE
from rxledger.core.crypto import keccak256
from rxledger.core.types.rlp_codec import rlp_bytes, rlp_list

__all__ = ["COMMITMENT_KEY", "NativeChaincodeHost", "NativeSession", "StaleChaincodeState",
           "block_commitment"]

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = b"\x00" * 20
# The head's commitment, written with the state it commits to. Shorter than any
# chaincode key (c ‖ 20-byte address ‖ key), so it cannot collide with one.
COMMITMENT_KEY = CHAINCODE + b"!commitment"
UNLIMITED_GAS = 1 << 62


def _rlp_pairs(values: Mapping[bytes, bytes]) -> bytes:
    """RLP([[key without the keyspace byte, value] for keys in order]) (pyrlp's encoding,
    written out: pyrlp costs ~15 µs per pair, this ~1)."""
    skip = len(CHAINCODE)
    return rlp_list(b"".join(rlp_list(rlp_bytes(key[skip:]) + rlp_bytes(values[key]))
                             for key in sorted(values)))


def block_commitment(parent: bytes, reads: Mapping[bytes, bytes], net_writes: Mapping[bytes, bytes]) -> bytes:
    """C_N from C_{N-1}, the values block N read (as they were before the block) and its net
    writes; full store keys, b"" = absent or deleted."""
    if not reads and not net_writes:
        return parent
    return keccak256(parent + keccak256(rlp_list(_rlp_pairs(reads) + _rlp_pairs(net_writes))))


class _NoStore:
    """The empty state genesis starts from."""

    def get(self, key: bytes) -> bytes | None:
        return None


class NativeSession:
    """Chaincode execution within one block or one eth_call (see the module docstring)."""

    def __init__(self, host: NativeChaincodeHost, parent_commitment: bytes, block: BlockInfo,
                 base: KeyValueStore | _NoStore) -> None:
        self._host = host
        self._chaincodes = host.chaincodes
        self._base = base
        self._check_store = not isinstance(base, _NoStore)
        self.parent_commitment = parent_commitment
        self.block = block
        self._pending: dict[bytes, bytes] = {}  # full key -> value now (b"": deleted)
        self._original: dict[bytes, bytes] = {}  # full key -> value in the store
        self._journal: list[tuple[bytes, bytes | None]] = []  # (key, previous pending value)
        self._checkpoints: list[tuple[int, int]] = []  # (id, journal length), innermost last
        self._next_id = 0
        self._finished = False

    # -- state access (api.StateAccess) ----------------------------------------------------
    def read(self, key: bytes) -> bytes:
        value = self._pending.get(key)
        if value is not None:
            return value
        value = self._original.get(key)
        if value is None:
            value = self._base.get(key) or b""
            self._original[key] = value
        return value

    def write(self, key: bytes, value: bytes) -> bytes:
        previous = self.read(key)
        if previous != value:
            if self._finished:
                raise RuntimeError("the chaincode session is finished")
            if self._checkpoints:
                self._journal.append((key, self._pending.get(key)))
            self._pending[key] = value
        return previous

    # -- journal ---------------------------------------------------------------------------
    def snapshot(self) -> int:
        self._next_id += 1
        self._checkpoints.append((self._next_id, len(self._journal)))
        return self._next_id

    def _position(self, checkpoint: int) -> int:
        for pos in range(len(self._checkpoints) - 1, -1, -1):
            if self._checkpoints[pos][0] == checkpoint:
                return pos
        raise ValueError(f"unknown or closed chaincode checkpoint {checkpoint}")

    def revert(self, checkpoint: int) -> None:
        """Undo every write since `checkpoint` (and close the checkpoints opened after it)."""
        pos = self._position(checkpoint)
        length = self._checkpoints[pos][1]
        while len(self._journal) > length:
            key, previous = self._journal.pop()
            if previous is None:
                del self._pending[key]
            else:
                self._pending[key] = previous
        del self._checkpoints[pos:]
        if not self._checkpoints:
            self._journal.clear()

    def commit(self, checkpoint: int) -> None:
        """Keep the writes since `checkpoint`; an outer checkpoint can still undo them."""
        del self._checkpoints[self._position(checkpoint):]
        if not self._checkpoints:
            self._journal.clear()

    # -- calls -----------------------------------------------------------------------------
    def _check_not_stale(self) -> None:
        if self._check_store and self._host.head_commitment() != self.parent_commitment:
            raise StaleChaincodeState(
                "chaincode state is kept for the head block only (or the head moved during "
                "the call); call against the latest block"
            )

    def context(self, address: bytes, meter: Meter, *, sender: bytes = ZERO_ADDRESS,
                origin: bytes = ZERO_ADDRESS, value: int = 0, static: bool = False) -> Context:
        """A context for chaincode `address` in this session's block."""
        return Context(self, meter, address=address, sender=sender, origin=origin, value=value,
                       block_number=self.block.number, timestamp=self.block.timestamp,
                       chain_id=self.block.chain_id, static=static, prefix=namespace(address))

    def call(self, call: ChaincodeCall) -> ChaincodeResult:
        if self._finished:
            raise RuntimeError("the chaincode session is finished")
        chaincode = self._chaincodes[call.address]
        self._check_not_stale()
        meter = Meter(call.gas)
        ctx = self.context(call.address, meter, sender=call.sender, origin=call.origin,
                           value=call.value, static=call.is_static)
        checkpoint = self.snapshot()
        try:
            meter.charge(Gas.CALL)
            output = chaincode.dispatch(ctx, call.data)
        except Revert as exc:
            self.revert(checkpoint)
            result = ChaincodeResult(exc.data, meter.used, [], True)
        except Abort:  # out of gas, or a write in a static call: all gas, no output
            self.revert(checkpoint)
            result = ChaincodeResult(b"", call.gas, [], True)
        else:
            self.commit(checkpoint)
            result = ChaincodeResult(output, meter.used, ctx.logs)
        self._check_not_stale()
        return result

    # -- end of block ----------------------------------------------------------------------
    def net_writes(self) -> dict[bytes, bytes]:
        """Keys whose value differs from the block's start, with their final value."""
        return {k: v for k, v in self._pending.items() if v != self._original[k]}

    def reads(self) -> dict[bytes, bytes]:
        """Every key the block read or wrote, with its value before the block."""
        return dict(self._original)

    def finish(self) -> tuple[dict[bytes, bytes | None], bytes]:
        """The block's storage writes (None deletes; the commitment included) and C_N."""
        self._finished = True
        net = self.net_writes()
        commitment = block_commitment(self.parent_commitment, self._original, net)
        writes: dict[bytes, bytes | None] = {k: (v or None) for k, v in sorted(net.items())}
        if commitment != self.parent_commitment:
            writes[COMMITMENT_KEY] = commitment
        return writes, commitment


class NativeChaincodeHost:
    """The built-in chaincodes over a store (`ChaincodeHost`, with genesis and the
    enrolment check the txpool asks for)."""

    def __init__(self, store: KeyValueStore, chaincodes: Sequence[Chaincode] | None = None) -> None:
        self.store = store
        instances = list(chaincodes) if chaincodes is not None else [
            PrescriptionRegistry(), Governance(), AnchorRegistry()]
        self.chaincodes: dict[bytes, Chaincode] = {c.address: c for c in instances}
        self._addresses = tuple(c.address for c in instances)

    def addresses(self) -> tuple[bytes, ...]:
        return self._addresses

    def head_commitment(self) -> bytes:
        """The commitment of the chaincode state in the store (the head's)."""
        return self.store.get(COMMITMENT_KEY) or ZERO32

    def open_session(self, parent_commitment: bytes, block: BlockInfo) -> NativeSession:
        """A session over the head's state. Opening one for another block's commitment is
        allowed (an eth_call at an old block that never reaches a chaincode), but a call
        into chaincode then raises `StaleChaincodeState`."""
        return NativeSession(self, parent_commitment, block, self.store)

    def genesis(self, config: GenesisConfig) -> tuple[dict[bytes, bytes | None], bytes]:
        """The chaincode state of `config`'s genesis block, and its commitment C_0.

        Governance is set up as its Solidity constructor would be (same checks; a failing
        one raises `GenesisError` with the constructor's reason). A genesis that names no
        organisation and no account leaves Governance empty (where the constructor would
        refuse): a chain without on-chain membership. The registries start empty.
        """
        session = NativeSession(self, ZERO32, BlockInfo(0, config.timestamp, ZERO_ADDRESS,
                                                        config.chain_id), _NoStore())
        governance = self.chaincodes.get(GOVERNANCE)
        arguments = governance_arguments(config)
        if isinstance(governance, Governance) and (arguments[0] or arguments[2]):
            ctx = session.context(GOVERNANCE, Meter(UNLIMITED_GAS))
            try:
                governance.constructor(ctx, *arguments)
            except Revert as exc:
                raise GenesisError(f"genesis governance refused: {_reason(exc.data)}") from None
        return session.finish()

    def is_enrolled(self, address: bytes) -> bool:
        """Whether Governance (at the head) gives `address` a role."""
        session = NativeSession(self, self.head_commitment(), BlockInfo(0, 0, ZERO_ADDRESS, 0),
                                self.store)
        ctx = session.context(GOVERNANCE, Meter(UNLIMITED_GAS), static=True)
        return governance_is_enrolled(ctx, address)


def _reason(data: bytes) -> str:
    from eth_abi.abi import decode

    try:
        return str(decode(["string"], data[4:])[0])
    except Exception:  # not an Error(string)
        return "0x" + data.hex()
