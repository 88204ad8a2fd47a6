"""A deterministic in-memory network of QBFT state machines (no sockets, no sleeps).

Each `SimNode` wraps a `QbftNode` with its own chain of final blocks (a list), its WAL
(a list of records, "persisted" before messages leave) and a clock driven by the
simulator. Blocks are real `node.types.Block`s with real headers and seals, but carry
no transactions: consensus is what is under test, not execution. A block is invalid
(as execution would find it) when its state root is `INVALID_STATE_ROOT`.

The `Network` delivers messages with seeded randomness: drop, delay, duplication,
reordering, partitions; nodes can crash (losing everything but the WAL and their
chain) and restart. Every event is appended to `trace`, which is what a failing seed
prints and what scripted scenarios compare with their expected files.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from node.consensus.qbft import QbftConfig, QbftNode, Ready, WalRecord
from node.consensus.validators import VoteTally, tally_vote, validators_commitment
from node.crypto import private_key_to_address
from node.genesis import derive_dev_key
from node.types.blocks import Block
from node.types.headers import (
    EMPTY_OMMERS_HASH,
    EMPTY_REQUESTS_HASH,
    EMPTY_TRIE_ROOT,
    QBFT_MIX_HASH,
    ZERO_HASH,
    Header,
    QbftExtra,
    Vote,
    block_hash,
    decode_extra,
    encode_extra,
)

INVALID_STATE_ROOT = b"\xba\xd0" * 16
GENESIS_TIME = 1_700_000_000


def validator_keys(n: int, offset: int = 300) -> list[bytes]:
    return [derive_dev_key(offset + i) for i in range(n)]


def make_genesis(validators: tuple[bytes, ...]) -> Header:
    vals = tuple(sorted(validators))
    return Header(
        parent_hash=ZERO_HASH, ommers_hash=EMPTY_OMMERS_HASH, coinbase=b"\x00" * 20,
        state_root=EMPTY_TRIE_ROOT, transactions_root=EMPTY_TRIE_ROOT, receipts_root=EMPTY_TRIE_ROOT,
        logs_bloom=b"\x00" * 256, difficulty=1, number=0, gas_limit=30_000_000, gas_used=0,
        timestamp=GENESIS_TIME, extra_data=encode_extra(QbftExtra(validators_commitment(vals), vals, None, 0, ())),
        mix_hash=QBFT_MIX_HASH, nonce=b"\x00" * 8, base_fee_per_gas=0, withdrawals_root=EMPTY_TRIE_ROOT,
        blob_gas_used=0, excess_blob_gas=0, parent_beacon_block_root=ZERO_HASH, requests_hash=EMPTY_REQUESTS_HASH,
    )


def build_block(parent: Header, tally: VoteTally, proposer: bytes, round_: int, timestamp: int,
                vote: Vote | None = None, invalid: bool = False) -> Block:
    """An empty block on `parent`, shaped as Chain.build_block shapes real ones."""
    following = tally_vote(tally, proposer, vote).validators
    extra = QbftExtra(validators_commitment(following), tally.validators, vote, round_, ())
    header = replace(
        parent, parent_hash=block_hash(parent), coinbase=proposer, number=parent.number + 1,
        timestamp=max(timestamp, parent.timestamp), extra_data=encode_extra(extra),
        state_root=INVALID_STATE_ROOT if invalid else EMPTY_TRIE_ROOT,
    )
    return Block(header, ())


def validate(block: Block) -> str | None:
    return "state root does not match execution" if block.header.state_root == INVALID_STATE_ROOT else None


@dataclass
class SimNode:
    key: bytes
    config: QbftConfig
    genesis: Header
    clock: Callable[[], float]
    chain: list[Block] = field(default_factory=list)
    tallies: list[VoteTally] = field(default_factory=list)
    wal: list[WalRecord] = field(default_factory=list)
    votes: list[Vote] = field(default_factory=list)
    up: bool = True
    node: QbftNode | None = None
    pending: bool = True

    def __post_init__(self) -> None:
        self.address = private_key_to_address(self.key)

    @property
    def head(self) -> Header:
        return self.chain[-1].header if self.chain else self.genesis

    @property
    def tally(self) -> VoteTally:
        return self.tallies[-1] if self.tallies else VoteTally(decode_extra(self.genesis.extra_data).validators)

    def start(self) -> None:
        self.node = QbftNode(self.config, self.key, self.head, self.tally, validate,
                             now=self.clock(), records=[r for r in self.wal if r.height > self.head.number])
        self.node.set_pending(self.pending)
        self.up = True

    def crash(self) -> None:
        self.up = False
        self.node = None

    def apply(self, ready: Ready) -> None:
        """persist → (the network sends) → apply committed blocks."""
        self.wal.extend(ready.records)
        for block in ready.committed:
            extra = decode_extra(block.header.extra_data)
            self.tallies.append(tally_vote(self.tally, block.header.coinbase, extra.vote))
            self.chain.append(block)
            self.votes = [v for v in self.votes if (v.validator in self.tally.validators) != v.add]
        if ready.committed:
            self.wal = [r for r in self.wal if r.height > self.head.number]

    def build(self, height: int, round_: int) -> Block:
        vote = self.votes[0] if self.votes else None
        return build_block(self.head, self.tally, self.address, round_, int(self.clock()), vote)


class Network:
    """Seeded message delivery between SimNodes."""

    def __init__(self, nodes: list[SimNode], seed: int, *, drop: float = 0.0, duplicate: float = 0.0,
                 delay: tuple[float, float] = (0.001, 0.05)) -> None:
        self.nodes = nodes
        self.by_address = {n.address: n for n in nodes}
        self.rng = random.Random(seed)
        self.drop = drop
        self.duplicate = duplicate
        self.delay = delay
        self.now = float(GENESIS_TIME)
        self.queue: list[tuple[float, int, bytes, bytes, object]] = []  # (time, seq, to, from, payload)
        self.seq = 0
        self.partition: list[set[bytes]] | None = None
        self.trace: list[str] = []
        self.byzantine: dict[bytes, Callable[[Network, SimNode, bytes | None, bytes], None]] = {}

    def log(self, text: str) -> None:
        self.trace.append(f"{self.now - GENESIS_TIME:9.3f} {text}")

    def name(self, address: bytes) -> str:
        for i, n in enumerate(self.nodes):
            if n.address == address:
                return f"v{i}"
        return address.hex()[:6]

    def connected(self, a: bytes, b: bytes) -> bool:
        if self.partition is None:
            return True
        return any(a in side and b in side for side in self.partition)

    def send(self, src: bytes, dst: bytes, payload: object, reliable: bool = False) -> None:
        if not reliable and self.rng.random() < self.drop:
            return
        copies = 2 if not reliable and self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            self.seq += 1
            at = self.now + self.rng.uniform(*self.delay)
            heapq.heappush(self.queue, (at, self.seq, dst, src, payload))

    def flush(self, sim: SimNode) -> None:
        """Carry out a node's Ready: persist, send, apply, advance."""
        node = sim.node
        assert node is not None
        while True:
            ready = node.ready()
            if ready.empty() and not ready.events:
                return
            for e in ready.events:
                self.log(f"{self.name(sim.address)} {e}")
            sim.apply(ready)
            for out in ready.messages:
                targets = [out.to] if out.to else [n.address for n in self.nodes if n.address != sim.address]
                for t in targets:
                    if sim.address in self.byzantine:
                        self.byzantine[sim.address](self, sim, t, out.data)
                    else:
                        self.send(sim.address, t, ("msg", out.data))
            for req in ready.sync:
                self.send(sim.address, req.peer, ("sync", req.from_height))
            for push in ready.push:
                self.send(sim.address, sim.address, ("push", (push.peer, push.from_height)), reliable=True)
            request = ready.block_request
            node.advance(ready)
            if request is not None:
                node.propose(sim.build(request.height, request.round))

    def deliver(self, dst: bytes, src: bytes, payload: object) -> None:
        sim = self.by_address[dst]
        if not sim.up or sim.node is None or not self.connected(src, dst):
            return
        kind, data = payload  # type: ignore[misc]
        if kind == "msg":
            sim.node.step(data)
        elif kind == "sync":  # src asks dst for blocks from height `data`
            for block in self.by_address[dst].chain[data - 1:]:
                self.send(dst, src, ("block", block))
        elif kind == "push":  # dst pushes its blocks to a lagging peer
            peer, height = data
            for block in sim.chain[max(height - 1, 0):]:
                self.send(dst, peer, ("block", block))
        elif kind == "block":
            sim.node.import_block(data)
        self.flush(sim)

    def run_until(self, until: float, tick: float = 0.1) -> None:
        next_tick = self.now
        while self.now < until:
            if self.queue and self.queue[0][0] <= next_tick:
                at, _seq, dst, src, payload = heapq.heappop(self.queue)
                self.now = max(self.now, at)
                self.deliver(dst, src, payload)
            else:
                self.now = next_tick
                for sim in self.nodes:
                    if sim.up and sim.node is not None:
                        sim.node.tick(self.now)
                        self.flush(sim)
                next_tick = self.now + tick

    def start(self) -> None:
        for sim in self.nodes:
            sim.start()
            self.flush(sim)


def make_network(n: int, seed: int, config: QbftConfig | None = None, **kw: object) -> Network:
    config = config or QbftConfig(block_period=1.0, round_timeout=1.0, max_round_timeout=8.0)
    keys = validator_keys(n)
    genesis = make_genesis(tuple(private_key_to_address(k) for k in keys))
    holder: list[Network] = []
    nodes = [SimNode(k, config, genesis, clock=lambda: holder[0].now) for k in keys]
    net = Network(nodes, seed, **kw)  # type: ignore[arg-type]
    holder.append(net)
    return net
