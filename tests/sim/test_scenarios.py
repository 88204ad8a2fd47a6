"""Scripted QBFT scenarios (tests/sim/scenarios/*.txt), run by `scripted.py`.

Each file holds commands and the output each must print. A difference fails the test
with a unified diff; RXLEDGER_UPDATE_TRACES=1 rewrites the files with the actual output
instead (then review the diff of the files: the traces are the specification), except
in files pinned by a `# BUG` paragraph, which hold the correct behaviour of a known bug.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from scripted import UPDATE_ENV, is_pinned, run_file

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.txt"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    expected, actual = run_file(path)
    if actual != expected:
        if os.environ.get(UPDATE_ENV) == "1" and not is_pinned(expected):
            return  # rewritten by run_file
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True),
            fromfile=f"{path.name} (expected)", tofile=f"{path.name} (actual)",
        ))
        how = ("it pins the correct behaviour of a known bug (its `# BUG` paragraph)"
               if is_pinned(expected) else f"{UPDATE_ENV}=1 rewrites it; review the diff")
        pytest.fail(f"trace differs from {path.name} ({how}):\n{diff}", pytrace=False)


def test_scenarios_exist() -> None:
    assert len(SCENARIOS) >= 7
