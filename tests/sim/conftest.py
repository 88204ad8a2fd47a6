"""Seeds for the randomized simulation, and running them on every core.

`RXLEDGER_SIM_SEEDS=START:COUNT` picks the seeds (default `0:2000`); each seed is its own
test id (`test_random_run[seed17]`). Rerun one seed with

    RXLEDGER_SIM_SEEDS=17:1 .venv/bin/pytest tests/sim/test_random_runs.py

The runs are independent and CPU bound: when the first seed's test starts, every
selected seed is submitted to a process pool (`RXLEDGER_SIM_WORKERS`, default: the
number of CPUs; 1, or fewer than 40 seeds, or under pytest-xdist: in this process, one
by one), in test order, and each test waits for its own seed's outcome. Traces of failing seeds are written under pytest's temporary
directory, and the path is printed with the failure.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import pytest
from harness import SeedResult, run_seed

SEEDS_ENV = "RXLEDGER_SIM_SEEDS"
WORKERS_ENV = "RXLEDGER_SIM_WORKERS"
DEFAULT_SEEDS = "0:2000"
POOL_MIN_SEEDS = 40  # below this, a pool costs more than it saves


def sim_seeds() -> range:
    raw = os.environ.get(SEEDS_ENV, DEFAULT_SEEDS)
    try:
        start, count = (int(x) for x in raw.split(":"))
    except ValueError:
        raise pytest.UsageError(f"{SEEDS_ENV} must be START:COUNT, got {raw!r}") from None
    return range(start, start + count)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" in metafunc.fixturenames:
        seeds = sim_seeds()
        metafunc.parametrize("sim_seed", seeds, ids=[f"seed{s}" for s in seeds])


class SimRuns:
    """Outcomes of the selected seeds: all submitted to a process pool at once, in test
    order, so each test waits only for its own seed (and the per-test timeout holds)."""

    def __init__(self, seeds: list[int], trace_dir: Path, workers: int) -> None:
        self.seeds = seeds
        self.trace_dir = str(trace_dir)
        self.workers = workers if len(seeds) >= POOL_MIN_SEEDS else 1
        self.results: dict[int, SeedResult] = {}
        self.futures: dict[int, Future[SeedResult]] = {}
        self.pool: ProcessPoolExecutor | None = None
        self.started = time.perf_counter()
        self.wall = 0.0

    def start(self) -> None:
        if self.workers <= 1:
            return
        # spawn: a fresh interpreter, whatever threads this process runs; it gets our
        # sys.path, so `harness` imports as it does here.
        self.pool = ProcessPoolExecutor(min(self.workers, len(self.seeds)),
                                        mp_context=multiprocessing.get_context("spawn"))
        for seed in self.seeds:
            self.futures[seed] = self.pool.submit(run_seed, seed, self.trace_dir)

    def get(self, seed: int) -> SeedResult:
        if seed not in self.results:
            future = self.futures.get(seed)
            self.results[seed] = future.result() if future is not None else run_seed(seed, self.trace_dir)
            self.wall = time.perf_counter() - self.started
        return self.results[seed]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


_runs: list[SimRuns] = []


@pytest.fixture(scope="session")
def sim_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimRuns]:
    seeds = [item.callspec.params["sim_seed"] for item in request.session.items
             if hasattr(item, "callspec") and "sim_seed" in item.callspec.params]
    xdist_worker = hasattr(request.config, "workerinput")
    default = 1 if xdist_worker else (os.cpu_count() or 1)
    workers = int(os.environ.get(WORKERS_ENV, default))
    runs = SimRuns(seeds, tmp_path_factory.mktemp("sim-traces"), workers)
    _runs.append(runs)
    runs.start()
    try:
        yield runs
    finally:
        runs.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for runs in _runs:
        results = list(runs.results.values())
        if not results:
            continue
        failed = sorted(r.seed for r in results if not r.ok)
        cpu = sum(r.cpu for r in results)
        slowest = max(results, key=lambda r: r.cpu)
        live = [r.liveness_time for r in results if r.liveness_time is not None]
        by_n = {n: sum(1 for r in results if r.n == n) for n in sorted({r.n for r in results})}
        heights = sorted(max(r.heights) for r in results)
        terminalreporter.write_sep("-", "QBFT simulation")
        terminalreporter.write_line(
            f"{len(results)} seeds ({', '.join(f'{c} with {n} validators' for n, c in by_n.items())}) "
            f"in {runs.wall:.1f}s wall, {cpu:.1f}s CPU ({cpu / len(results) * 1000:.0f} ms a run; "
            f"slowest seed {slowest.seed}: {slowest.cpu:.2f}s); workers {runs.workers}")
        terminalreporter.write_line(
            f"final heights median {heights[len(heights) // 2]}, max {heights[-1]}; time from healing "
            f"to the liveness target: median {sorted(live)[len(live) // 2] if live else 0:.1f}s, "
            f"max {max(live, default=0):.1f}s")
        if failed:
            terminalreporter.write_line(f"FAILED seeds: {' '.join(map(str, failed))}")
            terminalreporter.write_line(f"traces under {runs.trace_dir}")
        sys.stdout.flush()
