"""The consensus runtime: drives the pure QBFT state machine with real time, storage and I/O.

One thread owns the `QbftNode`. Each turn it feeds inputs (time, messages from the
transport, whether transactions wait, blocks from sync) and carries out `ready()` in the
order that keeps a validator safe across crashes:

    1. persist   WAL records (signed messages, prepared certificates): one fsynced batch
    2. send      messages to the other validators (the transport)
    3. apply     committed blocks: one fsynced batch each (Chain.commit_block)
    4. advance   then build a requested block and hand it back with `propose`

On start the WAL records above the head are read back, so a restarted validator resumes
its round, keeps its lock, re-sends what it had signed and signs nothing that conflicts.

The dev chain is this runtime with one validator and a transport that reaches nobody: a
block is proposed, prepared, committed and decided within one turn, by the same code that
runs a consortium.

When to tell the state machine that transactions wait is the runtime's `Gathering` policy
(group commit, as a database gathers transactions into one log flush): at once when the
node was idle, but while transactions keep arriving soon after a block, a little longer,
so that one block carries many of them. A block's fixed cost (state root, commitment,
seals, fsyncs) is then paid once per many transactions instead of once per few, and the
JSON-RPC threads get the interpreter while the block gathers.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from node.chain import Chain
from node.consensus.qbft import QbftConfig, QbftNode, Ready, SyncRequest, WalRecord
from node.execution.executor import BlockExecution
from node.storage import wal
from node.txpool.pool import TxPool
from rxledger.core.errors import InvalidBlock, NodeError, StorageError
from rxledger.core.types.blocks import Block
from rxledger.core.types.headers import Vote

log = logging.getLogger("rxledger.consensus")

_NOTABLE = ("timed out", "moved to round", "rejected", "refused", "restored", "re-proposing", "imported")


class Transport(Protocol):
    """How consensus messages and blocks reach other validators."""

    def broadcast(self, data: bytes) -> None: ...

    def send(self, peer: bytes, data: bytes) -> None: ...

    def request_blocks(self, peer: bytes, from_height: int) -> None: ...

    def push_blocks(self, peer: bytes, from_height: int) -> None: ...

    def peers(self) -> list[dict[str, object]]: ...


class NoPeers:
    """The dev chain's transport: there is nobody else."""

    def broadcast(self, data: bytes) -> None:
        pass

    def send(self, peer: bytes, data: bytes) -> None:
        pass

    def request_blocks(self, peer: bytes, from_height: int) -> None:
        pass

    def push_blocks(self, peer: bytes, from_height: int) -> None:
        pass

    def peers(self) -> list[dict[str, object]]:
        return []


def _peer_name(peer: bytes | None) -> str:
    return "an unknown peer" if peer is None else "0x" + peer.hex()


def load_wal(chain: Chain) -> list[WalRecord]:
    """The WAL records above the head, in the order they were written."""
    return [WalRecord(e.kind, e.height, e.round, e.step, e.data)
            for e in wal.load_wal(chain.store, above=chain.head.number)]


@dataclass(frozen=True, slots=True)
class Gathering:
    """When waiting transactions are reported to consensus as pending (seconds of the
    runtime's clock).

    Transactions are pending once any of these holds:
    - `gather` has passed since the last block was committed (so a node that was idle
      makes a block at once: its last block is long past);
    - no transaction has arrived for `quiet` (one client sending and waiting for each
      receipt is not kept waiting for a batch that is not coming);
    - `fill` transactions wait (a full batch goes at once).

    and never before `min_interval` after the last block. `gather=0` reports them at once.
    """

    gather: float = 0.02
    quiet: float = 0.002
    fill: int = 2000
    min_interval: float = 0.0

    def ready_at(self, waiting: int, last_block: float, last_arrival: float) -> float:
        """When `waiting` transactions become pending (<= now: already)."""
        floor = last_block + self.min_interval
        if self.gather <= 0 or waiting >= self.fill:
            return floor
        return max(floor, min(last_block + self.gather, last_arrival + self.quiet))


