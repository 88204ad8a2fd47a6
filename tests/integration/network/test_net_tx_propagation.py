"""Transactions reach a block however they enter the network. Both tests here FAIL on the
current node; they pin two node bugs (see each test's docstring for the cause and fix).

The network runs a half-second block period (node.toml allows any float) and has one
observer, `relay`, the kind of node an application talks to without being a validator.
"""

from __future__ import annotations

import time

from netharness import Net, wait_until

from network.config import ConsensusSettings
from node.types.headers import decode_extra

CONSENSUS = ConsensusSettings(block_period=0.5, empty_block_period=1.0, round_timeout=1.0, max_round_timeout=4.0)
OBSERVERS = ["relay@regulator"]
RELAY = "relay"


def test_half_second_block_period_blocks_with_transactions_are_decided_in_round_0(net: Net) -> None:
    """NODE BUG. With block_period 0.5 the round-0 proposer asks for a block at
    parent.timestamp + 0.5 s (node/consensus/qbft.py `_block_request_time`, ~line 343), the
    runtime stamps it with int(clock) (node/runtime.py `_build`, ~line 244: = the parent's
    whole second), and every validator, the proposer included, refuses it: `_check_proposal`
    (qbft.py ~line 462) wants timestamp >= parent.timestamp + block_period ("block timestamp
    is earlier than parent + block period" in a --log-level debug log). So every block with
    transactions needs a round change (+round_timeout latency), and since the proposer of a
    round is validators[index(parent proposer) + 1 + r], blocks decided in round 1 make the
    same half of the validators fail round 0 forever: a transaction only in their pools (sent
    to them while they were cut off from the others) is never included; seen in
    halt-resume runs with block_period 0.5.
    Fix: timestamps are whole seconds, so ask for the block at parent.timestamp +
    ceil(block_period) (or stamp it max(int(now), parent.timestamp + ceil(block_period))),
    or refuse a fractional block_period in network/config.py."""
    validators = net.validator_names
    receipts = net.confirm_transactions(validators, validators)
    rounds = {}
    for receipt in receipts.values():
        number = int(receipt["blockNumber"], 16)
        rounds[number] = decode_extra(net.header(validators[0], number).extra_data).round
    assert all(r == 0 for r in rounds.values()), (
        f"blocks with transactions needed a round change (block: round) {rounds} on a healthy network")


def test_transaction_sent_to_a_disconnected_observer_is_final_once_it_reconnects(net: Net) -> None:
    """NODE BUG. A node gossips a transaction once, when it is submitted, to the peers
    connected at that moment (node/service.py `submit_raw_transaction` -> node/p2p/transport.py
    `gossip_transaction`); nothing sends waiting transactions to a peer that connects later
    (`P2PTransport.on_status` and the STATUS handshake exchange no pool). An observer never
    proposes, so a transaction it accepted while cut off waits in its pool forever although
    eth_sendRawTransaction returned its hash.
    Fix: on a new connection (or periodically) announce/send the executable pool
    transactions to the peer, as Ethereum clients do (eth/68 NewPooledTransactionHashes on
    connect); or refuse eth_sendRawTransaction on a node with no validator connected."""
    validators = net.validator_names
    for name in validators:
        net.stop(name)
    wait_until(lambda: (net.health(RELAY) or {}).get("peers") == [], 15.0, f"{RELAY} to have no peer")
    stranded = net.send_tx(RELAY, 9)
    for name in validators:
        net.start(name, wait=False)
    for name in validators:
        net.wait_serving(name)
    wait_until(lambda: {p["name"] for p in (net.health(RELAY) or {}).get("peers", [])} == set(validators),
               30.0, f"{RELAY} connected to every validator again")
    # Once connected, a new transaction through the observer is final: gossip works.
    fresh = net.send_tx(RELAY, 0)
    net.wait_final_on([RELAY, *validators], fresh)
    started = time.monotonic()
    net.wait_final_on([RELAY, *validators], stranded, timeout=15.0)
    print(f"stranded transaction final {time.monotonic() - started:.2f} s after a fresh one")
