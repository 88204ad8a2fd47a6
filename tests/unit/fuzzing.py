"""Hypothesis settings and mutation strategies shared by the decode-boundary fuzz tests.

The suite runs a few dozen examples per property (fast). A long run multiplies them:

    RXLEDGER_FUZZ=long .venv/bin/pytest -q tests/unit/test_rlp_decode.py \
        tests/unit/test_decode_boundaries.py tests/unit/test_rpc_decode.py \
        tests/sim/test_hostile_messages.py

(`RXLEDGER_FUZZ_FACTOR=N` sets the multiplier; default 20 for `long`: 29 properties and
examples, about 4 minutes on two busy cores; factor 100, about 15.)
"""

from __future__ import annotations

import os
from typing import Any

import rlp
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ_ENV = "RXLEDGER_FUZZ"


def fuzz_factor() -> int:
    if os.environ.get(FUZZ_ENV, "") != "long":
        return 1
    return int(os.environ.get("RXLEDGER_FUZZ_FACTOR", "20"))


def fuzz(examples: int) -> settings:
    """Settings for a fuzz property: `examples` in the suite, × the factor in a long run."""
    return settings(
        max_examples=examples * fuzz_factor(), deadline=None, derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],
    )


# -- byte mutations ----------------------------------------------------------------------------
_SPECIAL = [0x00, 0x01, 0x7F, 0x80, 0x81, 0xB7, 0xB8, 0xB9, 0xBF, 0xC0, 0xC1, 0xF7, 0xF8, 0xF9, 0xFF]


@st.composite
def mutated_bytes(draw: Any, payload: bytes, others: tuple[bytes, ...] = ()) -> bytes:
    """`payload` with 1-4 byte-level mutations: bit flips, special bytes, inserts,
    deletes, truncation, extension, and splices of another encoding's bytes."""
    data = bytearray(payload)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from(_SPECIAL))
        elif kind == "insert":
            data.insert(at, draw(st.sampled_from(_SPECIAL)))
        elif kind == "delete" and data:
            del data[at]
        elif kind == "truncate":
            del data[at:]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=4))
        elif kind == "splice":
            source = draw(st.sampled_from(others)) if others else bytes(data)
            if source:
                a = draw(st.integers(0, len(source) - 1))
                b = draw(st.integers(a, min(len(source), a + 64)))
                data[at:at + draw(st.integers(0, 8))] = source[a:b]
    return bytes(data)


def _nodes(tree: Any, path: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    out = [path]
    if isinstance(tree, list):
        for i, child in enumerate(tree):
            out += _nodes(child, (*path, i))
    return out


def _get(tree: Any, path: tuple[int, ...]) -> Any:
    for i in path:
        tree = tree[i]
    return tree


def _set(tree: Any, path: tuple[int, ...], value: Any) -> Any:
    if not path:
        return value
    _get(tree, path[:-1])[path[-1]] = value
    return tree


@st.composite
def mutated_tree(draw: Any, payload: bytes) -> bytes:
    """`payload` (canonical RLP) decoded, 1-3 items of its tree swapped for another type or
    shape (a byte string for a list and back, wrong lengths, non-canonical integers,
    dropped or duplicated items, deep nesting), and encoded again."""
    type_byte = b""
    if payload[:1] and payload[0] < 0x80 and len(payload) > 1:  # a typed transaction
        type_byte, payload = payload[:1], payload[1:]
    tree = rlp.decode(payload)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_nodes(tree)))
        node = _get(tree, path)
        kinds = ["to_list", "to_bytes", "empty", "int", "leading_zero", "longer", "shorter", "nest"]
        if isinstance(node, list):
            kinds += ["drop", "duplicate", "to_encoding"]
        kind = draw(st.sampled_from(kinds))
        if kind == "to_list":
            new: Any = [node] if isinstance(node, bytes) else [node, node]
        elif kind == "to_bytes":
            new = draw(st.binary(max_size=40))
        elif kind == "to_encoding":
            new = rlp.encode(node)
        elif kind == "empty":
            new = [] if isinstance(node, bytes) else b""
        elif kind == "int":
            new = draw(st.integers(0, 2**300)).to_bytes(38, "big").lstrip(b"\x00")
        elif kind == "leading_zero":
            new = b"\x00" + node if isinstance(node, bytes) else [b"\x00"]
        elif kind == "longer":
            new = node + b"\x01" if isinstance(node, bytes) else [*node, b"\x01"]
        elif kind == "shorter":
            new = node[:-1] if node else b"\x00"
        elif kind == "nest":
            new = node
            for _ in range(draw(st.integers(1, 80))):
                new = [new]
        elif kind == "drop":
            new = node[:-1]
        else:  # duplicate
            new = node + node[-1:]
        tree = _set(tree, path, new)
    return type_byte + bytes(rlp.encode(tree))


def deep_lists(depth: int) -> bytes:
    """`depth` nested empty lists, encoded iteratively (pyrlp would recurse)."""
    prefixes, n = [b"\xc0"], 1
    for _ in range(depth - 1):
        if n < 56:
            prefix = bytes([0xC0 + n])
        else:
            size = n.to_bytes((n.bit_length() + 7) // 8, "big")
            prefix = bytes([0xF7 + len(size)]) + size
        prefixes.append(prefix)
        n += len(prefix)
    return b"".join(reversed(prefixes))


def hostile_inputs(valid: bytes, others: tuple[bytes, ...] = ()) -> st.SearchStrategy[bytes]:
    """Everything a fuzz property throws at one decoder, around one valid encoding."""
    return st.one_of(
        st.binary(max_size=300),
        mutated_bytes(valid, others),
        mutated_tree(valid),
        st.builds(deep_lists, st.integers(2, 3000)),
        st.sampled_from([b"", b"\x80", b"\xc0", b"\xff" * 9, b"\xb9\x00\x38", b"\xf8\x00",
                         b"\xbf" + b"\xff" * 8, b"\xff" + b"\xff" * 8]),
    )


def assert_only(errors: type[BaseException] | tuple[type[BaseException], ...], fn: Any,
                *args: Any) -> Any:
    """Call `fn(*args)`: it returns, or raises one of `errors` (with a message); anything
    else fails the test."""
    try:
        return fn(*args)
    except errors as exc:
        assert str(exc), f"{type(exc).__name__} without a message"
        return None
