"""The fault runner's CI set: every manifest network/manifests/faults-*.toml on a real
four-node network (one process per node, every peer link through a loopback proxy),
under transaction load, with the invariants asserted after each run (netmanifest.py).

Together the manifests cover kill, pause, restart, disconnect, partition, clock-skew and
the Byzantine modes equivocate, invalid-block, bad-seals, replay and flood
(`test_ci_set_covers_every_fault` checks that). The soak (`python -m
tests.integration.network.soak --seeds N`) runs random schedules of the same faults.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from netharness import launch_fault_network, record
from netmanifest import BYZANTINE_MODES, MANIFEST_DIR, Runner, load_manifest

FAULT_MANIFESTS = sorted(p.stem for p in MANIFEST_DIR.glob("faults-*.toml"))
PERTURBATIONS = {"kill", "pause", "restart", "disconnect", "partition", "clock-skew"}


def test_ci_set_covers_every_fault() -> None:
    covered: set[str] = set()
    for name in FAULT_MANIFESTS:
        manifest = load_manifest(name)
        assert manifest.heal is not None and manifest.load is not None, f"{name}: not a fault run under load"
        for step in manifest.steps:
            covered.add(step.get("perturb", ""))
            covered.update(step.get("modes", ()))
    missing = (PERTURBATIONS | set(BYZANTINE_MODES)) - covered
    assert not missing, f"no CI manifest covers {sorted(missing)}"


def run_fault_manifest(name: str, directory: Path, seed: int = 0) -> dict[str, object]:
    """Start a network for manifest `name`, run it, check the invariants; the summary."""
    manifest = load_manifest(name)
    net = launch_fault_network(directory, consensus=manifest.consensus, orgs=manifest.orgs,
                               wrapped=manifest.wrapped, controls=manifest.controls())
    record(f"{name}: four processes started -> first final block on all", f"{net.up_seconds:.2f} s")
    ok = False
    try:
        runner = Runner(net, manifest)
        runner.run()
        ok = True
        return runner.summary
    finally:
        if not ok:
            for node in net.names:
                tail = "\n".join(net.log_text(node).splitlines()[-25:])
                print(f"\n----- last lines of {net.log_path(node)} -----\n{tail}")
        net.shutdown()


@pytest.mark.parametrize("name", FAULT_MANIFESTS)
def test_fault_manifest_keeps_the_invariants(name: str, tmp_path: Path) -> None:
    summary = run_fault_manifest(name, tmp_path / "net")
    print(f"{name}: {summary}")
    record(f"{name}: load", str(summary.get("load")))
    assert summary["heals"], f"{name}: no heal was checked"


def test_soak_schedules_are_manifests_the_runner_accepts() -> None:
    """The soak's random schedules parse as manifests (also written out as TOML) and,
    over 100 seeds, use every perturbation and every Byzantine mode."""
    import tomllib

    from netmanifest import parse_manifest
    from soak import schedule, to_toml

    covered: set[str] = set()
    for seed in range(100):
        raw = schedule(seed, 5)
        manifest = parse_manifest(f"soak-{seed}", tomllib.loads(to_toml(raw)))
        assert manifest.heal is not None and manifest.load is not None
        assert len(manifest.byzantine) <= 1, "more than f = 1 Byzantine validator of 4"
        for step in manifest.steps:
            covered.add(step.get("perturb", ""))
            covered.update(step.get("modes", ()))
    missing = (PERTURBATIONS | set(BYZANTINE_MODES)) - covered
    assert not missing, f"the soak never draws {sorted(missing)}"
