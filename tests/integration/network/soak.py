"""The fault soak: many seeded random fault schedules, each on a fresh four-node network.

    python -m tests.integration.network.soak --seeds 50            # seeds 0..49
    python -m tests.integration.network.soak --seeds 5 --first 100 --faults 6 --out soak.json

Each seed draws (random.Random(seed)) a schedule of `--faults` faults, one after another
(never two at once: with a Byzantine validator that is already f = 1 of 4): kill for a
while, pause, restart, disconnect, a 2 | 2 or 1 | 3 partition, a clock step ahead or behind
on the clock-skew node, and, on half of the seeds, a Byzantine validator switching between
random combinations of equivocate, invalid-block, bad-seals, replay and flood. It runs the
schedule with netmanifest.py's runner exactly as CI runs network/manifests/faults-*.toml
(load throughout, a heal check after each fault, every invariant at the end) and prints one
line per seed; the exit status is 1 if any seed failed. `--manifest-out DIR` writes each
seed's schedule as a manifest file, so a failing seed can be re-run by name or path.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from netharness import FAST_CONSENSUS, launch_fault_network  # noqa: E402
from netmanifest import BYZANTINE_MODES, Manifest, Runner, parse_manifest  # noqa: E402

from network.init import DEFAULT_ORGS  # noqa: E402

NODES = ["hospital-a", "hospital-b", "pharmacy-a", "regulator"]


def schedule(seed: int, faults: int) -> dict[str, Any]:
    """A random fault run as a manifest (parsed-TOML form)."""
    rng = random.Random(seed)
    byzantine = rng.choice(NODES) if rng.random() < 0.5 else None
    skewed = rng.choice([n for n in NODES if n != byzantine])
    nodes: dict[str, Any] = {skewed: {"clock_skew": 0.0}}
    if byzantine is not None:
        nodes[byzantine] = {"byzantine": True}
    kinds = ["kill", "pause", "restart", "disconnect", "partition", "clock-skew"]
    if byzantine is not None:
        kinds += ["byzantine", "byzantine"]
    steps: list[dict[str, Any]] = [{"expect": "blocks", "count": 2, "within": 20.0}]
    for _ in range(faults):
        kind = rng.choice(kinds)
        duration = round(rng.uniform(2.0, 10.0), 1)
        node = rng.choice(NODES)
        if kind == "kill":
            steps.append({"perturb": "kill", "nodes": [node], "duration": duration})
        elif kind == "pause":
            steps.append({"perturb": "pause", "nodes": [node], "duration": duration})
        elif kind == "restart":
            steps.append({"perturb": "restart", "nodes": [node]})
        elif kind == "disconnect":
            steps.append({"perturb": "disconnect", "nodes": [node], "duration": duration})
        elif kind == "partition":
            shuffled = rng.sample(NODES, len(NODES))
            cut = rng.choice((1, 2))
            steps.append({"perturb": "partition", "groups": [shuffled[:cut], shuffled[cut:]],
                          "duration": duration})
        elif kind == "clock-skew":
            seconds = rng.choice((-30.0, -8.0, -3.0, 3.0, 8.0, 30.0))
            steps.append({"perturb": "clock-skew", "nodes": [skewed], "seconds": seconds, "duration": duration})
        else:
            assert byzantine is not None
            modes = rng.sample(BYZANTINE_MODES, rng.randint(1, 3))
            steps.append({"perturb": "byzantine", "nodes": [byzantine], "modes": modes})
            steps.append({"expect": "blocks", "count": 4, "within": 30.0})
            steps.append({"perturb": "heal"})
    c = FAST_CONSENSUS
    return {
        "description": f"soak seed {seed}",
        "testnet": {"orgs": DEFAULT_ORGS},
        "consensus": {"block_period": c.block_period, "empty_block_period": c.empty_block_period,
                      "round_timeout": c.round_timeout, "max_round_timeout": c.max_round_timeout},
        "heal": {"max_round_timeouts": 2, "slack": 0.0},
        "load": {"batch": 3, "seed": seed},
        "nodes": nodes,
        "step": steps,
    }


def to_toml(raw: dict[str, Any]) -> str:
    """The schedule as a manifest file (the subset of TOML it needs)."""
    def value(v: Any) -> str:
        return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")

    lines = [f"description = {value(raw['description'])}", ""]
    for section in ("testnet", "consensus", "heal", "load"):
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in raw[section].items()]
        lines.append("")
    for node, conf in raw["nodes"].items():
        lines.append(f"[nodes.{node}]")
        lines += [f"{k} = {value(v)}" for k, v in conf.items()]
        lines.append("")
    for step in raw["step"]:
        lines.append("[[step]]")
        lines += [f"{k} = {value(v)}" for k, v in step.items()]
        lines.append("")
    text = "\n".join(lines)
    assert tomllib.loads(text) == raw
    return text


def run_seed(seed: int, faults: int, workdir: Path) -> dict[str, Any]:
    raw = schedule(seed, faults)
    manifest: Manifest = parse_manifest(f"soak-{seed}", raw)
    started = time.monotonic()
    result: dict[str, Any] = {"seed": seed, "faults": [s.get("perturb") for s in manifest.steps if "perturb" in s]}
    net = launch_fault_network(workdir / f"seed-{seed}", consensus=manifest.consensus, orgs=manifest.orgs,
                               wrapped=manifest.wrapped, controls=manifest.controls())
    try:
        runner = Runner(net, manifest)
        try:
            runner.run()
            result.update(ok=True, summary={k: v for k, v in runner.summary.items() if k != "heals"},
                          heals=runner.summary.get("heals"))
        except AssertionError as exc:
            result.update(ok=False, error=str(exc))
    finally:
        net.shutdown()
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds (default 10)")
    parser.add_argument("--first", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--faults", type=int, default=5, help="faults per seed (default 5)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--manifest-out", type=Path, help="write each seed's schedule as a manifest here")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="rxledger-soak-") as tmp:
        for seed in range(args.first, args.first + args.seeds):
            if args.manifest_out is not None:
                args.manifest_out.mkdir(parents=True, exist_ok=True)
                (args.manifest_out / f"soak-{seed}.toml").write_text(to_toml(schedule(seed, args.faults)))
            try:
                result = run_seed(seed, args.faults, Path(tmp))
            except AssertionError as exc:  # the network did not even start
                result = {"seed": seed, "ok": False, "error": f"start: {exc}"}
            results.append(result)
            status = "ok  " if result["ok"] else "FAIL"
            detail = (result.get("summary", {}).get("load", "") if result["ok"]
                      else " | ".join(result["error"].splitlines()[:2]))
            print(f"seed {seed:4d} {status} {result.get('seconds', 0):6.1f} s  "
                  f"{'+'.join(str(f) for f in result.get('faults', []))}: {detail}", flush=True)
    failed = [r for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)} of {len(results)} seeds kept every invariant"
          + (f"; failed: {[r['seed'] for r in failed]}" if failed else ""))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
