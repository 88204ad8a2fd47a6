"""client_sdk._json: the depth scan that runs before any JSON a patient or a file hands the
SDK is parsed. It must count exactly what a parser nests (brackets in strings and escapes
left out), and be linear: the regular expression it replaced backtracked on unterminated
quotes (a 32 KB token of `\\"` took 3.6 s, a 1 MB one about an hour)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sdk._errors import VerificationFailed
from client_sdk._json import json_depth, load_json

_text = st.text(alphabet=st.sampled_from('ab"\\[]{},: \u00e9'), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=25,
)


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth + 1)
            stack += [(child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return deepest


@settings(max_examples=300, deadline=None)
@given(_json)
def test_the_depth_scan_counts_exactly_what_the_parser_nests(value: object) -> None:
    data = json.dumps(value, ensure_ascii=False).encode()
    assert json_depth(data) == _depth(value)


def test_many_unterminated_escaped_quotes_are_scanned_in_one_pass() -> None:
    # 1 MB of `\"` after a quote: one string that never ends. The old regular expression
    # restarted at every quote (quadratic); the scan visits each byte a bounded number of
    # times, and the parser then refuses the input as not JSON.
    token = b'"' + b'\\"' * 500_000
    assert json_depth(token) == 0
    with pytest.raises(VerificationFailed, match="not JSON"):
        load_json(token, "token", max_bytes=2 * 1024 * 1024, max_depth=2)


def test_deep_input_is_refused_before_parsing() -> None:
    with pytest.raises(VerificationFailed, match="nests 100000 levels deep"):
        load_json(b"[" * 100_000, "receipt", max_bytes=2 * 1024 * 1024, max_depth=64)
