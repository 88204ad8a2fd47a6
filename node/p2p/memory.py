"""An in-memory transport with `P2PService`'s interface, for simulations and wiring tests.

`MemoryNetwork` is the wire: every `MemoryTransport` that `start()`s joins it and is
linked to every other member that it allows and that allows it, after the same STATUS
checks as over TLS (chain id, genesis hash). Frames are encoded with the real codec (so
the frame cap and the payload formats apply) and queued; they are delivered by `flush()`
(deterministic, on the caller's thread) or by a delivery thread (`network.start()`), to
the same handlers, through the same `Dispatcher`, as `P2PService` uses.

Faults for tests: `unlink(a, b)` / `link(a, b)` cut and restore a connection, `drop` is a
predicate that discards frames in flight, `inject` puts raw bytes on a link.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from node.p2p.frames import (
    MAX_FRAME_SIZE,
    Frame,
    Kind,
    P2PError,
    Status,
    decode_blocks,
    decode_disconnect,
    decode_frames,
    decode_get_blocks,
    decode_status,
    encode_blocks,
    encode_frame,
    encode_status,
)
from node.p2p.peers import (
    Dispatcher,
    Handlers,
    OnBlocks,
    OnConnect,
    OnConsensus,
    OnGetBlocks,
    OnStatus,
    OnTransaction,
    PeerState,
    status_problem,
)

log = logging.getLogger("rxledger.p2p")


class MemoryNetwork:
    """The shared medium of a set of `MemoryTransport`s."""

    def __init__(self, *, drop: Callable[[bytes, bytes, Kind], bool] | None = None) -> None:
        """`drop(sender, receiver, kind)`: True discards that frame (a lossy network)."""
        self.drop = drop
        self._members: dict[bytes, MemoryTransport] = {}
        self._links: set[frozenset[bytes]] = set()
        self._queue: deque[tuple[bytes, bytes, bytes]] = deque()
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._running = False

    # -- membership and links --------------------------------------------------------------
    def join(self, member: MemoryTransport) -> None:
        with self._lock:
            self._members[member.address] = member
            others = [m for a, m in self._members.items() if a != member.address]
        for other in others:
            self.link(member.address, other.address)

    def leave(self, member: MemoryTransport) -> None:
        with self._lock:
            self._members.pop(member.address, None)
            gone = [link for link in self._links if member.address in link]
            self._links.difference_update(gone)

    def link(self, a: bytes, b: bytes) -> bool:
        """Connect two members as a TLS connection would: allowlists, then STATUS checks."""
        with self._lock:
            ma, mb = self._members.get(a), self._members.get(b)
            if ma is None or mb is None or frozenset((a, b)) in self._links:
                return False
        for this, that in ((ma, mb), (mb, ma)):
            problem = this.refusal(that)
            if problem is not None:
                log.warning("refused memory peer %s 0x%s: %s", that.name, that.address.hex(), problem)
                return False
        with self._lock:
            self._links.add(frozenset((a, b)))
        # Both sides send STATUS on connect, as over TLS (delivered like any frame), then
        # learn that the link is up (what they send now follows the STATUS).
        self.post(a, b, ma.status_frame())
        self.post(b, a, mb.status_frame())
        ma.dispatcher.call("on_connect", b)
        mb.dispatcher.call("on_connect", a)
        return True

    def unlink(self, a: bytes, b: bytes) -> None:
        with self._lock:
            self._links.discard(frozenset((a, b)))

    def disconnect(self, a: bytes, b: bytes, reason: str) -> None:
        """`a` ends its link with `b`, telling it why (DISCONNECT, then close)."""
        self.unlink(a, b)
        log.info("memory peer 0x%s disconnected 0x%s: %s", a.hex(), b.hex(), reason)

    def is_linked(self, a: bytes, b: bytes) -> bool:
        with self._lock:
            return frozenset((a, b)) in self._links

    def peers_of(self, address: bytes) -> list[MemoryTransport]:
        with self._lock:
            return [self._members[other] for link in self._links if address in link
                    for other in link if other != address and other in self._members]

    # -- frames ----------------------------------------------------------------------------
    def post(self, sender: bytes, receiver: bytes, frame: bytes) -> None:
        with self._wakeup:
            self._queue.append((sender, receiver, frame))
            self._wakeup.notify()

    def inject(self, sender: bytes, receiver: bytes, raw: bytes) -> None:
        """Put arbitrary bytes on a link (garbage, truncated or oversized frames)."""
        self.post(sender, receiver, raw)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def flush(self, limit: int = 1_000_000) -> int:
        """Deliver queued frames (and those they cause) until none is left; how many."""
        delivered = 0
        while delivered < limit:
            with self._lock:
                if not self._queue:
                    return delivered
                sender, receiver, frame = self._queue.popleft()
            self._deliver(sender, receiver, frame)
            delivered += 1
        return delivered

    def _deliver(self, sender: bytes, receiver: bytes, frame: bytes) -> None:
        with self._lock:
            member = self._members.get(receiver)
            linked = frozenset((sender, receiver)) in self._links
        if member is None or not linked:
            return
        if self.drop is not None and len(frame) > 4 and self.drop(sender, receiver, Kind(frame[4])):
            return
        member.receive(sender, frame)

    # -- a delivery thread (for nodes that run their own threads) -------------------------
    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, name="memory-network", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wakeup:
            self._running = False
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while self._running and not self._queue:
                    self._wakeup.wait(timeout=1.0)
                if not self._running:
                    return
            self.flush(limit=1000)


class MemoryTransport:
    """One node's endpoint on a `MemoryNetwork`: `P2PService`'s interface, no sockets."""

    def __init__(
        self,
        network: MemoryNetwork,
        address: bytes,
        *,
        name: str,
        chain_id: int,
        genesis_hash: bytes,
        head: Callable[[], tuple[int, bytes]],
        allow: Callable[[bytes], bool] = lambda address: True,
        max_frame_size: int = MAX_FRAME_SIZE,
        max_blocks_per_frame: int = 128,
        on_consensus: OnConsensus | None = None,
        on_transaction: OnTransaction | None = None,
        on_get_blocks: OnGetBlocks | None = None,
        on_blocks: OnBlocks | None = None,
        on_status: OnStatus | None = None,
        on_connect: OnConnect | None = None,
    ) -> None:
        self.network = network
        self.address = address
        self.name = name
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash
        self.head = head
        self.allow = allow
        self.max_frame_size = max_frame_size
        self.dispatcher = Dispatcher(
            Handlers(on_consensus, on_transaction, on_get_blocks, on_blocks, on_status, on_connect),
            max_blocks_per_frame=max_blocks_per_frame, max_frame_size=max_frame_size,
        )
        self._heads: dict[bytes, int] = {}
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.network.join(self)

    def stop(self) -> None:
        self.network.leave(self)

    # -- the interface shared with P2PService ----------------------------------------------
    def broadcast(self, kind: Kind, data: bytes) -> None:
        frame = encode_frame(kind, data, self.max_frame_size)
        for peer in self.network.peers_of(self.address):
            self.network.post(self.address, peer.address, frame)

    def send(self, peer: bytes, kind: Kind, data: bytes) -> None:
        frame = encode_frame(kind, data, self.max_frame_size)
        if self.network.is_linked(self.address, peer):
            self.network.post(self.address, peer, frame)
        else:
            log.debug("not connected to 0x%s: frame dropped", peer.hex())

    def announce_status(self) -> None:
        frame = self.status_frame()
        for peer in self.network.peers_of(self.address):
            self.network.post(self.address, peer.address, frame)

    def connected_peers(self) -> list[PeerState]:
        with self._lock:
            heads = dict(self._heads)
        return sorted(
            (PeerState(p.address, p.name, heads.get(p.address, 0), "memory", 0,
                       outbound=p.address < self.address)
             for p in self.network.peers_of(self.address)),
            key=lambda s: s.address,
        )

    # -- used by the network ---------------------------------------------------------------
    def status(self) -> Status:
        number, head_hash = self.head()
        return Status(self.chain_id, self.genesis_hash, number, head_hash, self.address)

    def status_frame(self) -> bytes:
        return encode_frame(Kind.STATUS, encode_status(self.status()))

    def refusal(self, peer: MemoryTransport) -> str | None:
        """Why we would refuse `peer` at connect time, or None."""
        if not self.allow(peer.address):
            return f"address 0x{peer.address.hex()} is not on the allowlist"
        return status_problem(peer.status(), chain_id=self.chain_id, genesis_hash=self.genesis_hash,
                              certified=peer.address)

    def receive(self, sender: bytes, raw: bytes) -> None:
        """Frames from a linked peer; a malformed one ends the link, as over TLS."""
        try:
            frames, rest = decode_frames(raw, self.max_frame_size)
            if rest:
                raise P2PError(f"{len(rest)} bytes of an incomplete frame")
            for frame in frames:
                self._handle(sender, frame)
        except P2PError as exc:
            log.warning("dropping memory peer 0x%s: bad frame: %s", sender.hex(), exc)
            self.network.disconnect(self.address, sender, f"bad frame: {exc}")

    def _handle(self, sender: bytes, frame: Frame) -> None:
        kind, payload = frame.kind, frame.payload
        if kind == Kind.CONSENSUS:
            self.dispatcher.call("on_consensus", sender, payload)
        elif kind == Kind.TX:
            self.dispatcher.call("on_transaction", sender, payload)
        elif kind == Kind.STATUS:
            status = decode_status(payload)
            problem = status_problem(status, chain_id=self.chain_id, genesis_hash=self.genesis_hash,
                                     certified=sender)
            if problem is not None:
                raise P2PError(problem)
            with self._lock:
                self._heads[sender] = status.head_number
            self.dispatcher.call("on_status", sender, status)
        elif kind == Kind.GET_BLOCKS:
            from_height, count = decode_get_blocks(payload)
            blocks = self.dispatcher.blocks_for(sender, from_height, count)
            self.network.post(self.address, sender,
                              encode_frame(Kind.BLOCKS, encode_blocks(blocks), self.max_frame_size))
        elif kind == Kind.BLOCKS:
            self.dispatcher.call("on_blocks", sender, decode_blocks(payload))
        elif kind == Kind.DISCONNECT:
            log.info("memory peer 0x%s disconnected: %s", sender.hex(), decode_disconnect(payload))
            self.network.unlink(self.address, sender)


__all__ = ["MemoryNetwork", "MemoryTransport"]
