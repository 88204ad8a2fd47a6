"""node.p2p.frames: the frame codec and every payload, round trips and refusals of garbage."""

from __future__ import annotations

import pytest
import rlp
from hypothesis import given
from hypothesis import strategies as st

from node.p2p.frames import (
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    Frame,
    FrameTooLarge,
    Kind,
    P2PError,
    Status,
    decode_blocks,
    decode_body,
    decode_disconnect,
    decode_frames,
    decode_get_blocks,
    decode_length,
    decode_status,
    encode_blocks,
    encode_disconnect,
    encode_frame,
    encode_get_blocks,
    encode_status,
)
from node.p2p.peers import fit_blocks
from rxledger.core.errors import NodeError

kinds = st.sampled_from(list(Kind))
payloads = st.binary(max_size=2048)
uints = st.integers(min_value=0, max_value=2**256 - 1)
statuses = st.builds(
    Status, chain_id=uints, genesis_hash=st.binary(min_size=32, max_size=32), head_number=uints,
    head_hash=st.binary(min_size=32, max_size=32), node_address=st.binary(min_size=20, max_size=20),
    protocol_version=st.integers(min_value=0, max_value=2**32),
)


def test_frame_layout() -> None:
    assert encode_frame(Kind.TX, b"abc") == b"\x00\x00\x00\x04\x02abc"
    assert encode_frame(Kind.DISCONNECT, b"") == b"\x00\x00\x00\x01\x06"
    assert decode_frames(b"\x00\x00\x00\x04\x03xyz") == ([Frame(Kind.CONSENSUS, b"xyz")], b"")


@given(st.lists(st.tuples(kinds, payloads), max_size=8), st.data())
def test_frames_round_trip_in_any_split(frames: list[tuple[Kind, bytes]], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(k, p) for k, p in frames)
    cut = data.draw(st.integers(min_value=0, max_value=len(stream)))
    first, rest = decode_frames(stream[:cut])
    second, left = decode_frames(rest + stream[cut:])
    assert left == b""
    assert [(f.kind, f.payload) for f in first + second] == frames


@given(kinds, payloads)
def test_one_frame_round_trips_through_header_and_body(kind: Kind, payload: bytes) -> None:
    frame = encode_frame(kind, payload)
    length = decode_length(frame[:HEADER_SIZE])
    assert length == len(frame) - HEADER_SIZE
    assert decode_body(frame[HEADER_SIZE:]) == Frame(kind, payload)


def test_the_cap_is_checked_from_the_header_alone() -> None:
    assert decode_length((MAX_FRAME_SIZE).to_bytes(4, "big")) == MAX_FRAME_SIZE
    with pytest.raises(FrameTooLarge, match="frame of 8388609 bytes announced, the cap is 8388608"):
        decode_length((MAX_FRAME_SIZE + 1).to_bytes(4, "big"))
    with pytest.raises(FrameTooLarge):
        decode_frames(b"\xff\xff\xff\xff")  # refused without the body
    with pytest.raises(FrameTooLarge, match="exceeds the 16-byte cap"):
        encode_frame(Kind.TX, b"x" * 16, max_size=16)
    assert len(encode_frame(Kind.TX, b"x" * 15, max_size=16)) == 20
    assert issubclass(FrameTooLarge, P2PError) and issubclass(P2PError, NodeError)


@pytest.mark.parametrize(("data", "message"), [
    (b"\x00\x00\x00\x00", "empty frame"),
    (b"\x00\x00\x00\x02\x00x", "unknown frame type 0x00"),
    (b"\x00\x00\x00\x01\x07", "unknown frame type 0x07"),
    (b"\x00\x00\x00\x01\xff", "unknown frame type 0xff"),
])
def test_garbage_frames_are_refused_readably(data: bytes, message: str) -> None:
    with pytest.raises(P2PError, match=message):
        decode_frames(data)


def test_incomplete_frames_wait_for_more() -> None:
    frame = encode_frame(Kind.TX, b"abcdef")
    for cut in range(len(frame)):
        assert decode_frames(frame[:cut]) == ([], frame[:cut])
    with pytest.raises(P2PError, match="header is 4 bytes"):
        decode_length(b"\x00\x01")


@given(statuses)
def test_status_round_trip(status: Status) -> None:
    assert decode_status(encode_status(status)) == status


