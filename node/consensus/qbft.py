"""QBFT as a pure state machine (EEA QBFT; IBFT 2.0 by Saltini and Hyland-Wood).

No I/O, clock, randomness or logging lives here: the runtime (or a simulation) feeds
inputs and carries out outputs, in the order etcd's raft made familiar:

    inputs   tick(now)            time passes (seconds, the runtime's wall clock)
             step(data[, now])    a consensus message arrived (wire bytes; optionally
                                  when, which dates it but fires no timer)
             propose(block)       the block this node was asked to build (BlockRequest)
             set_pending(bool)    whether transactions wait in the local pool (optionally
                                  with the time, as tick)
             import_block(block)  a final, sealed block fetched by block sync
             connected(peer)      a peer connected (again): it is sent what this node
                                  signed in the current round (sent before it could hear)
    output   ready()              records to persist (WAL, fsync), messages to send,
                                  blocks committed, a block request, sync requests,
                                  the next deadline, and trace events
             advance(ready)       the runtime did all of it; if `ready` held a decided
                                  block, the next height starts here (see `advance`)

The runtime must persist `records` before it sends `messages`: a record of every signed
message (the signer guard) and of every prepared certificate (the lock) reaches disk
before the message that depends on it leaves, so a validator that crashes and restarts
can never sign a conflicting message or forget its lock.

Protocol summary (the rules are in the methods below, named after the spec's upon-rules):
- Proposer of round r at height h: validators[(index(parent proposer) + 1 + r) mod n],
  as Besu (round-robin that rotates every block).
- Quorum ⌈2n/3⌉; f = ⌊(n-1)/3⌋.
- Round 0: the proposer proposes once the block period has passed (and, while no
  transactions wait, once the empty-block period has passed). Others accept a valid
  proposal and PREPARE; a quorum of PREPAREs locks the block (prepared certificate) and
  each sends COMMIT with its commit seal; a quorum of COMMITs decides the block.
- A round that times out moves to r+1 and sends ROUND-CHANGE carrying the lock. f+1
  ROUND-CHANGEs for higher rounds pull a node up to the highest round that f+1 of them
  reached; a quorum of ROUND-CHANGEs for r lets the proposer of r propose, re-proposing
  the highest prepared block if any round change carries one, with the round changes and
  that certificate's prepares as justification.
- Round timeouts double per round from `round_timeout` up to `max_round_timeout`, so a
  network that was partitioned converges within one capped timeout after it heals.
- The lock is kept across every round change at a height (unlike Besu, which drops it
  when jumping rounds); it is released only when the height is decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import rlp

from node.consensus.messages import (
    CODE_NAMES,
    COMMIT,
    PREPARE,
    PROPOSAL,
    ROUND_CHANGE,
    STEP_OF,
    CommitMsg,
    Envelope,
    InvalidMessage,
    Message,
    PrepareMsg,
    ProposalMsg,
    RoundChangeMsg,
    Signed,
    decode_envelope,
    decode_justification,
    decode_message,
    describe,
    encode_message,
    encode_signed,
    prepared_of,
    sign_payload,
)
from node.consensus.validators import VoteTally, next_commitment, quorum, tally_vote
from rxledger.core.crypto import (
    decode_signature,
    encode_signature,
    private_key_to_address,
    recover_address,
    sign_hash,
)
from rxledger.core.errors import InvalidBlock, InvalidTransaction
from rxledger.core.light_client import seal_quorum_problem
from rxledger.core.types.blocks import Block, decode_block, encode_block
from rxledger.core.types.headers import (
    Header,
    block_hash,
    encode_extra,
    seal_hash,
)
from rxledger.core.types.rlp_codec import decode_rlp, decode_rlp_list_items, rlp_list

BlockValidator = Callable[[Block], "str | None"]


@dataclass(frozen=True, slots=True)
class QbftConfig:
    """Timing and limits. Times are seconds of the runtime's clock."""

    block_period: float = 1.0
    # While no transactions wait, an empty block at most this long after the parent
    # (None: never propose empty blocks).
    empty_block_period: float | None = 60.0
    round_timeout: float = 2.0
    max_round_timeout: float = 30.0
    # How far ahead a proposal's timestamp may be of our clock.
    max_clock_drift: float = 5.0
    future_heights: int = 10
    # Memory one author can make this node hold (its messages are counted when they
    # arrive, wire bytes): for the rounds at and above the current one at this height,
    # and, separately, for the next `future_heights` heights. A validator over either
    # budget has its further messages dropped (never another author's: honest messages
    # are not evicted); authors outside the validator set share one such budget. So a
    # Byzantine validator holds at most 2 × the budget, and the buffers of n validators
    # (n + 1) × 2 × it. Besu: futureMessagesLimit 1000 messages and
    # futureMessagesMaxDistance 10 heights, shared by all authors (the highest heights
    # evicted first); geth has no BFT engine.
    max_messages_per_author: int = 256
    max_bytes_per_author: int = 16 * 1024 * 1024
    max_round: int = 1_000
    sync_retry: float = 1.0

    def timeout(self, round_: int) -> float:
        """Round r lasts round_timeout·2^r seconds, capped."""
        if round_ >= 32:
            return self.max_round_timeout
        return min(self.round_timeout * (2**round_), self.max_round_timeout)


