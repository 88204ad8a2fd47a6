"""A deterministic in-memory network of QBFT state machines (no sockets, no sleeps).

Each `SimNode` wraps a `QbftNode` with its own chain of final blocks (a list), its WAL
(a list of records, "persisted" before messages leave) and a clock driven by the
simulator. Blocks are real `rxledger.core.types.Block`s with real headers and seals, but carry
no transactions: consensus is what is under test, not execution. A block is invalid
(as execution would find it) when its state root is `INVALID_STATE_ROOT`.

The `Network` delivers messages with seeded randomness: drop, delay, duplication,
reordering (independent random delays), partitions; nodes can crash and restart. A
crashed node keeps exactly what a real one keeps on disk, its chain and its WAL; a
restart builds a new `QbftNode` from them. A crash may be "torn": the node persists a
Ready's records and dies before sending its messages (or before applying its blocks).

Time is event driven, as `node.runtime` drives a node: a node is ticked at the deadline
its last `Ready` asked for, and at least every `heartbeat` seconds.

One validator may be Byzantine: `Network.byzantine[address]` is a hook that receives
every message that node's (honest) state machine sends, once per target, and decides
what actually goes out (see `byzantine.py`). Honest nodes' outgoing messages are
checked as they leave (`Network.violations`): no honest node may sign two different
payloads for one (height, round, step), and none may send a round change that forgets
the lock its own COMMIT at that height implies.

Every event is appended to `trace`, which is what a failing seed prints.

`Scenario` / `make_scenario(seed)` / `run_scenario` are the randomized runs of
`test_random_runs.py`: chaos (faults and a Byzantine validator), then healing, then the
invariants: agreement, liveness within `Scenario.liveness_bound()`, final blocks that a
light client accepts, and the signer guard.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from typing import Any

import rlp

from node.consensus.messages import COMMIT, ROUND_CHANGE, STEP_OF
from node.consensus.qbft import QbftConfig, QbftNode, Ready, WalRecord
from node.consensus.validators import VoteTally, tally_vote, validators_commitment
from node.genesis import derive_dev_key
from node.validation import validate_header
from rxledger.core.crypto import private_key_to_address
from rxledger.core.errors import InvalidBlock
from rxledger.core.light_client import LightClientError, TrustedState, verify_header
from rxledger.core.types.blocks import Block
from rxledger.core.types.headers import (
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


@lru_cache(maxsize=8)
def _keys(n: int, offset: int) -> tuple[bytes, ...]:
    return tuple(derive_dev_key(offset + i) for i in range(n))


def validator_keys(n: int, offset: int = 300) -> list[bytes]:
    return list(_keys(n, offset))


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


def validate_on(parent: Header, tally: VoteTally, block: Block) -> str | None:
    """What `Chain.verify_execution` does here: the header rules on the head, then the
    (simulated) execution check."""
    try:
        validate_header(parent, block.header, tally)
    except InvalidBlock as exc:
        return str(exc)
    return validate(block)


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
    # When to tick the state machine next (None: down).
    deadline: float | None = None
    # A torn crash armed: "before_send" (records persisted, messages and blocks lost) or
    # "before_apply" (messages sent, committed blocks not yet applied).
    torn: str | None = None
    restarts: int = 0

    def __post_init__(self) -> None:
        self.address = private_key_to_address(self.key)

    @property
    def head(self) -> Header:
        return self.chain[-1].header if self.chain else self.genesis

    @property
    def tally(self) -> VoteTally:
        return self.tallies[-1] if self.tallies else VoteTally(decode_extra(self.genesis.extra_data).validators)

    def start(self) -> None:
        """Boot from what is on disk: the chain and the WAL records above its head."""
        self.node = QbftNode(self.config, self.key, self.head, self.tally, self.validate, now=self.clock(), records=[r for r in self.wal if r.height > self.head.number])
        self.node.set_pending(self.pending)
        self.up = True
        self.torn = None

    def validate(self, block: Block) -> str | None:
        """The execution check, on the head as the state machine sees it (the runtime's
        chain head: it applies a decided block before the next height starts; a test may
        drive the state machine on without applying it)."""
        node = self.node
        if node is None:  # being built: its head is ours
            return validate_on(self.head, self.tally, block)
        return validate_on(node.h.parent, node.h.tally, block)

    def crash(self) -> None:
        """Lose everything in memory; the chain and the WAL survive."""
        self.up = False
        self.node = None
        self.deadline = None
        self.torn = None

    def persist(self, records: Sequence[WalRecord]) -> None:
        self.wal.extend(records)

    def commit(self, blocks: Sequence[Block]) -> None:
        for block in blocks:
            extra = decode_extra(block.header.extra_data)
            self.tallies.append(tally_vote(self.tally, block.header.coinbase, extra.vote))
            self.chain.append(block)
            self.votes = [v for v in self.votes if (v.validator in self.tally.validators) != v.add]
        if blocks:
            self.wal = [r for r in self.wal if r.height > self.head.number]

    def apply(self, ready: Ready) -> None:
        """persist → (the network sends) → apply committed blocks."""
        self.persist(ready.records)
        self.commit(ready.committed)

    def build(self, height: int, round_: int) -> Block:
        vote = self.votes[0] if self.votes else None
        return build_block(self.head, self.tally, self.address, round_, int(self.clock()), vote)


# A Byzantine hook: (network, the Byzantine node, target, honest wire bytes) → sends what it
# likes with `Network.send`. It may also define `observe(net, sim, src, data)` (messages it
# receives) and `serve_blocks(net, sim, peer, blocks) -> list[Block]` (block sync answers).
ByzantineHook = Callable[["Network", SimNode, bytes, bytes], None]


class Network:
    """Seeded message delivery between SimNodes."""

    def __init__(self, nodes: list[SimNode], seed: int, *, drop: float = 0.0, duplicate: float = 0.0,
                 delay: tuple[float, float] = (0.001, 0.05), heartbeat: float = 1.0) -> None:
        self.nodes = nodes
        self.by_address = {n.address: n for n in nodes}
        self.names = {n.address: f"v{i}" for i, n in enumerate(nodes)}
        self.rng = random.Random(seed)
        self.drop = drop
        self.duplicate = duplicate
        self.delay = delay
        self.heartbeat = heartbeat
        self.now = float(GENESIS_TIME)
        self.queue: list[tuple[float, int, bytes, bytes, Any]] = []  # (time, seq, to, from, payload)
        self.timers: list[tuple[float, int, str, Callable[[], None]]] = []
        self.seq = 0
        self.partition: list[set[bytes]] | None = None
        self.trace: list[str] = []
        self.byzantine: dict[bytes, ByzantineHook] = {}
        # Signer guard, checked on the wire: (author, height, round, step) → signed payload.
        self.signed: dict[tuple[bytes, int, int, int], object] = {}
        self.violations: list[str] = []
        self.locks: dict[tuple[bytes, int], int] = {}  # (honest author, height) → highest COMMIT round
        self.stats = {"sent": 0, "delivered": 0, "dropped": 0, "ticks": 0}

    # -- trace -----------------------------------------------------------------------------
    def log(self, text: str) -> None:
        self.trace.append(f"{self.now - GENESIS_TIME:9.3f} {text}")

    def name(self, address: bytes) -> str:
        return self.names.get(address) or address.hex()[:6]

    # -- links -----------------------------------------------------------------------------
    def connected(self, a: bytes, b: bytes) -> bool:
        if self.partition is None:
            return True
        return any(a in side and b in side for side in self.partition)

    def send(self, src: bytes, dst: bytes, payload: object, reliable: bool = False) -> None:
        if dst not in self.by_address:  # e.g. a sync request to the "author" of a forged message
            self.log(f"NET {self.name(src)} -> unknown peer {dst.hex()[:8]}: not connected, dropped")
            return
        self.stats["sent"] += 1
        if not reliable and self.drop and self.rng.random() < self.drop:
            self.stats["dropped"] += 1
            return
        copies = 2 if not reliable and self.duplicate and self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            self.seq += 1
            at = self.now + self.rng.uniform(*self.delay)
            heapq.heappush(self.queue, (at, self.seq, dst, src, payload))

    def at(self, when: float, label: str, action: Callable[[], None]) -> None:
        """Run `action` at simulated time `when` (absolute)."""
        self.seq += 1
        heapq.heappush(self.timers, (when, self.seq, label, action))

    # -- faults ----------------------------------------------------------------------------
    def set_partition(self, sides: list[set[bytes]] | None) -> None:
        self.partition = sides
        if sides is None:
            self.log("NET partition healed")
        else:
            self.log("NET partition " + " | ".join(
                ",".join(sorted(self.name(a) for a in side)) for side in sides))

    def crash(self, sim: SimNode, torn: str | None = None) -> None:
        if not sim.up:
            return
        if torn is None:
            self.log(f"{self.name(sim.address)} CRASH (chain {len(sim.chain)}, {len(sim.wal)} WAL records kept)")
            sim.crash()
        else:
            self.log(f"{self.name(sim.address)} CRASH armed ({torn}: at its next Ready)")
            sim.torn = torn

    def restart(self, sim: SimNode) -> None:
        if sim.up:
            sim.torn = None  # an armed torn crash that never fired
            return
        sim.restarts += 1
        sim.start()
        self.log(f"{self.name(sim.address)} RESTART at height {sim.head.number + 1} "
                 f"from {len(sim.wal)} WAL records")
        self.flush(sim)

    # -- carrying out a node's outputs -----------------------------------------------------
    def _check_signed(self, sim: SimNode, data: bytes) -> None:
        """Signer guard: one payload per (height, round, step) for each honest author."""
        items = rlp.decode(data)
        code = int.from_bytes(items[0], "big")
        payload = items[1][0]
        key = (sim.address, int.from_bytes(payload[0], "big"), int.from_bytes(payload[1], "big"),
               STEP_OF[code])
        previous = self.signed.setdefault(key, payload)
        if previous != payload:
            self.violations.append(
                f"signer guard: {self.name(sim.address)} signed two different payloads for "
                f"h{key[1]} r{key[2]} step {key[3]}: {rlp.encode(previous).hex()} vs {rlp.encode(payload).hex()}")
        # Lock: a COMMIT in round L means prepared (locked) in L; every later ROUND-CHANGE
        # at that height must carry a prepared round >= L, crash or no crash.
        height, round_ = key[1], key[2]
        if code == COMMIT:
            if round_ > self.locks.get((sim.address, height), -1):
                self.locks[(sim.address, height)] = round_
        elif code == ROUND_CHANGE:
            locked = self.locks.get((sim.address, height), -1)
            prepared = int.from_bytes(payload[2][0], "big") if payload[2] else -1
            if locked >= 0 and round_ > locked and prepared < locked:
                self.violations.append(
                    f"lock: {self.name(sim.address)} committed in h{height} r{locked} but its "
                    f"ROUND-CHANGE for r{round_} carries " + (f"prepared r{prepared}" if prepared >= 0 else "no lock"))

    def flush(self, sim: SimNode) -> None:
        """Carry out a node's Ready: persist, send, apply, advance (as node.runtime does)."""
        node = sim.node
        assert node is not None
        name = self.name(sim.address)
        hook = self.byzantine.get(sim.address)
        while True:
            ready = node.ready()
            if ready.empty() and not ready.events:
                sim.deadline = self.now + self.heartbeat
                if ready.next_deadline is not None:
                    # A deadline already past after a tick would spin a real runtime.
                    sim.deadline = min(sim.deadline, max(ready.next_deadline, self.now + 0.001))
                return
            for e in ready.events:
                self.log(f"{name} {e}")
            sim.persist(ready.records)
            if sim.torn == "before_send" and (ready.messages or ready.committed):
                self.log(f"{name} CRASH (torn: {len(ready.records)} records persisted, "
                         f"{len(ready.messages)} messages and {len(ready.committed)} blocks lost)")
                sim.crash()
                return
            for out in ready.messages:
                if hook is None:
                    self._check_signed(sim, out.data)
                targets = [out.to] if out.to else [n.address for n in self.nodes if n.address != sim.address]
                for t in targets:
                    if hook is not None:
                        hook(self, sim, t, out.data)
                    else:
                        self.send(sim.address, t, ("msg", out.data))
            if sim.torn == "before_apply" and ready.committed:
                self.log(f"{name} CRASH (torn: {len(ready.committed)} committed blocks not applied)")
                sim.crash()
                return
            sim.commit(ready.committed)
            for req in ready.sync:
                self.send(sim.address, req.peer, ("sync", req.from_height))
            for push in ready.push:
                self.send(sim.address, sim.address, ("push", (push.peer, push.from_height)), reliable=True)
            request = ready.block_request
            node.advance(ready)
            if request is not None:
                node.propose(sim.build(request.height, request.round))

    def deliver(self, dst: bytes, src: bytes, payload: Any) -> None:
        sim = self.by_address[dst]
        if not sim.up or sim.node is None or not self.connected(src, dst):
            return
        self.stats["delivered"] += 1
        hook = self.byzantine.get(dst)
        kind, data = payload
        if kind == "msg":
            if hook is not None and hasattr(hook, "observe"):
                hook.observe(self, sim, src, data)
            sim.node.step(data)
        elif kind in ("sync", "push"):  # serve our final blocks to a peer
            if kind == "sync":  # src asks dst for blocks from height `data`
                peer, height = src, data
            else:  # dst pushes its blocks to a lagging peer
                peer, height = data
            blocks = sim.chain[max(height - 1, 0):]
            if hook is not None and hasattr(hook, "serve_blocks"):
                blocks = hook.serve_blocks(self, sim, peer, blocks)
            for block in blocks:
                self.send(dst, peer, ("block", block))
        elif kind == "block":
            sim.node.import_block(data)
        self.flush(sim)

    def tick(self, sim: SimNode) -> None:
        assert sim.node is not None
        self.stats["ticks"] += 1
        sim.node.tick(self.now)
        self.flush(sim)

    def run_until(self, until: float, stop: Callable[[], bool] | None = None) -> bool:
        """Run events up to time `until`; True as soon as `stop()` holds (checked per event)."""
        inf = math.inf
        while True:
            if stop is not None and stop():
                return True
            t_timer = self.timers[0][0] if self.timers else inf
            t_msg = self.queue[0][0] if self.queue else inf
            t_tick, due = inf, None
            for sim in self.nodes:
                if sim.deadline is not None and sim.deadline < t_tick:
                    t_tick, due = sim.deadline, sim
            t = min(t_timer, t_msg, t_tick)
            if t > until:
                self.now = max(self.now, until)
                return False
            self.now = max(self.now, t)
            if t_timer == t:
                _, _, label, action = heapq.heappop(self.timers)
                action()
            elif t_msg == t:
                _at, _seq, dst, src, payload = heapq.heappop(self.queue)
                self.deliver(dst, src, payload)
            else:
                assert due is not None
                self.tick(due)

    def start(self) -> None:
        for sim in self.nodes:
            sim.start()
            self.flush(sim)


