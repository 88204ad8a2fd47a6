"""JSON read from outside (a token a patient hands over, a receipt from a file): size and
nesting depth checked before the parser runs, then parsed by orjson.

`json.loads` recurses once per nesting level and ends in RecursionError, or in a crash of
the interpreter where a library has raised the recursion limit (py-evm sets 100,000);
orjson is iterative up to its own cap of 1,024 levels and refuses deeper input with an
error. The depth scan below runs first and refuses anything deeper than what the caller's
format can hold, so only `VerificationFailed` naming what is wrong comes out.
"""

from __future__ import annotations

from typing import Any

import orjson

from client_sdk._errors import VerificationFailed

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in `data` (brackets inside strings do not
    count); linear, no recursion, no regular expression (a string pattern backtracks:
    quadratic on many unterminated quotes). Escapes go first (`\\\\` pairs, then `\\"`), as a
    JSON string reads them left to right; then every second `"`-delimited stretch is a
    string. Malformed input gives some number: the parser refuses it."""
    text = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(text.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in outside:
        if byte in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif depth:
            depth -= 1
    return deepest


def load_json(text: str | bytes, what: str, *, max_bytes: int, max_depth: int) -> Any:
    """Parse `text` as JSON; raises `VerificationFailed` if it is larger than `max_bytes`,
    nests deeper than `max_depth`, or is not JSON."""
    if isinstance(text, str):
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise VerificationFailed(f"the {what} is not valid text: {exc}") from None
    else:
        data = bytes(text)
    if len(data) > max_bytes:
        raise VerificationFailed(f"the {what} is {len(data)} bytes, more than the {max_bytes} allowed")
    depth = json_depth(data)
    if depth > max_depth:
        raise VerificationFailed(f"the {what} nests {depth} levels deep, more than the {max_depth} allowed")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise VerificationFailed(f"the {what} is not JSON: {exc}") from None