# -- outputs -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to send: to one validator, or to all (`to` None). Not to oneself."""

    to: bytes | None
    data: bytes


@dataclass(frozen=True, slots=True)
class WalRecord:
    """What must be on disk before messages leave. `kind` is "signed" or "prepared"."""

    kind: str
    height: int
    round: int
    step: int
    data: bytes


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """Build a block for (height, round) on the current head and call `propose` with it."""

    height: int
    round: int


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Fetch final blocks from `peer`, starting at `from_height` (block sync)."""

    peer: bytes
    from_height: int


@dataclass
class Ready:
    records: list[WalRecord] = field(default_factory=list)
    messages: list[Outbound] = field(default_factory=list)
    committed: list[Block] = field(default_factory=list)
    block_request: BlockRequest | None = None
    sync: list[SyncRequest] = field(default_factory=list)
    # Peers seen at a lower height: send them our final blocks from `from_height`.
    push: list[SyncRequest] = field(default_factory=list)
    next_deadline: float | None = None
    events: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.records or self.messages or self.committed or self.block_request
                    or self.sync or self.push)


# -- per-height state ------------------------------------------------------------------------
@dataclass
class _Prepared:
    round: int
    block: Block  # with the round it was prepared in
    digest: bytes
    prepares: tuple[Signed, ...]


@dataclass
class _Height:
    number: int
    parent: Header
    tally: VoteTally
    validators: tuple[bytes, ...]
    round: int = 0
    round_started: float = 0.0
    proposals: dict[int, tuple[Block, bytes]] = field(default_factory=dict)  # round → (block, digest)
    prepares: dict[tuple[int, bytes], dict[bytes, Signed]] = field(default_factory=dict)
    commits: dict[tuple[int, bytes], dict[bytes, Signed]] = field(default_factory=dict)
    round_changes: dict[int, dict[bytes, RoundChangeMsg]] = field(default_factory=dict)
    latest_rc_round: dict[bytes, int] = field(default_factory=dict)
    lock: _Prepared | None = None
    sent: set[tuple[int, int]] = field(default_factory=set)  # (round, code)
    requested: set[int] = field(default_factory=set)  # rounds a block was requested for
    rc_justification: dict[int, tuple[Signed, ...]] = field(default_factory=dict)
    next_request: float = 0.0
    # What this node signed at this height, (round, wire bytes), lower rounds pruned.
    own: list[tuple[int, bytes]] = field(default_factory=list)
    # When this height last stopped being idle (transactions began to wait here, or a
    # proposal arrived); None: it has not been idle since it started.
    active_since: float | None = None
    # Messages each author sent for rounds >= the current one: author → round →
    # [count, wire bytes] (`QbftConfig.max_messages_per_author`).
    held: dict[bytes, dict[int, list[int]]] = field(default_factory=dict)
    # The signed payloads charged to their authors at this height (author, code, round,
    # body): anyone can replay a validator's message, so a copy is never charged twice.
    charged: set[tuple[object, ...]] = field(default_factory=set)


class QbftNode:
    """One validator's (or observer's) QBFT state machine."""

    def __init__(
        self,
        config: QbftConfig,
        key: bytes | None,
        head: Header,
        tally: VoteTally,
        validate_block: BlockValidator,
        *,
        now: float,
        records: Iterable[WalRecord] = (),
    ) -> None:
        self.config = config
        self.key = key
        self.address = private_key_to_address(key) if key else None
        self.validate_block = validate_block
        self.now = now
        self.pending = False
        self._ready = Ready()
        self._last_signed: tuple[int, int, int] = (-1, -1, -1)
        # Messages for the next heights, by height: (budget key, envelope, wire size), and
        # what each budget key holds there: [count, bytes].
        self._future: dict[int, list[tuple[bytes, Envelope, int]]] = {}
        self._future_held: dict[bytes, list[int]] = {}
        self._future_seen: set[tuple[object, ...]] = set()  # identities of what _future holds
        self._future_blocks: dict[int, Block] = {}
        # A block was decided and the height after it began, but the runtime has not yet
        # applied that block (it is in `_ready.committed`): the WAL records, buffered
        # messages and synced blocks of the new height wait for `advance`, because
        # validating a block of the new height needs the decided block as the head.
        self._entered = False
        # That block came from block sync: the synced block after it is imported next.
        self._importing = False
        self._sync_asked: dict[bytes, float] = {}
        self.head = head
        self.h = self._new_height(head, tally)
        records = list(records)
        # Records above the next height: the runtime persisted what this node signed at a
        # later height, then crashed before applying the block that ended this one. They
        # are restored when that height starts (the lock, and what was signed, resent).
        self._wal_ahead = [r for r in records if r.height > self.h.number]
        self._restore(records)
        self._arm()

    # -- inputs ----------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Time passes. Fires the block timer and round timeouts that are due."""
        self.now = max(self.now, now)
        h = self.h
        request_at = self._block_request_time()
        if request_at is not None and self.now >= request_at:
            self._request_block(0)
        if self.now >= h.round_started + self._round_wait(h.round):
            self._event(f"round {h.round} timed out")
            self._move_to_round(h.round + 1, send_round_change=True)
        self._arm()

    def set_pending(self, pending: bool, now: float | None = None) -> None:
        """Whether transactions wait locally (shortens the idle wait for a block), as of
        `now` (default: the time of the last input); an idle height that gets
        transactions starts round 0's timer then."""
        if now is not None:
            self.now = max(self.now, now)
        if pending != self.pending:
            was_active = self._is_active()
            self.pending = pending
            if self._is_active() and not was_active:
                self.h.active_since = self.now
            self._arm()

    def propose(self, block: Block) -> None:
        """The block built for the last BlockRequest."""
        h = self.h
        extra = block.header.extra
        r = extra.round
        if block.number != h.number or r != h.round or r in h.proposals or not self._is_proposer(r):
            self._event(f"dropped a built block for h{block.number} r{r}: no longer wanted")
            return
        if r == 0 and not block.transactions and not self.pending and not self._empty_allowed():
            # Idle: wait for transactions or the empty-block period.
            h.requested.discard(0)
            h.next_request = self.now + max(self.config.block_period, 0.05)
            self._event("no transactions: empty block suppressed")
            self._arm()
            return
        self._send_proposal(block, r, h.rc_justification.get(r, ()) if r else (), ())

    def step(self, data: bytes, now: float | None = None) -> str | None:
        """A message arrived (at `now`; default: the time of the last input). Invalid ones
        are dropped with a trace event. Timers fire only in `tick`.

        Returns why the message was dropped as malformed or wrongly signed (its sender
        sent bytes no honest node sends: the runtime tells the transport), else None.
        Only the envelope (code, outer signed payload, author) is decoded before the
        author is known to be a validator at this height (and, for a proposal, the
        proposer of its round) and within its budget; only then what it carries."""
        if now is not None:
            self.now = max(self.now, now)
        try:
            env = decode_envelope(data)
        except InvalidMessage as exc:
            self._event(f"dropped undecodable message: {exc}")
            return str(exc)
        reason = self._handle_envelope(env, len(data))
        self._arm()
        return reason

    def import_block(self, block: Block) -> None:
        """A final block from block sync: checked against the validators, then decided."""
        if block.number < self.h.number:
            return
        if block.number > self.h.number:
            if len(self._future_blocks) < self.config.future_heights * 4:
                self._future_blocks[block.number] = block
            return
        reason = self._check_final(block)
        if reason is not None:
            self._event(f"rejected synced block {block.number}: {reason}")
            return
        self._event(f"imported final block {block.number} by sync")
        self._decide(block)
        # The synced block after this one (if it came already) is imported in `advance`,
        # once the runtime applied this one: its execution check runs on our head.
        self._importing = True
        self._arm()

    def connected(self, peer: bytes) -> None:
        """A peer connected (again). Send it what we signed in the current round: a
        message sent before the connection was up (the first proposal after a network
        starts) is otherwise lost, and the round would wait for its timeout."""
        h = self.h
        for round_, data in h.own:
            if round_ == h.round:
                self._ready.messages.append(Outbound(peer, data))

    # -- outputs ---------------------------------------------------------------------------
    def ready(self) -> Ready:
        self._ready.next_deadline = self._next_deadline()
        return self._ready

    def advance(self, ready: Ready) -> None:
        """The runtime persisted, sent and applied everything in `ready`.

        If `ready` held a decided block, the height after it starts now that the block is
        the runtime's head: its WAL records are restored, the messages buffered for it are
        handled (the others dropped) and a synced block for it is imported. That may
        produce a new Ready, which the runtime carries out like any other.
        """
        if ready is not self._ready:
            return
        self._ready = Ready()
        if self._entered:
            self._enter_height()
            self._arm()

    # -- helpers: roles and time -----------------------------------------------------------
    @property
    def height(self) -> int:
        return self.h.number

    @property
    def round(self) -> int:
        return self.h.round

    def proposer(self, round_: int, h: _Height | None = None) -> bytes:
        h = h or self.h
        vals = h.validators
        prev = h.parent.coinbase
        if prev in vals:
            base = vals.index(prev) + 1
        else:
            base = next((i for i, v in enumerate(vals) if v > prev), 0)
        return vals[(base + round_) % len(vals)]

    def _is_proposer(self, round_: int) -> bool:
        return self.address is not None and self.address == self.proposer(round_)

    def _quorum(self) -> int:
        return quorum(len(self.h.validators))

    def _f(self) -> int:
        return (len(self.h.validators) - 1) // 3

    def _block_request_time(self) -> float | None:
        """When the round-0 proposer asks for a block (None: not now / not us)."""
        h = self.h
        if h.round != 0 or 0 in h.proposals or 0 in h.requested or not self._is_proposer(0):
            return None
        at = h.parent.timestamp + self.config.block_period
        if not self.pending:
            empty = self.config.empty_block_period
            if empty is None:
                return None
            at = h.parent.timestamp + max(empty, self.config.block_period)
        return max(at, h.next_request)

    def _empty_allowed(self) -> bool:
        empty = self.config.empty_block_period
        return empty is not None and self.now >= self.h.parent.timestamp + max(empty, self.config.block_period)

    def _is_active(self) -> bool:
        """Whether this height has work: transactions wait here, or a proposal is in."""
        return self.pending or bool(self.h.proposals)

    def _round0_start(self) -> float:
        """When round 0's timer starts: the block time, or (idle) the empty-block time.

        Once an idle height becomes active, not before that moment: the block time of a
        height that sat idle is long past, and round 0 must not time out the instant its
        first transaction or proposal arrives.
        """
        h = self.h
        parent_ts = h.parent.timestamp
        if self._is_active():
            since = h.round_started if h.active_since is None else h.active_since
            return max(h.round_started, since, parent_ts + self.config.block_period)
        empty = self.config.empty_block_period
        if empty is None:
            return float("inf")
        return max(self.h.round_started, parent_ts + max(empty, self.config.block_period))

    def _round_wait(self, round_: int) -> float:
        if round_ == 0:
            return self._round0_start() - self.h.round_started + self.config.timeout(0)
        return self.config.timeout(round_)

    def _next_deadline(self) -> float | None:
        h = self.h
        deadlines = [h.round_started + self._round_wait(h.round), self._block_request_time()]
        finite = [d for d in deadlines if d is not None and d != float("inf")]
        return min(finite) if finite else None

    def _arm(self) -> None:
        self._ready.next_deadline = self._next_deadline()

    def _event(self, text: str) -> None:
        self._ready.events.append(f"h{self.h.number} r{self.h.round}: {text}")

    # -- heights ---------------------------------------------------------------------------
    def _new_height(self, head: Header, tally: VoteTally) -> _Height:
        return _Height(head.number + 1, head, tally, tally.validators, round_started=self.now)

    def _decide(self, block: Block) -> None:
        h = self.h
        extra = block.header.extra
        self._ready.committed.append(block)
        self._event(f"DECIDED block {block.hash.hex()[:8]} in round {extra.round} with {len(extra.seals)} seals")
        tally = tally_vote(h.tally, block.header.coinbase, extra.vote)
        self.head = block.header
        self.h = self._new_height(block.header, tally)
        # The rest of the new height's start waits until the runtime has applied `block`
        # (`advance`): a buffered proposal for it is validated against the runtime's head.
        self._entered = True

    def _enter_height(self) -> None:
        """The runtime applied the block that began this height: restore this height's WAL
        records, handle the messages buffered for it, and import the synced block for it
        when the previous block came from sync. Any of these can decide the height; what
        follows that block then waits for the next `advance` in turn."""
        self._entered = False
        importing, self._importing = self._importing, False
        number = self.h.number
        if self._wal_ahead:
            ahead = [r for r in self._wal_ahead if r.height == number]
            self._wal_ahead = [r for r in self._wal_ahead if r.height > number]
            self._restore(ahead)
            if self._entered:
                return  # decided from the WAL alone: the next `advance` goes on
        for key, env, size in self._future.pop(number, []):
            self._release_future(key, size)
            self._handle_envelope(env, size)
        for n in [n for n in self._future if n < number]:
            for key, _env, size in self._future.pop(n):
                self._release_future(key, size)
        self._future_seen = {i for i in self._future_seen if i[2] > number}  # type: ignore[operator]
        synced = self._future_blocks.pop(number, None) if importing else None
        for n in [n for n in self._future_blocks if n < self.h.number]:
            del self._future_blocks[n]
        if synced is not None and not self._entered:
            self.import_block(synced)

    # -- signing with the guard ------------------------------------------------------------
    def _sign(self, code: int, round_: int, body: tuple[object, ...]) -> Signed | None:
        assert self.key is not None and self.address is not None
        hrs = (self.h.number, round_, STEP_OF[code])
        if hrs <= self._last_signed:
            self._event(f"signer guard refused {code:#x} at h{hrs[0]} r{hrs[1]} step {hrs[2]}: "
                        f"already signed h{self._last_signed[0]} r{self._last_signed[1]} step {self._last_signed[2]}")
            return None
        signed = sign_payload(code, self.h.number, round_, body, self.key, self.address)
        self._last_signed = hrs
        return signed

    def _emit(self, msg: Message, round_: int) -> bytes:
        data = encode_message(msg)
        code = msg.signed.code
        self._ready.records.append(WalRecord("signed", self.h.number, round_, STEP_OF[code], data))
        self._ready.messages.append(Outbound(None, data))
        self.h.sent.add((round_, code))
        self.h.own = [o for o in self.h.own if o[0] >= round_] + [(round_, data)]
        self._event(f"sent {describe(msg)}")
        return data

    # -- proposals -------------------------------------------------------------------------
    def _request_block(self, round_: int) -> None:
        self.h.requested.add(round_)
        self._ready.block_request = BlockRequest(self.h.number, round_)
        self._event(f"requested a block for round {round_}")

    def _send_proposal(self, block: Block, round_: int, rcs: tuple[Signed, ...], prepares: tuple[Signed, ...]) -> None:
        digest = seal_hash(block.header)
        signed = self._sign(PROPOSAL, round_, (digest,))
        if signed is None:
            return
        msg = ProposalMsg(signed, block, rcs, prepares)
        self._emit(msg, round_)
        self._handle(msg)

    def _with_round(self, block: Block, round_: int) -> Block:
        extra = block.header.extra
        header = replace(block.header, extra_data=encode_extra(replace(extra, round=round_, seals=())))
        return Block(header, block.transactions)

    def _check_proposal(self, msg: ProposalMsg) -> str | None:
        """None if the proposal is valid for this height, else why not."""
        h, s, block = self.h, msg.signed, msg.block
        r = s.round
        if s.author != self.proposer(r):
            return f"author {s.author.hex()[:8]} is not the proposer of round {r}"
        header = block.header
        try:
            extra = header.extra
        except InvalidBlock as exc:
            return str(exc)
        if block.number != h.number or extra.round != r or extra.seals:
            return "block height, round or seals do not match the proposal"
        if seal_hash(header) != s.digest:
            return "digest does not match the block"
        if header.parent_hash != block_hash(h.parent):
            return "block does not extend our head"
        if header.timestamp < h.parent.timestamp + self.config.block_period:
            return "block timestamp is earlier than parent + block period"
        if header.timestamp > self.now + self.config.max_clock_drift:
            return "block timestamp is too far in the future"
        if extra.validators != h.validators:
            return "block lists a different validator set"
        if extra.vanity != next_commitment(h.tally, header.coinbase, extra.vote):
            return "block's next-validator commitment is wrong"
        q = self._quorum()
        if r == 0:
            if msg.round_changes or msg.prepares:
                return "a round-0 proposal must carry no justification"
            if header.coinbase != s.author:
                return "coinbase is not the proposer"
        else:
            rcs = [rc for rc in msg.round_changes
                   if rc.height == h.number and rc.round == r and rc.author in h.validators]
            if len({rc.author for rc in rcs}) < q or len(rcs) != len(msg.round_changes):
                return f"needs {q} valid round changes for round {r}"
            if len({rc.author for rc in rcs}) != len(rcs):
                return "duplicate round-change author in justification"
            prepared = [p for p in (prepared_of(rc) for rc in rcs) if p is not None]
            if any(pr >= r for pr, _ in prepared):
                return "a round change claims a prepared round not below its target"
            if prepared:
                best_round, best_digest = max(prepared)
                if seal_hash(self._with_round(block, best_round).header) != best_digest:
                    return "proposal is not the highest prepared block"
                if not self._valid_prepares(msg.prepares, best_round, best_digest):
                    return "prepared certificate is not a quorum of valid prepares"
            else:
                if msg.prepares:
                    return "prepares without a prepared round change"
                if header.coinbase != s.author:
                    return "coinbase is not the proposer"
        return None

    def _valid_prepares(self, prepares: Sequence[Signed], round_: int, digest: bytes) -> bool:
        h = self.h
        authors = {p.author for p in prepares
                   if p.height == h.number and p.round == round_ and p.digest == digest and p.author in h.validators}
        return len(authors) == len(prepares) and len(authors) >= self._quorum()

    def _on_proposal(self, msg: ProposalMsg) -> None:
        h, r = self.h, msg.signed.round
        if r < h.round or r in h.proposals:
            if r in h.proposals and h.proposals[r][1] != msg.signed.digest:
                self._event(f"ignored a conflicting proposal for round {r} (equivocation?)")
            return
        if r > self.config.max_round:
            return
        reason = self._check_proposal(msg)
        if reason is None:
            reason = self.validate_block(msg.block)
            if reason is not None:
                reason = f"invalid block: {reason}"
        if reason is not None:
            self._event(f"rejected PROPOSAL r{r} from {msg.signed.author.hex()[:8]}: {reason}")
            return
        if r > h.round:
            self._move_to_round(r, send_round_change=False)
        if not self._is_active():
            h.active_since = self.now
        h.proposals[r] = (msg.block, msg.signed.digest)
        self._event(f"accepted proposal {msg.signed.digest.hex()[:8]} for round {r}")
        if self.key is not None and self.address in h.validators and (r, PREPARE) not in h.sent:
            signed = self._sign(PREPARE, r, (msg.signed.digest,))
            if signed is not None:
                prepare = PrepareMsg(signed)
                self._emit(prepare, r)
                self._on_prepare(prepare)
        self._check_prepared(r)
        self._check_committed(r)

    # -- prepares and commits --------------------------------------------------------------
    def _on_prepare(self, msg: PrepareMsg) -> None:
        s = msg.signed
        if s.round < self.h.round:
            return  # a lock can only form in the current round
        self.h.prepares.setdefault((s.round, s.digest), {})[s.author] = s
        self._check_prepared(s.round)

    def _check_prepared(self, r: int) -> None:
        h = self.h
        if r not in h.proposals or r != h.round or (r, COMMIT) in h.sent:
            return
        if h.lock is not None and h.lock.round == r:
            return  # already locked in this round (observers never send a COMMIT)
        block, digest = h.proposals[r]
        votes = h.prepares.get((r, digest), {})
        if len(votes) < self._quorum():
            return
        prepares = tuple(sorted(votes.values(), key=lambda p: p.author))
        h.lock = _Prepared(r, block, digest, prepares)
        self._ready.records.append(WalRecord("prepared", h.number, r, 0, _encode_prepared(h.lock)))
        self._event(f"prepared {digest.hex()[:8]} in round {r} (locked)")
        if self.key is None or self.address not in h.validators:
            return
        assert self.key is not None
        seal = encode_signature(*sign_hash(digest, self.key))
        signed = self._sign(COMMIT, r, (digest, seal))
        if signed is not None:
            commit = CommitMsg(signed)
            self._emit(commit, r)
            self._on_commit(commit)

    def _on_commit(self, msg: CommitMsg) -> None:
        s = msg.signed
        try:
            v, rr, ss = decode_signature(msg.seal)
            if recover_address(s.digest, v, rr, ss) != s.author:
                raise ValueError("seal signer is not the message author")
        except Exception as exc:
            self._event(f"rejected COMMIT from {s.author.hex()[:8]}: bad commit seal ({exc})")
            return
        h = self.h
        if s.round < h.round and h.proposals.get(s.round, (None, None))[1] != s.digest:
            return  # a past round's COMMIT for anything but its proposal can decide nothing
        h.commits.setdefault((s.round, s.digest), {})[s.author] = s
        self._check_committed(s.round)

    def _check_committed(self, r: int) -> None:
        h = self.h
        if r not in h.proposals:
            return
        block, digest = h.proposals[r]
        commits = h.commits.get((r, digest), {})
        if len(commits) < self._quorum():
            return
        seals = tuple(c.body[1] for c in sorted(commits.values(), key=lambda c: c.author))
        extra = block.header.extra
        header = replace(block.header, extra_data=encode_extra(replace(extra, seals=seals)))  # type: ignore[arg-type]
        self._decide(Block(header, block.transactions))

    # -- round changes ---------------------------------------------------------------------
    def _move_to_round(self, r: int, *, send_round_change: bool) -> None:
        h = self.h
        if r < h.round or r > self.config.max_round:
            return
        if r > h.round:
            h.round = r
            h.round_started = self.now
            self._prune_rounds()
            self._event(f"moved to round {r} (timeout {self.config.timeout(r):g}s)")
        if send_round_change and self.key is not None and self.address in h.validators \
                and (r, ROUND_CHANGE) not in h.sent:
            lock = h.lock
            prepared = None if lock is None else (lock.round, lock.digest)
            signed = self._sign(ROUND_CHANGE, r, (prepared,))
            if signed is not None:
                msg = RoundChangeMsg(signed, None if lock is None else lock.block,
                                     () if lock is None else lock.prepares)
                self._emit(msg, r)
                self._on_round_change(msg)
        self._check_round_change_quorum(r)

    def _check_round_change(self, msg: RoundChangeMsg) -> str | None:
        prepared = msg.prepared
        if prepared is None:
            return None if msg.block is None and not msg.prepares else "unprepared round change carries a certificate"
        pr, pd = prepared
        if pr >= msg.signed.round:
            return "prepared round is not below the target round"
        if msg.block is None:
            return "prepared round change without its block"
        if msg.block.number != self.h.number or seal_hash(msg.block.header) != pd:
            return "prepared block does not match the prepared digest"
        if not self._valid_prepares(msg.prepares, pr, pd):
            return "prepared certificate is not a quorum of valid prepares"
        return None

    def _on_round_change(self, msg: RoundChangeMsg) -> None:
        h, s = self.h, msg.signed
        if s.round > self.config.max_round or s.round == 0:
            return
        reason = self._check_round_change(msg)
        if reason is not None:
            self._event(f"rejected ROUND-CHANGE r{s.round} from {s.author.hex()[:8]}: {reason}")
            return
        if s.round < h.round:
            return  # past rounds' round changes count for nothing (and are not held)
        h.round_changes.setdefault(s.round, {})[s.author] = msg
        if s.round > h.latest_rc_round.get(s.author, -1):
            h.latest_rc_round[s.author] = s.round
        # f+1 round changes for higher rounds: catch up to the highest round f+1 reached.
        higher = sorted((r for r in h.latest_rc_round.values() if r > h.round), reverse=True)
        f1 = self._f() + 1
        if len(higher) >= f1:
            target = higher[f1 - 1]
            self._event(f"{len(higher)} validators are past round {h.round}: moving to round {target}")
            self._move_to_round(target, send_round_change=True)
        self._check_round_change_quorum(s.round)

    def _check_round_change_quorum(self, r: int) -> None:
        h = self.h
        rcs = h.round_changes.get(r, {})
        if len(rcs) < self._quorum() or r < h.round:
            return
        if r > h.round:
            self._move_to_round(r, send_round_change=True)
            return
        if not self._is_proposer(r) or r in h.proposals or (r, PROPOSAL) in h.sent:
            return
        held = sorted(rcs.values(), key=lambda m: m.signed.author)
        # The highest prepared certificate among ALL round changes held, then enough
        # others for a quorum: the justification's highest certificate is that one.
        best = max((m for m in held if m.prepared is not None),
                   key=lambda m: m.prepared, default=None)  # type: ignore[arg-type, return-value]
        chosen = ([best] if best is not None else []) + [m for m in held if m is not best]
        chosen = chosen[: self._quorum()]
        justification = tuple(m.signed for m in chosen)
        if best is not None:
            assert best.block is not None
            self._event(f"re-proposing the prepared block {best.prepared[1].hex()[:8]} in round {r}")  # type: ignore[index]
            self._send_proposal(self._with_round(best.block, r), r, justification, best.prepares)
        elif r not in h.requested:
            h.rc_justification[r] = justification
            self._request_block(r)

    # -- dispatch --------------------------------------------------------------------------
    def _handle_envelope(self, env: Envelope, size: int) -> str | None:
        """A message from the network, its author recovered and nothing else decoded: the
        cheap checks and the author's budget first, then the rest decoded and handled.
        Returns why it was malformed (see `step`), else None."""
        h, s = self.h, env.signed
        if s.height < h.number:
            self._on_stale(s)
            return None
        if s.height > h.number:
            self._buffer_future(env, size)
            return None
        if s.author not in h.validators:
            self._event(f"dropped {_describe_signed(s)} from non-validator {s.author.hex()[:8]}")
            return None
        if s.code == PROPOSAL and s.author != self.proposer(s.round):
            self._event(f"rejected PROPOSAL r{s.round} from {s.author.hex()[:8]}: "
                        f"author {s.author.hex()[:8]} is not the proposer of round {s.round}")
            return None
        if s.code == PROPOSAL and (s.round < h.round or s.round in h.proposals):
            # Nothing a second proposal for a round, or one for a past round, can change
            # (`_on_proposal`): not worth decoding the block it carries (a replay costs a
            # sender recovery per transaction).
            if s.round in h.proposals and h.proposals[s.round][1] != s.digest:
                self._event(f"ignored a conflicting proposal for round {s.round} (equivocation?)")
            return None
        if s.code == ROUND_CHANGE and (s.round < h.round or s.author in h.round_changes.get(s.round, {})):
            return None  # past rounds count for nothing; one round change per author and round
        if s.round >= h.round and not self._charge(s, size):
            return None
        try:
            msg = env.open(len(h.validators))
        except InvalidMessage as exc:
            self._event(f"dropped {_describe_signed(s)} from {s.author.hex()[:8]}: {exc}")
            return str(exc)
        try:
            self._handle(msg)
        except (InvalidMessage, InvalidBlock, InvalidTransaction) as exc:
            # The checks name what is wrong as a reason; a typed error here means one was
            # missed. Drop the message as malformed rather than let it end the runtime.
            self._event(f"dropped {_describe_signed(s)} from {s.author.hex()[:8]}: {exc}")
            return str(exc)
        return None

    def _charge(self, s: Signed, size: int) -> bool:
        """Count a message for round >= the current one against its author's budget;
        False (dropped, with an event) if that would exceed it."""
        h, cfg = self.h, self.config
        identity = (s.author, s.code, s.round, s.body)
        if identity in h.charged:
            return True  # a copy (replayed by anyone): handled again, idempotently, never charged
        rounds = h.held.setdefault(s.author, {})
        for r in [r for r in rounds if r < h.round]:
            del rounds[r]
        count = sum(c for c, _ in rounds.values())
        held = sum(b for _, b in rounds.values())
        if count + 1 > cfg.max_messages_per_author or held + size > cfg.max_bytes_per_author:
            self._event(f"dropped {_describe_signed(s)} from {s.author.hex()[:8]}: it holds "
                        f"{count} messages ({held} bytes) for this height, its budget is "
                        f"{cfg.max_messages_per_author} ({cfg.max_bytes_per_author} bytes)")
            return False
        entry = rounds.setdefault(s.round, [0, 0])
        entry[0] += 1
        entry[1] += size
        h.charged.add(identity)
        return True

    def _prune_rounds(self) -> None:
        """Drop what no rule reads once the round moved on: PREPAREs and ROUND-CHANGEs of
        lower rounds (a lock forms, and a round change counts, only in the current round
        or above), COMMITs of lower rounds for anything but that round's proposal (the
        ones for it can still decide the height)."""
        h = self.h
        for key in [k for k in h.prepares if k[0] < h.round]:
            del h.prepares[key]
        for key in [k for k in h.commits
                    if k[0] < h.round and h.proposals.get(k[0], (None, None))[1] != k[1]]:
            del h.commits[key]
        for r in [r for r in h.round_changes if r < h.round]:
            del h.round_changes[r]

    def _on_stale(self, s: Signed) -> None:
        # That height is decided here. Late PREPAREs and COMMITs are normal; a ROUND-CHANGE
        # means its author is stuck at that height: push it our blocks.
        h = self.h
        asked = self._sync_asked.get(b"push" + s.author)
        if s.code == ROUND_CHANGE and s.author in h.validators \
                and (asked is None or self.now >= asked + self.config.sync_retry):
            self._sync_asked[b"push" + s.author] = self.now
            self._ready.push.append(SyncRequest(s.author, s.height))

    def _handle(self, msg: Message) -> None:
        h, s = self.h, msg.signed
        if s.height < h.number:
            self._on_stale(s)
            return
        if s.height > h.number:
            return  # not reached: the network's messages come through `_handle_envelope`
        if s.author not in h.validators:
            self._event(f"dropped {describe(msg)} from non-validator {s.author.hex()[:8]}")
            return
        if isinstance(msg, ProposalMsg):
            self._on_proposal(msg)
        elif isinstance(msg, PrepareMsg):
            self._on_prepare(msg)
        elif isinstance(msg, CommitMsg):
            self._on_commit(msg)
        else:
            self._on_round_change(msg)

    def _buffer_future(self, env: Envelope, size: int) -> None:
        s, cfg = env.signed, self.config
        if s.height > self.h.number + cfg.future_heights:
            return
        identity = (s.author, s.code, s.height, s.round, s.body)
        if identity in self._future_seen:
            return  # a copy of a held message (anyone can replay one): held once
        # Validators of this height each have a budget; anyone else shares one.
        key = s.author if s.author in self.h.validators else b""
        held = self._future_held.setdefault(key, [0, 0])
        if held[0] + 1 > cfg.max_messages_per_author or held[1] + size > cfg.max_bytes_per_author:
            self._event(f"dropped {_describe_signed(s)} from {s.author.hex()[:8]}: its "
                        f"future-height budget ({cfg.max_messages_per_author} messages, "
                        f"{cfg.max_bytes_per_author} bytes) is spent")
            return
        held[0] += 1
        held[1] += size
        self._future_seen.add(identity)
        self._future.setdefault(s.height, []).append((key, env, size))
        asked = self._sync_asked.get(s.author)
        # Ask a validator we know (not whoever a forged signature recovers to) for blocks.
        if s.author in self.h.validators and (asked is None or self.now >= asked + self.config.sync_retry):
            self._sync_asked[s.author] = self.now
            self._ready.sync.append(SyncRequest(s.author, self.h.number))

    def _release_future(self, key: bytes, size: int) -> None:
        held = self._future_held[key]
        held[0] -= 1
        held[1] -= size
        if not held[0]:
            del self._future_held[key]

    # -- final blocks from sync ------------------------------------------------------------
    def _check_final(self, block: Block) -> str | None:
        h = self.h
        header = block.header
        if header.parent_hash != block_hash(h.parent):
            return "does not extend our head"
        try:
            extra = header.extra
        except InvalidBlock as exc:
            return str(exc)
        if extra.validators != h.validators:
            return "lists a different validator set"
        problem = seal_quorum_problem(header, h.validators)  # the light client's rule, the one there is
        if problem is not None:
            return problem
        if extra.vanity != next_commitment(h.tally, header.coinbase, extra.vote):
            return "next-validator commitment is wrong"
        return self.validate_block(block)

    # -- crash recovery --------------------------------------------------------------------
    def _restore(self, records: list[WalRecord]) -> None:
        h = self.h
        own: list[tuple[Message, bytes]] = []
        for rec in records:
            hrs = (rec.height, rec.round, rec.step)
            if rec.kind == "signed" and hrs > self._last_signed:
                self._last_signed = hrs
            if rec.height != h.number:
                continue
            if rec.kind == "prepared":
                lock = _decode_prepared(rec)
                if h.lock is None or lock.round > h.lock.round:
                    h.lock = lock
                    # The proposal we accepted in that round is the locked block: keep it,
                    # so COMMITs for it can still decide it here.
                    h.proposals[lock.round] = (lock.block, lock.digest)
            elif rec.kind == "signed":
                if rec.round > h.round:
                    h.round = rec.round
                # Re-send what we signed before the crash: identical bytes, never re-signed.
                self._ready.messages.append(Outbound(None, rec.data))
                msg = _decode_wal_message(rec)
                h.sent.add((rec.round, msg.signed.code))
                h.own = [o for o in h.own if o[0] >= rec.round] + [(rec.round, rec.data)]
                own.append((msg, rec.data))
        if h.round:
            self._event(f"restored at round {h.round} from the WAL")
        for msg, _data in own:  # count our own votes again
            self._handle(msg)


