"""Applying transactions to state: blocks, calls and gas estimates.

`Executor.execute_block` runs a block's transactions on top of a parent state the way
py-evm's `mine_all` does: every transaction applied with a journal checkpoint, the state
root computed once at the end (per-transaction roots run 10-50x slower). It returns the
receipts, the roots and the state writes; nothing touches disk until the chain store
commits the block in one batch.

With `skip_invalid=True` (block building) a transaction the state refuses (stale nonce,
gas above what is left in the block) is left out and reported instead of failing the
block; with `skip_invalid=False` (importing a block from elsewhere) it fails the block.

A transaction to a chaincode address goes through the native fast path
(`node.execution.native`), which applies it as py-evm would without py-evm's per-message
machinery; `native_fast_path=False` sends every transaction through py-evm (the
differential tests compare the two).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth.db.account import AccountDB
from eth.exceptions import Revert as _Revert
from eth.vm.execution_context import ExecutionContext
from eth.vm.forks.prague.transactions import PragueUnsignedLegacyTransaction
from eth.vm.spoof import SpoofTransaction
from eth_abi.abi import decode as abi_decode
from eth_typing import Address, BlockNumber, Hash32
from eth_utils.exceptions import ValidationError as EVMValidationError

from node.execution.chaincode import BlockInfo, ChaincodeHost, NoChaincode
from node.execution.evm import (
    CallDeadlineExceeded,
    PendingStateDB,
    RxLedgerState,
    RxLedgerVM,
    ancestor_hashes,
    call_state_class_for,
    new_atomic_db,
    state_class_for,
    to_evm_transaction,
)
from node.execution.native import apply_native_transaction
from node.storage.base import KeyValueStore
from rxledger.core.errors import ExecutionError, InvalidBlock, Reverted
from rxledger.core.types.headers import EMPTY_TRIE_ROOT
from rxledger.core.types.receipts import Log, Receipt, encode_receipt, logs_bloom, merge_blooms
from rxledger.core.types.transactions import (
    LegacyTransaction,
    SignedTransaction,
    calldata_floor_gas,
    intrinsic_gas,
)

log = logging.getLogger(__name__)

ZERO_ADDRESS = b"\x00" * 20
# Slot 0 of this account holds the chaincode state commitment (see _commit_chaincode_root).
CHAINCODE_ROOT_ADDRESS = Address(b"\x00" * 18 + b"\x10\x00")
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


@dataclass(frozen=True, slots=True)
class BlockEnv:
    """The block a transaction runs in, as the EVM sees it."""

    number: int
    timestamp: int
    coinbase: bytes
    gas_limit: int
    mix_hash: bytes


@dataclass(slots=True)
class BlockExecution:
    """The outcome of applying a block's transactions."""

    transactions: list[SignedTransaction]
    receipts: list[Receipt]
    state_root: bytes
    gas_used: int
    logs_bloom: bytes
    writes: dict[bytes, bytes | None]
    skipped: list[tuple[SignedTransaction, str]] = field(default_factory=list)
    deferred: list[SignedTransaction] = field(default_factory=list)
    # Per included transaction: its return data, or its revert data (not in receipts).
    outputs: list[bytes] = field(default_factory=list)
    _encoded_receipts: list[bytes] | None = field(default=None, init=False, repr=False)

    def encoded_receipts(self) -> list[bytes]:
        """The receipts' consensus encodings, made once (the receipts root and the stored
        block both need them)."""
        if self._encoded_receipts is None:
            self._encoded_receipts = [encode_receipt(r) for r in self.receipts]
        return self._encoded_receipts


class CallTimeout(ExecutionError):
    """An eth_call/eth_estimateGas ran past its time budget (geth: RPCEVMTimeout)."""

    def __init__(self) -> None:
        super().__init__("execution aborted: the call ran past its deadline")


@dataclass(frozen=True, slots=True)
class CallResult:
    output: bytes
    gas_used: int


def decode_revert_reason(data: bytes) -> str | None:
    """The reason of a Solidity `Error(string)` or `Panic(uint256)` revert, if it is one."""
    try:
        if data[:4] == ERROR_SELECTOR:
            return str(abi_decode(["string"], data[4:])[0])
        if data[:4] == PANIC_SELECTOR:
            return f"panic code 0x{abi_decode(['uint256'], data[4:])[0]:x}"
    except Exception:  # malformed revert data: report no reason rather than fail
        return None
    return None


