"""Our py-evm wrapper: the one place that knows py-evm's classes.

py-evm 0.12.1b1 is archived upstream, so nothing outside `node.execution` imports it.
We use py-evm's Prague state and transaction executor directly rather than its Chain
and HeaderDB: our headers hash differently (QBFT extraData rules) and our blocks are
stored by `node.storage.chain`, so we hand py-evm an execution context and a state DB
and keep block bookkeeping ourselves.

- `RxLedgerVM`: Prague with a long extraData allowed and zero base fee; its class
  methods build execution contexts and compute a transaction's gas used.
- `RxLedgerState`: Prague state whose computations route the reserved chaincode
  addresses to the chaincode session, and whose journal checkpoints the chaincode
  session with the EVM's. It also offers the few account operations the native fast
  path (`node.execution.native`) applies directly, without py-evm's message machinery.
- `call_state_class_for`: the same state for eth_call/eth_estimateGas only, whose jumps,
  calls and creates first check the call's deadline (`CallDeadlineExceeded`).
- `PendingStateDB`: a py-evm database over our key-value store that reads through to
  disk and keeps every write in memory; the executor hands those writes to the block's
  single storage batch, so nothing of an unfinished block ever reaches disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from eth.abc import ComputationAPI, SignedTransactionAPI
from eth.constants import EMPTY_SHA3
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth.exceptions import Revert
from eth.rlp.accounts import Account
from eth.vm import opcode_values
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.computation import PragueComputation
from eth.vm.forks.prague.state import PragueState
from eth.vm.forks.prague.transactions import PragueTransactionBuilder
from eth_typing import Address

from node.execution.chaincode import BlockInfo, ChaincodeCall, ChaincodeSession
from node.storage.base import KeyValueStore
from node.storage.chain_store import STATE
from rxledger.core.types.rlp_codec import rlp_bytes, rlp_int, rlp_list
from rxledger.core.types.transactions import SignedTransaction

STATE_PREFIX = STATE  # keyspace of EVM trie nodes and contract code in the store


def encode_account(account: Account) -> bytes:
    """An account's RLP (nonce, balance, storage root, code hash), as pyrlp encodes it."""
    return rlp_list(rlp_int(account.nonce) + rlp_int(account.balance)
                    + rlp_bytes(account.storage_root) + rlp_bytes(account.code_hash))


class PendingStateDB(BaseDB):
    """py-evm DB: reads from `pending` then the store (under STATE_PREFIX); writes to `pending`."""

    def __init__(self, store: KeyValueStore) -> None:
        self.store = store
        self.pending: dict[bytes, bytes] = {}

    def __getitem__(self, key: bytes) -> bytes:
        value = self.pending.get(key)
        if value is None:
            value = self.store.get(STATE_PREFIX + key)
            if value is None:
                raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.pending[key] = value

    def _exists(self, key: bytes) -> bool:
        return key in self.pending or self.store.has(STATE_PREFIX + key)

    def __delitem__(self, key: bytes) -> None:
        # Trie nodes are content-addressed and shared between blocks; never delete.
        pass

    def writes(self) -> Iterator[tuple[bytes, bytes]]:
        """Every write, with its storage key."""
        for key, value in self.pending.items():
            yield STATE_PREFIX + key, value


def _chaincode_entry(computation: ComputationAPI) -> ComputationAPI:
    """Precompile body for the reserved addresses: run the call on the chaincode session."""
    state: RxLedgerState = computation.state  # type: ignore[assignment]
    session = state.chaincode_session
    msg = computation.msg
    if session is None:  # pragma: no cover - RxLedgerState always sets one when hooks exist
        return computation
    result = session.call(
        ChaincodeCall(
            address=msg.code_address,
            sender=msg.sender,
            origin=computation.transaction_context.origin,
            value=msg.value,
            data=bytes(msg.data),
            gas=msg.gas,
            is_static=msg.is_static,
            block=state.block_info,
        )
    )
    computation.consume_gas(min(result.gas_used, computation.get_gas_remaining()), "chaincode")
    if result.reverted:
        computation.output = result.output  # as the REVERT opcode does: revert data is output
        raise Revert(result.output)
    for log in result.logs:
        computation.add_log_entry(
            Address(log.address), tuple(int.from_bytes(t, "big") for t in log.topics), log.data
        )
    computation.output = result.output
    return computation


class RxLedgerComputation(PragueComputation):
    """Prague computation; precompiles are extended per chaincode host in `state_class_for`."""


