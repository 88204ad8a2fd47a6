"""A small TOML writer for the configuration files `network/` generates.

Why not a dependency (`tomli-w`): we write one shape only — top-level scalars, tables
of scalars and arrays of tables — and read it back with the standard library's
`tomllib`. The writer is ~60 lines, tested by round trip through `tomllib` (including
arbitrary strings), and keeps the node's runtime dependencies unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML value must be finite, got {value}")
        return repr(value)  # repr keeps a '.' or an exponent: read back as a float
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Any) -> bool:
    return (isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) > 0
            and all(isinstance(v, Mapping) for v in value))


def _emit(data: Mapping[str, Any], prefix: str, lines: list[str]) -> None:
    # Scalars first: a key written after a table header would belong to that table.
    for key, value in data.items():
        if value is None:
            continue  # TOML has no null; the reader treats a missing key as absent
        if not _is_table(value) and not _is_table_array(value):
            lines.append(f"{_key(key)} = {_scalar(value)}")
    for key, value in data.items():
        name = prefix + _key(key)
        if _is_table(value):
            lines.extend(["", f"[{name}]"])
            _emit(value, name + ".", lines)
        elif _is_table_array(value):
            for item in value:
                lines.extend(["", f"[[{name}]]"])
                _emit(item, name + ".", lines)


def dumps(data: Mapping[str, Any], header: str = "") -> str:
    """TOML text for `data` (str keys; values str/int/float/bool, lists of them, tables,
    lists of tables; None values are left out). `header` becomes leading # comments."""
    lines = [("# " + line).rstrip() for line in header.splitlines()]
    if lines:
        lines.append("")
    _emit(data, "", lines)
    while lines and lines[0] == "":
        lines.pop(0)
    return "\n".join(lines) + "\n"
