"""node.txpool: every admission rule refuses with a message that says why; pending and
queued parts, promotion, demotion, limits and eviction; output order; a model test."""

from __future__ import annotations

from collections import OrderedDict
from functools import cache

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chaincode_py import NativeChaincodeHost
from node.config import NodeConfig
from node.genesis import dev_accounts, dev_genesis
from node.p2p.memory import MemoryNetwork, MemoryTransport
from node.p2p.transport import P2PTransport
from node.service import NodeService
from node.txpool import PoolLimits, TxPool
from node.txpool.pool import slots_of
from rxledger.core.errors import InvalidTransaction, TxPoolRefused
from rxledger.core.types import decode_transaction
from rxledger.core.types.transactions import SignedTransaction

ACCOUNTS = dev_accounts()
TO = to_checksum_address(ACCOUNTS[1].address)
A9, A1, A2 = ACCOUNTS[9].address, ACCOUNTS[1].address, ACCOUNTS[2].address


def tx(account: int = 9, nonce: int = 0, *, key: bytes | None = None, chain_id: int = 2024, gas: int = 21000,
       data: bytes = b"") -> SignedTransaction:
    k = key or ACCOUNTS[account].private_key
    raw = Account.from_key(k).sign_transaction(
        dict(nonce=nonce, gasPrice=0, gas=gas, to=TO, value=0, data=data, chainId=chain_id)
    ).raw_transaction
    return decode_transaction(bytes(raw))


@cache
def cached_tx(account: int, nonce: int, variant: int = 0) -> SignedTransaction:
    """A signed transaction per (account, nonce, variant); variants differ in gas only."""
    return tx(account, nonce, gas=21000 + 1000 * variant)


def make_pool(nonces: dict[bytes, int], **limits: int) -> TxPool:
    enrolled = {a.address for a in ACCOUNTS}
    return TxPool(chain_id=2024, block_gas_limit=1_000_000, state_nonce=lambda a: nonces.get(a, 0),
                  is_enrolled=lambda a: a in enrolled, limits=PoolLimits(**limits))


@pytest.fixture
def nonces() -> dict[bytes, int]:
    return {}


@pytest.fixture
def pool(nonces: dict[bytes, int]) -> TxPool:
    return make_pool(nonces, global_slots=50, account_slots=4, account_queue=5, global_queue=20, max_tx_size=4096)


def order(txs: list[SignedTransaction]) -> list[tuple[bytes, int]]:
    return [(t.sender, t.nonce) for t in txs]


# -- order -----------------------------------------------------------------------------------
def test_admits_and_orders_by_nonce_per_sender(pool: TxPool) -> None:
    for n in (2, 0, 1):
        pool.add(cached_tx(9, n))
    assert [t.nonce for t in pool.pending()] == [0, 1, 2]
    assert len(pool) == 3 and pool.pending_count == 3 and pool.queued_count == 0


def test_senders_take_turns(pool: TxPool) -> None:
    for n in range(3):
        pool.add(cached_tx(9, n))
    for n in range(2):
        pool.add(cached_tx(1, n))
    assert order(pool.pending()) == [(A9, 0), (A1, 0), (A9, 1), (A1, 1), (A9, 2)]


def test_pending_respects_gas_budget(pool: TxPool) -> None:
    for n in range(5):
        pool.add(cached_tx(9, n))
    assert len(pool.pending(max_gas=21000 * 3)) == 3


# -- pending and queued ----------------------------------------------------------------------
def test_a_gap_queues_later_nonces_and_holds_them_out_of_blocks(pool: TxPool) -> None:
    pool.add(cached_tx(9, 0))
    pool.add(cached_tx(9, 2))
    assert [t.nonce for t in pool.pending()] == [0]
    assert pool.next_nonce(A9) == 1
    assert (pool.pending_count, pool.queued_count, pool.waiting_gas) == (1, 1, 21000)


def test_has_executable_ignores_queued_nonces(pool: TxPool) -> None:
    assert not pool.has_executable()
    pool.add(cached_tx(9, 1))
    assert not pool.has_executable()  # nonce 0 is missing: nothing could go in a block
    assert pool.waiting_gas == 0 and len(pool) == 1
    pool.add(cached_tx(9, 0))
    assert pool.has_executable() and pool.waiting_gas == 42000