def make_network(n: int, seed: int, config: QbftConfig | None = None, **kw: Any) -> Network:
    config = config or QbftConfig(block_period=1.0, round_timeout=1.0, max_round_timeout=8.0)
    keys = validator_keys(n)
    genesis = make_genesis(tuple(private_key_to_address(k) for k in keys))
    holder: list[Network] = []
    nodes = [SimNode(k, config, genesis, clock=lambda: holder[0].now) for k in keys]
    net = Network(nodes, seed, **kw)
    holder.append(net)
    return net


# -- invariants ------------------------------------------------------------------------------
def check_agreement(net: Network, honest: Sequence[SimNode]) -> list[str]:
    """No two honest nodes finalized different blocks at one height."""
    problems = []
    longest = max(honest, key=lambda s: len(s.chain))
    for sim in honest:
        for i, block in enumerate(sim.chain):
            other = longest.chain[i]
            if block.hash != other.hash:
                problems.append(
                    f"agreement: at height {i + 1} {net.name(sim.address)} finalized "
                    f"{block.hash.hex()[:12]} but {net.name(longest.address)} finalized {other.hash.hex()[:12]}")
                break
    return problems


_verified: dict[tuple[TrustedState, Header], TrustedState] = {}


def check_final_blocks(net: Network, honest: Sequence[SimNode]) -> list[str]:
    """Each honest chain, walked by the light client from genesis: every block carries a
    quorum of valid seals of the validators in force, keeps every header rule, and none is
    invalid for execution."""
    problems = []
    if len(_verified) > 50_000:
        _verified.clear()
    for sim in honest:
        trusted = TrustedState.from_genesis(sim.genesis)
        parent, tally = sim.genesis, VoteTally(decode_extra(sim.genesis.extra_data).validators)
        for block in sim.chain:
            if block.header.state_root == INVALID_STATE_ROOT:
                problems.append(f"validity: {net.name(sim.address)} finalized block {block.number} "
                                f"{block.hash.hex()[:12]}, which execution rejects")
            try:
                validate_header(parent, block.header, tally)
            except InvalidBlock as exc:
                problems.append(f"validity: {net.name(sim.address)} finalized block {block.number} "
                                f"{block.hash.hex()[:12]}, which breaks a header rule: {exc}")
            parent, tally = block.header, tally_vote(tally, block.header.coinbase, block.header.extra.vote)
            key = (trusted, block.header)
            after = _verified.get(key)
            if after is None:
                try:
                    after = verify_header(trusted, block.header)
                except LightClientError as exc:
                    problems.append(f"light client: {net.name(sim.address)}'s block {block.number}: {exc.reason}")
                    break
                _verified[key] = after
            trusted = after
    return problems


