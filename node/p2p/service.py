"""`P2PService`: framed messages between nodes over mutually authenticated TLS 1.3.

The service owns an asyncio event loop in a dedicated thread; other threads talk to it
through `broadcast`, `send` and `announce_status` (handed to the loop with
`call_soon_threadsafe`) and read `connected_peers()`.

A connection's life:

    TCP → TLS handshake (a consortium CA, both ways) → allowlist / address checks →
    both send STATUS → chain id, genesis hash and status address checked → frames

Refusals are logged with the peer's host:port, the certificate subject when there is one,
and the reason; the peer is sent a DISCONNECT with the reason when the TLS channel is up.
A malformed frame, an unknown type or a frame announcing more than the cap drops that one
connection (DISCONNECT, close, log); the service keeps serving everyone else.

Connections: one per peer address. We dial the static peers whose address is lower than
ours at once, and higher ones only if they have not dialled us within `dial_grace`
seconds (a node added later is not in their lists); we accept anyone allowed, so two
nodes normally make exactly one connection; a duplicate keeps the existing connection. A dialled peer is redialled with exponential
backoff (`backoff_initial` doubling to `backoff_max`, reset after a good session). Each
connection has a bounded write queue: a peer that does not read is dropped rather than
letting its frames pile up in memory. Every `status_interval` seconds each node
re-announces its STATUS (its head, and a keep-alive); a connection silent for
`idle_timeout` seconds is closed.

Budgets (`node.p2p.peers.P2PBudgets`, fields of `P2PConfig`): a connection accepted
beyond `max_pending_handshakes` unfinished handshakes in total, or
`max_pending_handshakes_per_ip` / `max_connections_per_ip` from its IP address, is
closed at once (before TLS) and logged. Each connection's frames pass a token bucket
(`peer_message_rate`, `peer_message_burst`): the excess is dropped and scored. A peer's
score (`peer_score_limit`, decaying by `peer_score_decay` a second) also grows by
`bad_message_penalty` for each message the layers above report as undecodable or
invalid (`bad_message`); at the limit the peer is disconnected with the reason.

The allowlist follows governance: `recheck_peers()` (called after each committed block)
asks the allowlist again about every connected peer and closes the connections of those
no longer allowed (a validator removed by vote, an organisation removed by Governance),
with a DISCONNECT saying why.

Handlers run on the loop thread (`on_consensus`, `on_transaction`, `on_status`,
`on_connect`: keep them quick, e.g. put the data on a queue) or in a worker thread
(`on_get_blocks`, `on_blocks`, which read or import blocks); the peer's next frame is
read when they return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from node.p2p.frames import (
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    Frame,
    FrameTooLarge,
    Kind,
    P2PError,
    Status,
    decode_blocks,
    decode_body,
    decode_disconnect,
    decode_get_blocks,
    decode_length,
    decode_status,
    encode_blocks,
    encode_disconnect,
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
    P2PBudgets,
    PeerInfo,
    PeerState,
    status_problem,
)
from node.p2p.tls import (
    Allowlist,
    OrgCAs,
    PeerCertificate,
    PeerRefused,
    TlsIdentity,
    as_allowlist,
    check_organisation,
    check_peer,
    client_context,
    describe_ssl_error,
    read_peer_certificate,
    server_context,
)

log = logging.getLogger("rxledger.p2p")

_CONNECTION_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError)


@dataclass(frozen=True)
class P2PConfig(P2PBudgets):
    """Where a node listens, who it is, which peers it dials, and the limits it keeps
    (the budgets of `P2PBudgets` are keyword fields too)."""

    host: str
    port: int  # 0: any free port (read `P2PService.port` after start)
    address: bytes  # our node address, the one our certificate binds
    chain_id: int
    genesis_hash: bytes
    peers: tuple[PeerInfo, ...] = ()
    max_frame_size: int = MAX_FRAME_SIZE
    max_blocks_per_frame: int = 128
    write_queue_frames: int = 4096
    write_queue_bytes: int = 64 * 1024 * 1024
    handshake_timeout: float = 10.0
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    dial_grace: float = 3.0
    status_interval: float = 5.0
    idle_timeout: float = 30.0


class _Refused(Exception):
    """Internal: the connection is refused for the given reason (already logged or not)."""


class _Slot:
    """An accepted connection's place in the handshake budget (released once)."""

    def __init__(self, service: P2PService, host: str) -> None:
        self.service = service
        self.host = host
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.service._handshake_done(self.host)


