"""node.txpool: every admission rule refuses with a message that says why; output order."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from node.errors import InvalidTransaction, TxPoolRefused
from node.genesis import dev_accounts
from node.txpool import PoolLimits, TxPool
from node.types import decode_transaction

ACCOUNTS = dev_accounts()
TO = to_checksum_address(ACCOUNTS[1].address)


def tx(account: int = 9, nonce: int = 0, *, key: bytes | None = None, chain_id: int = 2024, gas: int = 21000,
       data: bytes = b""):
    k = key or ACCOUNTS[account].private_key
    raw = Account.from_key(k).sign_transaction(
        dict(nonce=nonce, gasPrice=0, gas=gas, to=TO, value=0, data=data, chainId=chain_id)
    ).raw_transaction
    return decode_transaction(bytes(raw))


@pytest.fixture
def nonces():
    return {}


@pytest.fixture
def pool(nonces):
    enrolled = {a.address for a in ACCOUNTS}
    return TxPool(chain_id=2024, block_gas_limit=1_000_000, state_nonce=lambda a: nonces.get(a, 0),
                  is_enrolled=lambda a: a in enrolled, limits=PoolLimits(max_transactions=50, max_per_sender=10,
                                                                        max_nonce_gap=5, max_tx_size=4096))


def test_admits_and_orders_by_nonce_per_sender(pool):
    for n in (2, 0, 1):
        pool.add(tx(9, n))
    assert [t.nonce for t in pool.pending()] == [0, 1, 2]
    assert len(pool) == 3


def test_gap_holds_back_later_nonces(pool):
    pool.add(tx(9, 0))
    pool.add(tx(9, 2))
    assert [t.nonce for t in pool.pending()] == [0]
    assert pool.next_nonce(ACCOUNTS[9].address) == 1


def test_senders_take_turns(pool):
    for n in range(3):
        pool.add(tx(9, n))
    for n in range(2):
        pool.add(tx(1, n))
    order = [(t.sender, t.nonce) for t in pool.pending()]
    a9, a1 = ACCOUNTS[9].address, ACCOUNTS[1].address
    assert order == [(a9, 0), (a1, 0), (a9, 1), (a1, 1), (a9, 2)]


def test_pending_respects_gas_budget(pool):
    for n in range(5):
        pool.add(tx(9, n))
    assert len(pool.pending(max_gas=21000 * 3)) == 3


def test_wrong_chain_id_is_refused(pool):
    with pytest.raises(InvalidTransaction, match="signed for chain 1, this chain is 2024"):
        pool.add(tx(9, 0, chain_id=1))


def test_unknown_sender_is_refused(pool):
    stranger = Account.create()
    with pytest.raises(TxPoolRefused, match=f"sender {stranger.address.lower()} is not enrolled"):
        pool.add(tx(key=bytes(stranger.key)))


def test_used_nonce_is_refused(pool, nonces):
    nonces[ACCOUNTS[9].address] = 3
    with pytest.raises(TxPoolRefused, match="nonce too low: transaction nonce 2, account .* is at 3"):
        pool.add(tx(9, 2))


def test_nonce_too_far_ahead_is_refused(pool):
    with pytest.raises(TxPoolRefused, match="nonce too high: transaction nonce 6 is more than 5 ahead"):
        pool.add(tx(9, 6))


def test_duplicate_and_replacement_are_refused(pool):
    first = tx(9, 0)
    pool.add(first)
    with pytest.raises(TxPoolRefused, match="already known"):
        pool.add(first)
    with pytest.raises(TxPoolRefused, match="replacement transaction refused: nonce 0"):
        pool.add(tx(9, 0, gas=22000))


def test_oversized_transaction_is_refused(pool):
    with pytest.raises(TxPoolRefused, match="oversized transaction"):
        pool.add(tx(9, 0, gas=500_000, data=b"\x01" * 5000))


def test_gas_above_block_limit_is_refused(pool):
    with pytest.raises(InvalidTransaction, match="exceeds block gas limit"):
        pool.add(tx(9, 0, gas=2_000_000))


def test_per_sender_and_total_limits(nonces):
    pool = TxPool(chain_id=2024, block_gas_limit=1_000_000, state_nonce=lambda a: 0, is_enrolled=lambda a: True,
                  limits=PoolLimits(max_transactions=3, max_per_sender=2, max_nonce_gap=10))
    pool.add(tx(9, 0))
    pool.add(tx(9, 1))
    with pytest.raises(TxPoolRefused, match="txpool is full for sender"):
        pool.add(tx(9, 2))
    pool.add(tx(1, 0))
    with pytest.raises(TxPoolRefused, match="txpool is full: 3 transactions waiting"):
        pool.add(tx(2, 0))


def test_prune_drops_passed_nonces_and_remove_drops_included(pool, nonces):
    txs = [tx(9, n) for n in range(4)]
    for t in txs:
        pool.add(t)
    pool.remove([txs[0]])
    nonces[ACCOUNTS[9].address] = 2
    pool.prune()
    assert [t.nonce for t in pool.pending()] == [2, 3]
    assert txs[1].hash not in pool and txs[2].hash in pool


def test_has_executable_ignores_future_nonces(pool):
    assert not pool.has_executable()
    pool.add(tx(9, 1))
    assert not pool.has_executable()  # nonce 0 is missing: nothing could go in a block
    pool.add(tx(9, 0))
    assert pool.has_executable()