# -- randomized scenarios --------------------------------------------------------------------
SIM_CONFIG = QbftConfig(block_period=1.0, round_timeout=1.0, max_round_timeout=4.0, sync_retry=1.0)


@dataclass(frozen=True)
class Fault:
    """A scheduled fault, `at` seconds after genesis."""

    at: float
    kind: str  # "partition" (nodes = one side) | "heal-partition" | "crash" | "restart"
    nodes: tuple[int, ...] = ()
    torn: str | None = None  # crash only: None, "before_send" or "before_apply"

    def __str__(self) -> str:
        what = {"partition": f"partition {{{','.join(f'v{i}' for i in self.nodes)}}} from the rest",
                "heal-partition": "heal the partition",
                "crash": f"crash v{self.nodes[0] if self.nodes else '?'}" + (f" (torn {self.torn})" if self.torn else ""),
                "restart": f"restart v{self.nodes[0] if self.nodes else '?'}"}[self.kind]
        return f"t={self.at:.2f}s {what}"


@dataclass(frozen=True)
class Scenario:
    """Everything one randomized run does; a seed determines it entirely."""

    seed: int
    n: int
    byzantine: int  # index of the Byzantine validator
    behaviours: tuple[str, ...]
    byzantine_rate: float  # chance each behaviour fires on a message
    drop: float
    duplicate: float
    delay: tuple[float, float]
    chaos: float  # seconds of faults from genesis; then everything heals
    faults: tuple[Fault, ...]
    new_blocks: int  # blocks every honest node must finalize after healing
    config: QbftConfig = SIM_CONFIG

    def liveness_bound(self) -> float:
        """Seconds after healing by which every honest node must have finalized
        `new_blocks` blocks beyond the highest honest height at healing:

            3 · max_round_timeout + sync_retry + 10 · d
            + (new_blocks + 1) · (block_period + timeout(0) + timeout(1) + 10 · d)

        where d is the largest message delay. The terms:
        - one capped round timeout: whatever round an honest node was in at healing, its
          timer fires by then and it broadcasts a round change; a node that missed blocks
          hears of the higher height and fetches them (sync_retry + a few delays);
        - two more capped round timeouts: the honest nodes meet in one round (f+1 round
          changes pull laggards up, a quorum of them starts the round) and, if that
          round's proposer is the Byzantine validator and it fails, in the next one,
          whose proposer is honest (round robin);
        - the height in progress and `new_blocks` more, each at most: the block period,
          then a round 0 the Byzantine validator may spoil (timeout(0)) and, as margin, a
          round 1 (timeout(1)), and ten one-way delays (proposal, prepares, commits,
          round changes, a sync request and its answer).
        With SIM_CONFIG and new_blocks = 4 this is 33 s + 60·d: 34.2 s (d = 20 ms) to
        69 s (d = 600 ms).
        """
        c = self.config
        d = self.delay[1]
        per_height = c.block_period + c.timeout(0) + c.timeout(1) + 10 * d
        return 3 * c.max_round_timeout + c.sync_retry + 10 * d + (self.new_blocks + 1) * per_height

    def describe(self) -> str:
        lines = [
            f"seed={self.seed} validators={self.n} byzantine=v{self.byzantine} "
            f"behaviours={','.join(self.behaviours) or '-'} rate={self.byzantine_rate:.2f}",
            f"drop={self.drop:.3f} duplicate={self.duplicate:.3f} delay={self.delay[0]:.3f}..{self.delay[1]:.3f}s "
            f"chaos=0..{self.chaos:.2f}s then heal; liveness: +{self.new_blocks} blocks within "
            f"{self.liveness_bound():.2f}s",
            f"config: block_period={self.config.block_period} round_timeout={self.config.round_timeout} "
            f"max_round_timeout={self.config.max_round_timeout} sync_retry={self.config.sync_retry}",
            "faults: " + ("; ".join(str(f) for f in self.faults) or "none"),
        ]
        return "\n".join(lines)