class _Connection:
    """One established (or establishing) connection; lives on the loop thread."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                 port: int, outbound: bool, cert: PeerCertificate | None) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        self.port = port
        self.outbound = outbound
        self.cert = cert
        self.address = b""
        self.name = ""
        self.head_number = 0
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queued_bytes = 0
        self.closing = False
        self.closed = asyncio.Event()
        # Budgets: the message token bucket, the misbehaviour score, what was dropped.
        self.tokens = 0.0
        self.tokens_at = 0.0
        self.score = 0.0
        self.score_at = 0.0
        self.dropped = 0
        self.bad_messages = 0

    @property
    def where(self) -> str:
        subject = f" ({self.cert.subject})" if self.cert is not None else ""
        return f"{self.host}:{self.port}{subject}"

    def label(self) -> str:
        return f"{self.name or '?'} 0x{self.address.hex()[:8]} at {self.host}:{self.port}"

    def state(self) -> PeerState:
        return PeerState(self.address, self.name, self.head_number, self.host, self.port, self.outbound)


class P2PService:
    """A node's TLS peer-to-peer endpoint: listens, dials static peers, dispatches frames."""

    def __init__(
        self,
        config: P2PConfig,
        tls: TlsIdentity,
        *,
        allow: Allowlist | Callable[[bytes], bool],
        head: Callable[[], tuple[int, bytes]],
        on_consensus: OnConsensus | None = None,
        on_transaction: OnTransaction | None = None,
        on_get_blocks: OnGetBlocks | None = None,
        on_blocks: OnBlocks | None = None,
        on_status: OnStatus | None = None,
        on_connect: OnConnect | None = None,
    ) -> None:
        """`allow`: an `Allowlist` (who may connect, bound to which organisation), or a
        predicate `allow(address)` binding none. `head()`: (number, hash) now."""
        if len(config.address) != 20:
            raise P2PError("the node address must be 20 bytes")
        self.config = config
        self.allow = as_allowlist(allow)
        self._cas = OrgCAs.from_pems(tls.ca_pems)
        self.head = head
        self.dispatcher = Dispatcher(
            Handlers(on_consensus, on_transaction, on_get_blocks, on_blocks, on_status, on_connect),
            max_blocks_per_frame=config.max_blocks_per_frame, max_frame_size=config.max_frame_size,
        )
        self._server_ctx = server_context(tls)
        self._client_ctx = client_context(tls)
        self._static = {p.address: p for p in config.peers}
        self.port = config.port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[Any] | None = None
        self._unowned: set[socket.socket] = set()  # accepted, its task not yet running
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections: dict[bytes, _Connection] = {}  # written on the loop thread only
        self._lock = threading.Lock()  # guards _connections for readers on other threads
        self._started = threading.Event()
        self._stopping = False
        self._dial_errors: dict[bytes, str] = {}
        self._refusals: dict[bytes | str, str] = {}  # the last refusal's reason per identity or host
        # Accepted connections: unfinished handshakes (in total, per IP) and connections per IP.
        self._pending_total = 0
        self._pending_by_ip: dict[str, int] = {}
        self._inbound_by_ip: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Bind the listening socket (raises if it cannot), then run the loop thread."""
        if self._thread is not None:
            raise P2PError("the p2p service is already started")
        listener = socket.create_server((self.config.host, self.config.port), backlog=64)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"p2p:{self.port}", daemon=True)
        self._thread.start()
        self._started.wait(timeout=10)
        log.info("p2p listening on %s:%d as 0x%s", self.config.host, self.port, self.config.address.hex())

    def stop(self, timeout: float = 5.0) -> None:
        """Say DISCONNECT to every peer, close everything and end the loop thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or self._stopping:
            return
        with contextlib.suppress(RuntimeError, TimeoutError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        self._accept_task = self._spawn(self._accept_loop())
        for peer in self.config.peers:
            # A higher-address peer normally dials us; we dial it only if it has not after a
            # grace period (it may not list us: a node added after it started).
            self._spawn(self._dial_loop(peer, defer=peer.address > self.config.address))
        self._spawn(self._status_loop())
        self._started.set()
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _shutdown(self) -> None:
        self._stopping = True
        if self._accept_task is not None:  # unregister the listener before closing it
            self._accept_task.cancel()
            await asyncio.gather(self._accept_task, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
        for conn in list(self._connections.values()):
            self._close(conn, "shutting down")
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        # Give connections a moment to flush their DISCONNECT before the tasks are cancelled.
        await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in self._unowned:
            sock.close()
        await asyncio.sleep(0.01)  # let the transports' connection_lost callbacks run

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the thread-safe API ---------------------------------------------------------------
    def broadcast(self, kind: Kind, data: bytes) -> None:
        """Send a frame to every connected peer. Raises `FrameTooLarge` above the cap."""
        frame = encode_frame(kind, data, self.config.max_frame_size)
        self._call(self._broadcast_frame, frame)

    def send(self, peer: bytes, kind: Kind, data: bytes) -> None:
        """Send a frame to one peer (dropped, with a debug log, if it is not connected)."""
        frame = encode_frame(kind, data, self.config.max_frame_size)
        self._call(self._send_frame, peer, frame)

    def announce_status(self) -> None:
        """Send our STATUS (our head now) to every peer, e.g. after a new block."""
        self._call(self._announce_status)

    def recheck_peers(self) -> None:
        """Ask the allowlist again about every connected peer; close those no longer allowed
        (call it after each committed block: the validator set and Governance may change)."""
        self._call(self._recheck_peers)

    def bad_message(self, peer: bytes, reason: str) -> None:
        """A message from `peer` did not decode or was invalid: score it; at
        `peer_score_limit` the peer is disconnected. The hook `P2PTransport.bad_message`
        calls (the consensus runtime's `on_bad_message`); thread-safe."""
        self._call(self._bad_message, peer, reason)

    def connected_peers(self) -> list[PeerState]:
        with self._lock:
            conns = list(self._connections.values())
        return sorted((c.state() for c in conns), key=lambda s: s.address)

    def is_connected(self, peer: bytes) -> bool:
        with self._lock:
            return peer in self._connections

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is None or self._stopping:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed while we were stopping
            loop.call_soon_threadsafe(fn, *args)

    # -- on the loop thread ----------------------------------------------------------------
    def _recheck_peers(self) -> None:
        for conn in list(self._connections.values()):
            try:
                reason = self.allow.refusal(conn.address)
                if reason is None and conn.cert is not None:
                    check_organisation(conn.cert, conn.address, self.allow.org_of(conn.address), self._cas)
            except PeerRefused as exc:
                reason = str(exc)
            except Exception:  # a bug in the allowlist: keep the connection, say so
                log.exception("cannot recheck peer %s", conn.label())
                continue
            if reason is not None:
                log.warning("dropping peer %s: %s", conn.label(), reason)
                self._close(conn, reason)

    def _bad_message(self, peer: bytes, reason: str) -> None:
        conn = self._connections.get(peer)
        if conn is None or conn.closing:
            return
        conn.bad_messages += 1
        log.info("bad message from %s (%d so far): %s", conn.label(), conn.bad_messages, reason)
        self._penalise(conn, self.config.bad_message_penalty,
                       f"{conn.bad_messages} bad messages, the last: {reason}")

    def _penalise(self, conn: _Connection, points: float, reason: str) -> bool:
        """Add to the peer's (decaying) score; True if that disconnected it."""
        now = asyncio.get_running_loop().time()
        decayed = max(0.0, conn.score - self.config.peer_score_decay * (now - conn.score_at))
        conn.score, conn.score_at = decayed + points, now
        if conn.score < self.config.peer_score_limit:
            return False
        log.warning("dropping peer %s: misbehaviour score %.1f reached %g: %s", conn.label(), conn.score,
                    self.config.peer_score_limit, reason)
        self._close(conn, f"misbehaviour score reached {self.config.peer_score_limit:g}: {reason}")
        return True

    def _take_token(self, conn: _Connection) -> bool:
        """The message token bucket: False if this frame is over the peer's rate."""
        now = asyncio.get_running_loop().time()
        rate, burst = self.config.peer_message_rate, float(self.config.peer_message_burst)
        conn.tokens = min(burst, conn.tokens + rate * (now - conn.tokens_at))
        conn.tokens_at = now
        if conn.tokens >= 1.0:
            conn.tokens -= 1.0
            return True
        return False

    def _admission_problem(self, host: str) -> str | None:
        """Why an accepted TCP connection from `host` is over a budget, or None."""
        cfg = self.config
        if self._pending_total >= cfg.max_pending_handshakes:
            return (f"{self._pending_total} handshakes pending "
                    f"(max_pending_handshakes = {cfg.max_pending_handshakes})")
        pending = self._pending_by_ip.get(host, 0)
        if pending >= cfg.max_pending_handshakes_per_ip:
            return (f"{pending} handshakes pending from {host} "
                    f"(max_pending_handshakes_per_ip = {cfg.max_pending_handshakes_per_ip})")
        connections = self._inbound_by_ip.get(host, 0)
        if connections >= cfg.max_connections_per_ip:
            return (f"{connections} connections from {host} "
                    f"(max_connections_per_ip = {cfg.max_connections_per_ip})")
        return None

    def _handshake_done(self, host: str) -> None:
        self._pending_total -= 1
        left = self._pending_by_ip[host] - 1
        if left:
            self._pending_by_ip[host] = left
        else:
            del self._pending_by_ip[host]

    def _connection_gone(self, host: str) -> None:
        left = self._inbound_by_ip[host] - 1
        if left:
            self._inbound_by_ip[host] = left
        else:
            del self._inbound_by_ip[host]

    def _broadcast_frame(self, frame: bytes) -> None:
        for conn in list(self._connections.values()):
            self._enqueue(conn, frame)

    def _send_frame(self, peer: bytes, frame: bytes) -> None:
        conn = self._connections.get(peer)
        if conn is None:
            log.debug("not connected to 0x%s: frame dropped", peer.hex())
            return
        self._enqueue(conn, frame)

    def _our_status(self) -> Status:
        number, head_hash = self.head()
        return Status(self.config.chain_id, self.config.genesis_hash, number, head_hash,
                      self.config.address)

    def _announce_status(self) -> None:
        try:
            frame = encode_frame(Kind.STATUS, encode_status(self._our_status()))
        except Exception:
            log.exception("cannot build our STATUS")
            return
        self._broadcast_frame(frame)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval)
            self._announce_status()

    def _enqueue(self, conn: _Connection, frame: bytes) -> None:
        if conn.closing:
            return
        if (conn.queue.qsize() >= self.config.write_queue_frames
                or conn.queued_bytes + len(frame) > self.config.write_queue_bytes):
            log.warning("dropping peer %s: it does not read (%d frames, %d bytes queued)",
                        conn.label(), conn.queue.qsize(), conn.queued_bytes)
            self._close(conn, "write queue full: you do not read", abort=True)
            return
        conn.queue.put_nowait(frame)
        conn.queued_bytes += len(frame)

    def _close(self, conn: _Connection, reason: str | None, *, abort: bool = False) -> None:
        """Close a connection (with a DISCONNECT when there is a reason and it can be sent)."""
        if conn.closing:
            return
        conn.closing = True
        transport = conn.writer.transport
        if abort:
            transport.abort()
            return
        if reason is not None and not transport.is_closing():
            with contextlib.suppress(Exception):
                conn.writer.write(encode_frame(Kind.DISCONNECT, encode_disconnect(reason)))
        transport.close()
        # Closed from outside its read loop (a recheck, a score): end that loop now rather
        # than when the peer answers the TLS close.
        conn.reader.feed_eof()

    async def _write_loop(self, conn: _Connection) -> None:
        try:
            while True:
                frame = await conn.queue.get()
                conn.queued_bytes -= len(frame)
                if conn.closing:
                    return
                conn.writer.write(frame)
                await conn.writer.drain()
        except _CONNECTION_ERRORS as exc:
            if not conn.closing:
                log.info("connection to %s lost while writing: %s", conn.label(), describe_ssl_error(exc))
            self._close(conn, None, abort=True)

    # -- accepting -------------------------------------------------------------------------
    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        listener = self._listener
        assert listener is not None
        while not self._stopping:
            try:
                sock, peername = await loop.sock_accept(listener)
            except OSError as exc:
                if self._stopping:
                    return
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            host, port = peername[0], peername[1]
            problem = self._admission_problem(host)
            if problem is not None:
                # Before TLS: nothing to say DISCONNECT with; the close is the answer.
                log.warning("refused %s:%d: %s", host, port, problem)
                sock.close()
                continue
            self._pending_total += 1
            self._pending_by_ip[host] = self._pending_by_ip.get(host, 0) + 1
            self._inbound_by_ip[host] = self._inbound_by_ip.get(host, 0) + 1
            self._unowned.add(sock)
            self._spawn(self._accepted(sock, host, port))

    async def _accepted(self, sock: socket.socket, host: str, port: int) -> None:
        slot = _Slot(self, host)
        try:
            await self._accepted_session(sock, host, port, slot)
        finally:
            slot.release()
            self._connection_gone(host)

    async def _accepted_session(self, sock: socket.socket, host: str, port: int, slot: _Slot) -> None:
        self._unowned.discard(sock)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2 ** 16)
        protocol = asyncio.StreamReaderProtocol(reader)
        transport = None
        try:
            # connect_accepted_socket awaits the handshake and raises its error to us (a
            # TLS server made by asyncio.start_server would swallow it).
            transport, _ = await asyncio.wait_for(
                loop.connect_accepted_socket(lambda: protocol, sock, ssl=self._server_ctx,
                                             ssl_handshake_timeout=self.config.handshake_timeout),
                self.config.handshake_timeout + 1,
            )
        except (*_CONNECTION_ERRORS, ssl.SSLError) as exc:
            log.warning("refused %s:%d: %s", host, port, describe_ssl_error(exc))
            return
        finally:
            if transport is None:  # failed or cancelled: asyncio has let go of the socket
                sock.close()
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self._session(reader, writer, host, port, None, slot)

    # -- dialling --------------------------------------------------------------------------
    async def _dial_loop(self, peer: PeerInfo, defer: bool = False) -> None:
        backoff = self.config.backoff_initial
        while not self._stopping:
            if defer and peer.address not in self._connections:
                await asyncio.sleep(self.config.dial_grace)
            if self._refused_now(peer.address):
                # Not allowed now (a validator voted out, or not yet in): it would be
                # refused after the handshake; look again later.
                await asyncio.sleep(self.config.backoff_max)
                continue
            existing = self._connections.get(peer.address)
            if existing is not None:  # it dialled us (or a session is still closing)
                await existing.closed.wait()
                backoff = self.config.backoff_initial
            elif await self._dial(peer):
                backoff = self.config.backoff_initial
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.backoff_max)
                continue
            await asyncio.sleep(backoff)

    def _refused_now(self, address: bytes) -> bool:
        try:
            return self.allow.refusal(address) is not None
        except Exception:
            return False  # the handshake's check will log the bug

    async def _dial(self, peer: PeerInfo) -> bool:
        """One attempt: connect, handshake, run the session; True if the session was up."""
        timeout = self.config.handshake_timeout
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(peer.host, peer.port, ssl=self._client_ctx, server_hostname="",
                                        ssl_handshake_timeout=timeout, limit=2 ** 16),
                timeout + 1,
            )
        except (*_CONNECTION_ERRORS, ssl.SSLError) as exc:
            self._dial_failed(peer, describe_ssl_error(exc))
            return False
        return await self._session(reader, writer, peer.host, peer.port, peer)

    def _dial_failed(self, peer: PeerInfo, reason: str) -> None:
        # Once per distinct reason at WARNING; the retries every few seconds at DEBUG.
        level = logging.DEBUG if self._dial_errors.get(peer.address) == reason else logging.WARNING
        self._dial_errors[peer.address] = reason
        log.log(level, "cannot connect to %s at %s:%d: %s", peer.name, peer.host, peer.port, reason)

    # -- a session -------------------------------------------------------------------------
    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                       port: int, dialled: PeerInfo | None, slot: _Slot | None = None) -> bool:
        """Checks, STATUS exchange, then frames until the connection ends; True if it was up."""
        cert = read_peer_certificate(writer.get_extra_info("ssl_object"))
        conn = _Connection(reader, writer, host, port, dialled is not None, cert)
        registered = False
        try:
            try:
                await self._establish(conn, dialled)
            except _Refused as exc:
                self._refuse(conn, str(exc), dialled)
                return False
            except (*_CONNECTION_ERRORS, ssl.SSLError) as exc:
                reason = describe_ssl_error(exc)
                if dialled is not None and reason == "connection closed by the peer":
                    # TLS 1.3: a client learns that its certificate was refused only now.
                    reason += " before STATUS (did it refuse our certificate? see its log)"
                self._refuse(conn, reason, dialled, send=False)
                return False
            except Exception:  # a bug (e.g. in `allow` or `head`): this connection only
                log.exception("connection with %s failed", conn.where)
                self._close(conn, "internal error")
                return False
            registered = True
            if slot is not None:
                slot.release()  # the handshake is over: the connection counts per IP only
            self._dial_errors.pop(conn.address, None)
            log.info("connected to %s (%s)", conn.label(), "outbound" if conn.outbound else "inbound")
            writer_task = self._spawn(self._write_loop(conn))
            try:
                await self._read_loop(conn)
            finally:
                writer_task.cancel()
            return True
        finally:
            if registered:
                with self._lock:
                    if self._connections.get(conn.address) is conn:
                        del self._connections[conn.address]
            self._close(conn, None)
            conn.closed.set()
            # A TLS close waits for the peer's close_notify; do not wait long for it (and
            # when cancelled at shutdown, not at all).
            try:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)
            finally:
                writer.transport.abort()

    def _refuse(self, conn: _Connection, reason: str, dialled: PeerInfo | None, *, send: bool = True) -> None:
        if dialled is not None:
            self._dial_failed(dialled, reason)
        else:
            # Once per identity (or host) and reason at WARNING, repeats at DEBUG: a node
            # voted out redials every few seconds, forever.
            key = conn.cert.address if conn.cert is not None and conn.cert.address else conn.host
            level = logging.DEBUG if self._refusals.get(key) == reason else logging.WARNING
            if len(self._refusals) >= 4096:
                self._refusals.clear()  # bounded, whoever connects
            self._refusals[key] = reason
            log.log(level, "refused %s: %s", conn.where, reason)
        self._close(conn, reason if send else None)

    async def _establish(self, conn: _Connection, dialled: PeerInfo | None) -> None:
        try:
            conn.address = check_peer(conn.cert, self.allow, own=self.config.address,
                                      expected=dialled.address if dialled else None, cas=self._cas)
        except PeerRefused as exc:
            raise _Refused(str(exc)) from None
        if conn.address in self._connections:
            raise _Refused(f"already connected to 0x{conn.address.hex()}")
        static = self._static.get(conn.address)
        common_name = conn.cert.common_name if conn.cert is not None else None
        conn.name = dialled.name if dialled else static.name if static else common_name or ""
        conn.writer.write(encode_frame(Kind.STATUS, encode_status(self._our_status())))
        await conn.writer.drain()
        try:
            frame = await asyncio.wait_for(self._read_frame(conn), self.config.handshake_timeout)
        except P2PError as exc:
            raise _Refused(str(exc)) from None
        if frame.kind == Kind.DISCONNECT:
            raise _Refused(f"it disconnected: {decode_disconnect(frame.payload)}")
        if frame.kind != Kind.STATUS:
            raise _Refused(f"expected STATUS first, got {frame.kind.name}")
        status = self._check_status(conn, frame.payload, notify=False)
        if conn.address in self._connections:  # it connected another way while we talked
            raise _Refused(f"already connected to 0x{conn.address.hex()}")
        with self._lock:
            self._connections[conn.address] = conn
        now = asyncio.get_running_loop().time()
        conn.tokens, conn.tokens_at, conn.score_at = float(self.config.peer_message_burst), now, now
        # Registered: frames sent from here on reach the peer.
        self.dispatcher.call("on_connect", conn.address)
        self.dispatcher.call("on_status", conn.address, status)

    def _check_status(self, conn: _Connection, payload: bytes, *, notify: bool = True) -> Status:
        try:
            status = decode_status(payload)
        except P2PError as exc:
            raise _Refused(str(exc)) from None
        problem = status_problem(status, chain_id=self.config.chain_id,
                                 genesis_hash=self.config.genesis_hash, certified=conn.address)
        if problem is not None:
            raise _Refused(problem)
        conn.head_number = status.head_number
        if notify:
            self.dispatcher.call("on_status", conn.address, status)
        return status

    async def _read_frame(self, conn: _Connection) -> Frame:
        header = await conn.reader.readexactly(HEADER_SIZE)
        length = decode_length(header, self.config.max_frame_size)  # refused before the body
        return decode_body(await conn.reader.readexactly(length))

    async def _read_loop(self, conn: _Connection) -> None:
        while True:
            try:
                frame = await asyncio.wait_for(self._read_frame(conn), self.config.idle_timeout)
                if conn.closing:
                    return
                if frame.kind != Kind.DISCONNECT and not self._take_token(conn):
                    self._over_rate(conn)
                    if conn.closing:
                        return
                    continue
                await self._handle(conn, frame)
            except _Refused as exc:
                log.warning("dropping peer %s: %s", conn.label(), exc)
                self._close(conn, str(exc))
                return
            except FrameTooLarge as exc:
                log.warning("dropping peer %s: %s", conn.label(), exc)
                self._close(conn, str(exc))
                return
            except P2PError as exc:
                log.warning("dropping peer %s: bad frame: %s", conn.label(), exc)
                self._close(conn, f"bad frame: {exc}")
                return
            except TimeoutError:
                log.warning("dropping peer %s: silent for %.0f s", conn.label(), self.config.idle_timeout)
                self._close(conn, "idle")
                return
            except (*_CONNECTION_ERRORS, ssl.SSLError) as exc:
                if not conn.closing:
                    log.info("connection to %s lost: %s", conn.label(), describe_ssl_error(exc))
                return
            except Exception:  # a bug: drop this connection, keep the service
                log.exception("dropping peer %s: internal error", conn.label())
                self._close(conn, "internal error")
                return

    def _over_rate(self, conn: _Connection) -> None:
        """A frame over the peer's message rate: dropped, scored."""
        conn.dropped += 1
        if conn.dropped == 1 or conn.dropped % 1000 == 0:
            log.warning("peer %s sends more than %g messages a second: %d dropped so far",
                        conn.label(), self.config.peer_message_rate, conn.dropped)
        self._penalise(conn, self.config.dropped_message_penalty,
                       f"more than {self.config.peer_message_rate:g} messages a second "
                       f"({conn.dropped} dropped)")

    async def _handle(self, conn: _Connection, frame: Frame) -> None:
        kind, payload = frame.kind, frame.payload
        if kind == Kind.CONSENSUS:
            self.dispatcher.call("on_consensus", conn.address, payload)
        elif kind == Kind.TX:
            self.dispatcher.call("on_transaction", conn.address, payload)
        elif kind == Kind.STATUS:
            self._check_status(conn, payload)
        elif kind == Kind.GET_BLOCKS:
            from_height, count = decode_get_blocks(payload)
            blocks = await asyncio.to_thread(self.dispatcher.blocks_for, conn.address, from_height, count)
            self._enqueue(conn, encode_frame(Kind.BLOCKS, encode_blocks(blocks), self.config.max_frame_size))
        elif kind == Kind.BLOCKS:
            blocks = decode_blocks(payload)
            await asyncio.to_thread(self.dispatcher.call, "on_blocks", conn.address, blocks)
        elif kind == Kind.DISCONNECT:
            log.info("peer %s disconnected: %s", conn.label(), decode_disconnect(payload))
            self._close(conn, None)
            raise EOFError("disconnected by the peer")


__all__ = ["P2PConfig", "P2PService", "PeerInfo", "PeerState"]
