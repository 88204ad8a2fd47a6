"""The one decoder of JSON-RPC request bodies (the client boundary).

`decode_request(body, max_depth=, max_values=)` turns any bytes into the request's Python
values or raises `RequestDecodeError` (a -32700 JSON-RPC error saying what was wrong);
nothing else comes out of it. The body's size is bounded before it is read whole (the
endpoint in node.rpc.app, HTTP 413).

Before anything recursive runs, brackets and commas are counted on the raw bytes (an
upper bound, at C speed); a body that may be too deep or hold too many values is scanned
exactly, strings left out, without recursion, and refused if it is. Then orjson reads it
(its own nesting limit is 1,024 and it does not recurse on the interpreter's stack), and
the result is walked once, without recursion, to check both budgets again and to find
floats: orjson reads integers beyond 64 bits as floats, so such a body is read again by
the standard library's `json`, which keeps them exact. What orjson refuses and `json`
reads (lone surrogates, NaN, 1e400) also goes to `json`. `json` recurses in C under the
interpreter's recursion limit, which py-evm raises to 100,000: on input nested that deep
it overflows the C stack (SIGSEGV). It only ever sees input whose nesting was counted
within `max_depth`, and only UTF-8 (JSON-RPC over HTTP is UTF-8, RFC 8259; `json.loads`
would guess UTF-16/32 from bytes whose brackets the count could not see as such).

Written here rather than taken from a library: no JSON library in the environment both
keeps integers beyond 64 bits exact and bounds nesting before it recurses.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from node.rpc.errors import PARSE_ERROR, RpcError

__all__ = ["RequestDecodeError", "decode_request"]

_OPEN = frozenset(b"[{")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class RequestDecodeError(RpcError):
    """A request body that is not JSON, or is JSON beyond the decoder's budgets."""

    def __init__(self, message: str) -> None:
        super().__init__(PARSE_ERROR, f"parse error: {message}")


def _too_deep(max_depth: int) -> RequestDecodeError:
    return RequestDecodeError(f"JSON nested too deeply: more than {max_depth} levels of arrays and objects "
                              f"(the limit is {max_depth}, [limits] max_json_depth)")


def _too_many(max_values: int) -> RequestDecodeError:
    return RequestDecodeError(f"too many JSON values: more than {max_values} in one request "
                              f"(the limit is {max_values}, [limits] max_json_values)")


def decode_request(body: bytes, *, max_depth: int, max_values: int) -> Any:
    """The JSON value of `body`, read as `json.loads` would read it (UTF-8), within
    `max_depth` levels of nesting and `max_values` values; else RequestDecodeError."""
    # Counted on the raw bytes first (C speed): brackets and commas inside strings count
    # too, so this bounds the real figures from above; only a body that may exceed a
    # budget is scanned exactly. Either way nothing recursive has run yet.
    opens = body.count(b"[") + body.count(b"{")
    if opens > max_depth or opens + body.count(b",") + 1 > max_values:
        _scan(body, max_depth, max_values)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        # What json may read and orjson does not (lone surrogates, NaN, 1e400): the
        # nesting is within max_depth (counted above), so json cannot recurse deeper.
        try:
            text = body.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
        except UnicodeDecodeError as exc:
            raise RequestDecodeError(
                f"invalid JSON (the body is not UTF-8: {exc.reason} at byte {exc.start})") from None
        return _loads(text, max_depth, max_values)
    if _measure(payload, max_depth, max_values):  # floats: integers beyond 64 bits?
        return _loads(body.decode("utf-8"), max_depth, max_values)
    return payload


def _loads(text: str, max_depth: int, max_values: int) -> Any:
    """`json.loads` of text whose nesting is known to be within `max_depth`."""
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, int digits limit
        raise RequestDecodeError(f"invalid JSON ({exc})") from None
    _measure(payload, max_depth, max_values)
    return payload


def _measure(payload: Any, max_depth: int, max_values: int) -> bool:
    """Check depth and value count of a decoded value without recursion; whether it
    holds a float."""
    has_float = False
    count = 0
    stack: list[tuple[Any, int]] = [(payload, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > max_values:
            raise _too_many(max_values)
        if isinstance(value, list):
            if depth >= max_depth:
                raise _too_deep(max_depth)
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, dict):
            if depth >= max_depth:
                raise _too_deep(max_depth)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, float):
            has_float = True
    return has_float


def _scan(body: bytes, max_depth: int, max_values: int) -> None:
    """Nesting and value count of raw JSON bytes, strings left out, without recursion.

    In UTF-8 the bytes `"`, `\\`, brackets and commas are those characters only. Escapes
    go first (`\\\\` pairs, then `\\"`), as a JSON string reads them left to right; then
    every second `"`-delimited stretch is a string. What remains of invalid JSON may be
    counted wrongly, but `json` then refuses it before it nests deeper than counted:
    it reads left to right, and the count is exact for every valid prefix.
    """
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(text.split(b'"')[::2])
    # Depth first, over at most as many brackets as the value budget allows (a body with
    # more is refused below): deep input is refused as such within max_depth steps.
    depth = 0
    for byte in outside.translate(None, _NOT_BRACKETS)[:2 * max_values + 2]:
        if byte in _OPEN:
            depth += 1
            if depth > max_depth:
                raise _too_deep(max_depth)
        elif depth:
            depth -= 1
    if outside.count(b"[") + outside.count(b"{") + outside.count(b",") + 1 > max_values:
        raise _too_many(max_values)
