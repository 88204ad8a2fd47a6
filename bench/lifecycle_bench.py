"""Prescription lifecycle throughput: the native chaincode against the Solidity contracts.

The lifecycle mix is issue → review (approve) → dispense (the one fill, so the
prescription ends completed): three transactions per prescription, from three roles.

Part 1, through JSON-RPC on a dev chain (the same node, the same run, both engines; with
`--network` on the 4-node network instead, see below):

1. Starts `rxledger node start --dev` on a free port with a temporary LevelDB data dir
   (or uses `--url`), and deploys the Solidity Governance, PrescriptionRegistry and
   AnchorRegistry with `contracts/deploy.py`'s `deploy_all` (development setup).
2. `--lanes` lanes (default 8), each with its own prescriber, hospital pharmacist and
   pharmacist of hospital-a / pharmacy-a: lane 0 is development accounts 1, 2, 3; the
   others are new keys enrolled by the admins (accounts 0 and 7) in the native Governance
   (the txpool's sender check) and in the Solidity one. Each lane issues `--n / lanes`
   prescriptions.
3. For each engine (native first, then Solidity; `--order` to swap), every transaction is
   pre-signed (not timed; legacy, zero gas price, gas = the engine's `eth_estimateGas` of
   that function + 25 %), then sent with `eth_sendRawTransaction` from `--concurrency`
   threads (default 8; `--batch K` sends JSON-RPC batches of K) as a pipeline: a review
   goes out once its issue is final, a dispense once its review is, and each account has
   at most 64 transactions ahead of its last final one (the pool's nonce limit). A poller
   sees blocks as in bench/devchain_tps.py (bench/common.py's `follow_blocks`: a batch of 16
   `eth_getBlockByNumber` per poll).
4. After the run: every receipt has status 1, and `getPrescription` of every prescription
   reads completed with one fill.

Reported per engine: lifecycle transactions per second (first send → last final block),
submit → final latency, blocks and transactions per block, node CPU, the load average
before and after; in the JSON also each block seen (number, our transactions, QBFT round,
seconds after the first send) and how many sends were refused as "nonce too high" (sent
again after 20 ms, for at most 60 s; only the network should see them).

`--network`: the same run on the 4-node QBFT network instead of a dev node. A network of
4 validators (hospital-a, hospital-b, pharmacy-a, regulator, chain id 2024, the
development accounts enrolled in its genesis) is made in a temporary directory with
bench/common.py's `init_net` and started with its `start_net` (`network.launcher.up`,
detached; the nodes run the `node` this process imports, from its source root), with
network_bench's load-mode consensus settings: `--block-period` (default 1.0 s), empty
block period 10 s, round timeout 2 s (max 30 s). Deployment, gas probes and enrolment go
to the first node (the Governance constructor gets the chain's four validators);
transaction i of the presigned order (lane, then step, then prescription) goes to node
i mod 4, each sender holding one keep-alive client per node (with `--batch K`, the K
transactions a sender takes go out as one request per receiving node); the poller polls
the first node only (QBFT blocks are final when written), so a transaction is final when
the first node has its block. After each engine's run, besides the checks of 4., the
four nodes' `/health` head and headHash must be identical (bench/common.py's
`heads_identical`). Also reported: each node's CPU seconds over the run, the QBFT rounds
> 0 among the blocks seen, the consensus settings. The network is always stopped (common.py's
`stop_net`) and its directory removed unless `--keep`.

Part 2, in process (no HTTP, no pool, no LevelDB): `Chain.build_block` on a `MemoryStore`
(as bench/keccak_backends.py's end-to-end part) of `--block-txs` (default 150) issue
transactions, then as many reviews, then as many dispenses (from development accounts
1, 2, 3), per engine, best and median of `--repeats` (default 5) after a warm-up; each
repeat on a fresh chain. This shows the engine ratio without the HTTP and pool overhead.

Goals (the issue): native ≥ 20x the Solidity path in the same run; ≥ 1,500 lifecycle
transactions per second on the dev chain. The script prints whether each was met; with
`--network` it prints the same two figures labelled as network figures, not judged
(the goals are about the dev chain).

Diagnostics: `--py-spy FILE` runs the node under py-spy (see bench/devchain_tps.py;
`.txt` for bench/pyspy_summary.py), `--engines native` to profile one engine.

Run:
  .venv/bin/python bench/lifecycle_bench.py [--n 1200] [--lanes 8] [--batch 1] [--json]
  .venv/bin/python bench/lifecycle_bench.py --network [--block-period 1.0] --skip-inprocess [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaincode_py import NativeChaincodeHost

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common import (  # noqa: E402
    MAX_NONCE_GAP,
    CpuProbe,
    DevNode,
    Measured,
    Net,
    Rpc,
    cpu_of,
    decode_round,
    emit,
    follow_run,
    heads_identical,
    init_net,
    loadavg,
    mark_final,
    percentile,
    pick_base_port,
    process_cpu_seconds,
    receipt_statuses,
    record_failure,
    record_pids,
    send_raw,
    source_root,
    start_net,
    stop_net,
    wait_receipts,
)
from eth_abi.abi import decode as abi_decode  # noqa: E402
from eth_abi.abi import encode as abi_encode  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_utils.address import to_checksum_address  # noqa: E402
from eth_utils.crypto import keccak  # noqa: E402
from machine_info import machine  # noqa: E402

CHAIN_ID = 2024
NATIVE_REGISTRY = "0x0000000000000000000000000000000000001001"
NATIVE_GOVERNANCE = "0x0000000000000000000000000000000000001002"
STEPS = ("issue", "review", "dispense")
SIGNATURES = {
    "issue": "issue(bytes32,bytes32,bytes32,uint8,uint16,uint32,uint64,uint64)",
    "review": "review(bytes32,bool,bytes32)",
    "dispense": "dispense(bytes32,uint32,bytes32)",
    "enroll": "enroll(address,uint8)",
    "getPrescription": "getPrescription(bytes32)",
}
RECORD_TYPES = ["bytes32", "bytes32", "address", "bytes32", "uint8", "uint16", "uint16", "uint32",
                "uint64", "uint64", "uint64", "uint8", "uint64"]
PRESCRIBER, REVIEWER, PHARMACIST = 1, 2, 3  # roles
HOSPITAL_ADMIN, PHARMACY_ADMIN = 0, 7  # development accounts
COMPLETED = 4
QUANTITY = 30
GOAL_RATIO, GOAL_TPS = 20.0, 1500.0
# --network: bench/network_bench.py's consensus settings for its load mode (its defaults).
NETWORK_EMPTY_BLOCK_PERIOD, NETWORK_ROUND_TIMEOUT, NETWORK_MAX_ROUND_TIMEOUT = 10.0, 2.0, 30.0
NONCE_RETRY_S = 60.0  # how long a transaction refused as "nonce too high" is sent again


def calldata(fn: str, *args: Any) -> bytes:
    signature = SIGNATURES[fn]
    types = signature[signature.index("(") + 1:-1].split(",")
    return keccak(text=signature)[:4] + abi_encode(types, list(args))


def issue_args(rid: bytes, i: int, now: int) -> tuple[Any, ...]:
    return (rid, keccak(text=f"commitment {i}"), keccak(text=f"patient {i}"), 0, 1, QUANTITY,
            now - 3600, now + 30 * 86_400)


def step_args(step: str, rid: bytes, i: int, now: int) -> tuple[Any, ...]:
    if step == "issue":
        return issue_args(rid, i, now)
    if step == "review":
        return (rid, True, b"\x00" * 32)
    return (rid, QUANTITY, keccak(text=f"dispense {i}"))


def load_deploy_module() -> Any:
    spec = importlib.util.spec_from_file_location("rxledger_contracts_deploy", REPO_ROOT / "contracts" / "deploy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def dev_key(index: int) -> bytes:
    from node.genesis import derive_dev_key

    return derive_dev_key(index)


def address_of(key: bytes) -> str:
    return str(Account.from_key(key).address)


# -- JSON-RPC helpers ----------------------------------------------------------------------
def send_and_wait(rpc: Rpc, raws: list[tuple[str, str]], what: str) -> None:
    for i in range(0, len(raws), 50):
        for answer in rpc.batch([("eth_sendRawTransaction", [raw]) for raw, _ in raws[i:i + 50]]):
            if "error" in answer:
                raise SystemExit(f"{what}: {answer['error']}")
    for receipt in wait_receipts(rpc, [h for _, h in raws], "set-up transactions"):
        if int(receipt["status"], 16) != 1:
            raise SystemExit(f"{what}: transaction {receipt['transactionHash']} reverted")


def nonce_of(rpc: Rpc, address: str) -> int:
    return int(str(rpc.call("eth_getTransactionCount", address, "pending")), 16)


def sign(key: bytes, nonce: int, to: str, data: bytes, gas: int) -> tuple[str, str]:
    signed = Account.sign_transaction({"nonce": nonce, "gasPrice": 0, "gas": gas, "to": to_checksum_address(to), "value": 0,
                                       "data": data, "chainId": CHAIN_ID}, key)
    return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()


# -- set-up: contracts and lanes -----------------------------------------------------------
@dataclass
class Lane:
    keys: tuple[bytes, bytes, bytes]  # prescriber, reviewer, pharmacist

    def addresses(self) -> tuple[str, str, str]:
        a, b, c = (address_of(k) for k in self.keys)
        return a, b, c


def make_lanes(count: int) -> list[Lane]:
    lanes = [Lane((dev_key(1), dev_key(2), dev_key(3)))]
    for i in range(1, count):
        lanes.append(Lane(tuple(keccak(text=f"rxledger lifecycle bench lane {i} {role}")  # type: ignore[arg-type]
                                for role in ("prescriber", "reviewer", "pharmacist"))))
    return lanes


def enrol_lanes(rpc: Rpc, lanes: list[Lane], governances: list[str]) -> None:
    """Enrol the lanes' new keys in every Governance of `governances` (hospital-a's admin
    the prescribers and reviewers, pharmacy-a's the pharmacists)."""
    admins = {HOSPITAL_ADMIN: dev_key(HOSPITAL_ADMIN), PHARMACY_ADMIN: dev_key(PHARMACY_ADMIN)}
    nonces = {i: nonce_of(rpc, address_of(k)) for i, k in admins.items()}
    raws = []
    for governance in governances:
        for lane in lanes[1:]:
            for address, role in zip(lane.addresses(), (PRESCRIBER, REVIEWER, PHARMACIST), strict=True):
                admin = PHARMACY_ADMIN if role == PHARMACIST else HOSPITAL_ADMIN
                raws.append(sign(admins[admin], nonces[admin], governance, calldata("enroll", address, role),
                                 200_000))
                nonces[admin] += 1
    send_and_wait(rpc, raws, "enrolling the lanes' accounts")