def _describe_signed(s: Signed) -> str:
    """A message's short form from its envelope (what it carries is not decoded)."""
    digest = "" if s.code == ROUND_CHANGE else f" {s.digest.hex()[:8]}"
    return f"{CODE_NAMES[s.code]} h{s.height} r{s.round}{digest}"


def _encode_prepared(p: _Prepared) -> bytes:
    return rlp_list(rlp.encode(p.round) + encode_block(p.block) + rlp.encode(p.digest)
                    + rlp.encode([encode_signed(s) for s in p.prepares]))


def _decode_prepared(rec: WalRecord) -> _Prepared:
    """A prepared certificate from its WAL record. A record this node did not write
    (a corrupt store) raises `InvalidMessage` naming it: the runtime stops loudly."""
    try:
        parts = decode_rlp_list_items(rec.data)
        if len(parts) != 4:
            raise InvalidMessage(f"expected [round, block, digest, prepares], got {len(parts)} items")
        round_, digest = decode_rlp(parts[0], max_depth=0), decode_rlp(parts[2], max_depth=0)
        assert isinstance(round_, bytes) and isinstance(digest, bytes)  # max_depth=0
        if round_[:1] == b"\x00" or len(digest) != 32:
            raise InvalidMessage("the round or the digest is malformed")
        return _Prepared(int.from_bytes(round_, "big"), decode_block(parts[1]), digest,
                         decode_justification(parts[3], PREPARE, None))
    except (rlp.exceptions.RLPException, InvalidBlock, InvalidMessage) as exc:
        raise InvalidMessage(f"WAL record (prepared, h{rec.height} r{rec.round}) is corrupt: {exc}") from exc


def _decode_wal_message(rec: WalRecord) -> Message:
    try:
        return decode_message(rec.data)
    except InvalidMessage as exc:
        raise InvalidMessage(f"WAL record (signed, h{rec.height} r{rec.round}) is corrupt: {exc}") from exc


__all__ = [
    "BlockRequest", "BlockValidator", "Outbound", "QbftConfig", "QbftNode", "Ready",
    "SyncRequest", "WalRecord",
]
