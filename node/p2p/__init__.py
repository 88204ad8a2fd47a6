"""Peer-to-peer: framed messages between nodes over mutually authenticated TLS 1.3.

    frames      the wire format (length-prefixed frames, STATUS/TX/CONSENSUS/GET_BLOCKS/
                BLOCKS/DISCONNECT payloads) and `P2PError`
    tls         SSL contexts from the consortium PKI, the post-handshake peer checks
    peers       PeerInfo, PeerState, the handler callbacks and the rules both transports share
    service     P2PService: asyncio in its own thread, listens, dials, dispatches
    memory      MemoryNetwork / MemoryTransport: the same interface without sockets
    transport   P2PTransport: node.runtime.Transport over either of them

Errors: `P2PError(NodeError)`, with `FrameTooLarge` and `PeerRefused` under it.
"""

from node.p2p.frames import MAX_FRAME_SIZE, PROTOCOL_VERSION, FrameTooLarge, Kind, P2PError, Status
from node.p2p.memory import MemoryNetwork, MemoryTransport
from node.p2p.peers import PeerInfo, PeerNetwork, PeerState
from node.p2p.service import P2PConfig, P2PService
from node.p2p.tls import PeerRefused, TlsIdentity
from node.p2p.transport import P2PTransport

__all__ = [
    "MAX_FRAME_SIZE", "PROTOCOL_VERSION", "FrameTooLarge", "Kind", "MemoryNetwork",
    "MemoryTransport", "P2PConfig", "P2PError", "P2PService", "P2PTransport", "PeerInfo",
    "PeerNetwork", "PeerRefused", "PeerState", "Status", "TlsIdentity",
]