def estimate_gas(rpc: Rpc, registry: str, lane: Lane, now: int) -> dict[str, int]:
    """Each step's gas (eth_estimateGas + 25 %), measured on one prescription taken
    through its lifecycle."""
    rid = keccak(text=f"lifecycle bench gas probe {registry} {now}")
    gas = {}
    for step, key in zip(STEPS, lane.keys, strict=True):
        data = calldata(step, *step_args(step, rid, 0, now))
        call = {"from": address_of(key), "to": registry, "data": "0x" + data.hex()}
        gas[step] = int(str(rpc.call("eth_estimateGas", call)), 16) * 5 // 4
        send_and_wait(rpc, [sign(key, nonce_of(rpc, address_of(key)), registry, data, gas[step])],
                      f"gas probe {step}")
    return gas


# -- the pipelined run ---------------------------------------------------------------------
@dataclass
class Tx:
    lane: int
    step: int
    index: int
    raw: str
    hash: str
    node: int = 0  # the receiving node's index in the list of URLs
    sent_at: float = 0.0
    final_at: float = 0.0
    block: int = -1
    status: int | None = None


@dataclass
class Pipeline:
    """Per lane and step, transactions in nonce order; a transaction may be sent when the
    previous step of its prescription is final and its account has fewer than `window`
    transactions ahead of its last final one."""

    txs: list[list[list[Tx]]]  # [lane][step][index]
    window: int
    lock: threading.Condition = field(default_factory=threading.Condition)
    sent: list[list[int]] = field(default_factory=list)
    final: list[list[int]] = field(default_factory=list)
    total: int = 0
    sent_total: int = 0
    finals: int = 0
    rr: int = 0
    retries: int = 0  # sends refused as "nonce too high" and repeated
    failed: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sent = [[0, 0, 0] for _ in self.txs]
        self.final = [[0, 0, 0] for _ in self.txs]
        self.total = sum(len(s) for lane in self.txs for s in lane)

    def take(self, k_max: int) -> list[Tx]:
        with self.lock:
            while True:
                if self.failed or self.sent_total >= self.total:
                    return []
                out: list[Tx] = []
                lanes = len(self.txs)
                for j in range(lanes * 3):
                    lane, step = divmod((self.rr + j) % (lanes * 3), 3)
                    queue = self.txs[lane][step]
                    limit = min(len(queue), self.final[lane][step] + self.window)
                    if step:
                        limit = min(limit, self.final[lane][step - 1])
                    while self.sent[lane][step] < limit and len(out) < k_max:
                        out.append(queue[self.sent[lane][step]])
                        self.sent[lane][step] += 1
                    if len(out) >= k_max:
                        break
                self.rr = (self.rr + 1) % (lanes * 3)
                if out:
                    self.sent_total += len(out)
                    return out
                self.lock.wait(0.5)


