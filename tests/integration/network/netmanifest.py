"""A runner for `network/manifests/*.toml`: a testnet, perturbations, expectations,
transaction load and invariants: a small cometbft-style e2e suite on real processes.

After cometbft's e2e runner, the network is a black box: nodes are started, killed,
paused, cut off and restarted as processes, and what must hold is checked through
JSON-RPC only. A manifest:

    description = "what this testnet shows"

    [testnet]
    orgs = "hospital-a:hospital,…"      # network init --orgs (default: the four orgs)
    observers = []                       # "NAME@ORG", as network init

    [consensus]                          # node.toml [consensus], seconds
    block_period = 1.0
    empty_block_period = 1.0
    round_timeout = 1.0
    max_round_timeout = 4.0

    [heal]                               # a fault run (see "Fault runs" below)
    max_round_timeouts = 2               # after each heal: a new block final on every
    slack = 6.0                          #   honest node within 2 x max_round_timeout + slack

    [load]                               # transactions during the whole run (netload.py)
    batch = 3

    [nodes.regulator]                    # run through nodewrap.py (steered by the test)
    byzantine = true                     #   not honest: left out of the invariants
    clock_skew = 8.0                     #   its clock from the start (seconds, +/-)

    [[step]]                             # carried out in order
    perturb = "kill"                     # see "Perturbations"
    nodes = ["pharmacy-a"]

    [[step]]
    expect = "progress"                  # see below
    within = 15.0                        # seconds, or:
    within_max_round_timeouts = 1        #   this many capped round timeouts …
    slack = 4.0                          #   … plus this many seconds
    measure = "what the elapsed time is" # print the step's time in the run's summary

Perturbations (`nodes` names the nodes; `duration` = seconds until the runner heals it;
without a duration a lasting fault stays until a `heal` step or the end of the run):

- `kill` (SIGKILL; with a duration, started again after it), `stop` (SIGTERM, wait),
  `start` (`rxledger node start --config`), `restart` (SIGTERM, then start);
- `pause`: SIGSTOP, and SIGCONT when healed;
- `disconnect`: every link of each node cut at the proxy;
- `partition`: `groups = [["a", "b"], ["c", "d"]]`, every link between groups cut;
- `clock-skew`: `seconds = 8.0` added to the (wrapped) node's clock; 0 when healed;
- `byzantine`: `modes = ["equivocate", "invalid-block", "bad-seals", "replay", "flood"]`
  switched on in the wrapped node (nodewrap.py), off when healed;
- `heal`: heals every lasting fault.

Expectations (on the honest nodes the runner believes running and reachable, "live"):

- `progress`: one transaction sent to each live node (or to `via`) is final on every live
  node with identical receipts and block hashes, within the bound.
- `blocks`: `count` (default 1) new blocks final on every live node (or every live one of
  `nodes`), the same, within the bound (a fault run's liveness check while a fault lasts).
- `halt`: no live node's head moves for `rounds` consecutive round timeouts
  (round_timeout doubling up to max_round_timeout), or `seconds`.
- `same-chain`: the live nodes have the same block hash at every height up to their
  lowest head; with `equal_heads = true` also the same head.
- `caught-up`: each of `nodes` reaches the highest head the others had when the step
  began, with the same block hash there.
- `signs`: the address of each of `nodes` is among the recovered commit-seal signers of
  a block decided after the step began.

Fault runs (a manifest with `[heal]`): the network is started by `launch_fault_network`
(every peer link through a loopback proxy; wrapped nodes through nodewrap.py), the load
runs from the first step to the last, every heal (the end of a `duration`, a `heal`
step, a node back from `kill`/`restart` answering /health) is followed by the heal
check, and after the last step everything is healed and the invariants are asserted
(`check_invariants`): identical final blocks on all honest nodes; every transaction the
load saw final is in the same block on every honest node; no prescription has more
Dispensed events, or fillsUsed, than its fills allow; every final block's commit seals
are by distinct validators of its set, at least a quorum; every final header has the
values this chain defines for the fields QBFT does not use (difficulty 1, the QBFT mix
hash, nonce 0, empty ommers, base fee 0, …); every honest node reports /health "ok";
the load met no unexpected failure.

`run_manifest(net, manifest)` raises AssertionError naming the step or invariant that
failed and returns one `StepResult` per step (with its elapsed time).
"""

from __future__ import annotations

