"""RLP encoding of byte strings and lists, written out for the hot paths (receipts, trie
nodes). pyrlp's sedes objects validate and dispatch per item and cost several times
more; results are byte-identical (checked against pyrlp in tests/unit/test_types.py)."""

from __future__ import annotations

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
