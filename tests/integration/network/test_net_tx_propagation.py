"""Transactions reach a block however they enter the network (two node bugs found here
are fixed; each test's docstring says which).

The network runs a half-second block period (node.toml allows any float) and has one
observer, `relay`, the kind of node an application talks to without being a validator.
"""

from __future__ import annotations

import time

from netharness import Net, wait_until

from network.config import ConsensusSettings
from rxledger.core.types.headers import decode_extra

CONSENSUS = ConsensusSettings(block_period=0.5, empty_block_period=1.0, round_timeout=1.0, max_round_timeout=4.0)
OBSERVERS = ["relay@regulator"]
RELAY = "relay"


def test_half_second_block_period_blocks_with_transactions_are_decided_in_round_0(net: Net) -> None:
    """Header timestamps are whole seconds while the block period is 0.5 s. Once, the
    proposer stamped a block with the parent's second and every validator refused it, so
    each block with transactions needed a round change; then timestamps were rounded up to
    the next second (blocks at most one a second, their timestamps running ahead of the
    clock under load). Now QBFT spaces blocks by the period's whole seconds (0 here) and
    the runtime keeps the half second on its clock (node/cli.py `start_config`,
    node.runtime.Gathering.min_interval): every block is decided in round 0."""
    validators = net.validator_names
    receipts = net.confirm_transactions(validators, validators)
    rounds = {}
    for receipt in receipts.values():
        number = int(receipt["blockNumber"], 16)
        rounds[number] = decode_extra(net.header(validators[0], number).extra_data).round
    assert all(r == 0 for r in rounds.values()), (
        f"blocks with transactions needed a round change (block: round) {rounds} on a healthy network")


def test_transaction_sent_to_a_disconnected_observer_is_final_once_it_reconnects(net: Net) -> None:
    """A node once gossiped a transaction only when it was submitted, to the peers
    connected at that moment, so a transaction an observer accepted while cut off waited in
    its pool forever. Waiting transactions are now re-sent to peers (node/p2p/transport.py,
    `waiting_transactions`), so it is final once the observer reconnects."""
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