import os
import signal
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netharness import FINAL_TIMEOUT, Net, capped_round_timeouts, record, set_control, wait_until

from network.config import ConsensusSettings
from network.init import DEFAULT_ORGS

MANIFEST_DIR = Path(__file__).resolve().parents[3] / "network" / "manifests"
PERTURBATIONS = ("kill", "stop", "start", "restart", "pause", "disconnect", "partition", "clock-skew",
                 "byzantine", "heal")
EXPECTATIONS = ("progress", "blocks", "halt", "same-chain", "caught-up", "signs")
BYZANTINE_MODES = ("equivocate", "invalid-block", "bad-seals", "replay", "flood")
_STEP_KEYS = {"perturb", "expect", "nodes", "via", "within", "within_max_round_timeouts", "slack",
              "measure", "rounds", "seconds", "equal_heads", "duration", "groups", "modes", "count",
              "flood_rate"}
_NODE_KEYS = {"byzantine", "clock_skew", "wrapped"}
_NEED_NODES = {"kill", "stop", "start", "restart", "pause", "disconnect", "clock-skew", "byzantine"}


@dataclass(frozen=True)
class Heal:
    max_round_timeouts: float
    slack: float

    def bound(self, settings: ConsensusSettings) -> float:
        return self.max_round_timeouts * settings.max_round_timeout + self.slack


@dataclass(frozen=True)
class Manifest:
    name: str
    description: str
    orgs: str
    observers: tuple[str, ...]
    consensus: ConsensusSettings
    steps: tuple[dict[str, Any], ...]
    heal: Heal | None = None
    load: dict[str, Any] | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def wrapped(self) -> list[str]:
        """Nodes run through nodewrap.py: Byzantine, clock-skewed, or named `wrapped`."""
        return [n for n, c in self.nodes.items() if c.get("byzantine") or "clock_skew" in c or c.get("wrapped")]

    @property
    def byzantine(self) -> list[str]:
        return [n for n, c in self.nodes.items() if c.get("byzantine")]

    def controls(self) -> dict[str, dict[str, Any]]:
        seed = int((self.load or {}).get("seed", 0))
        return {n: {"skew": float(self.nodes[n].get("clock_skew", 0.0)), "modes": [], "seed": seed}
                for n in self.wrapped}


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
    return parse_manifest(path.stem, tomllib.loads(path.read_text()), str(path))


