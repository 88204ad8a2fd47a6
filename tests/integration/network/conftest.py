"""Fixtures for acceptance tests on a real local consortium (one process per node).

- `net` (module scope): `network init` in a temporary directory on a random free base
  port with small QBFT timings (netharness.FAST_CONSENSUS; a module may set `CONSENSUS`
  and `OBSERVERS`, or name a manifest in `MANIFEST` whose `[consensus]` and `[testnet]`
  are used), then `up --detach`. At teardown, always: `down`, stop the nodes the tests
  restarted, SIGKILL any straggler by pid. On a failure the last log lines of every node
  are printed.

Measured figures (`netharness.record`) are printed at the end of the run, also under -q.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netharness import FAST_CONSENSUS, MEASUREMENTS, Net, launch_network, record
from netmanifest import load_manifest

from network.init import DEFAULT_ORGS

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed:
        item.stash.setdefault(_FAILED, True)
    return report


@pytest.fixture(scope="module")
def net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    module = request.module
    manifest_name = getattr(module, "MANIFEST", None)
    consensus = getattr(module, "CONSENSUS", FAST_CONSENSUS)
    orgs, observers = DEFAULT_ORGS, tuple(getattr(module, "OBSERVERS", ()))
    if manifest_name is not None:
        manifest = load_manifest(manifest_name)
        consensus, orgs, observers = manifest.consensus, manifest.orgs, manifest.observers
    directory = tmp_path_factory.mktemp(module.__name__.rsplit(".", 1)[-1]) / "net"
    network = launch_network(directory, consensus=consensus, orgs=orgs, observers=observers)
    record(f"{module.__name__}: `up --detach` -> first final block on all "
           f"{len(network.info.nodes)} nodes", f"{network.up_seconds:.2f} s")
    try:
        yield network
    finally:
        failed = any(item.stash.get(_FAILED, False) for item in request.session.items
                     if getattr(item, "module", None) is module)
        if failed:
            for name in network.names:
                tail = "\n".join(network.log_text(name).splitlines()[-40:])
                print(f"\n----- last lines of {network.log_path(name)} -----\n{tail}")
        network.shutdown()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("network measurements (for the benchmark; not asserted)")
        for what, value in MEASUREMENTS:
            terminalreporter.write_line(f"{what}: {value}")
