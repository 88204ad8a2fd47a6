"""QBFT messages: signed payloads, the justifications they carry, and their wire form.

Every message is an RLP list whose first item is the message code (Besu's QBFT codes):

    PROPOSAL     0x12  [code, signed(h, r, digest), block, [signed RC…], [signed PREPARE…]]
    PREPARE      0x13  [code, signed(h, r, digest)]
    COMMIT       0x14  [code, signed(h, r, digest, seal)]
    ROUND_CHANGE 0x15  [code, signed(h, r, [] | [prepared round, prepared digest]),
                        prepared block | b"", [signed PREPARE…]]

`signed(p)` is `[p, signature]`, the signature being secp256k1 over
keccak256(RLP([code, p])): the code is bound to the payload, so a PREPARE can never be
replayed as a COMMIT. Justifications (round changes, prepares) are individually signed
by their own authors and travel unsigned inside the outer message.

`digest` is the block's seal hash for the round (header with seals = [] and the round
set); a COMMIT's `seal` is a signature over that digest, which is exactly the commit seal
that goes into the final header.

Bytes from peers are decoded here and nowhere else, in two steps that raise only
`InvalidMessage`: `decode_envelope` reads the code and the outer signed payload and
recovers the author (a few hundred bytes; what the message carries stays bytes), and
`Envelope.open` decodes the block and the justifications, which `QbftNode` asks for
only once the author is a validator of the height (and, for a proposal, the proposer of
its round) within its budget. Every part goes through `rxledger.core.types.rlp_codec.decode_rlp`, with
a size and depth limit checked before anything descends into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import rlp

from rxledger.core.crypto import (
    decode_signature,
    encode_signature,
    keccak256,
    recover_address,
    sign_hash,
)
from rxledger.core.errors import InvalidBlock, NodeError
from rxledger.core.types.blocks import Block, decode_block, encode_block
from rxledger.core.types.rlp_codec import decode_rlp, decode_rlp_list_items, rlp_list

PROPOSAL = 0x12
PREPARE = 0x13
COMMIT = 0x14
ROUND_CHANGE = 0x15
CODE_NAMES = {PROPOSAL: "PROPOSAL", PREPARE: "PREPARE", COMMIT: "COMMIT", ROUND_CHANGE: "ROUND-CHANGE"}

# Signer-guard steps, in the order a validator signs them within one round.
STEP_ROUND_CHANGE = 0
STEP_PROPOSAL = 1
STEP_PREPARE = 2
STEP_COMMIT = 3
STEP_OF = {ROUND_CHANGE: STEP_ROUND_CHANGE, PROPOSAL: STEP_PROPOSAL, PREPARE: STEP_PREPARE, COMMIT: STEP_COMMIT}

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class InvalidMessage(NodeError):
    """A consensus message that is malformed or wrongly signed."""


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed payload: `code`, its RLP items, the signature and the recovered author."""

    code: int
    height: int
    round: int
    body: tuple[object, ...]  # the payload items after height and round
    signature: bytes
    author: bytes

    @property
    def digest(self) -> bytes:
        value = self.body[0]
        assert isinstance(value, bytes)
        return value

    def items(self) -> list[object]:
        return [[self.height, self.round, *self.body], self.signature]


def _payload_hash(code: int, payload: list[object]) -> bytes:
    return keccak256(rlp.encode([code, payload]))


def sign_payload(code: int, height: int, round_: int, body: tuple[object, ...], key: bytes,
                 author: bytes) -> Signed:
    """Sign (height, round, *body) under message code `code`."""
    unsigned = Signed(code, height, round_, body, b"", author)
    v, r, s = sign_hash(_payload_hash(code, [height, round_, *_wire_body(unsigned)]), key)
    return Signed(code, height, round_, body, encode_signature(v, r, s), author)


def _int(item: object, what: str) -> int:
    if not isinstance(item, bytes) or (item[:1] == b"\x00"):
        raise InvalidMessage(f"{what} is not a canonical integer")
    return int.from_bytes(item, "big")


def _bytes(item: object, what: str, length: int | None = None) -> bytes:
    if not isinstance(item, bytes) or (length is not None and len(item) != length):
        raise InvalidMessage(f"{what} must be {length} bytes" if length else f"{what} must be bytes")
    return item


