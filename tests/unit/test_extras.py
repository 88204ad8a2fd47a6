"""rxledger.extras: the node extra's guard (one line and exit 1 when it is not installed).

The base-install half runs for real in tests/integration/test_install.py (a venv without
the extra); here a module of the extra is made unimportable the way Python itself marks
one (None in sys.modules).
"""

from __future__ import annotations

import sys

import pytest

from rxledger.extras import (
    NODE_EXTRA_MESSAGE,
    NODE_MODULES,
    missing_node_modules,
    require_node_extra,
)


def test_with_the_node_extra_installed_the_guard_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert missing_node_modules() == []
    require_node_extra()
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("module", NODE_MODULES)
def test_without_a_module_of_the_extra_the_guard_says_one_line_and_exits_1(
        module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    assert missing_node_modules() == [module]
    with pytest.raises(SystemExit) as exit_:
        require_node_extra()
    assert exit_.value.code == 1
    assert capsys.readouterr() == ("", f"rxledger: {NODE_EXTRA_MESSAGE} (missing: {module})\n")
    assert NODE_EXTRA_MESSAGE == "the node is not installed: pip install 'rxledger[node]'"