def make_scenario(seed: int) -> Scenario:
    """The scenario of a seed (independent of every other seed)."""
    from byzantine import BEHAVIOURS

    rng = random.Random(f"scenario:{seed}")
    n = 4 if rng.random() < 0.6 else 7
    byz = rng.randrange(n)
    k = rng.randint(1, len(BEHAVIOURS))
    behaviours = tuple(sorted(rng.sample(BEHAVIOURS, k), key=BEHAVIOURS.index))
    drop = 0.0 if rng.random() < 0.3 else rng.uniform(0.02, 0.35)
    duplicate = 0.0 if rng.random() < 0.3 else rng.uniform(0.02, 0.25)
    delay = (0.001, rng.choice([0.02, 0.1, 0.3, 0.6]))
    chaos = rng.uniform(5.0, 11.0)
    honest = [i for i in range(n) if i != byz]
    faults: list[Fault] = []
    # Partitions: a few, one at a time; each heals before the next (or at the end of chaos).
    t = rng.uniform(0.0, 2.0)
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        if t >= chaos:
            break
        order = list(range(n))
        rng.shuffle(order)
        side = tuple(sorted(order[: rng.randint(1, n - 1)]))
        faults.append(Fault(round(t, 3), "partition", side))
        t += rng.uniform(0.5, 4.0)
        if t < chaos:
            faults.append(Fault(round(t, 3), "heal-partition"))
        t += rng.uniform(0.0, 2.0)
    # Crashes of honest nodes (restarted during chaos, or at healing).
    for victim in rng.sample(honest, rng.choice([0, 1, 1, 2])):
        at = rng.uniform(0.0, chaos)
        torn = rng.choice([None, None, "before_send", "before_apply"])
        faults.append(Fault(round(at, 3), "crash", (victim,), torn))
        back = at + rng.uniform(0.3, 4.0)
        if back < chaos:
            faults.append(Fault(round(back, 3), "restart", (victim,)))
    faults.sort(key=lambda f: f.at)
    return Scenario(seed, n, byz, behaviours, rng.uniform(0.1, 0.6), round(drop, 3), round(duplicate, 3),
                    delay, round(chaos, 3), tuple(faults), new_blocks=4)