def decode_signed(code: int, item: object) -> Signed:
    """Decode `[payload, signature]` under `code` and recover its author."""
    if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], list):
        raise InvalidMessage(f"{CODE_NAMES.get(code, code)}: signed payload must be [payload, signature]")
    payload, signature = item
    name = CODE_NAMES.get(code, f"message code {code}")
    if len(payload) < 3:
        raise InvalidMessage(f"{name}: payload too short")
    height = _int(payload[0], f"{name} height")
    round_ = _int(payload[1], f"{name} round")
    body: tuple[object, ...]
    if code in (PROPOSAL, PREPARE):
        if len(payload) != 3:
            raise InvalidMessage(f"{name}: payload must be [height, round, digest]")
        body = (_bytes(payload[2], f"{name} digest", 32),)
    elif code == COMMIT:
        if len(payload) != 4:
            raise InvalidMessage("COMMIT: payload must be [height, round, digest, seal]")
        body = (_bytes(payload[2], "COMMIT digest", 32), _bytes(payload[3], "COMMIT seal", 65))
    elif code == ROUND_CHANGE:
        if len(payload) != 3 or not isinstance(payload[2], list) or len(payload[2]) not in (0, 2):
            raise InvalidMessage("ROUND-CHANGE: payload must be [height, round, [] | [round, digest]]")
        prepared = payload[2]
        if prepared:
            body = ((_int(prepared[0], "prepared round"), _bytes(prepared[1], "prepared digest", 32)),)
        else:
            body = (None,)
    else:  # pragma: no cover - callers pass known codes
        raise InvalidMessage(f"unknown message code {code}")
    sig = _bytes(signature, f"{name} signature", 65)
    try:
        v, r, s = decode_signature(sig)
        wire_body: list[object] = list(payload[2:])
        author = recover_address(_payload_hash(code, [payload[0], payload[1], *wire_body]), v, r, s)
    except Exception as exc:
        raise InvalidMessage(f"{name}: bad signature ({exc})") from exc
    return Signed(code, height, round_, body, sig, author)


def prepared_of(signed: Signed) -> tuple[int, bytes] | None:
    """A ROUND-CHANGE's prepared (round, digest), or None."""
    value = signed.body[0]
    if value is None:
        return None
    assert isinstance(value, tuple)
    return cast(tuple[int, bytes], value)


def _wire_body(signed: Signed) -> list[object]:
    if signed.code == ROUND_CHANGE:
        prepared = prepared_of(signed)
        return [[] if prepared is None else [prepared[0], prepared[1]]]
    return list(signed.body)


def encode_signed(signed: Signed) -> list[object]:
    return [[signed.height, signed.round, *_wire_body(signed)], signed.signature]


@dataclass(frozen=True, slots=True)
class ProposalMsg:
    signed: Signed
    block: Block
    round_changes: tuple[Signed, ...]
    prepares: tuple[Signed, ...]


@dataclass(frozen=True, slots=True)
class PrepareMsg:
    signed: Signed


@dataclass(frozen=True, slots=True)
class CommitMsg:
    signed: Signed

    @property
    def seal(self) -> bytes:
        value = self.signed.body[1]
        assert isinstance(value, bytes)
        return value


@dataclass(frozen=True, slots=True)
class RoundChangeMsg:
    signed: Signed
    block: Block | None
    prepares: tuple[Signed, ...]

    @property
    def prepared(self) -> tuple[int, bytes] | None:
        return prepared_of(self.signed)


Message = ProposalMsg | PrepareMsg | CommitMsg | RoundChangeMsg


def encode_message(msg: Message) -> bytes:
    """Wire bytes of a message."""
    # The block goes in as its (cached) encoding, not decoded and re-encoded by pyrlp.
    if isinstance(msg, ProposalMsg):
        return rlp_list(rlp.encode(PROPOSAL) + rlp.encode(encode_signed(msg.signed))
                        + encode_block(msg.block)
                        + rlp.encode([encode_signed(s) for s in msg.round_changes])
                        + rlp.encode([encode_signed(s) for s in msg.prepares]))
    if isinstance(msg, RoundChangeMsg):
        block = encode_block(msg.block) if msg.block is not None else rlp.encode(b"")
        return rlp_list(rlp.encode(ROUND_CHANGE) + rlp.encode(encode_signed(msg.signed)) + block
                        + rlp.encode([encode_signed(s) for s in msg.prepares]))
    return rlp.encode([msg.signed.code, encode_signed(msg.signed)])


