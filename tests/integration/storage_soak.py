"""Soak: SIGKILL a loaded dev node during block commit many times (issue 11, item 8).

    python tests/integration/storage_soak.py --kills 50 [--seed N] [--data-dir DIR]

Runs `kill_during_commit` of test_crash_recovery.py: each time, a dev node under load
from four accounts is killed at a random moment, restarted on the same data dir (which
it opens only after a full check of the store), and checked: its head is at least every
block the client saw final, and those blocks and receipts are unchanged. At the end the
chain must go on and `rxledger node check` must find the store intact. Prints one line
per kill and a summary; exits 1 at the first violation. CI runs the same with 4 kills.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # devnode, storage_load (no packages)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the node itself

from devnode import DevNode, start_dev_node  # noqa: E402
from test_crash_recovery import kill_during_commit  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--data-dir", type=Path, help="default: a new temporary directory")
    args = parser.parse_args(argv)
    started: list[DevNode] = []

    def start(data_dir: Path) -> DevNode:
        node = start_dev_node(data_dir)
        started.append(node)
        return node

    with tempfile.TemporaryDirectory(prefix="rxledger-soak-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "chain"
        print(f"storage soak: {args.kills} kills, seed {args.seed}, data dir {data_dir}", flush=True)
        began = time.monotonic()
        try:
            run = kill_during_commit(start, data_dir, args.kills, random.Random(args.seed),
                                     report=lambda line: print(line, flush=True))
        except BaseException as exc:  # an assertion, or pytest.fail from devnode
            print(f"VIOLATION after {time.monotonic() - began:.0f} s: {exc}", flush=True)
            return 1
        finally:
            for node in started:
                node.stop()
    print(f"storage soak passed: {run.kills} kills ({run.kills_while_streaming} with sent transactions "
          f"not yet final), {run.final_blocks_checked} final blocks and {run.receipts_checked} "
          f"receipts checked after restarts, final head {run.head}, violations 0, "
          f"{time.monotonic() - began:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