@dataclass
class Outcome:
    scenario: Scenario
    problems: list[str]
    trace: list[str]
    heights: list[int]  # honest nodes' final heights
    heal_height: int
    liveness_time: float | None  # seconds from healing to the liveness target (None: missed)
    stats: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.problems


def run_scenario(sc: Scenario) -> Outcome:
    """Run a scenario and check every invariant; never raises for a protocol failure."""
    from byzantine import Byzantine

    net = make_network(sc.n, seed=sc.seed, config=sc.config, drop=sc.drop, duplicate=sc.duplicate,
                       delay=sc.delay)
    byz = net.nodes[sc.byzantine]
    net.byzantine[byz.address] = Byzantine(sc.behaviours, random.Random(f"byzantine:{sc.seed}"),
                                           sc.byzantine_rate)
    honest = [s for i, s in enumerate(net.nodes) if i != sc.byzantine]
    net.log(f"SCENARIO seed={sc.seed} n={sc.n} byzantine=v{sc.byzantine} {','.join(sc.behaviours)}")
    for f in sc.faults:
        when = GENESIS_TIME + f.at
        if f.kind == "partition":
            side = {net.nodes[i].address for i in f.nodes}
            rest = {s.address for s in net.nodes} - side
            net.at(when, str(f), partial(net.set_partition, [side, rest]))
        elif f.kind == "heal-partition":
            net.at(when, str(f), partial(net.set_partition, None))
        elif f.kind == "crash":
            net.at(when, str(f), partial(net.crash, net.nodes[f.nodes[0]], f.torn))
        elif f.kind == "restart":
            net.at(when, str(f), partial(net.restart, net.nodes[f.nodes[0]]))
    problems: list[str] = []
    liveness_time: float | None = None
    heal_height = 0
    try:
        net.start()
        net.run_until(GENESIS_TIME + sc.chaos)
        # Heal: no partition, no drops, every honest node up. Delays, duplicates and
        # reordering stay, and so does the Byzantine validator.
        net.timers.clear()
        net.set_partition(None)
        net.drop = 0.0
        for sim in honest:
            net.restart(sim)
        healed_at = net.now
        heal_height = max(len(s.chain) for s in honest)
        target = heal_height + sc.new_blocks
        bound = sc.liveness_bound()
        net.log(f"NET healed: drops stopped, all honest nodes up; every honest node must reach "
                f"height {target} by t={healed_at + bound - GENESIS_TIME:.3f}")
        if net.run_until(healed_at + bound, stop=lambda: all(len(s.chain) >= target for s in honest)):
            liveness_time = net.now - healed_at
        else:
            problems.append(
                f"liveness: {bound:.2f}s after healing, honest heights are "
                f"{ {net.name(s.address): len(s.chain) for s in honest} }, target {target}")
    except Exception as exc:  # a broken invariant inside the node stops it loudly
        import traceback

        net.log("EXCEPTION " + "".join(traceback.format_exception(exc)))
        problems.append(f"exception: {exc!r}")
    problems[:0] = net.violations
    problems += check_agreement(net, honest)
    problems += check_final_blocks(net, honest)
    return Outcome(sc, problems, net.trace, [len(s.chain) for s in honest], heal_height,
                   liveness_time, dict(net.stats))


