"""Randomized deterministic simulation of QBFT: thousands of seeded runs.

Each seed (`RXLEDGER_SIM_SEEDS=START:COUNT`, default 0:2000; see conftest.py) fixes a
scenario (`harness.make_scenario`): 4 validators (60%) or 7, one of them Byzantine
(`byzantine.py`, a random subset of its behaviours), and a chaos phase of 5–11 s with
message drop (0–35%), duplication (0–25%), random delays up to 20–600 ms (so,
reordering), partitions that heal, and honest validators that crash (some mid-Ready) and
restart from their chain and WAL. Then the network heals: no partition, no drops, every
honest node up; delays, duplicates and the Byzantine validator stay.

Invariants checked on every run (harness.run_scenario):
1. agreement: no two honest nodes finalized different blocks at one height;
2. liveness: within `Scenario.liveness_bound()` seconds of healing, every honest node
   has finalized 4 blocks beyond the highest honest height at healing. The bound, from
   the config (its docstring derives each term; d is the largest message delay):
       3 · max_round_timeout + sync_retry + 10·d
       + (4 + 1) · (block_period + timeout(0) + timeout(1) + 10·d)
   i.e. 33 s + 60·d with the simulation's config (block period 1 s, round timeout 1 s
   doubling to a 4 s cap): 34 s to 69 s. A run stops as soon as the target is reached
   (the slowest of the 2,000 default seeds: 16.2 s);
3. every final block on every honest node passes the light client (`verify_header`
   walked from `TrustedState.from_genesis`: a quorum of valid seals of the validators in
   force), and none is a block execution rejects;
4. signer guard, on the wire: no honest node signed two different payloads for one
   (height, round, step); and its lock holds: after a COMMIT in round L at a height, its
   ROUND-CHANGEs at that height carry a prepared round >= L.

A failing seed prints how to rerun it alone, its scenario, the problems and the last 200
trace lines, and names the file holding the whole trace.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from typing import Any

import pytest
from byzantine import BEHAVIOURS, Byzantine
from harness import (
    GENESIS_TIME,
    Network,
    SimNode,
    build_block,
    check_agreement,
    check_final_blocks,
    make_network,
    make_scenario,
    run_scenario,
)

from node.consensus.messages import (
    COMMIT,
    PREPARE,
    PROPOSAL,
    ROUND_CHANGE,
    CommitMsg,
    PrepareMsg,
    ProposalMsg,
    RoundChangeMsg,
    decode_message,
    encode_message,
    sign_payload,
)
from rxledger.core.crypto import encode_signature, sign_hash
from rxledger.core.types.blocks import Block
from rxledger.core.types.headers import decode_extra, encode_extra, seal_hash


def test_random_run(sim_seed: int, sim_runs: Any) -> None:
    result = sim_runs.get(sim_seed)
    if not result.ok:
        pytest.fail(result.report, pytrace=False)


# -- the harness checks what it claims to check ----------------------------------------------
def _stable_network(n: int = 4, seed: int = 1) -> Network:
    net = make_network(n, seed=seed)
    net.start()
    net.run_until(GENESIS_TIME + 4)
    assert min(len(s.chain) for s in net.nodes) >= 2
    return net


def test_agreement_check_sees_a_fork() -> None:
    net = _stable_network()
    a, b = net.nodes[0], net.nodes[1]
    assert check_agreement(net, net.nodes) == []
    first = b.chain[0]
    b.chain[0] = Block(replace(first.header, timestamp=first.header.timestamp + 1), ())
    problems = check_agreement(net, [a, b])
    assert problems and "agreement" in problems[0]


def test_final_block_check_sees_missing_seals() -> None:
    net = _stable_network()
    sim = net.nodes[2]
    assert check_final_blocks(net, [sim]) == []
    block = sim.chain[1]
    extra = decode_extra(block.header.extra_data)
    stripped = replace(block.header, extra_data=encode_extra(replace(extra, seals=extra.seals[:2])))
    sim.chain[1] = Block(stripped, ())
    problems = check_final_blocks(net, [sim])
    assert problems and "2 valid seals, 3 required" in problems[0]


def test_signer_guard_check_sees_a_double_sign() -> None:
    net = _stable_network()
    sim = net.nodes[0]
    for digest in (b"\x01" * 32, b"\x02" * 32):
        signed = sign_payload(PREPARE, 9, 0, (digest,), sim.key, sim.address)
        net._check_signed(sim, encode_message(PrepareMsg(signed)))
    assert any("signer guard" in v for v in net.violations)


def test_lock_check_sees_a_forgotten_lock() -> None:
    net = _stable_network()
    sim = net.nodes[0]
    digest = b"\x03" * 32
    seal = encode_signature(*sign_hash(digest, sim.key))
    commit = sign_payload(COMMIT, 9, 1, (digest, seal), sim.key, sim.address)
    net._check_signed(sim, encode_message(CommitMsg(commit)))
    rc = sign_payload(ROUND_CHANGE, 9, 2, (None,), sim.key, sim.address)
    net._check_signed(sim, encode_message(RoundChangeMsg(rc, None, ())))
    assert any("lock" in v for v in net.violations)


def test_every_byzantine_behaviour_fires() -> None:
    """Over a few runs with every behaviour on, each one leaves its mark in the trace."""
    seen: set[str] = set()
    for seed in range(6):
        sc = replace(make_scenario(seed), behaviours=BEHAVIOURS, byzantine_rate=0.5)
        outcome = run_scenario(sc)
        assert outcome.ok, outcome.problems
        for line in outcome.trace:
            m = re.search(r" BYZ (?:-> v\d+ |sync -> v\d+ )?(\w+):", line)
            if m:
                seen.add(m.group(1))
    assert seen == set(BEHAVIOURS)


def test_seeds_are_replayable() -> None:
    """The same seed gives the same run, trace line for trace line."""
    first, second = run_scenario(make_scenario(7)), run_scenario(make_scenario(7))
    assert first.trace == second.trace


def test_byzantine_rejects_unknown_behaviour() -> None:
    with pytest.raises(ValueError):
        Byzantine(("lie",), random.Random(0))


# -- regressions found by seeds --------------------------------------------------------------
def test_torn_crash_keeps_the_lock_of_the_next_height() -> None:
    """Found by the lock invariant: a validator decides height 1, handles buffered
    height-2 messages, locks and sends COMMIT at height 2, and crashes after persisting
    those WAL records but before block 1 was applied. (The state machine used to handle
    them in the Ready that decided block 1, which the runtime applies after sending; now
    it waits for `advance`, after the block is applied, but a WAL written before that
    change, or by a driver that advances before applying, can still hold them.) On
    restart its head is block 0, so the height-2 records lie above head + 1; once block 1
    arrives by sync and is applied, the node must still be locked at height 2 (and
    resend, not re-sign, what it signed there)."""
    net = make_network(4, seed=0)
    net.start()
    by_address = {s.address: s for s in net.nodes}
    vals = sorted(by_address)
    v0 = by_address[vals[2]]  # proposes neither height 1 nor height 2
    node = v0.node
    assert node is not None

    def vote(sim: SimNode, code: int, height: int, digest: bytes) -> bytes:
        if code == PREPARE:
            return encode_message(PrepareMsg(sign_payload(PREPARE, height, 0, (digest,), sim.key, sim.address)))
        seal = encode_signature(*sign_hash(digest, sim.key))
        return encode_message(CommitMsg(sign_payload(COMMIT, height, 0, (digest, seal), sim.key, sim.address)))

    def proposal(sim: SimNode, height: int, block: Block) -> bytes:
        signed = sign_payload(PROPOSAL, height, 0, (seal_hash(block.header),), sim.key, sim.address)
        return encode_message(ProposalMsg(signed, block, (), ()))

    # Heights 1 and 2 as the others make them; v0 hears of them only now.
    p1 = by_address[node.proposer(0)]
    assert p1 is not v0
    block1 = build_block(v0.genesis, v0.tally, p1.address, 0, GENESIS_TIME + 1)
    d1 = seal_hash(block1.header)
    p2 = by_address[vals[(vals.index(p1.address) + 1) % len(vals)]]
    block2 = build_block(block1.header, v0.tally, p2.address, 0, GENESIS_TIME + 2)
    d2 = seal_hash(block2.header)
    assert p2 is not v0
    voters1 = [s for s in net.nodes if s is not v0][:2]
    voters2 = [s for s in net.nodes if s is not v0 and s is not p2][:1] + [p2]
    node.step(proposal(p2, 2, block2))  # buffered: a future height
    for sim in voters2:
        node.step(vote(sim, PREPARE, 2, d2))
    node.step(proposal(p1, 1, block1))
    for code in (PREPARE, COMMIT):
        for sim in voters1:
            node.step(vote(sim, code, 1, d1))
    ready = node.ready()
    assert [b.number for b in ready.committed] == [1]
    # Height 2's buffered messages wait until block 1 is applied (advance).
    assert not any(r.height == 2 for r in ready.records)
    v0.persist(ready.records)
    node.advance(ready)  # without applying block 1 to v0's chain: the crash below loses it
    ahead = node.ready()
    assert any(r.kind == "prepared" and r.height == 2 for r in ahead.records)
    # Torn crash: records persisted, messages sent, block 1 never applied.
    v0.persist(ahead.records)
    v0.crash()
    v0.start()  # head: genesis; WAL: heights 1 and 2
    restarted = v0.node
    assert restarted is not None and restarted.height == 1
    restarted.advance(restarted.ready())
    restarted.import_block(ready.committed[0])  # block 1, by sync
    assert restarted.height == 2
    decided = restarted.ready()
    assert [b.number for b in decided.committed] == [1]
    restarted.advance(decided)  # block 1 applied: height 2 starts from its WAL records
    resent = restarted.ready()
    missing = {r.data for r in v0.wal if r.height == 2 and r.kind == "signed"} - {m.data for m in resent.messages}
    assert not missing, f"{len(missing)} messages signed at height 2 before the crash were not resent"
    restarted.advance(resent)
    restarted.tick(GENESIS_TIME + 60)  # height 2's round times out
    sent = [decode_message(m.data) for m in restarted.ready().messages]
    round_changes = [m for m in sent if isinstance(m, RoundChangeMsg)]
    assert round_changes, "no round change at height 2"
    for rc in round_changes:
        assert rc.prepared == (0, d2), f"ROUND-CHANGE r{rc.signed.round} forgot the lock: {rc.prepared}"