def test_nonces_far_beyond_the_old_window_are_queued_and_promoted_when_the_gap_fills(nonces: dict[bytes, int]) -> None:
    """The reproduction of issue 11 item 5 in one pool: nonces 70..79 arrive (from a node
    that received them from the client) before 0..69 (sent to another node, gossiped
    later). The pool measured a 64-nonce window from the head's nonce and refused them."""
    pool = make_pool(nonces)  # the defaults
    for n in range(70, 80):
        pool.add(cached_tx(9, n))
    assert pool.queued_count == 10 and not pool.has_executable() and pool.next_nonce(A9) == 0
    for n in range(70):
        pool.add(cached_tx(9, n))
    assert [t.nonce for t in pool.pending()] == list(range(80))
    assert (pool.pending_count, pool.queued_count) == (80, 0) and pool.next_nonce(A9) == 80


def test_a_block_moving_the_head_promotes_queued_and_drops_stale(pool: TxPool, nonces: dict[bytes, int]) -> None:
    # Nonces 0-2 were sent elsewhere and are final in a block this pool never saw.
    for n in (2, 3, 4, 7):
        pool.add(cached_tx(9, n))
    assert pool.pending_count == 0 and pool.queued_count == 4
    nonces[A9] = 3
    pool.prune()
    assert [t.nonce for t in pool.pending()] == [3, 4]
    assert cached_tx(9, 2).hash not in pool  # stale: nonce 2 is used
    assert (pool.pending_count, pool.queued_count) == (2, 1) and pool.next_nonce(A9) == 5
    nonces[A9] = 9
    pool.prune()
    assert len(pool) == 0 and pool.waiting_gas == 0 and not pool.has_executable()


def test_prune_drops_passed_nonces_and_remove_drops_included(pool: TxPool, nonces: dict[bytes, int]) -> None:
    txs = [cached_tx(9, n) for n in range(4)]
    for t in txs:
        pool.add(t)
    pool.remove([txs[0]])  # included: the head moves with it
    nonces[A9] = 2
    pool.prune()
    assert [t.nonce for t in pool.pending()] == [2, 3]
    assert txs[1].hash not in pool and txs[2].hash in pool


def test_a_pending_transaction_refused_by_execution_demotes_the_later_nonces(pool: TxPool) -> None:
    for n in range(4):
        pool.add(cached_tx(9, n))
    pool.remove([cached_tx(9, 1)])  # refused by execution: the head stays at 0
    assert [t.nonce for t in pool.pending()] == [0]
    assert (pool.pending_count, pool.queued_count, pool.waiting_gas) == (1, 2, 21000)
    assert pool.next_nonce(A9) == 1
    pool.add(cached_tx(9, 1, 1))  # the client sends nonce 1 again (another transaction)
    assert [t.nonce for t in pool.pending()] == [0, 1, 2, 3]


def test_a_revoked_senders_pending_and_queued_transactions_go(pool: TxPool) -> None:
    for n in (0, 1, 5):
        pool.add(cached_tx(9, n))
    pool.add(cached_tx(1, 0))
    assert pool.drop_senders(lambda sender: sender == A9) == 3
    assert order(pool.pending()) == [(A1, 0)] and len(pool) == 1 and pool.queued_count == 0


# -- refusals ----------------------------------------------------------------------------------
def test_wrong_chain_id_is_refused(pool: TxPool) -> None:
    with pytest.raises(InvalidTransaction, match="signed for chain 1, this chain is 2024"):
        pool.add(tx(9, 0, chain_id=1))


def test_unknown_sender_is_refused(pool: TxPool) -> None:
    stranger = Account.create()
    with pytest.raises(TxPoolRefused, match=f"sender {stranger.address.lower()} is not enrolled"):
        pool.add(tx(key=bytes(stranger.key)))


def test_used_nonce_is_refused(pool: TxPool, nonces: dict[bytes, int]) -> None:
    nonces[A9] = 3
    with pytest.raises(TxPoolRefused, match="nonce too low: transaction nonce 2, account .* is at 3"):
        pool.add(cached_tx(9, 2))