def send(run: Pipeline, rpc: Rpc, txs: list[Tx]) -> None:
    """`eth_sendRawTransaction` of `txs` in one request (a batch if more than one); those
    refused as "nonce too high" (the receiving node has not yet seen the block that made
    room) are sent again after 20 ms, for at most NONCE_RETRY_S."""
    deadline = time.monotonic() + NONCE_RETRY_S
    while txs:
        t0 = time.perf_counter()
        for t in txs:
            t.sent_at = t.sent_at or t0  # a repeated send keeps its first send time
        answers = send_raw(rpc, [t.raw for t in txs])
        again = []
        for t, answer in zip(txs, answers, strict=True):
            error = answer.get("error")
            if (isinstance(error, dict) and "nonce too high" in str(error.get("message"))
                    and time.monotonic() < deadline and not run.failed):
                again.append(t)
            elif error is not None or answer.get("result") != t.hash:
                record_failure(run, f"lane {t.lane} {STEPS[t.step]} {t.index} (node {t.node}): {answer}")
        if again:
            with run.lock:
                run.retries += len(again)
            time.sleep(0.02)
        txs = again


def sender(run: Pipeline, urls: list[str], batch: int) -> None:
    """Sends what `run` lets it take, each transaction to its receiving node: the
    transactions taken together go out as one request per receiving node."""
    rpcs = [Rpc(url) for url in urls]
    try:
        while True:
            txs = run.take(batch)
            if not txs:
                return
            by_node: dict[int, list[Tx]] = {}
            for t in txs:
                by_node.setdefault(t.node, []).append(t)
            for node, group in by_node.items():
                send(run, rpcs[node], group)
    except Exception as exc:
        record_failure(run, f"sender: {exc!r}")
    finally:
        for rpc in rpcs:
            rpc.close()


