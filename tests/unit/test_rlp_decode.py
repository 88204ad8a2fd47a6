"""rxledger.core.types.rlp_codec.decode_rlp: the one RLP decoder for untrusted bytes, checked against
pyrlp (same items on every input pyrlp accepts, a typed error on every other), its limits
checked before any recursion, and its cost linear where pyrlp's was not."""

from __future__ import annotations

import rlp
from fuzzing import deep_lists, fuzz, hostile_inputs, mutated_bytes, mutated_tree
from hypothesis import given
from hypothesis import strategies as st

from rxledger.core.types.rlp_codec import MalformedRLP, decode_rlp, decode_rlp_list_items, rlp_list

_items = st.recursive(st.binary(max_size=70), lambda children: st.lists(children, max_size=6),
                      max_leaves=30)


def _depth(item: object) -> int:
    """Nesting depth, iteratively (the interpreter's recursion limit is raised by py-evm:
    deep recursion here, or in pyrlp, can overflow the C stack)."""
    deepest, stack = 0, [(item, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, list):
            deepest = max(deepest, depth + 1)
            stack += [(child, depth + 1) for child in node]
    return deepest


def _pyrlp(data: bytes) -> object:
    try:
        return rlp.decode(data)
    except rlp.exceptions.RLPException:
        return MalformedRLP


def _ours(data: bytes) -> object:
    try:
        return decode_rlp(data)
    except MalformedRLP as exc:
        assert str(exc)
        return MalformedRLP


@fuzz(200)
@given(_items)
def test_same_items_as_pyrlp_on_valid_encodings(item) -> None:
    data = rlp.encode(item)
    assert decode_rlp(data) == rlp.decode(data)


@fuzz(150)
@given(st.data(), _items)
def test_same_result_as_pyrlp_on_mutated_and_random_input(data, item) -> None:
    valid = rlp.encode(item)
    candidate = data.draw(st.one_of(hostile_inputs(valid), mutated_bytes(valid), mutated_tree(valid)))
    try:
        unlimited = decode_rlp(candidate, max_depth=10**9)
    except MalformedRLP:
        unlimited = MalformedRLP
    if _depth(unlimited) > 64:
        assert _ours(candidate) is MalformedRLP  # the depth limit
        if _depth(unlimited) < 400:  # pyrlp recurses: only where that is safe
            assert _pyrlp(candidate) == unlimited
    else:
        assert _ours(candidate) == _pyrlp(candidate)


@fuzz(50)
@given(st.lists(_items, max_size=8))
def test_list_items_are_the_encodings_of_the_items(items) -> None:
    data = rlp.encode(items)
    assert decode_rlp_list_items(data) == [rlp.encode(i) for i in items]


@fuzz(200)
@given(st.binary(max_size=200))
def test_list_items_accept_only_what_pyrlp_accepts_at_the_top(data) -> None:
    try:
        parts = decode_rlp_list_items(data)
    except MalformedRLP:
        return
    # Accepted: a list whose items' prefixes are in bounds (their contents unchecked).
    assert isinstance(rlp.codec.consume_length_prefix(data, 0)[1](), list)
    assert b"".join(parts) == data[len(data) - sum(map(len, parts)):]


def test_150000_nested_lists_are_refused_by_depth_not_recursion() -> None:
    data = deep_lists(150_000)  # the 578 KB frame
    assert 570_000 < len(data) < 590_000
    # (pyrlp is not called: it recurses once per level, and with py-evm's recursion limit
    # of 100,000 that overflows the C stack and kills the process.)
    try:
        decode_rlp(data)
        raise AssertionError("decoded 150,000 nested lists")
    except MalformedRLP as exc:
        assert "nested more than 64 deep" in str(exc)


def test_depth_and_size_limits() -> None:
    assert decode_rlp(deep_lists(3), max_depth=3) == [[[]]]
    for data, kw in ((deep_lists(4), {"max_depth": 3}), (rlp.encode(b"x" * 100), {"max_bytes": 99}),
                     (rlp.encode([b"a"]), {"max_depth": 0})):
        try:
            decode_rlp(data, **kw)
            raise AssertionError(f"accepted {data[:8].hex()} with {kw}")
        except MalformedRLP:
            pass


def test_a_sedes_mismatch_is_an_rlp_error() -> None:
    from rlp.sedes import List, big_endian_int

    for data in (rlp.encode([[b"a"]]), rlp.encode(b"a"), rlp.encode([b"\x00\x01"])):
        try:
            decode_rlp(data, List([big_endian_int], strict=True))
            raise AssertionError("accepted")
        except rlp.exceptions.RLPException:
            pass


def test_a_long_flat_list_decodes_in_one_pass() -> None:
    # pyrlp joins a list's encoding item by item (quadratic: 3 MB took 109 s); ours is
    # linear. No timing assertion: the item count is the evidence that it finished.
    data = rlp_list(b"a" * 1_000_000)
    assert len(decode_rlp(data)) == 1_000_000
