"""QbftNode.step against hostile messages, in the deterministic simulation.

The issue's reproductions (a PROPOSAL whose block holds a byte string where the
transaction list belongs; 150,000 nested lists) escaped `step` as TypeError and
RecursionError; here they, and arbitrary, mutated, replayed, equivocating, oversized and
flooding messages from one Byzantine validator (f = 1 of 4), must be dropped with only
typed errors inside the node, while the honest validators keep finalising blocks and
never finalise two different blocks at one height. The per-author budgets
(`QbftConfig.max_messages_per_author`, `max_bytes_per_author`) are checked by flooding.

A long run: `RXLEDGER_FUZZ=long` (see tests/unit/fuzzing.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import rlp
from harness import (
    GENESIS_TIME,
    Network,
    SimNode,
    build_block,
    check_agreement,
    check_final_blocks,
    make_network,
)
from hypothesis import given
from hypothesis import strategies as st

from node.consensus.messages import (
    COMMIT,
    MAX_MESSAGE_BYTES,
    PREPARE,
    PROPOSAL,
    ROUND_CHANGE,
    CommitMsg,
    PrepareMsg,
    ProposalMsg,
    RoundChangeMsg,
    encode_message,
    encode_signed,
    sign_payload,
)
from node.consensus.qbft import QbftConfig
from rxledger.core.crypto import encode_signature, private_key_to_address, sign_hash
from rxledger.core.types.headers import encode_header, seal_hash
from rxledger.core.types.rlp_codec import rlp_bytes, rlp_list

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from fuzzing import deep_lists, fuzz, mutated_bytes, mutated_tree  # noqa: E402

STRANGER_KEY = bytes.fromhex("22" * 32)


def _network(seed: int = 1, config: QbftConfig | None = None) -> tuple[Network, SimNode, list[SimNode]]:
    net = make_network(4, seed, config)
    byz = net.nodes[3]
    return net, byz, net.nodes[:3]


def _signed(sim: SimNode, code: int, height: int, round_: int, body: tuple[object, ...]):
    return sign_payload(code, height, round_, body, sim.key, sim.address)


def _proposal_with_block_bytes(author_key: bytes, height: int, round_: int, block: bytes) -> bytes:
    s = sign_payload(PROPOSAL, height, round_, (b"\x01" * 32,), author_key, private_key_to_address(author_key))
    return rlp_list(rlp.encode(PROPOSAL) + rlp.encode(encode_signed(s)) + block + b"\xc0\xc0")


def _proposer_key(net: Network, target: SimNode, round_: int) -> bytes:
    assert target.node is not None
    return net.by_address[target.node.proposer(round_)].key


def _bytes_for_transactions(target: SimNode) -> bytes:
    """A block whose transaction list is a byte string (the issue's first reproduction)."""
    header = build_block(target.head, target.tally, target.address, 0, GENESIS_TIME + 1).header
    return rlp_list(encode_header(header) + rlp_bytes(b"\x01\x02\x03") + b"\xc0\xc0")


# -- the reproductions -----------------------------------------------------------------------
def test_a_proposal_whose_block_has_bytes_for_transactions_is_dropped_and_consensus_goes_on() -> None:
    net, _byz, honest = _network()
    net.start()
    target = honest[0]
    assert target.node is not None
    for key in (_proposer_key(net, target, 0), STRANGER_KEY):  # the proposer's key, and anyone's
        data = _proposal_with_block_bytes(key, 1, 0, _bytes_for_transactions(target))
        reason = target.node.step(data)  # raised TypeError before the fix
        net.flush(target)
        if key == STRANGER_KEY:
            assert reason is None  # a non-validator: dropped before its block is read
            assert any("from non-validator" in line for line in net.trace[-3:])
        else:
            assert reason is not None and "transaction list is a byte string" in reason
    net.run_until(GENESIS_TIME + 6)
    assert all(len(s.chain) >= 3 for s in honest)
    assert check_agreement(net, honest) == []


def test_150000_nested_lists_are_dropped_and_consensus_goes_on() -> None:
    net, _byz, honest = _network()
    net.start()
    frame = deep_lists(150_000)  # 578 KB, unsigned
    signed_frame = _proposal_with_block_bytes(_proposer_key(net, honest[0], 0), 1, 0, deep_lists(150_000))
    for sim in honest:
        assert sim.node is not None
        assert "deep" in (sim.node.step(frame) or "")  # raised RecursionError before the fix
        assert "deep" in (sim.node.step(signed_frame) or "")
        net.flush(sim)
    net.run_until(GENESIS_TIME + 6)
    assert all(len(s.chain) >= 3 for s in honest)
    assert check_agreement(net, honest) == []


# -- budgets ---------------------------------------------------------------------------------
def test_a_flooding_validator_cannot_evict_honest_messages_or_grow_memory_past_its_budget() -> None:
    config = QbftConfig(block_period=1.0, round_timeout=1.0, max_round_timeout=8.0,
                        max_messages_per_author=40, max_bytes_per_author=40 * 1024)
    net, byz, honest = _network(config=config)
    net.start()
    target = honest[0]
    node = target.node
    assert node is not None
    h = node.height
    # Flood: future rounds at this height (distinct digests), and future heights.
    sent = 0
    for i in range(2_000):
        round_, digest = 1 + i % 500, i.to_bytes(32, "big")
        node.step(encode_message(PrepareMsg(_signed(byz, PREPARE, h, round_, (digest,)))))
        node.step(encode_message(PrepareMsg(_signed(byz, PREPARE, h + 1 + i % 9, 0, (digest,)))))
        sent += 2
    net.flush(target)
    held_rounds = sum(1 for votes in node.h.prepares.values() if byz.address in votes)
    held_future = sum(1 for msgs in node._future.values() for key, _e, _s in msgs if key == byz.address)
    assert held_rounds <= 40 and held_future <= 40, (held_rounds, held_future)
    assert sum(size for msgs in node._future.values() for _k, _e, size in msgs) <= 40 * 1024
    assert any("budget" in line for line in net.trace)
    # Honest messages for the same future rounds and heights are still held.
    for sim in honest[1:]:
        digest = b"\xaa" * 32
        node.step(encode_message(PrepareMsg(_signed(sim, PREPARE, h, 7, (digest,)))))
        node.step(encode_message(PrepareMsg(_signed(sim, PREPARE, h + 1, 0, (digest,)))))
        assert sim.address in node.h.prepares[(7, digest)]
        assert any(key == sim.address for key, _e, _s in node._future[h + 1])
    net.flush(target)
    net.run_until(GENESIS_TIME + 6)
    assert all(len(s.chain) >= 3 for s in honest)
    assert check_agreement(net, honest) == []


# -- fuzzing QbftNode.step ---------------------------------------------------------------------
class Hostile:
    """The Byzantine validator's hook: forwards what its state machine sends and keeps
    every message it sends or hears, for mutation and replay."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def __call__(self, net: Network, sim: SimNode, target: bytes, data: bytes) -> None:
        self.seen.append(data)
        net.send(sim.address, target, ("msg", data))

    def observe(self, net: Network, sim: SimNode, src: bytes, data: bytes) -> None:
        self.seen.append(data)


ATTACKS = ("random", "mutate", "tree", "replay", "equivocate", "oversized", "bad_block", "nested", "flood")


def _attack(kind: str, draw, net: Network, byz: SimNode, target: SimNode, seen: list[bytes]) -> list[bytes]:
    assert target.node is not None
    h, r = target.node.height, target.node.round
    pick = seen[draw(st.integers(0, len(seen) - 1))] if seen else encode_message(
        PrepareMsg(_signed(byz, PREPARE, h, r, (b"\x00" * 32,))))
    if kind == "random":
        return [draw(st.binary(max_size=300))]
    if kind == "mutate":
        return [draw(mutated_bytes(pick, tuple(seen[-5:])))]
    if kind == "tree":
        return [draw(mutated_tree(pick))]
    if kind == "replay":
        return [pick]
    if kind == "equivocate":
        digest = draw(st.binary(min_size=32, max_size=32))
        seal = encode_signature(*sign_hash(digest, byz.key))
        out = [encode_message(PrepareMsg(_signed(byz, PREPARE, h, r, (digest,)))),
               encode_message(CommitMsg(_signed(byz, COMMIT, h, r, (digest, seal)))),
               encode_message(RoundChangeMsg(_signed(byz, ROUND_CHANGE, h, r + 1, (None,)), None, ()))]
        if target.node.proposer(r) == byz.address:  # a second proposal for its round
            block = build_block(target.head, target.tally, byz.address, r, int(net.now) + draw(st.integers(0, 3)))
            out.append(encode_message(ProposalMsg(
                _signed(byz, PROPOSAL, h, r, (seal_hash(block.header),)), block, (), ())))
        return out
    if kind == "oversized":
        return [b"\xbb" + (MAX_MESSAGE_BYTES + 1).to_bytes(4, "big") + b"\x00" * (MAX_MESSAGE_BYTES + 1)]
    rounds = [x for x in range(r, r + 4) if target.node.proposer(x) == byz.address]
    if kind in ("bad_block", "nested") and rounds:
        block = _bytes_for_transactions(target) if kind == "bad_block" else deep_lists(draw(st.integers(5, 20_000)))
        return [_proposal_with_block_bytes(byz.key, h, rounds[0], block)]
    # flood: future rounds and heights
    return [encode_message(PrepareMsg(_signed(byz, PREPARE, h + draw(st.integers(0, 12)),
                                              r + draw(st.integers(0, 900)), (i.to_bytes(32, "big"),))))
            for i in range(draw(st.integers(1, 60)))]


@fuzz(6)
@given(st.data())
def test_step_takes_any_message_from_a_byzantine_validator_and_safety_holds(data) -> None:
    seed = data.draw(st.integers(0, 2**16))
    net, byz, honest = _network(seed)
    hostile = Hostile()
    net.byzantine[byz.address] = hostile
    attacks = data.draw(st.lists(st.tuples(st.floats(0.1, 7.0), st.sampled_from(ATTACKS)),
                                 min_size=3, max_size=25))
    dropped: list[str] = []
    fired: list[str] = []

    def fire(kind: str) -> None:
        fired.append(kind)
        for target in honest:
            if target.node is None:
                continue
            for message in _attack(kind, data.draw, net, byz, target, hostile.seen):
                reason = target.node.step(message)  # must not raise
                if reason is not None:
                    dropped.append(reason)
            net.flush(target)

    for at, kind in attacks:
        net.at(GENESIS_TIME + at, kind, lambda kind=kind: fire(kind))
    net.start()
    net.run_until(GENESIS_TIME + 10)
    assert sorted(fired) == sorted(kind for _at, kind in attacks)  # every attack was made
    if "oversized" in fired:
        assert any("exceeds" in reason for reason in dropped)
    if "random" in fired or "nested" in fired:
        assert dropped
    assert all(len(s.chain) >= 4 for s in honest), [len(s.chain) for s in honest]
    assert check_agreement(net, honest) == []
    assert check_final_blocks(net, honest) == []
    assert net.violations == []


def test_past_round_messages_that_can_decide_nothing_are_not_held() -> None:
    net, byz, honest = _network()
    target = honest[0]
    target.pending = False  # idle: no proposal, so the rounds time out
    net.start()
    node = target.node
    assert node is not None
    node.tick(GENESIS_TIME + 400)  # round 0 times out (and more)
    node.tick(GENESIS_TIME + 800)
    net.flush(target)
    h, r = node.height, node.round
    assert r >= 1
    for i in range(500):  # commits and round changes for rounds already past
        digest = i.to_bytes(32, "big")
        seal = encode_signature(*sign_hash(digest, byz.key))
        node.step(encode_message(CommitMsg(_signed(byz, COMMIT, h, i % r, (digest, seal)))))
        node.step(encode_message(RoundChangeMsg(_signed(byz, ROUND_CHANGE, h, 1 + i % r, (None,)), None, ())))
    assert not any(byz.address in votes for votes in node.h.commits.values())
    assert not any(byz.address in rcs for rnd, rcs in node.h.round_changes.items() if rnd < r)


def test_replayed_copies_of_an_honest_validators_messages_never_spend_its_budget() -> None:
    """Anyone connected (an observer, a Byzantine validator) can re-send an honest
    validator's signed messages. Copies must not be charged to their author: 256 copies of
    a PREPARE used to spend the author's whole budget, after which its COMMIT (and every
    later message at that height, round changes included) was dropped, so no round could
    reach a quorum. Future-height copies are held once, too."""
    config = QbftConfig(block_period=1.0, round_timeout=1.0, max_round_timeout=8.0,
                        max_messages_per_author=16, max_bytes_per_author=16 * 1024)
    net, _byz, honest = _network(config=config)
    net.start()
    target, victim = honest[0], honest[1]
    node = target.node
    assert node is not None
    h, r = node.height, node.round
    digest = b"\x11" * 32
    prepare = encode_message(PrepareMsg(_signed(victim, PREPARE, h, r, (digest,))))
    future = encode_message(PrepareMsg(_signed(victim, PREPARE, h + 1, 0, (digest,))))
    for _ in range(1_000):
        node.step(prepare)
        node.step(future)
    seal = encode_signature(*sign_hash(digest, victim.key))
    node.step(encode_message(CommitMsg(_signed(victim, COMMIT, h, r, (digest, seal)))))
    assert any(victim.address in votes for votes in node.h.commits.values()), \
        "the victim's COMMIT was dropped: replayed copies spent its budget"
    assert node.h.held[victim.address][r][0] == 2  # one PREPARE and one COMMIT charged
    assert sum(1 for msgs in node._future.values() for key, _e, _s in msgs if key == victim.address) == 1
    assert not any("budget" in line for line in net.trace)