def poller(run: Pipeline, url: str, first_block: int, interval: float, blocks: list[dict[str, Any]]) -> None:
    by_hash = {t.hash: t for lane in run.txs for step in lane for t in step}

    def on_final(t: Tx) -> None:  # under the lock
        run.final[t.lane][t.step] = max(run.final[t.lane][t.step], t.index + 1)

    def on_block(n: int, block: dict[str, Any], seen: float) -> None:
        ours = mark_final(run, by_hash, block, n, seen, on_final)
        blocks.append({"number": n, "ours": ours, "gasUsed": int(block["gasUsed"], 16), "seen": seen,
                       "round": decode_round(block["extraData"])})

    follow_run(run, url, first_block, interval, run.total, on_block)


def run_engine(rpc: Rpc, urls: list[str], engine: str, registry: str, lanes: list[Lane], n: int,
               args: argparse.Namespace, cpu: CpuProbe) -> dict[str, Any]:
    """One engine's pipelined run: set-up and polling through `rpc` (the first URL's node),
    transaction i of the presigned order ([lane][step][index]) sent to `urls[i % len(urls)]`."""
    now = int(time.time())
    gas = estimate_gas(rpc, registry, lanes[0], now)
    per_lane = n // len(lanes)
    txs: list[list[list[Tx]]] = []
    rx_ids: list[bytes] = []
    t_sign = time.perf_counter()
    seq = 0
    for li, lane in enumerate(lanes):
        ids = [keccak(text=f"lifecycle {engine} {now} lane {li} rx {i}") for i in range(per_lane)]
        rx_ids += ids
        steps = []
        for s, (step, key) in enumerate(zip(STEPS, lane.keys, strict=True)):
            nonce = nonce_of(rpc, address_of(key))
            queue = []
            for i, rid in enumerate(ids):
                raw, tx_hash = sign(key, nonce + i, registry, calldata(step, *step_args(step, rid, i, now)), gas[step])
                queue.append(Tx(li, s, i, raw, tx_hash, node=seq % len(urls)))
                seq += 1
            steps.append(queue)
        txs.append(steps)
    sign_s = time.perf_counter() - t_sign
    head = int(str(rpc.call("eth_blockNumber")), 16)
    run = Pipeline(txs, window=args.window)
    blocks: list[dict[str, Any]] = []
    measured = Measured(cpu)
    poll = threading.Thread(target=poller, args=(run, urls[0], head + 1, args.poll_interval, blocks), daemon=True)
    senders = [threading.Thread(target=sender, args=(run, urls, args.batch), daemon=True)
               for _ in range(args.concurrency)]
    poll.start()
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    if not run.done.wait(args.timeout):
        run.failed = run.failed or f"not all transactions final after {args.timeout}s"
    run.done.set()
    poll.join(timeout=10)
    cpu_load = measured.end()
    node_cpu = cpu_load["node_cpu_s"]

    flat = [t for lane in txs for step in lane for t in step]
    # receipts of our blocks, and every prescription completed
    statuses = receipt_statuses(rpc, [b["number"] for b in blocks if b["ours"]])
    for t in flat:
        if t.hash in statuses:
            t.status = statuses[t.hash]
    completed = 0
    for i in range(0, len(rx_ids), 100):
        calls = [("eth_call", [{"to": registry, "data": "0x" + calldata("getPrescription", rid).hex()}, "latest"])
                 for rid in rx_ids[i:i + 100]]
        for answer in rpc.batch(calls):
            record = abi_decode(RECORD_TYPES, bytes.fromhex(answer["result"][2:])) if "result" in answer else None
            completed += record is not None and record[11] == COMPLETED and record[6] == 1
    finals = [t for t in flat if t.final_at]
    first = min((t.sent_at for t in flat if t.sent_at), default=0.0)
    last = max((t.final_at for t in finals), default=float("nan"))
    elapsed = last - first
    lat = sorted(t.final_at - t.sent_at for t in finals)
    ours = [b for b in blocks if b["ours"]]
    sizes = [b["ours"] for b in ours]
    ok = (run.failed is None and len(finals) == len(flat) and all(t.status == 1 for t in flat)
          and completed == len(rx_ids))
    cpus = list(node_cpu.values())
    return {
        "engine": engine, "registry": registry, "prescriptions": len(rx_ids), "txs": len(flat),
        "gas": gas, "sign_s": round(sign_s, 2), "ok": ok, "failure": run.failed,
        "final": len(finals), "status_1": sum(1 for t in flat if t.status == 1), "completed": completed,
        "elapsed_s": round(elapsed, 3), "tps": round(len(finals) / elapsed, 1) if finals else 0.0,
        "latency_s": {"p50": round(percentile(lat, 50), 3), "p90": round(percentile(lat, 90), 3),
                      "p99": round(percentile(lat, 99), 3), "max": round(lat[-1], 3) if lat else None},
        "blocks": len(ours), "start_block": head + 1,
        "txs_per_block": {"mean": round(sum(sizes) / len(sizes), 1) if sizes else 0, "max": max(sizes, default=0)},
        "node_cpu_s": round(sum(c for c in cpus if c is not None), 2) if cpus and None not in cpus else None,
        "nodes_cpu_s": node_cpu,
        "rounds_above_0": sum(1 for b in blocks if b["round"]), "blocks_seen": len(blocks),
        "block_log": [[b["number"], b["ours"], b["round"], round(b["seen"] - first, 3)] for b in blocks],
        "nonce_too_high_retries": run.retries,
        "loadavg_before": cpu_load["loadavg_before"], "loadavg_after": cpu_load["loadavg_after"],
    }