def _logs_of(computation: Any) -> tuple[Log, ...]:
    return tuple(
        Log(bytes(address), tuple(t.to_bytes(32, "big") for t in topics), bytes(data))
        for address, topics, data in computation.get_log_entries()
    )


class Executor:
    """Runs transactions against the state committed in a `KeyValueStore`."""

    def __init__(
        self,
        store: KeyValueStore,
        chain_id: int,
        canonical_hash: Callable[[int], bytes | None],
        chaincode: ChaincodeHost | None = None,
        *,
        native_fast_path: bool = True,
    ) -> None:
        self.store = store
        self.chain_id = chain_id
        self.canonical_hash = canonical_hash
        self.chaincode = chaincode or NoChaincode()
        self._state_class = state_class_for(self.chaincode.addresses())
        # Transactions to these addresses take the native fast path (none when off).
        self.native_addresses = frozenset(self.chaincode.addresses()) if native_fast_path else frozenset()
        # The accounts the last executed block read or wrote, as they are at its state
        # root: the next block (built on that root) and nonce lookups start from them
        # instead of walking the trie again. Replaced whole, never mutated (threads read it).
        self._known_accounts: tuple[bytes, dict[bytes, Any]] = (b"", {})
        # The chaincode commitment (slot 0 of 0x…1000) at the last executed block's root.
        self._known_commitment: tuple[bytes, bytes] = (b"", b"")

    # -- state -----------------------------------------------------------------------------
    def open_state(self, state_root: bytes, env: BlockEnv, *,
                   deadline: float | None = None) -> tuple[RxLedgerState, PendingStateDB]:
        """A py-evm state over `state_root` whose writes stay in the returned pending DB.
        With a `deadline` (time.monotonic(); RPC calls only, never blocks) its EVM code
        raises CallDeadlineExceeded at a jump, call or create after that time."""
        pending = PendingStateDB(self.store)
        context = ExecutionContext(
            coinbase=Address(env.coinbase),
            timestamp=env.timestamp,
            block_number=BlockNumber(env.number),
            difficulty=0,
            mix_hash=Hash32(env.mix_hash),
            gas_limit=env.gas_limit,
            prev_hashes=(Hash32(h) for h in ancestor_hashes(self.canonical_hash, env.number)),
            chain_id=self.chain_id,
            base_fee_per_gas=0,
            excess_blob_gas=0,
        )
        if deadline is None:
            state = self._state_class(new_atomic_db(pending), context, Hash32(state_root))
        else:
            state = call_state_class_for(self.chaincode.addresses())(
                new_atomic_db(pending), context, Hash32(state_root))
            state.deadline = deadline  # type: ignore[attr-defined]
        state.block_info = BlockInfo(env.number, env.timestamp, env.coinbase, self.chain_id)
        known_root, accounts = self._known_accounts
        if known_root == state_root:
            state.prefill_accounts(accounts)
        return state, pending

    def read_state(self, state_root: bytes) -> RxLedgerState:
        """A read-only view of the accounts at `state_root`."""
        env = BlockEnv(0, 0, ZERO_ADDRESS, 0, b"\x00" * 32)
        return self.open_state(state_root, env)[0]

    def read_accounts(self, state_root: bytes) -> AccountDB:
        """py-evm's account database at `state_root`, for reads (no EVM state around it)."""
        return AccountDB(new_atomic_db(PendingStateDB(self.store)), Hash32(state_root))

    def get_nonce(self, state_root: bytes, address: bytes) -> int:
        known_root, accounts = self._known_accounts
        account = accounts.get(address) if known_root == state_root else None
        if account is not None:
            return int(account.nonce)
        return self.read_accounts(state_root).get_nonce(Address(address))

    def get_balance(self, state_root: bytes, address: bytes) -> int:
        return self.read_accounts(state_root).get_balance(Address(address))

    def get_code(self, state_root: bytes, address: bytes) -> bytes:
        return bytes(self.read_accounts(state_root).get_code(Address(address)))

    def get_storage(self, state_root: bytes, address: bytes, slot: int) -> int:
        return self.read_accounts(state_root).get_storage(Address(address), slot)

    def genesis_state(
        self, balances: Sequence[tuple[bytes, int]], chaincode_commitment: bytes = b"\x00" * 32,
        codes: Sequence[tuple[bytes, bytes]] = (),
    ) -> tuple[bytes, dict[bytes, bytes | None]]:
        """The state root and storage writes of a genesis allocation (and of the genesis
        chaincode commitment, in slot 0 of 0x…1000 as every block's; `codes`: accounts
        created with code)."""
        pending = PendingStateDB(self.store)
        accounts = AccountDB(new_atomic_db(pending), Hash32(EMPTY_TRIE_ROOT))
        for address, balance in balances:
            accounts.set_balance(Address(address), balance)
        for address, code in codes:
            accounts.set_code(Address(address), code)
        if any(chaincode_commitment):
            accounts.set_storage(CHAINCODE_ROOT_ADDRESS, 0, int.from_bytes(chaincode_commitment, "big"))
        accounts.persist()
        return bytes(accounts.state_root), dict(pending.writes())

    # -- blocks ----------------------------------------------------------------------------
    def execute_block(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        transactions: Sequence[SignedTransaction],
        *,
        skip_invalid: bool,
    ) -> BlockExecution:
        """Apply `transactions` in order; compute the state root once at the end."""
        if not transactions:
            # An empty block changes no state: no transaction runs, chaincode state is
            # neither read nor written (its commitment stays), so the parent's root stands.
            # Skipping py-evm here is most of the cost of syncing idle stretches of chain.
            return BlockExecution([], [], parent_state_root, 0, b"\x00" * 256, {})
        state, pending = self.open_state(parent_state_root, env)
        session = None
        if self.chaincode.addresses():
            known_root, known_commitment = self._known_commitment
            parent_commitment = (known_commitment if known_root == parent_state_root
                                 else self._chaincode_root(state))
            session = state.chaincode_session = self.chaincode.open_session(
                parent_commitment, state.block_info)
        native_addresses = self.native_addresses
        included: list[SignedTransaction] = []
        receipts: list[Receipt] = []
        outputs: list[bytes] = []
        skipped: list[tuple[SignedTransaction, str]] = []
        deferred: list[SignedTransaction] = []
        gas_used = 0
        for stx in transactions:
            if stx.gas > env.gas_limit - gas_used:
                if not skip_invalid:
                    raise InvalidBlock(
                        f"transaction {stx.hash.hex()} gas {stx.gas} exceeds the gas left in the block"
                    )
                deferred.append(stx)
                continue
            if session is not None and stx.tx.to in native_addresses:
                outcome = apply_native_transaction(state, session, stx, self.chain_id, state.block_info)
                if outcome is not None:
                    gas_used += outcome.gas_used
                    receipts.append(Receipt(stx.tx.type_id, 1 if outcome.success else 0, gas_used,
                                            logs_bloom(outcome.logs), outcome.logs))
                    outputs.append(outcome.output)
                    included.append(stx)
                    continue
                # else: one py-evm must judge (an invalid nonce, balance, gas, chain id)
            evm_tx = to_evm_transaction(stx)
            state.lock_changes()
            snapshot = state.snapshot()
            try:
                computation = state.apply_transaction(evm_tx)
            except EVMValidationError as exc:
                state.revert(snapshot)
                if not skip_invalid:
                    raise InvalidBlock(f"transaction {stx.hash.hex()} is invalid: {exc}") from exc
                skipped.append((stx, str(exc)))
                continue
            state.commit(snapshot)
            gas_used += RxLedgerVM.finalize_gas_used(evm_tx, computation)
            logs = _logs_of(computation)
            receipts.append(
                Receipt(stx.tx.type_id, 0 if computation.is_error else 1, gas_used, logs_bloom(logs), logs)
            )
            outputs.append(bytes(computation.output))
            included.append(stx)
        writes: dict[bytes, bytes | None] = {}
        if state.chaincode_session is not None:
            chaincode_writes, commitment = state.chaincode_session.finish()
            writes.update(chaincode_writes)
            self._commit_chaincode_root(state, commitment)
        accounts = state.known_accounts()
        state.persist()
        self._remember(state.state_root, accounts,
                       commitment if state.chaincode_session is not None else None)
        writes.update(pending.writes())
        return BlockExecution(
            included, receipts, state.state_root, gas_used,
            merge_blooms([r.logs_bloom for r in receipts]), writes, skipped, deferred, outputs,
        )

    def _remember(self, state_root: bytes, accounts: dict[bytes, Any], commitment: bytes | None) -> None:
        """What the next block on `state_root` need not read from the trie again."""
        self._known_accounts = (state_root, accounts)
        if commitment is not None:
            self._known_commitment = (state_root, commitment)

    @staticmethod
    def _chaincode_root(state: RxLedgerState) -> bytes:
        """The chaincode commitment of the state's block (zero when it has none)."""
        return int(state.get_storage(CHAINCODE_ROOT_ADDRESS, 0)).to_bytes(32, "big")

    def _commit_chaincode_root(self, state: RxLedgerState, commitment: bytes) -> None:
        # The chaincode commitment is stored in one slot of the reserved address 0x…1000,
        # so the header's state root commits to chaincode state with one trie update per block.
        state.set_storage(CHAINCODE_ROOT_ADDRESS, 0, int.from_bytes(commitment, "big"))

    # -- calls -----------------------------------------------------------------------------
    def call(
        self,
        state_root: bytes,
        env: BlockEnv,
        *,
        sender: bytes,
        to: bytes,
        data: bytes,
        value: int = 0,
        gas: int | None = None,
        deadline: float | None = None,
    ) -> CallResult:
        """Run a message without committing anything (eth_call).

        Raises `Reverted` (with data and decoded reason) or `ExecutionError`;
        `CallTimeout` once past `deadline` (time.monotonic(); None: no limit).
        """
        if deadline is not None and time.monotonic() > deadline:
            raise CallTimeout
        gas = env.gas_limit if gas is None else gas
        probe = LegacyTransaction(0, 0, gas, to, value, data, 0, 0, 0)
        needed = max(intrinsic_gas(probe), calldata_floor_gas(probe))
        if gas < needed:
            raise ExecutionError(f"intrinsic gas too low: have {gas}, want {needed}")
        state, _pending = self.open_state(state_root, env, deadline=deadline)
        if self.chaincode.addresses():
            state.chaincode_session = self.chaincode.open_session(
                self._chaincode_root(state), state.block_info)
        unsigned = PragueUnsignedLegacyTransaction(
            nonce=state.get_nonce(Address(sender)), gas_price=0, gas=gas, to=to, value=value, data=data
        )
        tx = SpoofTransaction(unsigned, from_=sender)
        try:
            computation = state.apply_transaction(tx)  # type: ignore[arg-type]  # spoofed sender
        except EVMValidationError as exc:
            raise ExecutionError(f"call cannot run: {exc}") from exc
        except CallDeadlineExceeded:
            raise CallTimeout from None
        gas_used = gas - computation.get_gas_remaining()
        if computation.is_error:
            error = computation.error
            if isinstance(error, _Revert):
                data_out = bytes(computation.output)
                reason = decode_revert_reason(data_out)
                message = f"execution reverted: {reason}" if reason else "execution reverted"
                raise Reverted(message, data_out, reason)
            raise ExecutionError(f"execution failed: {type(error).__name__}: {error}".rstrip(": "))
        return CallResult(bytes(computation.output), gas_used)

    def estimate_gas(
        self, state_root: bytes, env: BlockEnv, *, sender: bytes, to: bytes, data: bytes,
        value: int = 0, cap: int | None = None, deadline: float | None = None,
    ) -> int:
        """The least gas with which the message succeeds (binary search, as geth does);
        every call of the search runs within the one `deadline`."""
        cap = env.gas_limit if cap is None else cap
        result = self.call(state_root, env, sender=sender, to=to, data=data, value=value, gas=cap,
                           deadline=deadline)
        low = max(result.gas_used, 21_000) - 1
        high = cap
        # Most calls succeed with gas used plus the 1/64 held back for sub-calls.
        guess = min(cap, result.gas_used * 64 // 63 + 2_300)
        if self._succeeds(state_root, env, sender, to, data, value, guess, deadline):
            high = guess
        while high - low > 1:
            mid = (low + high) // 2
            if self._succeeds(state_root, env, sender, to, data, value, mid, deadline):
                high = mid
            else:
                low = mid
        return high

    def _succeeds(self, state_root: bytes, env: BlockEnv, sender: bytes, to: bytes, data: bytes,
                  value: int, gas: int, deadline: float | None) -> bool:
        try:
            self.call(state_root, env, sender=sender, to=to, data=data, value=value, gas=gas,
                      deadline=deadline)
        except CallTimeout:
            raise
        except (ExecutionError, Reverted):
            return False
        return True