def test_a_nonce_beyond_what_the_pool_could_hold_is_refused(pool: TxPool) -> None:
    # window = global_slots (50) + account_queue (5)
    pool.add(cached_tx(9, 55))
    with pytest.raises(TxPoolRefused, match=r"nonce too high: transaction nonce 56 is more than 55 ahead of "
                                            r"account 0x[0-9a-f]{40} \(at 0\): the pool holds at most 50 "
                                            r"executable and 5 gapped"):
        pool.add(cached_tx(9, 56))


def test_duplicate_and_replacement_are_refused(pool: TxPool) -> None:
    first = cached_tx(9, 0)
    pool.add(first)
    pool.add(cached_tx(9, 3))
    with pytest.raises(TxPoolRefused, match="already known"):
        pool.add(first)
    with pytest.raises(TxPoolRefused, match="replacement transaction refused: nonce 0"):
        pool.add(cached_tx(9, 0, 1))
    with pytest.raises(TxPoolRefused, match="replacement transaction refused: nonce 3"):
        pool.add(cached_tx(9, 3, 1))  # queued ones too


def test_oversized_transaction_is_refused(pool: TxPool) -> None:
    with pytest.raises(TxPoolRefused, match="oversized transaction"):
        pool.add(tx(9, 0, gas=500_000, data=b"\x01" * 5000))


def test_gas_above_block_limit_is_refused(pool: TxPool) -> None:
    with pytest.raises(InvalidTransaction, match="exceeds block gas limit"):
        pool.add(tx(9, 0, gas=2_000_000))


# -- limits and eviction -----------------------------------------------------------------------
def test_a_full_account_queue_refuses_a_higher_nonce_and_evicts_its_highest_for_a_lower(
        nonces: dict[bytes, int]) -> None:
    pool = make_pool(nonces, account_queue=3)
    for n in (10, 11, 12):
        pool.add(cached_tx(9, n))
    with pytest.raises(TxPoolRefused, match=r"txpool is full for account 0x[0-9a-f]{40}: 3 transactions wait "
                                            r"for the missing nonce 0 \(at most 3 gapped per account\); "
                                            r"send that nonce first"):
        pool.add(cached_tx(9, 13))
    pool.add(cached_tx(9, 5))  # lower: the account's highest queued (12) makes room
    assert cached_tx(9, 12).hash not in pool and cached_tx(9, 5).hash in pool
    assert pool.queued_count == 3
    pool.add(cached_tx(9, 0))  # executable: no queue room needed
    assert pool.pending_count == 1


def test_the_global_queue_limit_refuses_a_gapped_transaction(nonces: dict[bytes, int]) -> None:
    pool = make_pool(nonces, account_queue=3, global_queue=4)
    for n in (1, 2, 3):
        pool.add(cached_tx(9, n))
    pool.add(cached_tx(1, 4))
    with pytest.raises(TxPoolRefused, match=r"txpool is full: 4 of 4 slots of gapped transactions are taken; "
                                            r"send the missing nonce 0 of 0x[0-9a-f]{40} first"):
        pool.add(cached_tx(2, 1))
    pool.add(cached_tx(2, 0))  # executable: pending room
    pool.add(cached_tx(9, 0))  # fills the gap: 1-3 are promoted, the queue has room again
    assert pool.queued_count == 1
    pool.add(cached_tx(2, 2))


def test_a_full_pool_refuses_an_account_beyond_its_guaranteed_share(nonces: dict[bytes, int]) -> None:
    pool = make_pool(nonces, global_slots=4, account_slots=2)
    for n in range(4):
        pool.add(cached_tx(9, n))
    with pytest.raises(TxPoolRefused, match=r"txpool is full: 4 of 4 slots of executable transactions are taken, "
                                            r"and account 0x[0-9a-f]{40} already has 4 \(each account is "
                                            r"guaranteed 2\); try again after the next block"):
        pool.add(cached_tx(9, 4))


def test_a_full_pool_evicts_the_largest_accounts_tail_for_an_account_below_its_share(
        nonces: dict[bytes, int]) -> None:
    pool = make_pool(nonces, global_slots=4, account_slots=2)
    for n in range(4):
        pool.add(cached_tx(9, n))
    pool.add(cached_tx(9, 6))  # queued behind the evicted nonces later
    pool.add(cached_tx(1, 0))
    assert cached_tx(9, 3).hash not in pool
    pool.add(cached_tx(1, 1))
    assert cached_tx(9, 2).hash not in pool
    assert order(pool.pending()) == [(A9, 0), (A1, 0), (A9, 1), (A1, 1)]
    with pytest.raises(TxPoolRefused, match="already has 2 .each account is guaranteed 2"):
        pool.add(cached_tx(1, 2))
    with pytest.raises(TxPoolRefused, match="txpool is full: 4 of 4 slots"):
        pool.add(cached_tx(2, 0))  # every account is at its share: nothing to evict
    assert pool.next_nonce(A9) == 2 and pool.queued_count == 1