def test_status_defaults_to_our_protocol_version() -> None:
    status = Status(2024, b"\x01" * 32, 5, b"\x02" * 32, b"\x03" * 20)
    assert status.protocol_version == PROTOCOL_VERSION
    assert rlp.decode(encode_status(status)) == [b"\x07\xe8", b"\x01" * 32, b"\x05", b"\x02" * 32,
                                                 b"\x03" * 20, b"\x01"]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "malformed STATUS"),
    (b"\x80", "expected an RLP list"),
    (rlp.encode([1, 2, 3]), "expected 6 fields, got 3"),
    (rlp.encode([1, b"\x01" * 31, 0, b"\x02" * 32, b"\x03" * 20, 1]), "genesis hash: expected 32 bytes, got 31"),
    (rlp.encode([1, b"\x01" * 32, 0, b"\x02" * 32, b"\x03" * 19, 1]), "node address: expected 20 bytes, got 19"),
    (rlp.encode([[1], b"\x01" * 32, 0, b"\x02" * 32, b"\x03" * 20, 1]), "chain id: expected an integer"),
    (rlp.encode([b"\x00\x01", b"\x01" * 32, 0, b"\x02" * 32, b"\x03" * 20, 1]), "leading zero"),
    (rlp.encode([1, [b"x"], 0, b"\x02" * 32, b"\x03" * 20, 1]), "genesis hash: expected 32 bytes, got a list"),
    (rlp.encode([1, b"\x01" * 32, 0, b"\x02" * 32, b"\x03" * 20, 1]) + b"junk", "malformed STATUS"),
])
def test_malformed_status_is_refused_readably(data: bytes, message: str) -> None:
    with pytest.raises(P2PError, match=message):
        decode_status(data)


@given(uints, uints)
def test_get_blocks_round_trip(start: int, count: int) -> None:
    assert decode_get_blocks(encode_get_blocks(start, count)) == (start, count)


def test_get_blocks_refusals() -> None:
    with pytest.raises(P2PError, match="expected 2 fields"):
        decode_get_blocks(rlp.encode([1]))
    with pytest.raises(P2PError, match="non-negative"):
        encode_get_blocks(-1, 3)


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=20))
def test_blocks_round_trip(blocks: list[bytes]) -> None:
    assert decode_blocks(encode_blocks(blocks)) == blocks


def test_blocks_refusals() -> None:
    with pytest.raises(P2PError, match="item 1 is not the bytes of a block"):
        decode_blocks(rlp.encode([b"block", [b"nested"]]))
    with pytest.raises(P2PError, match="item 0"):
        decode_blocks(rlp.encode([b""]))
    with pytest.raises(P2PError, match="expected an RLP list"):
        decode_blocks(rlp.encode(b"not a list"))


@given(st.text(max_size=300))
def test_disconnect_round_trip(reason: str) -> None:
    assert decode_disconnect(encode_disconnect(reason)) == reason


def test_disconnect_reasons_are_bounded_and_never_fail_to_decode() -> None:
    assert len(encode_disconnect("x" * 5000)) == 1024
    assert decode_disconnect(b"\xff\xfeok") == "\ufffd\ufffdok"


@given(st.binary(max_size=200))
def test_decoders_raise_only_p2p_errors_on_arbitrary_bytes(data: bytes) -> None:
    for decode in (decode_status, decode_get_blocks, decode_blocks, decode_frames, decode_body):
        try:
            decode(data)  # type: ignore[operator]
        except P2PError:
            pass


def test_fit_blocks_keeps_the_count_and_the_frame_cap() -> None:
    blocks = [bytes([n]) * 1000 for n in range(10)]
    assert fit_blocks(blocks, 3) == blocks[:3]
    fitted = fit_blocks(blocks, 10, max_frame_size=4096)
    assert fitted == blocks[:4]
    assert len(encode_frame(Kind.BLOCKS, encode_blocks(fitted), max_size=4096)) <= 4096 + HEADER_SIZE
    assert fit_blocks([b"x" * 5000], 1, max_frame_size=4096) == []


@given(st.lists(st.binary(min_size=1, max_size=600), max_size=30), st.integers(min_value=64, max_value=4096))
def test_fitted_blocks_always_encode_within_the_cap(blocks: list[bytes], cap: int) -> None:
    fitted = fit_blocks(blocks, 128, max_frame_size=cap)
    assert fitted == blocks[:len(fitted)]
    encode_frame(Kind.BLOCKS, encode_blocks(fitted), max_size=cap)  # does not raise