def deploy_and_run(urls: list[str], args: argparse.Namespace, cpu: CpuProbe,
                   check: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Deploy the contracts and enrol the lanes through the first URL's node, then run each
    engine; after each run, `check()` (the heads of the nodes) goes into the engine's
    result as "heads", and its "identical" must be true for the run to be OK."""
    rpc = Rpc(urls[0])
    try:
        deploy = load_deploy_module()
        w3 = deploy.connect(urls[0])
        setup = deploy.dev_setup(deploy.chain_validators(w3) or [])
        deployed = deploy.deploy_all(w3, dev_key(9), setup)
        lanes = make_lanes(args.lanes)
        engines = {"native": (NATIVE_REGISTRY, NATIVE_GOVERNANCE),
                   "solidity": (deployed["PrescriptionRegistry"], deployed["Governance"])}
        chosen = [e for e in args.order.split(",") if e in args.engines.split(",")]
        enrol_lanes(rpc, lanes, [engines[e][1] for e in chosen])
        results = {}
        for e in chosen:
            results[e] = run_engine(rpc, urls, e, engines[e][0], lanes, args.n, args, cpu)
            if check is not None:
                heads = check()
                results[e]["heads"] = heads
                results[e]["ok"] = results[e]["ok"] and heads["identical"]
    finally:
        rpc.close()
    return {"deployed": deployed, "lanes": args.lanes, "engines": results}


def rpc_part(args: argparse.Namespace) -> dict[str, Any]:
    if args.network:
        return network_part(args)
    with DevNode(args.url, prefix="rxledger-lifecycle-", keep=args.keep, py_spy=args.py_spy,
                 py_spy_gil=args.py_spy_gil) as node:
        assert node.url is not None
        node_pid = node.node_pid()

        def cpu() -> dict[str, float | None]:
            return {"dev": process_cpu_seconds(node_pid)} if node_pid else {}

        return deploy_and_run([node.url], args, cpu)


def network_part(args: argparse.Namespace) -> dict[str, Any]:
    """--network: bench/network_bench.py's 4-validator network in a temporary directory,
    started with common's `start_net` (network.launcher.up, detached), stopped with `stop_net`."""
    from network.config import ConsensusSettings

    os.chdir(source_root())  # `up` starts `python -m rxledger` in our working directory
    tmp = Path(tempfile.mkdtemp(prefix="rxledger-lifecycle-net-"))
    base_port = pick_base_port()
    settings = ConsensusSettings(block_period=args.block_period, empty_block_period=NETWORK_EMPTY_BLOCK_PERIOD,
                                 round_timeout=NETWORK_ROUND_TIMEOUT, max_round_timeout=NETWORK_MAX_ROUND_TIMEOUT)
    net: Net | None = None
    info: dict[str, Any] = {"validators": [], "base_port": base_port, "consensus": dataclasses.asdict(settings),
                            "block_period": args.block_period}
    try:
        net = init_net(tmp / "net", base_port, settings)
        if net.info.chain_id != CHAIN_ID:
            raise SystemExit(f"the network's chain id {net.info.chain_id} is not {CHAIN_ID}")
        info["validators"], info["urls"] = net.names, net.urls
        info["loadavg_at_up"] = loadavg()
        thread = start_net(net, timeout=120.0)
        thread.join(timeout=130.0)
        thread.watcher.join(timeout=5.0)  # type: ignore[attr-defined]
        if net.up_error or thread.is_alive():
            raise SystemExit(f"the network did not come up: {net.up_error or 'up did not return in 130 s'}")
        record_pids(net)
        info["up_s"] = round(net.up_s, 3) if net.up_s else None
        info["first_final_block_s"] = round(net.first_final_s, 3) if net.first_final_s else None
        started = net
        out = deploy_and_run(net.urls, args, lambda: cpu_of(started), lambda: heads_identical(started))
        for e in out["engines"].values():
            e["block_period"] = args.block_period
    finally:
        if net is not None:
            stop_net(net)
        if args.keep:
            info["kept"] = str(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    out["network"] = info
    return out


# -- in process ----------------------------------------------------------------------------
def inprocess_part(block_txs: int, repeats: int) -> dict[str, Any]:
    """`Chain.build_block` of `block_txs` issues, then reviews, then dispenses, per engine."""
    from node.chain import Chain
    from node.genesis import dev_genesis, dev_validator_key
    from node.storage import MemoryStore
    from rxledger.core.artifacts import load_artifact
    from rxledger.core.crypto import private_key_to_address
    from rxledger.core.types import decode_transaction

    deploy = load_deploy_module()
    proposer = private_key_to_address(dev_validator_key())
    setup = deploy.dev_setup(["0x" + proposer.hex()])
    deployer = Account.from_key(dev_key(9))

    def deploy_raw(name: str, args: list[Any], nonce: int) -> bytes:
        artifact = load_artifact(name)
        ctor = next(f for f in artifact["abi"] if f["type"] == "constructor")
        types = [i["type"] for i in ctor["inputs"]]
        code = bytes.fromhex(artifact["bytecode"][2:]) + abi_encode(types, args)
        return bytes(deployer.sign_transaction({"nonce": nonce, "gasPrice": 0, "gas": 8_000_000, "data": code,
                                                "chainId": CHAIN_ID}).raw_transaction)

    def solidity_chain() -> tuple[Any, str]:
        chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
        governance = "0x" + keccak(bytes.fromhex("d694") + bytes.fromhex(deployer.address[2:]) + b"\x80")[12:].hex()
        registry = "0x" + keccak(bytes.fromhex("d694") + bytes.fromhex(deployer.address[2:]) + b"\x01")[12:].hex()
        for ts, raw in enumerate((deploy_raw("Governance", list(setup.constructor_args()), 0),
                                  deploy_raw("PrescriptionRegistry", [governance], 1)), start=1):
            block, ex = chain.build_block([decode_transaction(raw)], timestamp=ts, proposer=proposer)
            assert ex.receipts[0].status == 1
            chain.commit_block(chain.seal(block, []), ex)
        return chain, registry

    now = 1_700_000_000
    rids = [keccak(text=f"inprocess rx {i}") for i in range(block_txs)]
    keys = (dev_key(1), dev_key(2), dev_key(3))
    out: dict[str, Any] = {"block_txs": block_txs, "repeats": repeats}
    for engine in ("native", "solidity"):
        times: dict[str, list[float]] = {step: [] for step in STEPS}
        for rep in range(repeats + 1):  # the first round warms imports and caches
            if engine == "native":
                chain, registry = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost), NATIVE_REGISTRY
            else:
                chain, registry = solidity_chain()
            for s, (step, key) in enumerate(zip(STEPS, keys, strict=True)):
                nonce0 = chain.state_nonce(bytes.fromhex(address_of(key)[2:]))
                txs = [decode_transaction(bytes.fromhex(sign(key, nonce0 + i, registry,
                                                             calldata(step, *step_args(step, rid, i, now)),
                                                             195_000)[0][2:]))
                       for i, rid in enumerate(rids)]
                t0 = time.perf_counter()
                block, ex = chain.build_block(txs, timestamp=now + s, proposer=proposer)
                dt = time.perf_counter() - t0
                assert len(ex.receipts) == block_txs and not ex.skipped and not ex.deferred, (engine, step)
                assert all(r.status == 1 for r in ex.receipts), (engine, step)
                chain.commit_block(chain.seal(block, []), ex)
                if rep:
                    times[step].append(dt)
        per = {}
        for step in STEPS:
            per[step] = {"best_ms_per_tx": round(min(times[step]) / block_txs * 1000, 3),
                         "median_ms_per_tx": round(statistics.median(times[step]) / block_txs * 1000, 3)}
        best = sum(min(times[s]) for s in STEPS)
        median = sum(statistics.median(times[s]) for s in STEPS)
        out[engine] = {"steps": per, "lifecycle_tx_per_s_best": round(3 * block_txs / best, 1),
                       "lifecycle_tx_per_s_median": round(3 * block_txs / median, 1)}
    out["ratio_best"] = round(out["native"]["lifecycle_tx_per_s_best"] / out["solidity"]["lifecycle_tx_per_s_best"], 2)
    out["ratio_median"] = round(out["native"]["lifecycle_tx_per_s_median"]
                                / out["solidity"]["lifecycle_tx_per_s_median"], 2)
    return out


# -- report --------------------------------------------------------------------------------
def report(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(f"machine: {m['cpu']} ({m['cpu_mhz']} MHz), {m['cores']} cores, {m['ram_gib']} GiB RAM, "
          f"Python {m['python']}, {m['platform']}")
    p = r["params"]
    if "rpc" in r:
        net = r["rpc"].get("network")
        where = "the dev chain"
        if net is not None:
            c = net["consensus"]
            where = (f"the 4-node QBFT network ({', '.join(net['validators'])}; block period {c['block_period']} s, "
                     f"empty block period {c['empty_block_period']} s, round timeout {c['round_timeout']} s; "
                     f"transaction i to node i mod 4, finality on {net['validators'][0]}; up in {net['up_s']} s)")
        print(f"\nJSON-RPC on {where}: {p['n']} prescriptions per engine (issue, review, dispense), "
              f"{p['lanes']} lanes, {p['concurrency']} senders, batch {p['batch']}")
        for e in r["rpc"]["engines"].values():
            lat, tb = e["latency_s"], e["txs_per_block"]
            print(f"  {e['engine']:>8}: {e['tps']:7.1f} tx/s  ({e['final']}/{e['txs']} final in {e['elapsed_s']} s; "
                  f"latency p50 {lat['p50']} s p99 {lat['p99']} s; {e['blocks']} blocks, {tb['mean']} txs/block "
                  f"(max {tb['max']}); node CPU {e['node_cpu_s']} s; gas {e['gas']})")
            if net is not None:
                print(f"            per node CPU s {e['nodes_cpu_s']}; rounds > 0: {e['rounds_above_0']} of "
                      f"{e['blocks_seen']} blocks; nonce-too-high resends {e['nonce_too_high_retries']}; "
                      f"load average {e['loadavg_before']} -> {e['loadavg_after']}")
                print(f"            blocks (txs, round, s after the first send): "
                      f"{[(txs, rnd, at) for _, txs, rnd, at in e['block_log']]}")
            checks = "every receipt status 1, every prescription completed"
            if "heads" in e:
                heads = e["heads"]
                checks += (f", the 4 heads identical (block {heads['head']})" if heads["identical"]
                           else f"; heads NOT identical: {heads}")
            if e["ok"]:
                print(f"            OK: {checks}")
            else:
                print(f"            FAILED: {e['failure']}; status 1: {e['status_1']}, completed: {e['completed']}"
                      f"{'; ' + checks if 'heads' in e else ''}")
        if net is not None and "kept" in net:
            print(f"  network directory kept: {net['kept']}")
    if "inprocess" in r:
        ip = r["inprocess"]
        print(f"\nin process, Chain.build_block of {ip['block_txs']} txs per step on a MemoryStore "
              f"(best / median of {ip['repeats']}):")
        for engine in ("native", "solidity"):
            e = ip[engine]
            steps = ", ".join(f"{s} {e['steps'][s]['best_ms_per_tx']:.3f} / {e['steps'][s]['median_ms_per_tx']:.3f} ms"
                              for s in STEPS)
            print(f"  {engine:>8}: {e['lifecycle_tx_per_s_best']:7.1f} / {e['lifecycle_tx_per_s_median']:7.1f} "
                  f"lifecycle tx/s  ({steps} per tx)")
        print(f"  ratio native / Solidity: {ip['ratio_best']}x best, {ip['ratio_median']}x median")
    g = r["goals"]
    for line in g["lines"]:
        print(line)


def goals(r: dict[str, Any]) -> dict[str, Any]:
    lines = []
    met: dict[str, bool | None] = {"ratio": None, "tps": None}
    engines = r.get("rpc", {}).get("engines", {})
    if "network" in r.get("rpc", {}):  # the goals are about the dev chain: figures only
        if "native" in engines and "solidity" in engines:
            ratio = engines["native"]["tps"] / max(engines["solidity"]["tps"], 1e-9)
            lines.append(f"\nnetwork figure, native / Solidity on the 4-node network (JSON-RPC, same run): "
                         f"{ratio:.2f}x (the {GOAL_RATIO:.0f}x goal is about the dev chain: not judged here)")
        if "native" in engines:
            lines.append(f"network figure, lifecycle tx/s on the 4-node network (native): {engines['native']['tps']} "
                         f"(the {GOAL_TPS:,.0f} tx/s goal is about the dev chain: not judged here)")
        return {"met": met, "lines": lines, "network": True}
    if "native" in engines and "solidity" in engines:
        ratio = engines["native"]["tps"] / max(engines["solidity"]["tps"], 1e-9)
        met["ratio"] = ratio >= GOAL_RATIO
        lines.append(f"\ngoal native >= {GOAL_RATIO:.0f}x Solidity (JSON-RPC, same run): {ratio:.2f}x -> "
                     f"{'MET' if met['ratio'] else 'NOT MET'}")
        if "inprocess" in r:
            lines.append(f"  (in process, no HTTP: {r['inprocess']['ratio_best']}x)")
    if "native" in engines:
        met["tps"] = engines["native"]["tps"] >= GOAL_TPS
        lines.append(f"goal >= {GOAL_TPS:.0f} lifecycle tx/s on the dev chain (native): {engines['native']['tps']} "
                     f"-> {'MET' if met['tps'] else 'NOT MET'}")
    return {"met": met, "lines": lines}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1200, help="prescriptions per engine (default 1200)")
    parser.add_argument("--lanes", type=int, default=8, help="prescriber/reviewer/pharmacist triples (default 8)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent senders (default 8)")
    parser.add_argument("--batch", type=int, default=1, help="transactions per JSON-RPC request (default 1)")
    parser.add_argument("--window", type=int, default=MAX_NONCE_GAP, help="per-account transactions ahead (default 64)")
    parser.add_argument("--poll-interval", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--engines", default="native,solidity", help="which engines to run over JSON-RPC")
    parser.add_argument("--order", default="native,solidity", help="the order they run in")
    parser.add_argument("--block-txs", type=int, default=150, help="in process: transactions per block (default 150)")
    parser.add_argument("--repeats", type=int, default=5, help="in process: repeats (default 5)")
    parser.add_argument("--skip-rpc", action="store_true", help="only the in-process part")
    parser.add_argument("--skip-inprocess", action="store_true", help="only the JSON-RPC part")
    parser.add_argument("--url", help="use a running dev node's JSON-RPC URL instead of starting one")
    parser.add_argument("--network", action="store_true",
                        help="run the JSON-RPC part on a new 4-validator network instead of a dev node")
    parser.add_argument("--block-period", type=float, default=1.0,
                        help="with --network: the QBFT block period in seconds (default 1.0)")
    parser.add_argument("--py-spy", metavar="FILE", help="run the started node under py-spy record, writing FILE")
    parser.add_argument("--py-spy-gil", action="store_true", help="with --py-spy: only the GIL holder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir and node.log")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.n < args.lanes or args.lanes < 1 or args.concurrency < 1 or args.batch < 1 \
            or not 1 <= args.window <= MAX_NONCE_GAP or args.block_txs < 1 or args.repeats < 1:
        parser.error("--n >= --lanes >= 1; --concurrency, --batch, --block-txs, --repeats positive; --window 1..64")
    if args.url and args.py_spy:
        parser.error("--py-spy needs a node the benchmark starts (no --url)")
    if args.network and (args.url or args.py_spy):
        parser.error("--network starts its own four nodes: no --url or --py-spy")
    if args.network and args.skip_rpc:
        parser.error("--network is about the JSON-RPC part: not with --skip-rpc")
    if args.block_period < 0:
        parser.error("--block-period must not be negative")
    result: dict[str, Any] = {"machine": machine(), "params": {
        "n": args.n, "lanes": args.lanes, "concurrency": args.concurrency, "batch": args.batch,
        "window": args.window, "block_txs": args.block_txs, "repeats": args.repeats, "network": args.network}}
    if args.network:
        result["params"]["block_period"] = args.block_period
    if not args.skip_rpc:
        result["rpc"] = rpc_part(args)
    if not args.skip_inprocess:
        result["inprocess"] = inprocess_part(args.block_txs, args.repeats)
    result["goals"] = goals(result)
    emit(result, args.json, report)
    engines = result.get("rpc", {}).get("engines", {})
    return 0 if all(e["ok"] for e in engines.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
