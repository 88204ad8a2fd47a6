"""Pure QBFT consensus throughput: the simulation harness with no faults and no execution.

All validators run in this one process on the deterministic in-memory network of
`tests/sim/harness.py` (every message signed, RLP-encoded, decoded and its signatures
recovered, as on the wire; WAL records kept in memory; blocks are empty). Nothing is
dropped, delayed beyond 1–50 ms of simulated time, or Byzantine. Simulated time is free,
so the figures are CPU:

- blocks/s: final blocks (every validator has them) per second of wall-clock time;
- CPU per block per validator: process CPU time / blocks / validators, the share of one
  validator's consensus work in one block (the goal: under 5 ms with 4 validators).

Run:  .venv/bin/python bench/consensus_sim.py [--blocks 300] [--validators 4 7] [--json]
                                             [--profile N]  (cProfile: top N functions)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

from machine_info import machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "sim"))

from harness import GENESIS_TIME, make_network  # noqa: E402

from node.consensus.qbft import QbftConfig  # noqa: E402

CONFIG = QbftConfig(block_period=1.0, round_timeout=1.0, max_round_timeout=8.0)


def run(n: int, blocks: int, profile: int = 0) -> dict[str, object]:
    net = make_network(n, seed=1, config=CONFIG)
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    net.start()
    done = net.run_until(GENESIS_TIME + blocks * 10, stop=lambda: min(len(s.chain) for s in net.nodes) >= blocks)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    assert done, "the network did not finalize the blocks"
    assert len({s.chain[blocks - 1].hash for s in net.nodes}) == 1
    result: dict[str, object] = {
        "validators": n,
        "blocks": blocks,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "blocks_per_s": round(blocks / wall, 1),
        "cpu_ms_per_block": round(cpu / blocks * 1000, 2),
        "cpu_ms_per_block_per_validator": round(cpu / blocks / n * 1000, 3),
        "messages_delivered": net.stats["delivered"],
        "simulated_s": round(net.now - GENESIS_TIME, 1),
    }
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(profile)
        result["profile"] = out.getvalue()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="QBFT consensus in the simulator: blocks/s and CPU per block")
    parser.add_argument("--blocks", type=int, default=300)
    parser.add_argument("--validators", type=int, nargs="+", default=[4, 7])
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    run(4, 5)  # warm up imports and key derivation
    results = [run(n, args.blocks, args.profile) for n in args.validators]
    report = {"machine": machine(), "config": {"block_period": CONFIG.block_period,
                                                "round_timeout": CONFIG.round_timeout}, "runs": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    m = report["machine"]
    assert isinstance(m, dict)
    print(f"machine: {m['cpu']} ({m['cpu_mhz']} MHz), {m['cores']} cores, Python {m['python']}")
    print(f"{'validators':>10} {'blocks':>7} {'wall s':>8} {'blocks/s':>9} {'CPU ms/block':>13} "
          f"{'CPU ms/block/validator':>23} {'messages':>9}")
    for r in results:
        print(f"{r['validators']:>10} {r['blocks']:>7} {r['wall_s']:>8} {r['blocks_per_s']:>9} "
              f"{r['cpu_ms_per_block']:>13} {r['cpu_ms_per_block_per_validator']:>23} {r['messages_delivered']:>9}")
    for r in results:
        if "profile" in r:
            print(f"\n-- cProfile, {r['validators']} validators --\n{r['profile']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