# -- one seed, as the test suite runs it -----------------------------------------------------
RERUN = "RXLEDGER_SIM_SEEDS={seed}:1 .venv/bin/pytest tests/sim/test_random_runs.py"
TRACE_TAIL = 200


@dataclass(frozen=True)
class SeedResult:
    """What a worker sends back: small when the seed passed, the whole report when not."""

    seed: int
    ok: bool
    cpu: float  # seconds of CPU the run took
    n: int
    heights: tuple[int, ...]
    liveness_time: float | None
    report: str = ""  # failing seeds: the replayable report
    trace_file: str = ""


def failure_report(outcome: Outcome, trace_file: str) -> str:
    sc = outcome.scenario
    tail = outcome.trace[-TRACE_TAIL:]
    return "\n".join([
        f"simulation seed {sc.seed} FAILED",
        "rerun only this seed:  " + RERUN.format(seed=sc.seed),
        "scenario:",
        *("  " + line for line in sc.describe().splitlines()),
        f"honest heights {list(outcome.heights)} (highest at healing {outcome.heal_height})",
        "problems:",
        *("  - " + p for p in outcome.problems),
        f"full trace ({len(outcome.trace)} lines): {trace_file}",
        f"last {len(tail)} trace lines:",
        *tail,
    ])


def run_seed(seed: int, trace_dir: str | None = None) -> SeedResult:
    """Run one seed's scenario; on failure write the full trace under `trace_dir`."""
    import os
    import time

    started = time.process_time()
    outcome = run_scenario(make_scenario(seed))
    cpu = time.process_time() - started
    sc = outcome.scenario
    if outcome.ok:
        return SeedResult(seed, True, cpu, sc.n, tuple(outcome.heights), outcome.liveness_time)
    trace_file = ""
    if trace_dir is not None:
        os.makedirs(trace_dir, exist_ok=True)
        trace_file = os.path.join(trace_dir, f"seed-{seed}.trace")
        with open(trace_file, "w") as f:
            f.write(sc.describe() + "\n\n" + "\n".join(outcome.problems) + "\n\n" + "\n".join(outcome.trace) + "\n")
    return SeedResult(seed, False, cpu, sc.n, tuple(outcome.heights), outcome.liveness_time,
                      failure_report(outcome, trace_file or "(not written)"), trace_file)