class RxLedgerState(PragueState):
    """Prague state with a chaincode session journaled alongside the EVM's."""

    computation_class = RxLedgerComputation
    chaincode_session: ChaincodeSession | None = None
    block_info: BlockInfo
    # Accounts `clear_if_empty` deleted with nothing written to them since (see there).
    _cleared: frozenset[bytes] | set[bytes] = frozenset()

    def apply_transaction(self, transaction: SignedTransactionAPI) -> ComputationAPI:
        self._cleared = frozenset()  # py-evm may write any account
        return super().apply_transaction(transaction)

    def set_system_contracts(self) -> None:
        """Nothing. Cancun and Prague's states, when opened, re-set the code of the beacon
        roots and history contracts where that code is already there (a no-op on the
        state), after reading both accounts: two trie walks per state opened (every block,
        call and nonce lookup) for nothing. Our chains have neither contract."""

    # -- accounts known at a state root, carried from one block to the next ------------------
    def known_accounts(self) -> dict[bytes, Any]:
        """The accounts this state has decoded, as they are now, except those whose storage
        it opened (their storage root changes when the state is persisted). Call before
        `persist` (which empties the cache): after it, they are the accounts at the new root."""
        db = self._account_db
        opened = db._account_stores  # type: ignore[attr-defined]
        return {a: account for a, account in db._account_cache.items()  # type: ignore[attr-defined]
                if a not in opened}

    def prefill_accounts(self, accounts: dict[bytes, Any]) -> None:
        """Seed the account cache with `accounts`, which must be the accounts at this
        state's root (from `known_accounts` of the state that made the root)."""
        self._account_db._account_cache.update(accounts)  # type: ignore[attr-defined]

    def snapshot(self) -> Any:
        base = super().snapshot()
        if self.chaincode_session is None:
            return base
        return (base, self.chaincode_session.snapshot())

    def revert(self, snapshot: Any) -> None:
        if self.chaincode_session is None:
            return super().revert(snapshot)
        base, checkpoint = snapshot
        super().revert(base)
        self.chaincode_session.revert(checkpoint)

    def commit(self, snapshot: Any) -> None:
        if self.chaincode_session is None:
            return super().commit(snapshot)
        base, checkpoint = snapshot
        super().commit(base)
        self.chaincode_session.commit(checkpoint)

    # -- account operations of the native fast path (node.execution.native) ----------------
    # They go to py-evm's AccountDB with the same effect as its public methods (the account
    # cache, then the journal), without re-validating 20-byte addresses on every call.
    def account_nonce_balance(self, address: bytes) -> tuple[int, int]:
        """The account's nonce and balance (0, 0 for an absent account)."""
        account = self._account_db._get_account(address)  # type: ignore[attr-defined]
        return account.nonce, account.balance

    def set_nonce_balance(self, address: bytes, nonce: int, balance: int) -> None:
        """Set an account's nonce and balance, keeping its storage and code."""
        if address in self._cleared:
            self._cleared.discard(address)  # type: ignore[union-attr]
        db = self._account_db
        account = db._get_account(address)  # type: ignore[attr-defined]
        if account.nonce != nonce or account.balance != balance:
            account = Account(nonce, balance, account.storage_root, account.code_hash)
        # What AccountDB._set_account does, with the account's RLP written out (pyrlp's
        # serializable encoding was a fifth of a native transaction; byte-identical, see
        # tests/unit/test_types.py); the same value written again is a touch, as py-evm's
        # set_balance does.
        db._account_cache[address] = account  # type: ignore[attr-defined]
        db._journaltrie[address] = encode_account(account)  # type: ignore[attr-defined]

    def clear_if_empty(self, address: bytes) -> None:
        """An account touched by a transaction, as EIP-161 leaves it: py-evm's executor
        touches it (writes it, creating it if absent) and then deletes it if it exists and
        is empty (nonce 0, balance 0, no code). Touched, an account always exists, so the
        outcome is: deleted if empty, unchanged otherwise. Deleting again an account this
        method deleted, with no write to it since, changes nothing: skipped (the coinbase
        of our zero-fee blocks has no account, and is touched by every transaction)."""
        if address in self._cleared:
            return
        account = self._account_db._get_account(address)  # type: ignore[attr-defined]
        if account.nonce == 0 and account.balance == 0 and account.code_hash == EMPTY_SHA3:
            self._account_db.delete_account(Address(address))
            if not isinstance(self._cleared, set):
                self._cleared = set()
            self._cleared.add(address)


_state_classes: dict[tuple[bytes, ...], type[RxLedgerState]] = {}


