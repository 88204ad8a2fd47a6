"""RLP for the hot paths and for untrusted bytes.

Encoding of byte strings and lists is written out for the hot paths (receipts, trie
nodes): pyrlp's sedes objects validate and dispatch per item and cost several times more;
results are byte-identical (checked against pyrlp in tests/unit/test_types.py).

Decoding of bytes from a peer, a client or a file is `decode_rlp` (below): one loop, size
and depth checked before anything descends, only `rlp.exceptions.RLPException` out.
"""

from __future__ import annotations

from typing import Any

import rlp as _pyrlp

_BYTE = tuple(bytes([i]) for i in range(256))  # one-byte prefixes, made once


def rlp_length(length: int, offset: int) -> bytes:
    """The length prefix of a string (offset 0x80) or list (0xC0) payload."""
    if length < 56:
        return _BYTE[offset + length]
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return _BYTE[offset + 55 + len(size)] + size


def rlp_bytes(value: bytes) -> bytes:
    """RLP of a byte string."""
    n = len(value)
    if n < 56:
        if n == 1 and value[0] < 0x80:
            return value
        return _BYTE[0x80 + n] + value
    return rlp_length(n, 0x80) + value


def rlp_int(value: int) -> bytes:
    """RLP of a non-negative integer (big-endian, no leading zeros; 0 is the empty string)."""
    if value == 0:
        return b"\x80"
    return rlp_bytes(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def rlp_list(payload: bytes) -> bytes:
    """RLP of a list whose items' encodings, concatenated, are `payload`."""
    return rlp_length(len(payload), 0xC0) + payload


# -- decoding untrusted bytes ---------------------------------------------------------------
# Every decoder of bytes from a peer, a client or a file goes through `decode_rlp` (or
# `decode_rlp_list_items`). Written out rather than calling `rlp.decode` because pyrlp's
# decoder recurses once per nesting level (150,000 nested lists raise RecursionError, and
# with py-evm's recursion limit of 100,000 overflow the C stack) and joins each list's encoding item by item, which
# is quadratic in a list's length (a 1 MB flat list took 10 s, 3 MB 109 s, measured here
# with pyrlp 5.0). This one is a single loop with an explicit stack: the nesting depth is checked
# as each list opens, before anything descends into it, and the work is linear in the
# input. It accepts exactly the canonical encodings strict pyrlp accepts and yields the
# same items (tests/unit/test_rlp_decode.py checks both with hypothesis); a sedes then
# deserializes the (bounded-depth) result as `rlp.decode(data, sedes)` would.

MAX_RLP_DEPTH = 64


class MalformedRLP(_pyrlp.exceptions.DecodingError):  # type: ignore[misc]
    """Bytes that are not canonical RLP, or exceed the caller's size or depth limit.

    A subclass of pyrlp's `DecodingError`, so code that catches `rlp.exceptions.RLPException`
    catches it too."""

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(message, data[:64])


class _Uint(_pyrlp.sedes.BigEndianInt):  # type: ignore[misc]
    """pyrlp's `big_endian_int` that refuses a list where an integer belongs (pyrlp reads
    an empty list as 0 and raises TypeError on any other list)."""

    def deserialize(self, serial: object) -> int:
        if not isinstance(serial, bytes):
            raise _pyrlp.exceptions.DeserializationError("expected an integer, got a list", serial)
        value: int = super().deserialize(serial)
        return value


uint = _Uint()


def _prefix(data: bytes, pos: int, limit: int) -> tuple[bool, int, int]:
    """(is_list, payload start, payload end) of the item at `pos`, which must end by `limit`."""
    b0 = data[pos]
    if b0 < 0x80:
        return False, pos, pos + 1
    if b0 < 0xB8:
        start, stop = pos + 1, pos + 1 + b0 - 0x80
        if stop > limit:
            raise MalformedRLP(f"a string at byte {pos} runs past the end of its list or input")
        if b0 == 0x81 and data[start] < 0x80:
            raise MalformedRLP(f"a single byte below 0x80 at byte {pos} is encoded as a string")
        return False, start, stop
    if b0 < 0xC0 or b0 >= 0xF8:
        size = b0 - (0xB7 if b0 < 0xC0 else 0xF7)
        start = pos + 1 + size
        if start > limit:
            raise MalformedRLP(f"the length of an item at byte {pos} runs past the end of its list or input")
        if data[pos + 1] == 0:
            raise MalformedRLP(f"the length of an item at byte {pos} starts with a zero byte")
        length = int.from_bytes(data[pos + 1:start], "big")
        if length < 56:
            raise MalformedRLP(f"a long-form length below 56 at byte {pos}")
        stop = start + length
        if stop > limit:
            raise MalformedRLP(f"an item at byte {pos} announces {length} bytes, more than its list or input holds")
        return b0 >= 0xF8, start, stop
    start, stop = pos + 1, pos + 1 + b0 - 0xC0
    if stop > limit:
        raise MalformedRLP(f"a list at byte {pos} runs past the end of its list or input")
    return True, start, stop


def decode_rlp(data: bytes, sedes: object = None, *, max_depth: int = MAX_RLP_DEPTH,
               max_bytes: int | None = None) -> Any:
    """Decode one canonical RLP item (nested lists of byte strings), as strict
    `rlp.decode(data, sedes)`, refusing more than `max_bytes` bytes or lists nested more
    than `max_depth` deep. Raises only `rlp.exceptions.RLPException` (`MalformedRLP` for
    the structure, pyrlp's `DeserializationError` for the sedes)."""
    data = bytes(data)
    n = len(data)
    if max_bytes is not None and n > max_bytes:
        raise MalformedRLP(f"{n} bytes exceed the limit of {max_bytes}")
    if not n:
        raise MalformedRLP("empty input")
    root: list[object] = []
    stack: list[tuple[list[object], int]] = [(root, n)]
    pos = 0
    while True:
        container, limit = stack[-1]
        is_list, start, stop = _prefix(data, pos, limit)
        if is_list:
            if len(stack) > max_depth:
                raise MalformedRLP(f"lists nested more than {max_depth} deep")
            child: list[object] = []
            container.append(child)
            stack.append((child, stop))
            pos = start
        else:
            container.append(data[start:stop])
            pos = stop
        while len(stack) > 1 and pos == stack[-1][1]:
            stack.pop()
        if len(stack) == 1:
            break
    if pos != n:
        raise MalformedRLP(f"{n - pos} bytes after the end of the item")
    item = root[0]
    return item if sedes is None else deserialize(item, sedes)


def deserialize(item: object, sedes: object) -> Any:
    """`sedes.deserialize(item)` for an item from `decode_rlp`: raises only
    `rlp.exceptions.RLPException`."""
    try:
        return sedes.deserialize(item)  # type: ignore[attr-defined]
    except _pyrlp.exceptions.RLPException:
        raise
    except (TypeError, ValueError, IndexError, AttributeError) as exc:  # a sedes surprised
        raise MalformedRLP(f"does not fit the expected structure: {exc}") from exc


def decode_rlp_list_items(data: bytes, *, max_bytes: int | None = None) -> list[bytes]:
    """The encodings of the items of one RLP list, each validated only as far as its own
    length prefix (their contents are decoded later, by whoever needs them): how a consensus
    message's envelope is read without decoding the block it carries."""
    data = bytes(data)
    n = len(data)
    if max_bytes is not None and n > max_bytes:
        raise MalformedRLP(f"{n} bytes exceed the limit of {max_bytes}")
    if not n:
        raise MalformedRLP("empty input")
    is_list, pos, end = _prefix(data, 0, n)
    if not is_list:
        raise MalformedRLP("expected an RLP list, got a byte string")
    if end != n:
        raise MalformedRLP(f"{n - end} bytes after the end of the list")
    items = []
    while pos < end:
        _is_list, _start, stop = _prefix(data, pos, end)
        items.append(data[pos:stop])
        pos = stop
    return items
