"""`P2PTransport`: the consensus runtime's `Transport` over a peer network.

It adapts a `PeerNetwork` (`P2PService` over TLS, or `MemoryTransport`) to
`node.runtime.Transport` and supplies that network's handlers:

    runtime → peers   broadcast/send      CONSENSUS frames
                      request_blocks      GET_BLOCKS(from, chunk), continued chunk by chunk
                      push_blocks         BLOCKS read from our chain
    peers → runtime   CONSENSUS           runtime.deliver(data, peer)
    runtime → peers   bad_message         a CONSENSUS message the runtime found malformed:
                                          network.bad_message(peer, reason), if it has one
                      a peer connects     runtime.peer_connected(peer) (it re-sends what it
                                          signed this round, which the peer may have missed)
                      BLOCKS              decoded, runtime.deliver_block(block), in order
                      TX                  submit_transaction(raw) (the txpool)
                      GET_BLOCKS          answered from our chain
                      STATUS              a peer ahead of us: ask it for blocks

Wiring (the transport exists before the runtime, whose inbox it feeds):

    transport = P2PTransport(chain, submit_transaction=node.submit_raw_transaction)
    service = P2PService(config, tls, allow=..., head=..., **transport.handlers())
    transport.attach(service)
    runtime = node.start_consensus(qbft_config, transport)
    transport.bind_runtime(runtime)
    service.start()

Sync is pipelined: when a chunk of blocks arrives it is handed to the runtime's inbox
whole (the runtime imports its inbox in order, each block on the head the previous one
made) and the next chunk is asked for at once, so it travels while this one imports.
`on_blocks` then returns only once the chunk before this one is imported; a
connection's frames are read one at a time, so at most two chunks wait in the runtime
and one on the wire, whatever the gap. The wait is woken by the chain's commits
(`head_moved`, registered as a chain listener when the chain takes listeners).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from node.p2p.frames import MAX_FRAME_SIZE, Kind, Status, encode_blocks, encode_get_blocks
from node.p2p.peers import PeerNetwork, fit_blocks
from rxledger.core.errors import InvalidTransaction, NodeError, TxPoolRefused
from rxledger.core.types.blocks import Block, decode_block, encode_block

log = logging.getLogger("rxledger.p2p")


class _Numbered(Protocol):
    @property
    def number(self) -> int: ...


class ChainView(Protocol):
    """What the transport reads from the chain (`node.chain.Chain` is one)."""

    @property
    def head(self) -> _Numbered: ...

    def block_by_number(self, number: int) -> Block | None: ...


@runtime_checkable
class _Listened(Protocol):
    def add_listener(self, listener: Callable[[Block, list[Any]], None]) -> None: ...


class RuntimeInbox(Protocol):
    """Where consensus messages and synced blocks go (`ConsensusRuntime` is one)."""

    def deliver(self, data: bytes, peer: bytes | None = None) -> None: ...

    def deliver_block(self, block: Block) -> None: ...

    def peer_connected(self, peer: bytes) -> None: ...


REGOSSIP_INTERVAL = 10.0  # seconds between re-sends of long-waiting transactions to a peer


class P2PTransport:
    """`node.runtime.Transport` over a `PeerNetwork`, plus that network's handlers."""

    def __init__(
        self,
        chain: ChainView,
        *,
        submit_transaction: Callable[[bytes], object] | None = None,
        waiting_transactions: Callable[[], list[bytes]] | None = None,
        chunk: int = 128,
        max_frame_size: int = MAX_FRAME_SIZE,
        import_timeout: float = 5.0,
        request_retry: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`chunk`: blocks per GET_BLOCKS/BLOCKS (the service's `max_blocks_per_frame`).

        `import_timeout`: how long the chain's head may stand still while synced blocks
        wait to be imported before the sync is given up (a STATUS restarts it from the
        head). `request_retry`: how often a peer seen ahead of us (STATUS) is asked for
        blocks while none arrive.
        """
        self.chain = chain
        self.submit_transaction = submit_transaction
        self.waiting_transactions = waiting_transactions
        self.chunk = chunk
        self.max_frame_size = max_frame_size
        self.import_timeout = import_timeout
        self.request_retry = request_retry
        self.clock = clock
        self.network: PeerNetwork | None = None
        self.runtime: RuntimeInbox | None = None
        self._lock = threading.Lock()
        self._last_request = float("-inf")
        self._heads: dict[bytes, int] = {}
        self._regossiped: dict[bytes, float] = {}
        # Sync: the highest block handed to the runtime (it may not be imported yet), and
        # a condition notified when the chain's head moves. `_sync_lock` keeps the blocks
        # of two answers (two peers) from interleaving in the runtime's inbox.
        self._handed = -1
        self._sync_lock = threading.Lock()
        self._head_moved = threading.Condition()
        if isinstance(chain, _Listened):
            chain.add_listener(lambda block, receipts: self.head_moved())

    def attach(self, network: PeerNetwork) -> None:
        self.network = network

    def bind_runtime(self, runtime: RuntimeInbox) -> None:
        self.runtime = runtime

    def handlers(self) -> dict[str, Callable[..., object]]:
        """Keyword arguments for `P2PService(...)` / `MemoryTransport(...)`."""
        return {"on_consensus": self.on_consensus, "on_transaction": self.on_transaction,
                "on_get_blocks": self.on_get_blocks, "on_blocks": self.on_blocks,
                "on_status": self.on_status, "on_connect": self.on_connect}

    # -- node.runtime.Transport ------------------------------------------------------------
    def broadcast(self, data: bytes) -> None:
        if self.network is not None:
            self.network.broadcast(Kind.CONSENSUS, data)

    def send(self, peer: bytes, data: bytes) -> None:
        if self.network is not None:
            self.network.send(peer, Kind.CONSENSUS, data)

    def request_blocks(self, peer: bytes, from_height: int) -> None:
        """Ask `peer` for final blocks from `from_height` on (continued in on_blocks)."""
        if self.network is None:
            return
        with self._lock:
            self._last_request = self.clock()
        log.debug("asking 0x%s for blocks from %d", peer.hex()[:8], from_height)
        self.network.send(peer, Kind.GET_BLOCKS, encode_get_blocks(from_height, self.chunk))

    def push_blocks(self, peer: bytes, from_height: int) -> None:
        """Send `peer` (seen at a lower height) our final blocks from `from_height` on."""
        if self.network is None:
            return
        blocks = self.read_blocks(from_height, self.chunk)
        if blocks:
            log.debug("pushing blocks %d.. (%d) to 0x%s", from_height, len(blocks), peer.hex()[:8])
            self.network.send(peer, Kind.BLOCKS, encode_blocks(blocks))

    def peers(self) -> list[dict[str, object]]:
        """Connected peers as JSON, for the node's status."""
        return [] if self.network is None else [p.as_json() for p in self.network.connected_peers()]

    def gossip_transaction(self, raw: bytes) -> None:
        """Send a transaction admitted here (from RPC) to every peer."""
        if self.network is not None:
            self.network.broadcast(Kind.TX, raw)

    # -- handlers --------------------------------------------------------------------------
    def on_consensus(self, peer: bytes, data: bytes) -> None:
        if self.runtime is not None:
            self.runtime.deliver(data, peer)

    def bad_message(self, peer: bytes, reason: str) -> None:
        """`peer` sent bytes no honest node sends: a consensus message the runtime dropped
        as malformed or wrongly signed (called on the consensus thread), or an undecodable
        block in a sync answer. The network scores or disconnects the peer if it can (its
        `bad_message(peer, reason)`); the caller has logged it."""
        hook = getattr(self.network, "bad_message", None)
        if callable(hook):
            hook(peer, reason)

    def on_connect(self, peer: bytes) -> None:
        if self.runtime is not None:
            self.runtime.peer_connected(peer)

    def on_transaction(self, peer: bytes, raw: bytes) -> None:
        if self.submit_transaction is None:
            return
        try:
            self.submit_transaction(raw)
        except TxPoolRefused as exc:  # already known, nonce too low, …: routine with gossip
            log.debug("transaction from 0x%s not admitted: %s", peer.hex()[:8], exc)
        except InvalidTransaction as exc:
            # Undecodable or wrongly signed: an honest peer gossips only what it admitted.
            log.debug("malformed transaction from 0x%s: %s", peer.hex()[:8], exc)
            self.bad_message(peer, f"malformed transaction: {exc}")
        except NodeError as exc:
            log.debug("transaction from 0x%s not admitted: %s", peer.hex()[:8], exc)

    def on_get_blocks(self, peer: bytes, from_height: int, count: int) -> list[bytes]:
        return self.read_blocks(from_height, min(count, self.chunk))

    def read_blocks(self, from_height: int, count: int) -> list[bytes]:
        """Our final blocks from `from_height`, at most `count`, fitting one frame."""
        out: list[bytes] = []
        last = min(self.chain.head.number, from_height + count - 1)
        for number in range(max(from_height, 0), last + 1):
            block = self.chain.block_by_number(number)
            if block is None:
                break
            out.append(encode_block(block))
        return fit_blocks(out, count, self.max_frame_size)

    def on_status(self, peer: bytes, status: Status) -> None:
        now = self.clock()
        with self._lock:
            self._heads[peer] = status.head_number
            due = now >= self._last_request + self.request_retry
            regossip = now >= self._regossiped.get(peer, float("-inf")) + REGOSSIP_INTERVAL
            if regossip:
                self._regossiped[peer] = now
        if regossip and self.waiting_transactions is not None and self.network is not None:
            # Gossip reaches only the peers connected when a transaction arrived; what has
            # waited here a while goes again to each peer (one that reconnected, or missed it).
            for raw in self.waiting_transactions():
                self.network.send(peer, Kind.TX, raw)
        ours = self.chain.head.number
        if status.head_number > ours and due and self.runtime is not None:
            # Nothing asked for a while: start from the head, even if blocks handed over
            # earlier were never imported (a duplicate of a queued block is ignored).
            with self._sync_lock:
                self._handed = ours
            self.request_blocks(peer, ours + 1)

    def on_blocks(self, peer: bytes, blocks: list[bytes]) -> None:
        """Hand synced blocks to the runtime in order; ask for the next chunk at once."""
        if self.runtime is None or not blocks:
            return
        with self._sync_lock:
            start = max(self.chain.head.number, self._handed)
            expected = start + 1
            for data in blocks:
                try:
                    block = decode_block(data)
                except NodeError as exc:
                    log.warning("undecodable block from 0x%s: %s", peer.hex()[:8], exc)
                    self.bad_message(peer, f"undecodable block: {exc}")
                    break
                if block.number < expected:
                    continue  # already handed over (another answer, or a duplicate)
                if block.number != expected:
                    break  # a gap: a later request starts from what we hold
                self.runtime.deliver_block(block)
                expected += 1
            last = expected - 1
            self._handed = last
        if last == start:
            return
        with self._lock:
            peer_head = self._heads.get(peer, 0)
        if len(blocks) >= self.chunk or peer_head > last:
            self.request_blocks(peer, last + 1)
        # Bounded memory: this connection's next BLOCKS frame is read only after we return,
        # and we return once the chunk before this one is imported.
        if not self._wait_for_head(start):
            head = self.chain.head.number
            log.warning("synced blocks up to %d from 0x%s were not imported (head %d still after %.1f s)",
                        last, peer.hex()[:8], head, self.import_timeout)
            with self._sync_lock:
                self._handed = head  # start again from the head (a STATUS asks again)

    def head_moved(self) -> None:
        """The chain committed a block: wake a sync waiting for the head."""
        with self._head_moved:
            self._head_moved.notify_all()

    def _wait_for_head(self, number: int) -> bool:
        """Wait until the head reaches `number`; False if it stands still `import_timeout` s."""
        deadline = time.monotonic() + self.import_timeout
        with self._head_moved:
            # Read under the condition: the chain moves its head before it notifies.
            head = self.chain.head.number
            while head < number:
                now = time.monotonic()
                if now >= deadline:
                    return False
                # Capped: a chain without listeners is polled.
                self._head_moved.wait(min(deadline - now, 0.05))
                moved = self.chain.head.number
                if moved > head:
                    head = moved
                    deadline = time.monotonic() + self.import_timeout
        return True


__all__ = ["ChainView", "P2PTransport", "RuntimeInbox"]