def test_a_large_transaction_takes_one_slot_per_32_kib(nonces: dict[bytes, int]) -> None:
    pool = make_pool(nonces, global_slots=3, account_slots=0)
    big = tx(9, 0, gas=400_000, data=bytes(33_000))
    assert slots_of(big) == 2 and slots_of(cached_tx(9, 1)) == 1
    pool.add(big)
    pool.add(cached_tx(9, 1))
    with pytest.raises(TxPoolRefused, match="txpool is full: 3 of 3 slots of executable"):
        pool.add(cached_tx(9, 2))


# -- gossip: out of order between two nodes ----------------------------------------------------
class GossipNode:
    """A NodeService wired to a P2PTransport over a MemoryNetwork, as `rxledger node start`
    wires it (RPC submissions are gossiped, gossiped ones are not sent on), no consensus."""

    def __init__(self, net: MemoryNetwork, index: int) -> None:
        self.service = NodeService(NodeConfig(data_dir=None), dev_genesis(), chaincode=NativeChaincodeHost)
        chain = self.service.chain
        self.transport = P2PTransport(chain, submit_transaction=lambda raw: self.service.submit_raw_transaction(
            raw, gossip=False))
        self.address = bytes([index]) * 20
        self.endpoint = MemoryTransport(net, self.address, name=f"n{index}", chain_id=chain.chain_id,
                                        genesis_hash=chain.genesis_hash,
                                        head=lambda: (chain.head.number, chain.head.hash),
                                        **self.transport.handlers())  # type: ignore[arg-type]
        self.transport.attach(self.endpoint)
        self.service.gossip = self.transport.gossip_transaction
        self.endpoint.start()


def test_gossiped_nonces_arriving_before_their_predecessors_are_queued_then_promoted() -> None:
    """A client sends nonces 70..139 of one account to node A, then 0..69 to node B. Each
    node hears of the other half by gossip, after its own. Both pools end with 0..139
    pending; a gossiped transaction the pool refuses (already known) keeps the peer."""
    net = MemoryNetwork()
    a, b = GossipNode(net, 1), GossipNode(net, 2)
    try:
        net.flush()
        assert net.is_linked(a.address, b.address)
        for n in range(70, 140):
            a.service.submit_raw_transaction(cached_tx(9, n).raw)
        assert a.service.pool.queued_count == 70
        for n in range(70):
            b.service.submit_raw_transaction(cached_tx(9, n).raw)
        assert b.service.pool.pending_count == 70
        net.flush()  # A's gossip reaches B (queued there, then promoted), B's reaches A
        for node in (a, b):
            assert [t.nonce for t in node.service.pool.pending()] == list(range(140))
            assert node.service.pool.queued_count == 0
        a.transport.gossip_transaction(cached_tx(9, 0).raw)  # B already has it: refused, benign
        net.flush()
        assert net.is_linked(a.address, b.address)
        assert len(b.service.pool) == 140
    finally:
        for node in (a, b):
            node.endpoint.stop()
            node.service.close()


# -- a model test ------------------------------------------------------------------------------
MODEL_LIMITS = dict(global_slots=4, account_slots=1, account_queue=2, global_queue=3)
MODEL_ACCOUNTS = (1, 2, 3)
MAX_NONCE = 14  # `add`; `add_near` goes further as heads move


