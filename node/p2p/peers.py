"""What both transports share: peer descriptions, handler callbacks and the frame rules.

`P2PService` (TLS) and `MemoryTransport` (in-memory) take the same handlers and apply
the same rules through `Dispatcher`: which STATUS is acceptable, how GET_BLOCKS is
answered (at most `max_blocks_per_frame` blocks, within the frame cap), and that a
failing handler is logged and never breaks the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Protocol

from node.p2p.frames import MAX_FRAME_SIZE, PROTOCOL_VERSION, Kind, Status

log = logging.getLogger("rxledger.p2p")

OnConsensus = Callable[[bytes, bytes], None]
"""(peer address, QBFT message bytes)."""
OnTransaction = Callable[[bytes, bytes], None]
"""(peer address, raw signed transaction)."""
OnGetBlocks = Callable[[bytes, int, int], list[bytes]]
"""(peer address, from_height, count) → encoded blocks from `from_height` on, at most count."""
OnBlocks = Callable[[bytes, list[bytes]], None]
"""(peer address, encoded blocks)."""
OnStatus = Callable[[bytes, Status], None]
"""(peer address, its STATUS): on connect and whenever it re-announces its head."""
OnConnect = Callable[[bytes], None]
"""(peer address): a connection with that peer is up (again); frames sent now reach it."""


@dataclass(frozen=True, kw_only=True)
class P2PBudgets:
    """What one remote host or one peer may cost a node (fields of `P2PConfig`; node.toml
    [p2p] may set each). Beside each, what geth, Besu and CometBFT do.

    max_pending_handshakes (64): TCP connections accepted whose TLS handshake and STATUS
        exchange have not finished, in total; more are closed at once. geth:
        `MaxPendingPeers` (default 50); CometBFT: none (`handshake_timeout` 20 s only);
        Besu: none (Netty's backlog).
    max_pending_handshakes_per_ip (16): the same, from one remote IP address. geth: an
        inbound-connection throttle per IP (one attempt per 30 s, loopback exempt);
        CometBFT, Besu: none.
    max_connections_per_ip (32): connections from one remote IP address, pending and
        established. CometBFT: `allow_duplicate_ip = false` (one per IP) in production;
        geth, Besu: none (a consortium runs several nodes per host, hence 32).
    peer_message_rate (1000 per second) and peer_message_burst (4000): a token bucket per
        connection; a frame beyond it is dropped (DISCONNECT frames excepted) and scores
        `dropped_message_penalty`. CometBFT: `recv_rate` 5,120,000 bytes/s per
        connection (it throttles the reader); geth: none per peer (its tx fetcher caps
        4096 announcements per peer); Besu: none.
    peer_score_limit (100), bad_message_penalty (10), dropped_message_penalty (0.1),
        peer_score_decay (1 per second): a peer's misbehaviour score, which decays
        linearly; reaching the limit disconnects it with the reason. A bad message is one
        the layers above could not decode or refused as invalid (`bad_message`):
        ten to eleven within seconds disconnect; a flood must drop about 1,000 frames. Frames the p2p
        layer cannot even frame (oversized, unknown type, malformed STATUS, GET_BLOCKS or
        BLOCKS) disconnect at once, as in geth and CometBFT (`StopPeerForError`), since
        the protocol itself is broken. geth, CometBFT: no score (disconnect on the first
        error); Besu: a reputation (`PeerReputation`, disconnect at -100 with -10 for
        useless responses and -50 for timeouts).
    """

    max_pending_handshakes: int = 64
    max_pending_handshakes_per_ip: int = 16
    max_connections_per_ip: int = 32
    peer_message_rate: float = 1000.0
    peer_message_burst: int = 4000
    peer_score_limit: float = 100.0
    bad_message_penalty: float = 10.0
    dropped_message_penalty: float = 0.1
    peer_score_decay: float = 1.0

    @classmethod
    def defaults(cls) -> dict[str, int | float]:
        """Every budget's name and default."""
        return {f.name: f.default for f in fields(cls)}  # type: ignore[misc]


@dataclass(frozen=True)
class PeerInfo:
    """A static peer from the node's config."""

    name: str
    address: bytes
    host: str
    port: int


@dataclass(frozen=True)
class PeerState:
    """A connected peer, as `rxledger node status` shows it."""

    address: bytes
    name: str
    head_number: int
    host: str
    port: int
    outbound: bool

    def as_json(self) -> dict[str, object]:
        return {"address": "0x" + self.address.hex(), "name": self.name,
                "head": self.head_number, "host": self.host, "port": self.port,
                "endpoint": f"{self.host}:{self.port}",
                "direction": "outbound" if self.outbound else "inbound"}


class PeerNetwork(Protocol):
    """The interface of both transports (`P2PService`, `MemoryTransport`)."""

    def broadcast(self, kind: Kind, data: bytes) -> None: ...

    def send(self, peer: bytes, kind: Kind, data: bytes) -> None: ...

    def connected_peers(self) -> list[PeerState]: ...


@dataclass(frozen=True)
class Handlers:
    on_consensus: OnConsensus | None = None
    on_transaction: OnTransaction | None = None
    on_get_blocks: OnGetBlocks | None = None
    on_blocks: OnBlocks | None = None
    on_status: OnStatus | None = None
    on_connect: OnConnect | None = None


def status_problem(status: Status, *, chain_id: int, genesis_hash: bytes,
                   certified: bytes | None) -> str | None:
    """Why a peer's STATUS is refused, or None. `certified`: the address its cert binds."""
    if status.protocol_version != PROTOCOL_VERSION:
        return f"protocol version {status.protocol_version}, ours is {PROTOCOL_VERSION}"
    if status.chain_id != chain_id:
        return f"chain id {status.chain_id}, ours is {chain_id}"
    if status.genesis_hash != genesis_hash:
        return f"genesis hash 0x{status.genesis_hash.hex()}, ours is 0x{genesis_hash.hex()}"
    if certified is not None and status.node_address != certified:
        return (f"status address 0x{status.node_address.hex()} differs from the certificate's "
                f"0x{certified.hex()}")
    return None


def fit_blocks(blocks: Sequence[bytes], max_count: int, max_frame_size: int = MAX_FRAME_SIZE) -> list[bytes]:
    """The longest prefix of `blocks` (at most `max_count`) whose BLOCKS frame fits the cap."""
    out: list[bytes] = []
    budget = max_frame_size - 1 - 9  # the type byte and the RLP list prefix (at most 9 bytes)
    for block in blocks[:max_count]:
        cost = len(block) + (1 if len(block) < 56 else 1 + (len(block).bit_length() + 7) // 8)
        if cost > budget:
            if not out:
                log.warning("block of %d bytes does not fit a %d-byte frame", len(block), max_frame_size)
            break
        out.append(block)
        budget -= cost
    return out


class Dispatcher:
    """Runs the handler for a frame; a failing handler is logged, never raised."""

    def __init__(self, handlers: Handlers, *, max_blocks_per_frame: int, max_frame_size: int) -> None:
        self.handlers = handlers
        self.max_blocks_per_frame = max_blocks_per_frame
        self.max_frame_size = max_frame_size

    def call(self, name: str, peer: bytes, *args: object) -> object:
        handler = getattr(self.handlers, name)
        if handler is None:
            return None
        try:
            return handler(peer, *args)
        except Exception:
            log.exception("%s handler failed on a frame from 0x%s", name, peer.hex())
            return None

    def blocks_for(self, peer: bytes, from_height: int, count: int) -> list[bytes]:
        """The answer to GET_BLOCKS: never more than the cap allows, [] when the handler fails."""
        count = min(count, self.max_blocks_per_frame)
        if count == 0:
            return []
        blocks = self.call("on_get_blocks", peer, from_height, count)
        if not isinstance(blocks, list):
            return []
        return fit_blocks(blocks, count, self.max_frame_size)


__all__ = [
    "Dispatcher", "P2PBudgets", "Handlers", "OnBlocks", "OnConnect", "OnConsensus", "OnGetBlocks", "OnStatus", "OnTransaction",
    "PeerInfo", "PeerNetwork", "PeerState", "fit_blocks", "status_problem",
]
