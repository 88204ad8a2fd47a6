"""A small runner for `network/manifests/*.toml`: a testnet, perturbations, expectations.

After cometbft's e2e runner, the network is a black box: nodes are started, killed and
restarted as processes, and what must hold is checked through JSON-RPC only. A manifest:

    description = "what this testnet shows"

    [testnet]
    orgs = "hospital-a:hospital,…"      # network init --orgs (default: the four orgs)
    observers = []                       # "NAME@ORG", as network init

    [consensus]                          # node.toml [consensus], seconds
    block_period = 0.5
    empty_block_period = 1.0
    round_timeout = 1.0
    max_round_timeout = 4.0

    [[step]]                             # carried out in order
    perturb = "kill"                     # kill (SIGKILL) | stop (SIGTERM, wait) |
    nodes = ["pharmacy-a"]               # start (`rxledger node start --config`) | restart

    [[step]]
    expect = "progress"                  # see below
    within = 15.0                        # seconds, or:
    within_max_round_timeouts = 1        #   this many capped round timeouts …
    slack = 4.0                          #   … plus this many seconds
    measure = "what the elapsed time is" # print the step's time in the run's summary

Expectations (on the nodes the runner believes are running, "live"):

- `progress`: one transaction sent to each live node (or to `via`) is final on every live
  node with identical receipts and block hashes, within the bound.
- `halt`: no live node's head moves for `rounds` consecutive round timeouts
  (round_timeout doubling up to max_round_timeout), or `seconds`.
- `same-chain`: the live nodes have the same block hash at every height up to their
  lowest head; with `equal_heads = true` also the same head.
- `caught-up`: each of `nodes` reaches the highest head the others had when the step
  began, with the same block hash there.
- `signs`: the address of each of `nodes` is among the recovered commit-seal signers of
  a block decided after the step began.

`run_manifest(net, manifest)` raises AssertionError naming the step that failed and
returns one `StepResult` per step (with its elapsed time).
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netharness import FINAL_TIMEOUT, Net, capped_round_timeouts, record, wait_until

from network.config import ConsensusSettings
from network.init import DEFAULT_ORGS

MANIFEST_DIR = Path(__file__).resolve().parents[3] / "network" / "manifests"
PERTURBATIONS = ("kill", "stop", "start", "restart")
EXPECTATIONS = ("progress", "halt", "same-chain", "caught-up", "signs")
_STEP_KEYS = {"perturb", "expect", "nodes", "via", "within", "within_max_round_timeouts", "slack",
              "measure", "rounds", "seconds", "equal_heads"}


@dataclass(frozen=True)
class Manifest:
    name: str
    description: str
    orgs: str
    observers: tuple[str, ...]
    consensus: ConsensusSettings
    steps: tuple[dict[str, Any], ...]


@dataclass
class StepResult:
    index: int
    what: str
    elapsed: float
    bound: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def load_manifest(name_or_path: str | Path) -> Manifest:
    """Read and check a manifest (a name in network/manifests/, or a path)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = MANIFEST_DIR / f"{name_or_path}.toml"
    raw = tomllib.loads(path.read_text())
    unknown = set(raw) - {"description", "testnet", "consensus", "step"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    testnet = raw.get("testnet", {})
    consensus = ConsensusSettings(**raw.get("consensus", {}))
    steps = tuple(raw.get("step", []))
    for i, step in enumerate(steps, start=1):
        where = f"{path}: step {i}"
        if set(step) - _STEP_KEYS:
            raise ValueError(f"{where}: unknown keys {sorted(set(step) - _STEP_KEYS)}")
        if ("perturb" in step) == ("expect" in step):
            raise ValueError(f"{where}: give exactly one of perturb, expect")
        if step.get("perturb", PERTURBATIONS[0]) not in PERTURBATIONS:
            raise ValueError(f"{where}: perturb must be one of {PERTURBATIONS}")
        if step.get("expect", EXPECTATIONS[0]) not in EXPECTATIONS:
            raise ValueError(f"{where}: expect must be one of {EXPECTATIONS}")
        if "perturb" in step and not step.get("nodes"):
            raise ValueError(f"{where}: a perturbation names its nodes")
    return Manifest(path.stem, str(raw.get("description", "")).strip(),
                    str(testnet.get("orgs", DEFAULT_ORGS)), tuple(testnet.get("observers", ())),
                    consensus, steps)


def _bound(step: dict[str, Any], settings: ConsensusSettings, default: float) -> float:
    if "within_max_round_timeouts" in step:
        return float(step["within_max_round_timeouts"]) * settings.max_round_timeout + float(step.get("slack", 0.0))
    return float(step.get("within", default))


class Runner:
    def __init__(self, net: Net, manifest: Manifest) -> None:
        self.net = net
        self.manifest = manifest
        self.down: set[str] = set()

    @property
    def live(self) -> list[str]:
        return [n for n in self.net.names if n not in self.down]

    def run(self) -> list[StepResult]:
        results = []
        for index, step in enumerate(self.manifest.steps, start=1):
            what = step.get("perturb") or step["expect"]
            label = f"{self.manifest.name} step {index} ({what} {', '.join(step.get('nodes', []))})".rstrip()
            started = time.monotonic()
            try:
                if "perturb" in step:
                    result = self._perturb(index, step)
                else:
                    result = getattr(self, "_expect_" + step["expect"].replace("-", "_"))(index, step)
            except AssertionError as exc:
                raise AssertionError(f"{label}: {exc}") from None
            result.elapsed = time.monotonic() - started
            if result.bound is not None:
                assert result.elapsed <= result.bound, (
                    f"{label}: took {result.elapsed:.2f} s, the bound is {result.bound:.2f} s")
            if "measure" in step:
                bound = f" (bound {result.bound:.1f} s)" if result.bound is not None else ""
                record(step["measure"], f"{result.elapsed:.2f} s{bound}")
            results.append(result)
        return results

    # -- perturbations ---------------------------------------------------------------------
    def _perturb(self, index: int, step: dict[str, Any]) -> StepResult:
        action, nodes = step["perturb"], list(step["nodes"])
        heads: dict[str, int | None] = {}
        for name in nodes:
            if action in ("kill", "stop"):
                heads[name] = self.net.head(name)  # where it was when it went down
            if action == "kill":
                self.net.kill(name)
                self.down.add(name)
            elif action == "stop":
                self.net.stop(name)
                self.down.add(name)
            elif action in ("start", "restart"):
                if action == "restart" and self.net.is_running(name):
                    self.net.stop(name)
                self.net.start(name, wait=False)
                self.down.discard(name)
        if action in ("start", "restart"):
            for name in nodes:
                self.net.wait_serving(name)
        return StepResult(index, action, 0.0, None, {"heads": heads})

    # -- expectations ----------------------------------------------------------------------
    def _expect_progress(self, index: int, step: dict[str, Any]) -> StepResult:
        bound = _bound(step, self.manifest.consensus, FINAL_TIMEOUT)
        via = list(step.get("via", self.live))
        receipts = self.net.confirm_transactions(via, self.live, timeout=bound + 1.0)
        blocks = sorted(int(r["blockNumber"], 16) for r in receipts.values())
        return StepResult(index, "progress", 0.0, bound, {"blocks": blocks})

    def _expect_halt(self, index: int, step: dict[str, Any]) -> StepResult:
        settings = self.manifest.consensus
        seconds = float(step["seconds"]) if "seconds" in step else capped_round_timeouts(
            settings, int(step.get("rounds", 3)))
        live = self.live
        # A block already decided by some of them may still reach the others: settle first.
        wait_until(lambda: len(set(self.net.heads(live).values())) == 1, 10.0,
                   f"{', '.join(live)} to agree on a head")
        before = self.net.heads(live)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now = self.net.heads(live)
            assert now == before, f"a block was finalised while halted: heads {before} -> {now}"
            time.sleep(0.2)
        return StepResult(index, "halt", 0.0, None, {"seconds": seconds, "heads": before})

    def _expect_same_chain(self, index: int, step: dict[str, Any]) -> StepResult:
        live = self.live
        heads = self.net.heads(live)
        if step.get("equal_heads"):
            assert len(set(heads.values())) == 1, f"heads differ: {heads}"
        height = self.net.assert_same_chain(live)
        return StepResult(index, "same-chain", 0.0, None, {"height": height, "heads": heads})

    def _expect_caught_up(self, index: int, step: dict[str, Any]) -> StepResult:
        nodes = list(step["nodes"])
        others = [n for n in self.live if n not in nodes]
        target = max(self.net.heads(others).values())
        want = self.net.block_hash(others[0], target)
        bound = _bound(step, self.manifest.consensus, FINAL_TIMEOUT)
        wait_until(lambda: all(self.net.head(n) >= target for n in nodes), bound,
                   f"{', '.join(nodes)} to reach head {target} (the others' head)")
        for name in nodes:
            assert self.net.block_hash(name, target) == want, f"{name} has another block {target}"
        return StepResult(index, "caught-up", 0.0, bound, {"target": target})

    def _expect_signs(self, index: int, step: dict[str, Any]) -> StepResult:
        nodes = list(step["nodes"])
        wanted = {self.net.address(n): n for n in nodes}
        live = self.live
        after = max(self.net.heads(live).values())
        bound = _bound(step, self.manifest.consensus, FINAL_TIMEOUT)
        found: dict[str, int] = {}
        checked: set[tuple[str, int]] = set()

        def sealed() -> bool:
            for viewer in live:
                head = self.net.head(viewer)
                for number in range(after + 1, head + 1):
                    if (viewer, number) in checked:
                        continue
                    checked.add((viewer, number))
                    for signer in self.net.seal_signers(viewer, number):
                        if signer in wanted and wanted[signer] not in found:
                            found[wanted[signer]] = number
            return len(found) == len(wanted)

        wait_until(sealed, bound, f"a seal of {', '.join(n for n in nodes if n not in found)} "
                                  f"in a block after {after}")
        return StepResult(index, "signs", 0.0, bound, {"after": after, "sealed_in": found})


def run_manifest(net: Net, manifest: Manifest) -> list[StepResult]:
    """Carry out every step of `manifest` on `net`; AssertionError names a failed step."""
    return Runner(net, manifest).run()