class ReferencePool:
    """The pool's rules written plainly: everything recomputed from the waiting set and the
    heads, no counters. Refusals are named by a key."""

    def __init__(self) -> None:
        self.head: dict[bytes, int] = {}
        self.waiting: OrderedDict[bytes, dict[int, SignedTransaction]] = OrderedDict()
        self.gs, self.as_, self.aq, self.gq = (MODEL_LIMITS[k] for k in
                                               ("global_slots", "account_slots", "account_queue", "global_queue"))

    def end(self, sender: bytes) -> int:
        n = self.head.get(sender, 0)
        while n in self.waiting.get(sender, {}):
            n += 1
        return n

    def run(self, sender: bytes) -> list[SignedTransaction]:
        return [self.waiting[sender][n] for n in range(self.head.get(sender, 0), self.end(sender))]

    def queued(self, sender: bytes) -> list[int]:
        end = self.end(sender)
        return sorted(n for n in self.waiting.get(sender, {}) if n > end)

    def pending_total(self) -> int:
        return sum(len(self.run(s)) for s in self.waiting)

    def queued_total(self) -> int:
        return sum(len(self.queued(s)) for s in self.waiting)

    def order(self) -> list[SignedTransaction]:
        runs = [self.run(s) for s in self.waiting]
        return [run[d] for d in range(max(map(len, runs), default=0)) for run in runs if d < len(run)]

    def add(self, stx: SignedTransaction) -> str:
        s, n, head = stx.sender, stx.nonce, self.head.get(stx.sender, 0)
        mine = self.waiting.get(s, {})
        if n < head:
            return "low"
        if n > head + self.gs + self.aq:
            return "high"
        if n in mine:
            return "known" if mine[n].hash == stx.hash else "replacement"
        if n == self.end(s):
            # Full (promotions may have taken pending past the limit): the largest other
            # accounts, first arrived first, give up their highest nonces down to their share.
            runs = {o: self.run(o) for o in self.waiting if o != s}
            victims: list[SignedTransaction] = []
            while self.pending_total() - len(victims) >= self.gs:
                if len(self.run(s)) >= self.as_:
                    return "full-pending"
                owner = max(runs, key=lambda o: len(runs[o]), default=None)  # first of the largest
                if owner is None or len(runs[owner]) <= self.as_:
                    return "full-pending"
                victims.append(runs[owner].pop())
            if self.pending_total() + self.queued_total() - len(victims) + 1 > self.gs + self.gq:
                return "full-total"
            for victim in victims:
                del self.waiting[victim.sender][victim.nonce]
        else:
            queued = self.queued(s)
            highest = None  # the account's highest queued nonce, if it must make room
            if len(queued) >= self.aq:
                if not queued or n > queued[-1]:
                    return "full-account-queue"
                highest = queued[-1]
            if self.queued_total() - (highest is not None) + 1 > self.gq:
                return "full-queue"
            if self.pending_total() + self.queued_total() - (highest is not None) + 1 > self.gs + self.gq:
                return "full-total"
            if highest is not None:
                del self.waiting[s][highest]
        self.waiting.setdefault(s, {})[n] = stx
        self.tidy()
        return "ok"

    def settle(self, sender: bytes) -> None:
        mine = self.waiting.get(sender, {})
        for n in [n for n in mine if n < self.head.get(sender, 0)]:
            del mine[n]
        excess = self.queued(sender)[self.aq:] if sender in self.waiting else []
        for n in excess:
            del mine[n]
        self.tidy()

    def tidy(self) -> None:
        for s in [s for s, mine in self.waiting.items() if not mine]:
            del self.waiting[s]


REFUSALS = {
    "nonce too low": "low", "nonce too high": "high", "already known": "known",
    "replacement transaction refused": "replacement", "txpool is full for account": "full-account-queue",
}


