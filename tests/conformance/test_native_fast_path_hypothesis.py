"""The native fast path against py-evm: same blocks, byte for byte.

`node.execution.native` applies transactions to the chaincode addresses without py-evm's
message machinery, and must leave exactly what py-evm leaves. Two chains start from the
same state; one builds every block with the fast path (the default), the other with
`native_fast_path` off (every transaction through py-evm). For every block both are given
the same transactions, timestamp and proposer, and must produce the same header (state,
transactions and receipts roots, gas used, bloom), the same receipts, the same return or
revert data per transaction, the same storage writes, and the same transactions skipped
(with py-evm's reason) or deferred. The fast-path chain must also accept the other's block
through `verify_execution` (the `skip_invalid=False` path).

The transactions are random: lifecycle calls that succeed (issue, review, dispense,
anchor, views sent as transactions), calls that revert (wrong role, unknown rxId, value
sent to a non-payable function, garbage calldata), gas from plenty down to below the
intrinsic gas and the calldata floor (out of gas inside the chaincode), wrong nonces,
values above the balance, non-zero gas prices (legacy and EIP-1559, so fees and refunds
move balances), and EVM transactions in the same blocks: transfers (to accounts, to the
coinbase, to new addresses), calls through an EVM proxy contract into the chaincode
(py-evm's precompile path) and calls of an EVM counter that writes storage. The reference
chain also keeps nothing from one block to the next (the executor's carried accounts and
chaincode commitment), so those are checked too. Proposers vary: an account with no state, a funded account,
a sender, and an account that exists empty (EIP-161 deletes it when touched).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaincode_py import NativeChaincodeHost
from node.chain import Chain
from node.genesis import GenesisConfig, derive_dev_key, dev_genesis
from node.storage import MemoryStore
from rxledger.core.addresses import ANCHOR_REGISTRY, GOVERNANCE, PRESCRIPTION_REGISTRY
from rxledger.core.crypto import keccak256, private_key_to_address, sign_hash
from rxledger.core.types import decode_transaction
from rxledger.core.types.transactions import (
    DynamicFeeTransaction,
    LegacyTransaction,
    SignedTransaction,
)

START = 1_700_000_000
FUNDS = 10**24
KEYS = tuple(derive_dev_key(i) for i in range(10)) + (keccak256(b"fast path extra key"),)
ADDRESSES = tuple(private_key_to_address(k) for k in KEYS)
EXTRA = 10  # funded, enrolled nowhere
EMPTY_ACCOUNT = b"\x0e" * 20  # exists in genesis with nothing in it
UNTOUCHED = b"\x01" * 20  # no state at all
PROPOSERS = (UNTOUCHED, ADDRESSES[4], ADDRESSES[1], EMPTY_ACCOUNT)
RX_IDS = tuple(keccak256(f"fast path rx {i}".encode()) for i in range(4))
PRESCRIBER, REVIEWER, PHARMACIST = 1, 2, 3
# An EVM contract that forwards its calldata to the PrescriptionRegistry (CALL with all
# gas) and returns what it got back: EVM -> chaincode through py-evm's precompile entry.
PROXY_RUNTIME = bytes.fromhex("365f5f375f5f365f5f611001" + "5af13d5f5f3e3d5ff3")
# An EVM counter: slot 0 += 1 on every call (EVM storage written between native blocks).
COUNTER_RUNTIME = bytes.fromhex("5f546001015f5500")  # PUSH0 SLOAD PUSH1 1 ADD PUSH0 SSTORE STOP


def init_code(runtime: bytes) -> bytes:
    """Init code returning `runtime` (CODECOPY of what follows these 10 bytes)."""
    return bytes([0x60, len(runtime), 0x60, 0x0A, 0x5F, 0x39, 0x60, len(runtime), 0x5F, 0xF3]) + runtime


CHAIN_ID = dev_genesis().chain_id
NATIVE = (PRESCRIPTION_REGISTRY, GOVERNANCE, ANCHOR_REGISTRY)
STATS: Counter[str] = Counter()  # what the examples covered (printed with pytest -s)


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def call_data(signature: str, *args: Any) -> bytes:
    types = signature[signature.index("(") + 1:-1]
    return selector(signature) + abi_encode(types.split(",") if types else [], list(args))


def sign(key: bytes, *, nonce: int, to: bytes, data: bytes = b"", gas: int = 500_000, value: int = 0,
         gas_price: int = 0, dynamic: bool = False, priority: int = 0) -> SignedTransaction:
    """A signed transaction, decoded as the node decodes it."""
    if dynamic:
        unsigned_dyn = DynamicFeeTransaction(CHAIN_ID, nonce, priority, gas_price, gas, to, value, data, (), 0, 0, 0)
        y, r, s = sign_hash(unsigned_dyn.signing_hash(), key)
        raw = replace(unsigned_dyn, y_parity=y, r=r, s=s).encode()
    else:
        unsigned = LegacyTransaction(nonce, gas_price, gas, to, value, data, 35 + 2 * CHAIN_ID, 0, 0)
        y, r, s = sign_hash(unsigned.signing_hash(), key)
        raw = replace(unsigned, v=35 + 2 * CHAIN_ID + y, r=r, s=s).encode()
    return decode_transaction(raw)


def genesis() -> GenesisConfig:
    balances = tuple((a, FUNDS) for a in ADDRESSES) + ((EMPTY_ACCOUNT, 0),)
    # Every coinbase drawn is a validator: a block's coinbase must be one (node.validation).
    return replace(dev_genesis(), balances=balances, validators=tuple(sorted(PROPOSERS)))


@lru_cache(maxsize=1)
def base_store() -> tuple[tuple[bytes, bytes], ...]:
    """Genesis plus the proxy and counter contracts (deployed by account 9, nonces 0, 1)."""
    chain = Chain(MemoryStore(), genesis(), NativeChaincodeHost)
    deploys = [sign(KEYS[9], nonce=0, to=b"", data=init_code(PROXY_RUNTIME), gas=200_000),
               sign(KEYS[9], nonce=1, to=b"", data=init_code(COUNTER_RUNTIME), gas=200_000)]
    block, execution = chain.build_block(deploys, timestamp=START, proposer=UNTOUCHED)
    assert [r.status for r in execution.receipts] == [1, 1]
    chain.commit_block(chain.seal(block, []), execution)
    return tuple(chain.store.iterate())


def proxy_address() -> bytes:
    # CREATE address of account 9's first transaction: keccak(rlp([sender, 0]))[12:]
    return keccak256(bytes([0xD6, 0x94]) + ADDRESSES[9] + b"\x80")[12:]


def counter_address() -> bytes:
    return keccak256(bytes([0xD6, 0x94]) + ADDRESSES[9] + b"\x01")[12:]


def open_chain(*, fast: bool) -> Chain:
    store = MemoryStore()
    with store.batch(sync=False) as batch:
        for key, value in base_store():
            batch.put(key, value)
    chain = Chain(store, genesis(), NativeChaincodeHost)
    if not fast:  # py-evm as before: no fast path, nothing carried from one block to the next
        chain.executor.native_addresses = frozenset()
        chain.executor._remember = lambda root, accounts, commitment: None  # type: ignore[method-assign]
    else:  # count the transactions py-evm applies on the fast chain
        executor: Any = chain.executor
        base_class = executor._state_class

        def apply_transaction(state: Any, transaction: Any) -> Any:
            STATS["py-evm on the fast chain: " + ("native" if transaction.to in NATIVE else "EVM")] += 1
            return base_class.apply_transaction(state, transaction)

        executor._state_class = type("CountingState", (base_class,), {"apply_transaction": apply_transaction})
    assert chain.head.number == 1
    return chain


@dataclass(frozen=True)
class TxSpec:
    """A transaction before its nonce is known (the nonce depends on the chain)."""

    sender: int
    to: bytes
    data: bytes = b""
    gas: int = 500_000
    value: int = 0
    gas_price: int = 0
    dynamic: bool = False
    priority: int = 0
    nonce_offset: int = 0


class Pair:
    """The two chains, fed the same blocks and compared after each."""

    def __init__(self) -> None:
        self.fast = open_chain(fast=True)
        self.slow = open_chain(fast=False)
        self.time = START
        self.blocks = 0

    def signed(self, specs: list[TxSpec]) -> list[SignedTransaction]:
        counts: dict[int, int] = {}
        out = []
        for spec in specs:
            address = ADDRESSES[spec.sender]
            nonce = self.slow.state_nonce(address) + counts.get(spec.sender, 0) + spec.nonce_offset
            counts[spec.sender] = counts.get(spec.sender, 0) + 1
            out.append(sign(KEYS[spec.sender], nonce=max(nonce, 0), to=spec.to, data=spec.data, gas=spec.gas,
                            value=spec.value, gas_price=spec.gas_price, dynamic=spec.dynamic,
                            priority=spec.priority))
        return out

    def block(self, specs: list[TxSpec], *, seconds: int = 1, proposer: bytes = UNTOUCHED) -> list[Any]:
        """Build one block on both chains, compare everything, commit; the receipts."""
        self.time += seconds
        txs = self.signed(specs)
        fast_block, fast = self.fast.build_block(txs, timestamp=self.time, proposer=proposer)
        slow_block, slow = self.slow.build_block(txs, timestamp=self.time, proposer=proposer)
        where = f"block {fast_block.number}"
        assert fast.receipts == slow.receipts, where
        assert fast.outputs == slow.outputs, where
        assert len(fast.outputs) == len(fast.receipts)
        assert [(t.hash, reason) for t, reason in fast.skipped] == [(t.hash, reason) for t, reason in slow.skipped], where
        assert [t.hash for t in fast.deferred] == [t.hash for t in slow.deferred], where
        assert fast.state_root == slow.state_root, where
        assert fast_block.header == slow_block.header, where
        assert fast.writes == slow.writes, where
        for stx, receipt in zip(fast.transactions, fast.receipts, strict=True):
            kind = "native" if stx.to in NATIVE else "EVM"
            STATS[f"{kind} status {receipt.status}" + (" value" if stx.tx.value else "")
                  + (" priced" if stx.tx.gas_price else "")] += 1
        STATS["skipped"] += len(fast.skipped)
        STATS["deferred"] += len(fast.deferred)
        self.fast.verify_execution(slow_block)  # the fast path with skip_invalid=False
        self.fast.commit_block(fast_block, fast)
        self.slow.commit_block(slow_block, slow)
        self.blocks += 1
        return list(zip(fast.receipts, fast.outputs, strict=True))


# ------------------------------------------------------------------------ transactions
def issue(rx: int, now: int, fills: int = 1) -> bytes:
    return call_data("issue(bytes32,bytes32,bytes32,uint8,uint16,uint32,uint64,uint64)", RX_IDS[rx],
                     keccak256(b"commitment"), keccak256(b"patient"), 2, fills, 30, now - 60, now + 3600)


def review(rx: int, approve: bool = True) -> bytes:
    return call_data("review(bytes32,bool,bytes32)", RX_IDS[rx], approve, b"\x00" * 32)


def dispense(rx: int, quantity: int = 30) -> bytes:
    return call_data("dispense(bytes32,uint32,bytes32)", RX_IDS[rx], quantity, keccak256(b"fill"))


def get_prescription(rx: int) -> bytes:
    return call_data("getPrescription(bytes32)", RX_IDS[rx])


def anchor(i: int) -> bytes:
    return call_data("anchor(bytes32,uint64,bytes32)", keccak256(f"root {i}".encode()), 3, b"\x00" * 32)


@st.composite
def tx_specs(draw: st.DrawFn, now: int) -> TxSpec:
    kind = draw(st.sampled_from(("issue", "review", "dispense", "view", "anchor", "role", "garbage",
                                 "transfer", "proxy", "counter")))
    rx = draw(st.integers(0, len(RX_IDS) - 1))
    sender = {"issue": PRESCRIBER, "review": REVIEWER, "dispense": PHARMACIST}.get(kind, draw(st.integers(0, 10)))
    if draw(st.integers(0, 5)) == 0:
        sender = draw(st.integers(0, 10))  # anyone: mostly refused by the chaincode
    to, data = PRESCRIPTION_REGISTRY, b""
    if kind == "issue":
        data = issue(rx, now, draw(st.integers(0, 2)))
    elif kind == "review":
        data = review(rx, draw(st.booleans()))
    elif kind == "dispense":
        data = dispense(rx, draw(st.sampled_from((30, 10, 31, 0))))
    elif kind == "view":
        data = get_prescription(rx)
    elif kind == "anchor":
        to, data = ANCHOR_REGISTRY, anchor(draw(st.integers(0, 3)))
    elif kind == "role":
        to, data = GOVERNANCE, call_data("roleOf(address)", ADDRESSES[draw(st.integers(0, 10))])
    elif kind == "garbage":
        to = draw(st.sampled_from((PRESCRIPTION_REGISTRY, GOVERNANCE, ANCHOR_REGISTRY)))
        data = draw(st.binary(max_size=70))
    elif kind == "transfer":
        to = draw(st.sampled_from((ADDRESSES[5], UNTOUCHED, EMPTY_ACCOUNT, ADDRESSES[4], b"\x77" * 20)))
    elif kind == "proxy":
        to, data = proxy_address(), get_prescription(rx)
    elif kind == "counter":
        to = counter_address()
    gas = draw(st.one_of(st.just(500_000), st.just(300_000), st.integers(20_000, 200_000)))
    value = draw(st.sampled_from((0, 0, 0, 0, 1, 10**18, FUNDS * 2)))
    if kind == "transfer" and value == 0 and draw(st.booleans()):
        value = 5
    gas_price = draw(st.sampled_from((0, 0, 0, 1, 7, 10**9)))
    dynamic = draw(st.booleans())
    priority = draw(st.integers(0, gas_price)) if dynamic else 0
    nonce_offset = draw(st.sampled_from((0,) * 12 + (1, -1)))
    return TxSpec(sender, to, data, gas, value, gas_price, dynamic, priority, nonce_offset)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_blocks_agree_with_and_without_the_fast_path(data: st.DataObject) -> None:
    pair = Pair()
    for _ in range(data.draw(st.integers(1, 4), label="blocks")):
        specs = data.draw(st.lists(tx_specs(pair.time + 1), min_size=1, max_size=8), label="transactions")
        proposer = data.draw(st.sampled_from(PROPOSERS), label="proposer")
        seconds = data.draw(st.sampled_from((0, 1, 1, 3600, 7200)), label="seconds")
        pair.block(specs, seconds=seconds, proposer=proposer)
    STATS["examples"] += 1


# -------------------------------------------------------------------- explicit edge cases
def test_a_lifecycle_succeeds_with_logs_and_output() -> None:
    pair = Pair()
    now = pair.time + 1
    (r1, _), = pair.block([TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, issue(0, now))])
    (r2, _), (r3, out) = pair.block([TxSpec(REVIEWER, PRESCRIPTION_REGISTRY, review(0)),
                                     TxSpec(PHARMACIST, PRESCRIPTION_REGISTRY, dispense(0))])
    assert [r.status for r in (r1, r2, r3)] == [1, 1, 1]
    assert r1.logs and r2.logs and r3.logs
    assert out == (1).to_bytes(32, "big")  # dispense returns the fill number


def test_out_of_gas_inside_the_chaincode_uses_all_gas() -> None:
    pair = Pair()
    spec = TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, issue(0, pair.time + 1), gas=60_000)
    (receipt, out), = pair.block([spec])
    assert receipt.status == 0 and receipt.cumulative_gas_used == 60_000 and out == b""


def test_gas_below_the_intrinsic_gas_or_the_calldata_floor_is_refused_as_py_evm_refuses_it() -> None:
    pair = Pair()
    data = issue(0, pair.time + 1)
    assert pair.block([TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, data, gas=21_500),
                       TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, b"\x01" * 200, gas=25_000)]) == []


def test_value_sent_to_a_chaincode_reverts_and_stays_with_the_sender() -> None:
    pair = Pair()
    (receipt, out), = pair.block([TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, issue(0, pair.time + 1), value=10**18)])
    assert receipt.status == 0 and out == b""
    assert pair.fast.executor.get_balance(pair.fast.head.state_root, ADDRESSES[PRESCRIBER]) == FUNDS


def test_insufficient_balance_and_wrong_nonces_are_skipped_with_py_evm_reasons() -> None:
    pair = Pair()
    now = pair.time + 1
    specs = [TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, issue(0, now), value=FUNDS * 2),
             TxSpec(REVIEWER, PRESCRIPTION_REGISTRY, review(0), nonce_offset=1),
             TxSpec(PHARMACIST, PRESCRIPTION_REGISTRY, dispense(0), gas_price=10**30)]
    assert pair.block(specs) == []


def test_a_revert_returns_its_reason_and_unused_gas() -> None:
    pair = Pair()
    (receipt, out), = pair.block([TxSpec(PHARMACIST, PRESCRIPTION_REGISTRY, issue(0, pair.time + 1))])
    assert receipt.status == 0 and out[:4] == bytes.fromhex("08c379a0")
    assert receipt.cumulative_gas_used < 100_000


@pytest.mark.parametrize("dynamic", [False, True])
def test_fees_and_refunds_at_a_non_zero_gas_price(dynamic: bool) -> None:
    pair = Pair()
    spec = TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, issue(0, pair.time + 1), gas_price=10**9, dynamic=dynamic,
                  priority=10**9 // 2 if dynamic else 0)
    (receipt, _), = pair.block([spec], proposer=ADDRESSES[4])
    paid = receipt.cumulative_gas_used * (10**9 // 2 if dynamic else 10**9)
    root = pair.fast.head.state_root
    assert pair.fast.executor.get_balance(root, ADDRESSES[PRESCRIBER]) == FUNDS - paid
    assert pair.fast.executor.get_balance(root, ADDRESSES[4]) == FUNDS + paid


def test_evm_and_native_transactions_mixed_in_one_block() -> None:
    pair = Pair()
    now = pair.time + 1
    results = pair.block([
        TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, issue(0, now)),
        TxSpec(5, ADDRESSES[6], value=3),
        TxSpec(4, proxy_address(), get_prescription(0)),
        TxSpec(REVIEWER, PRESCRIPTION_REGISTRY, review(0)),
        TxSpec(6, UNTOUCHED, value=0),
        TxSpec(PHARMACIST, PRESCRIPTION_REGISTRY, dispense(0)),
        TxSpec(7, ANCHOR_REGISTRY, anchor(0)),
        TxSpec(8, counter_address()),
    ], proposer=EMPTY_ACCOUNT)
    assert [r.status for r, _ in results] == [1] * 8
    (receipt, _), = pair.block([TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, issue(1, now))])
    assert receipt.status == 1
    (receipt, _), = pair.block([TxSpec(8, counter_address())])
    assert receipt.status == 1
    assert pair.fast.executor.get_storage(pair.fast.head.state_root, counter_address(), 0) == 2


def test_the_empty_coinbase_account_is_deleted_when_touched() -> None:
    pair = Pair()
    executor, before = pair.fast.executor, pair.fast.head.state_root
    assert executor.read_state(before).account_exists(EMPTY_ACCOUNT)
    pair.block([TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, issue(0, pair.time + 1))], proposer=EMPTY_ACCOUNT)
    assert not executor.read_state(pair.fast.head.state_root).account_exists(EMPTY_ACCOUNT)


def test_the_fast_path_takes_every_valid_native_transaction() -> None:
    pair = Pair()
    STATS.clear()
    now = pair.time + 1
    pair.block([TxSpec(PRESCRIBER, PRESCRIPTION_REGISTRY, issue(0, now)),
                TxSpec(PHARMACIST, PRESCRIPTION_REGISTRY, issue(1, now)),  # reverts
                TxSpec(7, ANCHOR_REGISTRY, anchor(0), gas_price=3),
                TxSpec(5, ADDRESSES[6], value=3)])
    assert STATS["py-evm on the fast chain: native"] == 0
    assert STATS["py-evm on the fast chain: EVM"] == 2  # built, then verified