def parse_manifest(name: str, raw: dict[str, Any], where_from: str = "<manifest>") -> Manifest:
    """Check a manifest given as parsed TOML (the soak builds them in memory)."""
    path = where_from
    unknown = set(raw) - {"description", "testnet", "consensus", "step", "heal", "load", "nodes"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    testnet = raw.get("testnet", {})
    consensus = ConsensusSettings(**raw.get("consensus", {}))
    nodes = {str(n): dict(c) for n, c in raw.get("nodes", {}).items()}
    for node, conf in nodes.items():
        if set(conf) - _NODE_KEYS:
            raise ValueError(f"{path}: [nodes.{node}]: unknown keys {sorted(set(conf) - _NODE_KEYS)}")
    wrapped = {n for n, c in nodes.items() if c.get("byzantine") or "clock_skew" in c or c.get("wrapped")}
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
        action = step.get("perturb")
        if action in _NEED_NODES and not step.get("nodes"):
            raise ValueError(f"{where}: a {action} perturbation names its nodes")
        if action == "partition" and len(step.get("groups", ())) < 2:
            raise ValueError(f"{where}: a partition names at least two groups")
        if action in ("clock-skew", "byzantine"):
            if "heal" not in raw:
                raise ValueError(f"{where}: {action} needs a fault run ([heal])")
            if set(step["nodes"]) - wrapped:
                raise ValueError(f"{where}: {action} needs nodes run through nodewrap.py ([nodes.NAME])")
        if action == "byzantine":
            bad = set(step.get("modes", ())) - set(BYZANTINE_MODES)
            if bad or not step.get("modes"):
                raise ValueError(f"{where}: modes must be some of {BYZANTINE_MODES}")
            if set(step["nodes"]) - {n for n, c in nodes.items() if c.get("byzantine")}:
                raise ValueError(f"{where}: a Byzantine mode needs a node marked byzantine = true")
        if action in ("disconnect", "partition") and "heal" not in raw:
            raise ValueError(f"{where}: {action} needs a fault run ([heal]: links through the proxy)")
    heal = None
    if "heal" in raw:
        heal = Heal(float(raw["heal"].get("max_round_timeouts", 2)), float(raw["heal"].get("slack", 0.0)))
    load = dict(raw["load"]) if "load" in raw else None
    return Manifest(name, str(raw.get("description", "")).strip(),
                    str(testnet.get("orgs", DEFAULT_ORGS)), tuple(testnet.get("observers", ())),
                    consensus, steps, heal, load, nodes)


def _bound(step: dict[str, Any], settings: ConsensusSettings, default: float) -> float:
    if "within_max_round_timeouts" in step:
        return float(step["within_max_round_timeouts"]) * settings.max_round_timeout + float(step.get("slack", 0.0))
    return float(step.get("within", default))


@dataclass
class _Fault:
    """A lasting fault, and how to heal it."""

    what: str
    nodes: tuple[str, ...]
    links: list[frozenset[str]] = field(default_factory=list)


class Runner:
    def __init__(self, net: Net, manifest: Manifest) -> None:
        self.net = net
        self.manifest = manifest
        self.down: set[str] = set()
        self.paused: set[str] = set()
        self.faults: list[_Fault] = []
        self.heals: list[tuple[str, float, float]] = []  # (what, seconds, bound)
        self.load: Any = None
        self.summary: dict[str, Any] = {}

    @property
    def honest(self) -> list[str]:
        byzantine = set(self.manifest.byzantine)
        return [n for n in self.net.names if n not in byzantine]

    @property
    def live(self) -> list[str]:
        return [n for n in self.honest if n not in self.down and n not in self.paused]

    def run(self) -> list[StepResult]:
        results = []
        if self.manifest.heal is not None and self.manifest.load is not None:
            from netload import Load

            self.load = Load(self.net, lambda: list(self.live), seed=int(self.manifest.load.get("seed", 0)),
                             batch=int(self.manifest.load.get("batch", 3)))
            self.load.start()
        failure: AssertionError | None = None
        try:
            for index, step in enumerate(self.manifest.steps, start=1):
                results.append(self._step(index, step))
            if self.manifest.heal is not None:
                self._heal_everything("end of the run")
        except AssertionError as exc:
            if self.manifest.heal is None:
                raise
            failure = exc  # the invariants are still checked: they say what else went wrong
            self._release_everything()
        finally:
            if self.load is not None:
                self.load.stop()
        if self.manifest.heal is not None:
            try:
                self.summary = check_invariants(self)
            except AssertionError as exc:
                if failure is not None:
                    raise AssertionError(f"{failure}\nthen, after healing everything: {exc}") from None
                raise
        if failure is not None:
            raise failure
        return results

    def _release_everything(self) -> None:
        """After a failed step: end every fault and start stopped nodes, checking nothing."""
        faults, self.faults = self.faults, []
        for fault in faults:
            try:
                self._end(fault)
            except Exception as exc:
                print(f"could not heal {fault.what}: {exc}")
        for name in self.net.names:
            if name in self.paused:
                pid = self.net.pid(name)
                if pid is not None:
                    os.kill(pid, signal.SIGCONT)
                self.paused.discard(name)
            if name in self.down and not self.net.is_running(name):
                try:
                    self._start([name])
                except AssertionError as exc:
                    print(f"could not start {name} again: {exc}")

    def _step(self, index: int, step: dict[str, Any]) -> StepResult:
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
        return result

    # -- perturbations ---------------------------------------------------------------------
    def _perturb(self, index: int, step: dict[str, Any]) -> StepResult:
        action, nodes = step["perturb"], list(step.get("nodes", ()))
        heads: dict[str, int | None] = {}
        details: dict[str, Any] = {"heads": heads}
        if action in ("kill", "stop"):
            for name in nodes:
                heads[name] = self.net.head(name)  # where it was when it went down
                if action == "kill":
                    self.net.kill(name)
                else:
                    self.net.stop(name)
                self.down.add(name)
            if action == "kill" and "duration" in step:
                self._wait(float(step["duration"]))
                self._start(nodes)
                self._heal_check(f"kill {', '.join(nodes)}: back")
        elif action in ("start", "restart"):
            for name in nodes:
                if action == "restart" and self.net.is_running(name):
                    self.net.stop(name)
                self.down.add(name)
            if action == "restart" and "duration" in step:
                self._wait(float(step["duration"]))
            self._start(nodes)
            if self.manifest.heal is not None:
                self._heal_check(f"{action} {', '.join(nodes)}")
        elif action == "heal":
            self._heal_everything(f"heal step {index}")
        else:
            fault = self._begin(action, nodes, step)
            details["fault"] = fault.what
            if "duration" in step:
                self._wait(float(step["duration"]))
                self._end(fault)
                self._heal_check(fault.what)
            else:
                self.faults.append(fault)
        return StepResult(index, action, 0.0, None, details)

    def _start(self, nodes: list[str]) -> None:
        for name in nodes:
            self.net.start(name, wait=False)
        for name in nodes:
            self.net.wait_serving(name)
            self.down.discard(name)

    def _begin(self, action: str, nodes: list[str], step: dict[str, Any]) -> _Fault:
        proxy = self.net.proxy
        if action == "pause":
            for name in nodes:
                self.net.signal(name, signal.SIGSTOP)
                self.paused.add(name)
            return _Fault(f"pause {', '.join(nodes)}", tuple(nodes))
        if action == "disconnect":
            assert proxy is not None, "disconnect needs a fault run (links through the proxy)"
            links = [link for name in nodes for link in proxy.disconnect(name, self.net.names)]
            return _Fault(f"disconnect {', '.join(nodes)}", tuple(nodes), links)
        if action == "partition":
            assert proxy is not None, "partition needs a fault run (links through the proxy)"
            groups = [list(g) for g in step["groups"]]
            links = proxy.partition(groups)
            return _Fault("partition " + " | ".join(", ".join(g) for g in groups), (), links)
        if action == "clock-skew":
            seconds = float(step["seconds"])
            for name in nodes:
                set_control(self.net, name, skew=seconds)
            return _Fault(f"clock-skew {seconds:+g} s on {', '.join(nodes)}", tuple(nodes))
        if action == "byzantine":
            modes = list(step["modes"])
            for name in nodes:
                set_control(self.net, name, modes=modes, flood_rate=int(step.get("flood_rate", 300)))
            return _Fault(f"byzantine {'+'.join(modes)} on {', '.join(nodes)}", tuple(nodes))
        raise AssertionError(f"unknown perturbation {action}")

    def _end(self, fault: _Fault) -> None:
        kind = fault.what.split(" ", 1)[0]
        if kind == "pause":
            for name in fault.nodes:
                pid = self.net.pid(name)
                if pid is not None:
                    os.kill(pid, signal.SIGCONT)
                self.paused.discard(name)
        elif kind in ("disconnect", "partition"):
            self.net.proxy.heal_links(fault.links)
        elif kind == "clock-skew":
            for name in fault.nodes:
                set_control(self.net, name, skew=float(self.manifest.nodes.get(name, {}).get("clock_skew", 0.0)))
        elif kind == "byzantine":
            for name in fault.nodes:
                set_control(self.net, name, modes=[])

    def _heal_everything(self, why: str) -> None:
        faults, self.faults = self.faults, []
        for fault in faults:
            self._end(fault)
        restart = [n for n in self.net.names if n in self.down]
        if restart:
            self._start(restart)
        if faults or restart:
            self._heal_check(f"{why}: healed {', '.join(f.what for f in faults) or ''}"
                             f"{' restarted ' + ', '.join(restart) if restart else ''}")

    def _wait(self, seconds: float) -> None:
        time.sleep(seconds)  # the fault lasts this long; the load and the nodes run meanwhile

    def _heal_check(self, what: str) -> None:
        """After a heal: a new block, the same on every honest node, within the heal bound."""
        heal = self.manifest.heal
        if heal is None:
            return
        bound = heal.bound(self.manifest.consensus)
        started = time.monotonic()
        live = self.live
        target = max(self.net.heads(live).values()) + 1
        try:
            wait_until(lambda: all(self.net.head(n) >= target for n in live), bound,
                       f"block {target} final on all of {', '.join(live)}", interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"after heal ({what}): {exc}; heads now {self._heads_or_none(live)}") from None
        elapsed = time.monotonic() - started
        hashes = {n: self.net.block_hash(n, target) for n in live}
        assert len(set(hashes.values())) == 1, f"after heal ({what}): block {target} differs: {hashes}"
        self.heals.append((what, elapsed, bound))
        record(f"{self.manifest.name}: heal ({what}) -> new block on all honest nodes",
               f"{elapsed:.2f} s (bound {bound:.1f} s)")

    def _heads_or_none(self, names: list[str]) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for n in names:
            try:
                out[n] = self.net.head(n)
            except Exception:
                out[n] = None
        return out

# -- expectations ----------------------------------------------------------------------
    def _expect_progress(self, index: int, step: dict[str, Any]) -> StepResult:
        bound = _bound(step, self.manifest.consensus, FINAL_TIMEOUT)
        via = list(step.get("via", self.live))
        # Under load, accounts 9 and 0 only (netload.py leaves them to us).
        senders = (9, 0) if self.load is not None else (9, *range(0, 9))
        receipts = self.net.confirm_transactions(via, self.live, timeout=bound + 1.0, senders=senders)
        blocks = sorted(int(r["blockNumber"], 16) for r in receipts.values())
        return StepResult(index, "progress", 0.0, bound, {"blocks": blocks})

    def _expect_blocks(self, index: int, step: dict[str, Any]) -> StepResult:
        bound = _bound(step, self.manifest.consensus, FINAL_TIMEOUT)
        live = [n for n in step.get("nodes", self.live) if n in self.live]
        target = max(self.net.heads(live).values()) + int(step.get("count", 1))
        wait_until(lambda: all(self.net.head(n) >= target for n in live), bound,
                   f"block {target} final on all of {', '.join(live)}")
        hashes = {n: self.net.block_hash(n, target) for n in live}
        assert len(set(hashes.values())) == 1, f"block {target} differs: {hashes}"
        return StepResult(index, "blocks", 0.0, bound, {"target": target})

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


# -- invariants ----------------------------------------------------------------------------

def check_invariants(runner: Runner) -> dict[str, Any]:
    """Assert what must hold after a fault run (see the module's docstring); a summary."""
    from eth_abi.abi import decode as abi_decode
    from netharness import extra_validators, header_of, hex_address
    from netload import DISPENSED_TOPIC, REGISTRY, calldata

    from node.consensus.validators import quorum
    from rxledger.core.errors import NodeError
    from rxledger.core.types.headers import (
        EMPTY_OMMERS_HASH,
        EMPTY_REQUESTS_HASH,
        EMPTY_TRIE_ROOT,
        QBFT_MIX_HASH,
        ZERO_HASH,
        recover_seal_signers,
    )

    net, name = runner.net, runner.manifest.name
    honest = runner.honest
    summary: dict[str, Any] = {}
    violations: list[str] = []

    def check(ok: object, message: str) -> bool:
        if not ok:
            violations.append(message)
        return bool(ok)

    # -- every honest node runs and says its consensus runs
    for node in honest:
        check(net.is_running(node), f"{name}: honest node {node} is not running")
        health = net.health(node) or {}
        check(health.get("status") == "ok", f"{name}: {node} /health says {health.get('status')!r}")
    # -- identical final blocks up to the common head (read once per node)
    common = min(net.heads(honest).values())
    blocks = {node: [net.block(node, n) for n in range(common + 1)] for node in honest}
    reference = blocks[honest[0]]
    for node in honest[1:]:
        for number in range(common + 1):
            a, b = reference[number], blocks[node][number]
            if not check(a is not None and b is not None, f"{name}: block {number} missing on {honest[0]} or {node}"):
                break
            assert a is not None and b is not None
            if not check(a["hash"] == b["hash"], (
                    f"{name}: fork at block {number}: {honest[0]} has {a['hash']}, {node} has {b['hash']}")):
                break  # the first fork says it; the blocks above differ anyway
    summary["common_head"] = common
    # -- the header fields QBFT does not use hold this chain's values; seals by a quorum
    gas_limit = header_of(reference[0]).gas_limit if reference[0] is not None else None
    for number in range(1, common + 1):
        block = reference[number]
        assert block is not None
        header = header_of(block)
        expected = {"difficulty": 1, "mix_hash": QBFT_MIX_HASH, "nonce": b"\x00" * 8,
                    "ommers_hash": EMPTY_OMMERS_HASH, "base_fee_per_gas": 0, "withdrawals_root": EMPTY_TRIE_ROOT,
                    "blob_gas_used": 0, "excess_blob_gas": 0, "parent_beacon_block_root": ZERO_HASH,
                    "requests_hash": EMPTY_REQUESTS_HASH, "gas_limit": gas_limit}
        for field_name, want in expected.items():
            got = getattr(header, field_name)
            check(got == want, (f"{name}: final block {number} ({block['hash']}) has {field_name} "
                                 f"{got.hex() if isinstance(got, bytes) else got}, this chain defines "
                                 f"{want.hex() if isinstance(want, bytes) else want} (proposer {net.name_of(header.coinbase)})"))
        try:
            signers = [hex_address(a) for a in recover_seal_signers(header)]
        except NodeError as exc:
            check(False, f"{name}: block {number} has an unrecoverable commit seal: {exc}")
            continue
        validators = extra_validators(header)
        check(len(set(signers)) == len(signers), f"{name}: block {number} has a validator's seal twice: {signers}")
        strangers = set(signers) - set(validators)
        check(not strangers, f"{name}: block {number} carries seals of non-validators {sorted(strangers)}")
        check(len(signers) >= quorum(len(validators)), (
            f"{name}: block {number} has {len(signers)} seals, the quorum of {len(validators)} is "
            f"{quorum(len(validators))}"))
    # -- every transaction reported final is still there, in the same block, everywhere
    load = runner.load
    if load is not None:
        check(not load.errors, f"{name}: the load met failures: {load.errors[:5]}")
        check(len(load.final) >= 10, f"{name}: the load made only {len(load.final)} transactions final")
        for node in honest:
            hashes = list(load.final)
            for i in range(0, len(hashes), 100):
                chunk = hashes[i:i + 100]
                answers = net.client.post(net.node(node).rpc, json=[
                    {"jsonrpc": "2.0", "id": j, "method": "eth_getTransactionReceipt", "params": [h]}
                    for j, h in enumerate(chunk)], timeout=30.0).json()
                by_id = {a["id"]: a.get("result") for a in answers}
                for j, tx_hash in enumerate(chunk):
                    seen = load.final[tx_hash]
                    receipt = by_id.get(j)
                    if check(receipt is not None, (
                            f"{name}: {tx_hash} ({seen.lane}) was final in block {seen.block_number} on "
                            f"{seen.reported_by}, {node} has no receipt: a final transaction was lost")):
                        assert receipt is not None
                        check(receipt["blockHash"] == seen.block_hash, (
                            f"{name}: {tx_hash} was final in {seen.block_hash} on {seen.reported_by}, "
                            f"{node} has it in {receipt['blockHash']}"))
        summary["final_txs"] = len(load.final)
        summary["load"] = load.summary()
        # -- no prescription dispensed more often than its fills allow
        for node in honest:
            logs = net.call(node, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(common),
                                                   "address": REGISTRY, "topics": [DISPENSED_TOPIC]}])
            fills: dict[str, int] = {}
            for entry in logs:
                fills[entry["topics"][1]] = fills.get(entry["topics"][1], 0) + 1
            for rx_id, count in fills.items():
                allowed = load.prescriptions.get(rx_id)
                if check(allowed is not None, f"{name}: {node}: Dispensed for {rx_id}, never issued by the load"):
                    check(count <= allowed, f"{name}: {node}: {rx_id} dispensed {count} times, {allowed} allowed")
            summary.setdefault("dispensed", sum(fills.values()))
        for rx_id, allowed in list(load.prescriptions.items())[:50]:
            answer = net.call(honest[0], "eth_call", [{"to": REGISTRY, "data": "0x" + calldata(
                "getPrescription(bytes32)", bytes.fromhex(rx_id[2:])).hex()}, "latest"])
            fields = abi_decode(["bytes32", "bytes32", "address", "bytes32", "uint8", "uint16", "uint16", "uint32",
                                 "uint64", "uint64", "uint64", "uint8", "uint64"], bytes.fromhex(answer[2:]))
            check(fields[5] == allowed and fields[6] <= allowed, (
                f"{name}: {rx_id}: fillsAllowed {fields[5]} (issued with {allowed}), fillsUsed {fields[6]}"))
    assert not violations, (f"{len(violations)} invariant violations after {name}:\n"
                            + "\n".join(violations[:25]))
    summary["heals"] = [(what, round(t, 2), round(b, 1)) for what, t, b in runner.heals]
    return summary


def run_manifest(net: Net, manifest: Manifest) -> list[StepResult]:
    """Carry out every step of `manifest` on `net`; AssertionError names a failed step."""
    return Runner(net, manifest).run()