def state_class_for(addresses: tuple[bytes, ...]) -> type[RxLedgerState]:
    """The state class whose computations send `addresses` to chaincode (cached)."""
    cls = _state_classes.get(addresses)
    if cls is None:
        precompiles = dict(PragueComputation.get_precompiles())
        for address in addresses:
            precompiles[Address(address)] = _chaincode_entry
        computation = type("RxLedgerChaincodeComputation", (RxLedgerComputation,),
                           {"_precompiles": precompiles})
        cls = type("RxLedgerChaincodeState", (RxLedgerState,), {"computation_class": computation})
        _state_classes[addresses] = cls
    return cls


class CallDeadlineExceeded(Exception):
    """An RPC call ran past its deadline. Deliberately not a py-evm `VMError`: py-evm
    catches those as the failure of one frame and lets the caller's frame go on; this
    must end the whole call (whose state is thrown away)."""


class _DeadlineChecked:
    """An opcode that first checks the deadline of the call it runs in.

    py-evm runs a computation to its end and cannot be interrupted from another thread,
    so the deadline is checked from inside: code runs long only by jumping back (JUMP,
    JUMPI) or by starting more frames (CALL family, CREATE), so checking there bounds the
    time between two checks by one frame's straight-line code. Native chaincode is
    bounded by gas."""

    __slots__ = ("opcode", "mnemonic")

    def __init__(self, opcode: Any) -> None:
        self.opcode = opcode
        self.mnemonic = opcode.mnemonic  # py-evm's debug trace reads it

    def __call__(self, computation: ComputationAPI) -> None:
        if time.monotonic() > computation.state.deadline:  # type: ignore[attr-defined]
            raise CallDeadlineExceeded
        self.opcode(computation=computation)


_CHECKED_OPCODES = tuple(getattr(opcode_values, name) for name in (
    "JUMP", "JUMPI", "CALL", "CALLCODE", "DELEGATECALL", "STATICCALL", "CREATE", "CREATE2"))
_call_state_classes: dict[tuple[bytes, ...], type[RxLedgerState]] = {}


def call_state_class_for(addresses: tuple[bytes, ...]) -> type[RxLedgerState]:
    """`state_class_for(addresses)` for RPC calls: its computations check the state's
    `deadline` (time.monotonic()) at every jump, call and create. Never used for blocks:
    a block's execution must not depend on time."""
    cls = _call_state_classes.get(addresses)
    if cls is None:
        base = state_class_for(addresses)
        computation_base = base.computation_class
        opcodes: dict[int, Any] = dict(computation_base.opcodes)
        for value in _CHECKED_OPCODES:
            opcodes[value] = _DeadlineChecked(opcodes[value])
        computation = type("RxLedgerCallComputation", (computation_base,), {"opcodes": opcodes})
        cls = type("RxLedgerCallState", (base,), {"computation_class": computation, "deadline": float("inf")})
        _call_state_classes[addresses] = cls
    return cls


class RxLedgerVM(PragueVM):
    """Prague, with QBFT's longer extraData, zero base fee and our state class."""

    extra_data_max_bytes = 64 * 1024
    _state_class = RxLedgerState


_builder = PragueTransactionBuilder


def _signature_checked() -> None:
    """Stands in for py-evm's signature check on transactions we already verified."""


def to_evm_transaction(stx: SignedTransaction) -> Any:
    """py-evm's transaction object for `stx`, with the sender already recovered.

    py-evm would recover the sender again inside its executor (`sender` is a cached
    property on its transaction classes); we set the cache from the txpool's result.
    """
    tx = _builder.decode(stx.raw)
    tx.__dict__["sender"] = stx.sender
    # The signature was checked when decoded (rxledger.core.types); py-evm's executor would
    # recover it again inside validate() (~6 % of block building).
    tx.__dict__["check_signature_validity"] = _signature_checked
    inner = getattr(tx, "_inner", None)
    if inner is not None:
        inner.__dict__["sender"] = stx.sender
        inner.__dict__["get_sender"] = lambda: stx.sender  # TypedTransaction delegates here
        inner.__dict__["check_signature_validity"] = _signature_checked
    tx.__dict__["hash"] = stx.hash
    return tx


def ancestor_hashes(lookup: Callable[[int], bytes | None], number: int) -> Iterator[bytes]:
    """Lazily yields the hashes of blocks number-1, number-2, … (at most 256), for BLOCKHASH."""
    for n in range(number - 1, max(-1, number - 257), -1):
        h = lookup(n)
        if h is None:
            return
        yield h


def new_atomic_db(pending: PendingStateDB) -> AtomicDB:
    return AtomicDB(pending)