class ConsensusRuntime:
    """Runs one validator's QBFT state machine in a thread."""

    def __init__(
        self,
        chain: Chain,
        pool: TxPool,
        config: QbftConfig,
        key: bytes | None,
        *,
        transport: Transport | None = None,
        take_vote: Callable[[], Vote | None] = lambda: None,
        clock: Callable[[], float] = time.time,
        gathering: Gathering | None = None,
        on_bad_message: Callable[[bytes, str], None] | None = None,
    ) -> None:
        """`on_bad_message(peer, reason)`: a peer sent a consensus message no honest node
        sends (malformed, wrongly signed): the transport may score or disconnect it. By
        default the transport's own `bad_message(peer, reason)`, if it has one. Called on
        the consensus thread: it must not block."""
        self.chain = chain
        self.pool = pool
        self.config = config
        self.transport = transport or NoPeers()
        if on_bad_message is None:
            on_bad_message = getattr(self.transport, "bad_message", None)
        self.on_bad_message = on_bad_message
        self.dropped_messages = 0  # dropped as malformed, or by the defence below
        self.take_vote = take_vote
        self.clock = clock
        self.gathering = gathering or Gathering()
        self._last_block = self._last_arrival = float("-inf")
        self._pending_at: float | None = None  # when waiting transactions become pending
        self._released = False  # they are pending at this height
        self._executions: OrderedDict[bytes, BlockExecution] = OrderedDict()
        self._inbox: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consensus", daemon=True)
        self.failed: BaseException | None = None
        self.node = QbftNode(
            config, key, chain.head, chain.tally_after(chain.head), self._validate_block,
            now=clock(), records=load_wal(chain),
        )
        self.address = self.node.address

    # -- inputs from other threads ---------------------------------------------------------
    def deliver(self, data: bytes, peer: bytes | None = None) -> None:
        """A consensus message from `peer` (its address, if the transport knows it)."""
        self._inbox.put(("msg", (data, peer)))

    def deliver_block(self, block: Block) -> None:
        """A final block from block sync."""
        self._inbox.put(("block", block))

    def peer_connected(self, peer: bytes) -> None:
        """A peer connected (again): it gets what we signed in the current round."""
        self._inbox.put(("connect", peer))

    def wake(self) -> None:
        """Something changed: run a turn now."""
        self._inbox.put(("wake", None))

    def arrived(self) -> None:
        """A transaction entered the pool. Its time is noted for gathering; the thread is
        woken only if no turn is due anyway (one due at `_pending_at`, or a block asked for
        since the transactions were released, reads the pool then): under load that saves
        a wake-up, a turn and a hand-over of the interpreter per transaction."""
        self._last_arrival = self.clock()
        if self._pending_at is None and not self._released:
            self._inbox.put(("wake", None))

    def peers(self) -> list[dict[str, object]]:
        return self.transport.peers()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            self._carry_out()
            while not self._stop.is_set():
                deadline = self.node.ready().next_deadline
                if self._pending_at is not None:
                    deadline = self._pending_at if deadline is None else min(deadline, self._pending_at)
                timeout = 1.0 if deadline is None else min(1.0, max(0.0, deadline - self.clock()))
                try:
                    kind, item = self._inbox.get(timeout=timeout)
                    while True:
                        # Carry out each input before the next: a decided block must be
                        # committed before a message or block of the next height is
                        # validated against our head.
                        self._handle(kind, item)
                        self._carry_out()
                        kind, item = self._inbox.get_nowait()
                except queue.Empty:
                    pass
                if self._stop.is_set():
                    return
                now = self.clock()
                self.node.set_pending(self._pending(now), now)
                self.node.tick(now)
                self._carry_out()
        except BaseException as exc:  # a broken invariant: stop loudly, write nothing more
            self.failed = exc
            log.exception("consensus stopped: %s", exc)

    def _pending(self, now: float) -> bool:
        """Whether transactions wait and the gathering policy lets them be pending now
        (once pending, they stay so until the next block)."""
        if not self.pool.has_executable():
            self._pending_at = None
            return False
        if not self._released:
            full = self.pool.waiting_gas >= self.chain.head.gas_limit
            # Clamped to now: a wall clock stepped back must not hold transactions back.
            self._last_block, self._last_arrival = min(self._last_block, now), min(self._last_arrival, now)
            at = self.gathering.ready_at(self.gathering.fill if full else len(self.pool),
                                         self._last_block, self._last_arrival)
            if at > now:
                self._pending_at = at
                return False
            self._released = True
        self._pending_at = None
        return True

    def _handle(self, kind: str, item: object) -> None:
        if kind == "msg":
            assert isinstance(item, tuple)
            data, peer = item
            # Dated by its arrival: a proposal ending an idle stretch starts round 0's
            # timer then. (Only the time: timers fire in tick, after set_pending, so a
            # block is never requested on the pending flag of the height before.)
            try:
                reason = self.node.step(data, self.clock())
            except StorageError:
                # The store failed while validating the message's block (re-execution reads
                # state): that is the node's fault, not the peer's; stop consensus loudly.
                raise
            except Exception as exc:  # defence in depth, see below
                # The state machine turns every malformed message into InvalidMessage and
                # drops it; anything else escaping `step` is a bug in handling one message
                # (applying blocks and writing storage happen in `_carry_out`, outside this
                # guard, and still stop consensus). One peer's message must not end
                # consensus: drop it, say so loudly, and go on.
                log.error("dropped a consensus message from %s that raised %s: %s",
                          _peer_name(peer), type(exc).__name__, exc, exc_info=True)
                reason = f"message raised {type(exc).__name__}"
            if reason is not None:
                self.dropped_messages += 1
                log.warning("dropped a consensus message from %s: %s", _peer_name(peer), reason)
                if peer is not None and self.on_bad_message is not None:
                    try:
                        self.on_bad_message(peer, reason)
                    except Exception:  # scoring must not stop consensus
                        log.exception("on_bad_message failed for %s", _peer_name(peer))
        elif kind == "block":
            assert isinstance(item, Block)
            self.node.import_block(item)
        elif kind == "connect":
            assert isinstance(item, bytes)
            self.node.connected(item)

    # -- ready: persist → send → apply → advance -------------------------------------------
    def _carry_out(self) -> None:
        while True:
            ready = self.node.ready()
            for event in ready.events:
                # Round changes, refusals and restores are what an operator watches for;
                # the per-message steps of a healthy round are debug detail.
                log.log(logging.INFO if any(k in event for k in _NOTABLE) else logging.DEBUG, "%s", event)
            if ready.empty():
                # Nothing was decided (a decided block makes a Ready non-empty), so this
                # advance starts no height: it leaves nothing to carry out.
                self.node.advance(ready)
                return
            self._persist(ready.records)
            for out in ready.messages:
                if out.to is None:
                    self.transport.broadcast(out.data)
                else:
                    self.transport.send(out.to, out.data)
            for block in ready.committed:
                self._apply(block)
            for req in ready.sync:
                self.transport.request_blocks(req.peer, req.from_height)
            for push in ready.push:
                self.transport.push_blocks(push.peer, push.from_height)
            request = ready.block_request
            self.node.advance(ready)
            if request is not None:
                self._build(request.height, request.round)

    def _persist(self, records: list[WalRecord]) -> None:
        wal.save_wal(self.chain.store, (wal.WalEntry(r.kind, r.height, r.round, r.step, r.data) for r in records))

    def _apply(self, block: Block) -> None:
        execution = self._executions.pop(block.hash, None)
        if execution is None or self.chain.head.hash != block.header.parent_hash:
            execution = self.chain.verify_execution(block)
        self.chain.commit_block(block, execution)
        self._last_block = self.clock()
        self._released = False
        self._pending_at = self._last_block  # a turn is due: are transactions pending now?
        wal.prune_wal(self.chain.store, through=block.number)
        log.info("block %d final: %d txs, round %d, hash 0x%s", block.number, len(block.transactions),
                 block.header.extra.round, block.hash.hex())

    def _build(self, height: int, round_: int) -> None:
        if height != self.chain.head.number + 1:
            return
        txs = self.pool.pending(max_gas=self.chain.head.gas_limit)
        # Whole seconds, never before parent + block period (start_config and start_dev
        # give QBFT whole seconds; a fractional period given here would round up).
        earliest = self.chain.head.timestamp + math.ceil(self.config.block_period)
        block, execution = self.chain.build_block(
            txs, timestamp=max(int(self.clock()), earliest), proposer=self.address or b"\x00" * 20,
            round=round_, vote=self.take_vote(),
        )
        if execution.skipped:
            self.pool.remove([stx for stx, _ in execution.skipped])
            for stx, reason in execution.skipped:
                log.warning("dropped transaction 0x%s: %s", stx.hash.hex(), reason)
        self._remember(block.hash, execution)
        self.node.propose(block)
        self._carry_out()

    def _remember(self, block_hash: bytes, execution: BlockExecution) -> None:
        self._executions[block_hash] = execution
        while len(self._executions) > 32:
            self._executions.popitem(last=False)

    def _validate_block(self, block: Block) -> str | None:
        """The state machine's execution check: re-execute on our head (cached by hash)."""
        if block.hash in self._executions:
            return None
        try:
            execution = self.chain.verify_execution(block)
        except InvalidBlock as exc:
            return str(exc)
        except StorageError:
            raise  # our store failed, not the block: stop consensus (a broken invariant)
        except NodeError as exc:
            return f"cannot execute: {exc}"
        self._remember(block.hash, execution)
        return None


__all__ = ["ConsensusRuntime", "Gathering", "NoPeers", "Transport", "load_wal", "SyncRequest", "Ready"]