def refusal_key(message: str) -> str:
    for start, key in REFUSALS.items():
        if message.startswith(start):
            return key
    if message.startswith("txpool is full:"):
        return ("full-total" if "in all" in message else "full-pending" if "executable transactions are" in message
                else "full-queue")
    raise AssertionError(f"unexpected refusal: {message}")


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = ReferencePool()
        self.pool = TxPool(chain_id=2024, block_gas_limit=1_000_000,
                           state_nonce=lambda a: self.model.head.get(a, 0), is_enrolled=lambda a: True,
                           limits=PoolLimits(**MODEL_LIMITS))

    @rule(account=st.sampled_from(MODEL_ACCOUNTS), nonce=st.integers(0, MAX_NONCE), variant=st.integers(0, 1))
    def add(self, account: int, nonce: int, variant: int) -> None:
        stx = cached_tx(account, nonce, variant)
        expected = self.model.add(stx)
        try:
            self.pool.add(stx)
            got = "ok"
        except TxPoolRefused as exc:
            got = refusal_key(str(exc))
        assert got == expected, f"add {account}/{nonce}/{variant}: pool {got}, model {expected}"

    @rule(account=st.sampled_from(MODEL_ACCOUNTS), offset=st.sampled_from([0, 0, 0, 1, 2, 4]),
          variant=st.integers(0, 1))
    def add_near(self, account: int, offset: int, variant: int) -> None:
        """Mostly the next executable nonce (long pending runs), else a small gap."""
        self.add(account, min(self.model.end(ACCOUNTS[account].address) + offset, MAX_NONCE + 20), variant)

    @rule(gas_budget=st.integers(1, 5))
    def block(self, gas_budget: int) -> None:
        """A block of the pending transactions the gas allows; the heads move past them."""
        txs = self.pool.pending(max_gas=21000 * gas_budget + 500)
        included = [t for t in txs]
        for t in included:
            assert self.model.head.get(t.sender, 0) == t.nonce, "a pending transaction out of nonce order"
            self.model.head[t.sender] = t.nonce + 1
        self.pool.remove(included)
        self.pool.prune()
        for s in list(self.model.waiting):
            self.model.settle(s)

    @rule(account=st.sampled_from(MODEL_ACCOUNTS))
    def refused_by_execution(self, account: int) -> None:
        """The first pending transaction of the account is refused in a block: it goes, the
        head stays, later nonces are demoted."""
        sender = ACCOUNTS[account].address
        run = self.model.run(sender) if sender in self.model.waiting else []
        if not run:
            return
        self.pool.remove([run[0]])
        del self.model.waiting[sender][run[0].nonce]
        self.model.settle(sender)

    @rule(account=st.sampled_from(MODEL_ACCOUNTS), count=st.integers(1, 4))
    def included_elsewhere(self, account: int, count: int) -> None:
        """A block from another proposer uses nonces of the account this pool may not hold."""
        sender = ACCOUNTS[account].address
        self.model.head[sender] = self.model.head.get(sender, 0) + count
        self.pool.prune()
        self.model.settle(sender)

    @invariant()
    def agrees_with_the_model(self) -> None:
        model, pool = self.model, self.pool
        expected = {t.hash for mine in model.waiting.values() for t in mine.values()}
        assert {h for mine in model.waiting.values() for h in (t.hash for t in mine.values())} == expected
        assert all(h in pool for h in expected) and len(pool) == len(expected)
        assert order(pool.pending()) == order(model.order())
        assert pool.pending_count == model.pending_total()
        assert pool.queued_count == model.queued_total()
        assert pool.waiting_gas == sum(t.gas for t in model.order())
        assert pool.has_executable() == bool(model.order())
        for account in MODEL_ACCOUNTS:
            sender = ACCOUNTS[account].address
            assert pool.next_nonce(sender) == model.end(sender)
            assert len(model.queued(sender)) <= MODEL_LIMITS["account_queue"]


PoolMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
test_the_pool_agrees_with_a_reference_model = PoolMachine.TestCase


def test_a_demotion_that_overfills_the_account_queue_drops_its_highest_nonces(nonces: dict[bytes, int]) -> None:
    pool = make_pool(nonces, account_queue=2)
    for n in range(4):
        pool.add(cached_tx(9, n))
    pool.remove([cached_tx(9, 0)])  # refused by execution: 1-3 are gapped now, one too many
    assert (pool.pending_count, pool.queued_count) == (0, 2)
    assert cached_tx(9, 3).hash not in pool and cached_tx(9, 2).hash in pool and pool.next_nonce(A9) == 0


def test_pending_and_queued_together_stay_within_the_sum_of_their_limits(nonces: dict[bytes, int]) -> None:
    pool = make_pool(nonces, global_slots=4, global_queue=2, account_queue=4)
    for n in range(4):
        pool.add(cached_tx(9, n))
    pool.remove([cached_tx(9, 0)])  # refused by execution: 1-3 demoted, the queue runs over (3 of 2)
    assert (pool.pending_count, pool.queued_count) == (0, 3)
    for n in range(3):
        pool.add(cached_tx(1, n))
    with pytest.raises(TxPoolRefused, match=r"txpool is full: 6 of 6 slots are taken in all \(executable and "
                                            r"gapped\); try again after the next block"):
        pool.add(cached_tx(1, 3))  # pending has room (3 of 4), the pool as a whole has not
    assert len(pool) == 6