# Each part of a message is decoded on its own, with its own depth limit: the envelope
# (its top-level items' bounds only), the signed payload (depth 3: [[h, r, [pr, pd]],
# sig]), a block (`rxledger.core.types.blocks.BLOCK_DEPTH`), a justification (depth 4).
# A signed payload is [[height, round, digest | [round, digest], seal?], signature]: under
# 300 bytes with honest integers; this leaves room and refuses anything bigger unread.
MAX_SIGNED_BYTES = 1024
_EXPECTED_ITEMS = {PROPOSAL: 5, ROUND_CHANGE: 4, PREPARE: 2, COMMIT: 2}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message with only its code and outer signed payload decoded (author recovered).

    What it carries (a proposal's block, justifications) stays as bytes in `parts` until
    `open`: a node checks that the author may send this message at all before it spends
    anything on the rest (and a hostile block never reaches the block decoder unless a
    validator signed it)."""

    signed: Signed
    parts: tuple[bytes, ...]

    @property
    def code(self) -> int:
        return self.signed.code

    def open(self, max_justification: int | None = None) -> Message:
        """The whole message; raises `InvalidMessage`. A justification longer than
        `max_justification` signed payloads (the validator count) is refused unread."""
        code, signed = self.signed.code, self.signed
        if code == PREPARE:
            return PrepareMsg(signed)
        if code == COMMIT:
            return CommitMsg(signed)
        name = CODE_NAMES.get(code, f"message code {code}")
        try:
            if code == PROPOSAL:
                block = decode_block(self.parts[0])
                rcs = decode_justification(self.parts[1], ROUND_CHANGE, max_justification)
                prepares = decode_justification(self.parts[2], PREPARE, max_justification)
                return ProposalMsg(signed, block, rcs, prepares)
            block_or_none = None if self.parts[0] == b"\x80" else decode_block(self.parts[0])
            prepares = decode_justification(self.parts[1], PREPARE, max_justification)
            return RoundChangeMsg(signed, block_or_none, prepares)
        except InvalidBlock as exc:  # also a malformed transaction inside the block
            raise InvalidMessage(f"{name}: carried block is invalid: {exc}") from exc


def decode_envelope(data: bytes) -> Envelope:
    """Decode a message's code and outer signed payload and recover its author, leaving
    what it carries undecoded. Raises `InvalidMessage` (and nothing else) on any input."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        items = decode_rlp_list_items(data)
        if not items:
            raise InvalidMessage("a message must be an RLP list starting with its code")
        code_item = decode_rlp(items[0], max_depth=0)
    except rlp.exceptions.RLPException as exc:
        raise InvalidMessage(f"malformed RLP: {exc}") from exc
    assert isinstance(code_item, bytes)  # max_depth=0: no list
    code = int.from_bytes(code_item, "big") if code_item[:1] != b"\x00" else -1
    if _EXPECTED_ITEMS.get(code) != len(items):
        raise InvalidMessage(f"unknown message code 0x{code_item.hex()} or wrong number of items "
                             f"({len(items)})")
    try:
        signed_items = decode_rlp(items[1], max_depth=3, max_bytes=MAX_SIGNED_BYTES)
    except rlp.exceptions.RLPException as exc:
        raise InvalidMessage(f"{CODE_NAMES[code]}: malformed signed payload: {exc}") from exc
    return Envelope(decode_signed(code, signed_items), tuple(items[2:]))


def decode_message(data: bytes) -> Message:
    """Parse wire bytes, recovering every signature's author. Raises `InvalidMessage`
    (and nothing else) on any input."""
    return decode_envelope(data).open()


def decode_justification(data: bytes, code: int, limit: int | None) -> tuple[Signed, ...]:
    """An encoded list of signed payloads under `code`; raises `InvalidMessage`."""
    name = f"{CODE_NAMES[code]} justification"
    try:
        items = decode_rlp(data, max_depth=4)
    except rlp.exceptions.RLPException as exc:
        raise InvalidMessage(f"malformed {name}: {exc}") from exc
    if not isinstance(items, list):
        raise InvalidMessage(f"{name} must be a list")
    if limit is not None and len(items) > limit:
        raise InvalidMessage(f"{name} holds {len(items)} signed payloads, more than the {limit} validators")
    return tuple(decode_signed(code, item) for item in items)


def describe(msg: Message) -> str:
    """A short human-readable form for traces."""
    s = msg.signed
    name = CODE_NAMES[s.code]
    extra = ""
    if isinstance(msg, RoundChangeMsg) and msg.prepared is not None:
        extra = f" prepared=r{msg.prepared[0]}:{msg.prepared[1].hex()[:8]}"
    if isinstance(msg, ProposalMsg):
        extra = f" block={msg.block.hash.hex()[:8]} rcs={len(msg.round_changes)} prepares={len(msg.prepares)}"
    digest = "" if s.code == ROUND_CHANGE else f" {s.digest.hex()[:8]}"
    return f"{name} h{s.height} r{s.round}{digest}{extra}"
