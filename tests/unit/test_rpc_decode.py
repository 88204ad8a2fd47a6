"""node.rpc.decode: the one decoder of JSON-RPC bodies returns what `json.loads` reads
(within the budgets) and raises only `RequestDecodeError` for anything else: arbitrary
bytes, deep nesting, huge numbers, bad UTF-8, mutations of valid requests.

py-evm (imported below through node.execution) raises the interpreter's recursion limit
to 100,000, as in the node: a recursive parse of deep input here would crash this test
process with SIGSEGV rather than fail politely.

A longer run: `RXLEDGER_FUZZ=long` (see tests/unit/fuzzing.py), like every decoder's fuzz test.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from fuzzing import fuzz_factor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import node.execution.executor  # noqa: F401  # py-evm's recursion limit, as in the node
from node.rpc.decode import RequestDecodeError, decode_request

# 300 per property in the suite; RXLEDGER_FUZZ=long multiplies them (tests/unit/fuzzing.py).
EXAMPLES = 300 * fuzz_factor()
DEPTH, VALUES = 64, 100_000


def decode(body: bytes, depth: int = DEPTH, values: int = VALUES) -> Any:
    return decode_request(body, max_depth=depth, max_values=values)


def reference(body: bytes) -> Any:
    """What json.loads reads, or the exception it raises."""
    try:
        return json.loads(body.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError) as exc:
        return exc


def same(a: Any, b: Any) -> bool:
    """Equality that holds NaN equal to itself (json reads NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_the_interpreter_recursion_limit_is_pyevms() -> None:
    assert sys.getrecursionlimit() >= 100_000


@pytest.mark.parametrize("body", [
    b"[" * 100_000,                                  # the reproduction: 200 KB of `[`
    b'{"a":' * 100_000,
    b"[" * 100_000 + b"]" * 100_000,                 # valid JSON, too deep
    b'["\\ud800",' + b"[" * 100_000,                 # orjson refuses the surrogate first
    b'[NaN,' + b"[" * 100_000,
    b'["' + b'\\"' * 1000 + b'",' + b"[" * 100_000,  # escaped quotes before the depth
    b"[" * 65 + b"]" * 65,
])
def test_deep_input_is_refused_as_too_deep(body: bytes) -> None:
    with pytest.raises(RequestDecodeError) as info:
        decode(body)
    assert info.value.code == -32700
    assert "nested too deeply" in info.value.message and "64" in info.value.message


def test_nesting_at_the_limit_is_read() -> None:
    assert decode(b"[" * 64 + b"]" * 64) == json.loads(b"[" * 64 + b"]" * 64)
    assert decode(b'["\\ud800",' + b"[" * 63 + b"]" * 63 + b"]")[0] == "\ud800"


def test_brackets_inside_strings_are_not_nesting() -> None:
    body = b'["' + b"[" * 100_000 + b'\\"' + b"{" * 1000 + b'"]'
    assert decode(body) == ["[" * 100_000 + '"' + "{" * 1000]


def test_too_many_values_are_refused() -> None:
    with pytest.raises(RequestDecodeError, match="too many JSON values: more than 1000"):
        decode(b"[" + b"0," * 1000 + b"0]", values=1000)
    with pytest.raises(RequestDecodeError, match="too many JSON values"):
        decode(b"[" + b'{"a":NaN},' * 1000 + b"0]", values=1000)  # the json path too
    assert len(decode(b"[" + b"0," * 998 + b"0]", values=1000)) == 999


@pytest.mark.parametrize("body", [
    b"", b"not json", b"\xff\xfe\x00garbage", b"{'a': 1}", b'{"a": 1', b'{"a": 1}}',
    b"[1e400]x", b'"\xed\xa0', b"\x00", b"[" + b"9" * 5000 + b"]",
    '["é"]'.encode("utf-16"), b"\xef\xbb\xbf[]",
])
def test_invalid_json_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(RequestDecodeError) as info:
        decode(body)
    assert info.value.code == -32700 and info.value.message.startswith("parse error: ")


def test_what_only_json_reads_is_read_as_json_reads_it() -> None:
    body = b'[123456789012345678901234567890, -18446744073709551617, "\\ud800", 1e400, 0.5]'
    value = decode(body)
    assert value[:3] == [123456789012345678901234567890, -18446744073709551617, "\ud800"]
    assert value[3] == float("inf") and value[4] == 0.5
    assert same(decode(b"[NaN]"), json.loads("[NaN]"))


# -- property tests ----------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**80), max_value=10**80)
    | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_valid_json_reads_as_json_loads_reads_it(value: Any) -> None:
    body = json.dumps(value).encode()
    assert same(decode(body), json.loads(body))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_json_loads_value_or_the_typed_error(body: bytes) -> None:
    try:
        value = decode(body)
    except RequestDecodeError as exc:
        assert exc.code == -32700
        return
    expected = reference(body)
    assert not isinstance(expected, Exception), (body, value, expected)
    assert same(value, expected)


request = st.fixed_dictionaries({
    "jsonrpc": st.just("2.0"), "id": st.integers(0, 2**70), "method": st.sampled_from(["eth_call", "eth_getLogs"]),
    "params": st.lists(json_values, max_size=3),
})


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid request (or batch), then bytes flipped, inserted, deleted, or a run of
    brackets, quotes, backslashes or a long number spliced in."""
    items = draw(st.lists(request, min_size=1, max_size=3))
    body = bytearray(json.dumps(items if len(items) > 1 else items[0]).encode())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        kind = draw(st.integers(0, 4))
        if kind == 0 and body:
            body[min(at, len(body) - 1)] = draw(st.integers(0, 255))
        elif kind == 1:
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == 2:
            del body[at:at + draw(st.integers(1, 8))]
        elif kind == 3:
            run = draw(st.sampled_from([b"[", b"{\"k\":", b'"', b"\\", b"\\\\", b"[\"\\\"", b"]"]))
            body[at:at] = run * draw(st.integers(1, 3000))
        else:
            body[at:at] = b"9" * draw(st.integers(1, 6000))
    return bytes(body)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])
@given(mutated())
def test_mutated_requests_give_a_value_or_the_typed_error(body: bytes) -> None:
    try:
        value = decode(body)
    except RequestDecodeError:
        return
    expected = reference(body)
    assert not isinstance(expected, Exception), (body, value, expected)
    assert same(value, expected)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(65, 20_000), st.sampled_from([b"[", b'{"a":', b'[{"b":']), st.binary(max_size=50),
       st.sampled_from([b"", b'"\\ud800",', b"NaN,", b"1e999,"]))
def test_any_deep_prefix_is_refused(depth: int, opener: bytes, tail: bytes, first: bytes) -> None:
    body = b"[" + first + opener * depth + tail
    with pytest.raises(RequestDecodeError, match="nested too deeply"):
        decode(body)
