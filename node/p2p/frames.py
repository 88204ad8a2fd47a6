"""The p2p wire format: length-prefixed frames and the payload of each frame type.

A frame on the (TLS) stream is

    length (4 bytes, big-endian) ‖ type (1 byte) ‖ payload

where `length` counts the type byte and the payload. A frame whose announced length is
zero or above the cap (`MAX_FRAME_SIZE`, 8 MiB by default) is refused from its header
alone, before its body is read.

    STATUS      0x01  RLP[chain_id, genesis_hash, head_number, head_hash, node_address,
                          protocol_version]
    TX          0x02  one raw signed transaction
    CONSENSUS   0x03  one QBFT message
    GET_BLOCKS  0x04  RLP[from_height, count]
    BLOCKS      0x05  RLP[block…], each item the bytes of `rxledger.core.types.blocks.encode_block`
                      (a byte string, so the block bytes travel as they were encoded)
    DISCONNECT  0x06  a UTF-8 reason

Every decoder raises `P2PError` with a message a person can read on malformed input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import rlp

from rxledger.core.errors import NodeError
from rxledger.core.types.rlp_codec import decode_rlp

MAX_FRAME_SIZE = 8 * 1024 * 1024
PROTOCOL_VERSION = 1
HEADER_SIZE = 4


class P2PError(NodeError):
    """A peer sent something the protocol does not allow (or we were asked to)."""


class FrameTooLarge(P2PError):
    """A frame announces (or would need) more bytes than the cap."""


class Kind(IntEnum):
    STATUS = 0x01
    TX = 0x02
    CONSENSUS = 0x03
    GET_BLOCKS = 0x04
    BLOCKS = 0x05
    DISCONNECT = 0x06


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    payload: bytes


@dataclass(frozen=True, slots=True)
class Status:
    """What a node says about itself when a connection opens (and again as its head moves)."""

    chain_id: int
    genesis_hash: bytes
    head_number: int
    head_hash: bytes
    node_address: bytes
    protocol_version: int = PROTOCOL_VERSION


# -- frames -------------------------------------------------------------------------------
def encode_frame(kind: Kind, payload: bytes, max_size: int = MAX_FRAME_SIZE) -> bytes:
    """The bytes of one frame; raises `FrameTooLarge` above `max_size`."""
    length = 1 + len(payload)
    if length > max_size:
        raise FrameTooLarge(f"a {kind.name} frame of {length} bytes exceeds the {max_size}-byte cap")
    return length.to_bytes(HEADER_SIZE, "big") + bytes([kind]) + payload


def decode_length(header: bytes, max_size: int = MAX_FRAME_SIZE) -> int:
    """The body length a 4-byte frame header announces; refused if zero or above the cap."""
    if len(header) != HEADER_SIZE:
        raise P2PError(f"a frame header is {HEADER_SIZE} bytes, got {len(header)}")
    length = int.from_bytes(header, "big")
    if length == 0:
        raise P2PError("empty frame (no type byte)")
    if length > max_size:
        raise FrameTooLarge(f"frame of {length} bytes announced, the cap is {max_size}")
    return length


def decode_body(body: bytes) -> Frame:
    """A frame from its body (type byte ‖ payload); raises on an unknown type."""
    if not body:
        raise P2PError("empty frame (no type byte)")
    try:
        kind = Kind(body[0])
    except ValueError:
        raise P2PError(f"unknown frame type 0x{body[0]:02x}") from None
    return Frame(kind, bytes(body[1:]))


def decode_frames(buffer: bytes, max_size: int = MAX_FRAME_SIZE) -> tuple[list[Frame], bytes]:
    """Every complete frame at the start of `buffer`, and the bytes left over."""
    frames: list[Frame] = []
    at = 0
    while len(buffer) - at >= HEADER_SIZE:
        length = decode_length(buffer[at:at + HEADER_SIZE], max_size)
        end = at + HEADER_SIZE + length
        if end > len(buffer):
            break
        frames.append(decode_body(buffer[at + HEADER_SIZE:end]))
        at = end
    return frames, bytes(buffer[at:])


# -- payloads -----------------------------------------------------------------------------
def _rlp_list(data: bytes, what: str, size: int | None = None) -> list[object]:
    # Every payload is a flat list. Depth 2 lets a list where a field belongs be named as
    # such; anything deeper is refused as it opens (decode_rlp).
    try:
        items = decode_rlp(data, max_depth=2)
    except rlp.exceptions.RLPException as exc:
        raise P2PError(f"malformed {what}: {exc}") from exc
    if not isinstance(items, list):
        raise P2PError(f"malformed {what}: expected an RLP list")
    if size is not None and len(items) != size:
        raise P2PError(f"malformed {what}: expected {size} fields, got {len(items)}")
    return items


def _uint(item: object, what: str) -> int:
    if not isinstance(item, bytes):
        raise P2PError(f"malformed {what}: expected an integer, got a list")
    if item[:1] == b"\x00":
        raise P2PError(f"malformed {what}: integer with leading zero bytes")
    return int.from_bytes(item, "big")


def _fixed(item: object, size: int, what: str) -> bytes:
    if not isinstance(item, bytes) or len(item) != size:
        got = "a list" if not isinstance(item, bytes) else f"{len(item)} bytes"
        raise P2PError(f"malformed {what}: expected {size} bytes, got {got}")
    return item


def encode_status(status: Status) -> bytes:
    data: bytes = rlp.encode([status.chain_id, status.genesis_hash, status.head_number,
                              status.head_hash, status.node_address, status.protocol_version])
    return data


def decode_status(data: bytes) -> Status:
    chain_id, genesis, number, head, address, version = _rlp_list(data, "STATUS", 6)
    return Status(
        chain_id=_uint(chain_id, "STATUS chain id"),
        genesis_hash=_fixed(genesis, 32, "STATUS genesis hash"),
        head_number=_uint(number, "STATUS head number"),
        head_hash=_fixed(head, 32, "STATUS head hash"),
        node_address=_fixed(address, 20, "STATUS node address"),
        protocol_version=_uint(version, "STATUS protocol version"),
    )


def encode_get_blocks(from_height: int, count: int) -> bytes:
    if from_height < 0 or count < 0:
        raise P2PError("GET_BLOCKS takes non-negative integers")
    data: bytes = rlp.encode([from_height, count])
    return data


def decode_get_blocks(data: bytes) -> tuple[int, int]:
    """(from_height, count)."""
    start, count = _rlp_list(data, "GET_BLOCKS", 2)
    return _uint(start, "GET_BLOCKS from height"), _uint(count, "GET_BLOCKS count")


def encode_blocks(blocks: Sequence[bytes]) -> bytes:
    data: bytes = rlp.encode(list(blocks))
    return data


def decode_blocks(data: bytes) -> list[bytes]:
    items = _rlp_list(data, "BLOCKS")
    for index, item in enumerate(items):
        if not isinstance(item, bytes) or not item:
            raise P2PError(f"malformed BLOCKS: item {index} is not the bytes of a block")
    return [item for item in items if isinstance(item, bytes)]


def encode_disconnect(reason: str) -> bytes:
    return reason.encode("utf-8")[:1024]


def decode_disconnect(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


__all__ = [
    "HEADER_SIZE", "MAX_FRAME_SIZE", "PROTOCOL_VERSION", "Frame", "FrameTooLarge", "Kind",
    "P2PError", "Status", "decode_blocks", "decode_body", "decode_disconnect", "decode_frames",
    "decode_get_blocks", "decode_length", "decode_status", "encode_blocks", "encode_disconnect",
    "encode_frame", "encode_get_blocks", "encode_status",
]
