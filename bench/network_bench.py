"""The 4-node network on one machine: load, idle finality and catch-up.

All four validators of `rxledger network init` (hospital-a, hospital-b, pharmacy-a,
regulator) run as separate `rxledger node start --config` processes on loopback: mutual
TLS p2p, QBFT, LevelDB with fsync, JSON-RPC. The network is made in a fresh directory
with `network.init.init_network` and started with `network.launcher.up(detach=True)`
(stopped with `down`), except in `catchup`, see below. The nodes run the code that
`import node` resolves to in this process (run with PYTHONPATH=<a source tree> to pin a
commit); the nodes' working directory is that tree's root.

Modes:

`--mode load` (default): `--n` (2000) presigned transfers, account k -> account 1 (value 0,
  gas 21000, gasPrice 0, legacy, chain id from network.json), round-robin over the ten
  dev accounts of network.json "accounts" (consecutive nonces per account). Transaction i
  goes to node i mod 4 (its "receiving node"). `--concurrency` (8) sender threads, each
  with one keep-alive client per node (bench/common.py's `Rpc`; httpx before), `eth_sendRawTransaction`; at most `--window`
  (64, the pool's nonce gap) per account sent and not yet final; "nonce too high" is
  retried and counted.
`--mode idle`: `--samples` (30) transactions one at a time, each to the next node in
  turn, waiting for its finality, then a pause drawn uniformly from [1, 2] s (seeded).
  Run with a large `--empty-block-period` (default in this mode 3600), so no empty blocks.
`--mode catchup`: init a network, stop nothing (it never ran); build `--blocks` (10000)
  sealed empty blocks offline into the first validator's data dir with the node's own
  `NodeService(...).chain` (as `rxledger node start --config` builds it): `build_block([],
  timestamp=now, proposer=<round-0 proposer of the rotation>, round=0)`, commit seals
  `encode_signature(*sign_hash(seal_hash(header), key))` from a quorum of validator keys
  (the proposer and the next ones in the rotation), `seal`, `commit_block` (fsynced, as
  the node does). The data dir is copied to the second and third validators; the fourth
  starts empty. Then `up(detach=True)` starts all four, and `/health` of the fourth is
  polled every 50 ms until its head reaches the target. Blocks/s = target / seconds from
  the `up` call (process start included), and / seconds from the fourth node's first
  `/health` answer (sync alone).

`--mode startup`: `init`, then `up` at once (as `rxledger up` on a new directory): the
  time to the first final block, and that block's round.

Finality (as bench/devchain_tps.py): one poller thread per node asks its node for the next
16 blocks in one JSON-RPC batch of `eth_getBlockByNumber(n, false)`, again at once when it
found a new block, else after `--poll-interval` (0.02 s). A transaction is final when the
poller of its receiving node first received the block containing it (QBFT blocks are
final when written; the receipt exists from then on). Latency runs from the start of its
`eth_sendRawTransaction` request to that moment. After the run: every receipt is fetched
from the receiving node (`eth_getBlockReceipts`) and must have status 1; the block hashes
the four pollers saw must agree at every height, and the four nodes' `/health`
head and headHash must be identical.

Also reported: the time from the `up` call to the first final block (the first `/health`
answer, from any node, with head >= 1; polled every 20 ms in a thread) and to `up`
returning (all four at one head >= 1; its own 0.2 s poll), the load average before and
after each run, each node's CPU seconds over the run.

Run:
  .venv/bin/python bench/network_bench.py --mode load [--block-period 1.0] [--n 2000] [--json]
  .venv/bin/python bench/network_bench.py --mode idle [--samples 30]
  .venv/bin/python bench/network_bench.py --mode catchup [--blocks 10000] [--py-spy FILE.txt]

`--wait-quiet SECONDS` first waits (at most that long) until the rest of the machine has
used fewer than `--quiet-cores` (0.3) cores for 10 s in a row; every result reports the
load average and the cores other processes used during the measurement.
`--node-log-level debug` (with `--keep`) logs every QBFT step in nodes/<name>/node.log.

Starting, watching and stopping the network, the JSON-RPC client, the pollers and the
receipt check are bench/common.py's (lifecycle_bench.py and pool_burst.py use them too).

`--py-spy FILE` attaches `py-spy record --pid` (raw collapsed stacks for
bench/pyspy_summary.py if FILE ends in .txt) to one node (`--py-spy-node`, default: the
syncing node in catchup, else the first node) for the measured part of the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    MAX_NONCE_GAP,
    Busy,
    Measured,
    Net,
    Observer,
    RoutedTx,
    Rpc,
    accounts_of,
    check_receipts,
    cpu_of,
    decode_round,
    emit,
    head_number,
    heads_identical,
    init_net,
    loadavg,
    percentile,
    pick_base_port,
    py_spy_record,
    record_failure,
    record_pids,
    send_raw,
    source_label,
    source_root,
    start_net,
    stop_net,
    wait_quiet,
)
from machine_info import machine

TRANSFER_GAS = 21_000


# -- small helpers -------------------------------------------------------------------------
def fsync_probe(directory: Path, count: int = 200) -> dict:
    """Synced LevelDB batches (12 puts, ~2 kB, as small as an empty block's) on the work
    directory's disk: the per-block fsync a node pays, at this moment."""
    import plyvel

    path = Path(tempfile.mkdtemp(prefix="fsync-probe-", dir=directory))
    db = plyvel.DB(str(path), create_if_missing=True)
    times = []
    try:
        for _ in range(count):
            t = time.perf_counter()
            with db.write_batch(sync=True) as b:
                for _ in range(12):
                    b.put(os.urandom(32), os.urandom(150))
            times.append(time.perf_counter() - t)
    finally:
        db.close()
        shutil.rmtree(path, ignore_errors=True)
    times.sort()
    return {"p50_ms": round(percentile(times, 50) * 1000, 2), "p90_ms": round(percentile(times, 90) * 1000, 2),
            "max_ms": round(times[-1] * 1000, 2)}


def attach_py_spy(pid: int, path: str, gil: bool) -> subprocess.Popen:
    cmd = [*py_spy_record(path, gil, rate=100), "--pid", str(pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def detach_py_spy(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- transactions ----------------------------------------------------------------------------
def sign_transfer(key: bytes, nonce: int, to: bytes, chain_id: int) -> tuple[str, str]:
    from eth_account import Account

    signed = Account.from_key(key).sign_transaction(
        dict(nonce=nonce, gas=TRANSFER_GAS, gasPrice=0, to=to, value=0, data=b"", chainId=chain_id))
    return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()


def presign(n: int, accounts: list[tuple[bytes, bytes]], nonces: list[int], nodes: int, chain_id: int,
            start_index: int = 0) -> list[RoutedTx]:
    to = accounts[1][0]
    out, next_nonce = [], list(nonces)
    for i in range(start_index, start_index + n):
        k = i % len(accounts)
        raw, h = sign_transfer(accounts[k][1], next_nonce[k], to, chain_id)
        out.append(RoutedTx(i, k, next_nonce[k], i % nodes, raw, h))
        next_nonce[k] += 1
    return out


# -- load ---------------------------------------------------------------------------------------
@dataclass
class Load:
    txs: list[RoutedTx]
    window: int
    accounts: int
    lock: threading.Condition
    queues: list[list[RoutedTx]] = field(default_factory=list)
    next_i: list[int] = field(default_factory=list)
    final_count: list[int] = field(default_factory=list)
    rr: int = 0
    sent: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    failed: str | None = None

    def __post_init__(self) -> None:
        self.queues = [[t for t in self.txs if t.account == k] for k in range(self.accounts)]
        self.next_i = [0] * self.accounts
        self.final_count = [0] * self.accounts

    def on_final(self, t: RoutedTx) -> None:  # under lock
        k = t.account
        self.final_count[k] = max(self.final_count[k], t.nonce - self.queues[k][0].nonce + 1)

    def take(self) -> RoutedTx | None:
        """The next transaction that may be sent (blocks while all are held back by the window)."""
        with self.lock:
            while True:
                if self.failed or self.sent >= len(self.txs):
                    return None
                for step in range(self.accounts):
                    k = (self.rr + step) % self.accounts
                    q, i = self.queues[k], self.next_i[k]
                    if i < len(q) and i < self.final_count[k] + self.window:
                        self.next_i[k] = i + 1
                        self.rr = (k + 1) % self.accounts
                        self.sent += 1
                        return q[i]
                self.lock.wait(0.5)


def sender(load: Load, urls: list[str]) -> None:
    rpcs = [Rpc(u) for u in urls]
    try:
        while True:
            t = load.take()
            if t is None:
                return
            while True:
                t0 = time.perf_counter()
                reply = send_raw(rpcs[t.node], [t.raw])[0]
                answer = reply.get("result")
                error = str(reply["error"].get("message")) if "error" in reply else None
                t1 = time.perf_counter()
                t.sent_at = t.sent_at or t0  # a retried transaction keeps its first send time
                if error is not None and "nonce too high" in error:
                    with load.lock:
                        load.retries += 1
                    time.sleep(0.02)
                    continue
                if error is not None or answer != t.hash:
                    t.error = error or f"node answered hash {answer}, expected {t.hash}"
                    with load.lock:
                        load.errors.append(f"tx {t.index} (account {t.account} nonce {t.nonce} "
                                           f"node {t.node}): {t.error}")
                        load.failed = load.failed or t.error
                        load.lock.notify_all()
                t.answered_at = t1
                break
    except Exception as exc:  # noqa: BLE001 - reported
        record_failure(load, f"sender: {exc!r}")
    finally:
        for r in rpcs:
            r.close()


def run_load(net: Net, args: argparse.Namespace) -> dict:
    accounts = accounts_of(net)[:10]
    chain_id = net.info.chain_id
    rpc0 = Rpc(net.urls[0])
    nonces = [int(rpc0.call("eth_getTransactionCount", "0x" + a.hex(), "pending"), 16) for a, _ in accounts]
    rpc0.close()
    t_sign = time.perf_counter()
    txs = presign(args.n, accounts, nonces, len(net.urls), chain_id)
    sign_s = time.perf_counter() - t_sign
    first = min(head_number(u) for u in net.urls) + 1
    obs = Observer(net.urls, first, args.poll_interval)
    load = Load(txs, args.window, len(accounts), obs.cond)
    obs.on_final = load.on_final
    obs.watch(txs)
    senders = [threading.Thread(target=sender, args=(load, net.urls), daemon=True)
               for _ in range(args.concurrency)]
    spy = maybe_spy(net, args, default=net.names[0])
    measured = Measured(lambda: cpu_of(net))
    obs.start()
    t_start = time.perf_counter()
    for s in senders:
        s.start()
    for s in senders:
        s.join()
    deadline = time.monotonic() + args.timeout
    with obs.cond:
        while obs.finals < len(txs) and not obs.failed and not load.failed and time.monotonic() < deadline:
            obs.cond.wait(0.5)
    cpu_load = measured.end()
    detach_py_spy(spy)
    time.sleep(2 * args.poll_interval + 0.1)  # let the slower pollers see the last blocks too
    obs.stop()
    failed = load.failed or obs.failed
    if obs.finals < len(txs) and not failed:
        failed = f"only {obs.finals}/{len(txs)} final after {args.timeout}s"
    check_receipts(net, txs)
    chains = obs.compare_chains()
    heads = heads_identical(net)

    first_send = min((t.sent_at for t in txs if t.sent_at), default=t_start)
    finals = [t for t in txs if t.final_at]
    last_final = max((t.final_at for t in finals), default=float("nan"))
    last_answer = max((t.answered_at for t in txs if t.answered_at), default=float("nan"))
    lat = sorted(t.final_at - t.sent_at for t in finals)
    lat_any = sorted(t.seen_any - t.sent_at for t in finals if t.seen_any)
    blocks0 = obs.blocks[0]
    numbers = sorted({t.block for t in finals})
    ours = [blocks0[m] for m in range(numbers[0], numbers[-1] + 1) if m in blocks0] if numbers else []
    sizes = [b["txs"] for b in ours]
    elapsed = last_final - first_send
    rounds = [b["round"] for b in ours]
    return {
        "sign_s": round(sign_s, 2),
        "sent": sum(1 for t in txs if t.answered_at),
        "final": len(finals),
        "status_1": sum(1 for t in txs if t.status == 1),
        "nonce_too_high_retries": load.retries,
        "errors": load.errors[:10],
        "failure": failed,
        "elapsed_s": round(elapsed, 3),
        "tps": round(len(finals) / elapsed, 1) if finals else 0.0,
        "admission_tps": round(len(txs) / (last_answer - first_send), 1),
        "latency_s": {"p50": round(percentile(lat, 50), 3), "p90": round(percentile(lat, 90), 3),
                      "p99": round(percentile(lat, 99), 3), "max": round(lat[-1], 3) if lat else None,
                      "min": round(lat[0], 3) if lat else None},
        "latency_first_node_s": {"p50": round(percentile(lat_any, 50), 3),
                                 "p99": round(percentile(lat_any, 99), 3)},
        "blocks": len(ours),
        "txs_per_block": {"mean": round(sum(sizes) / len(sizes), 1) if sizes else 0,
                          "max": max(sizes, default=0)},
        "block_sizes": sizes,
        "block_intervals_s": [round(b["seen"] - a["seen"], 3) for a, b in zip(ours, ours[1:], strict=False)],
        "rounds_above_0": sum(1 for r in rounds if r),
        "chains": chains,
        "heads": heads,
        **cpu_load,
        "ok": not failed and len(finals) == len(txs) and all(t.status == 1 for t in txs)
              and chains["identical"] and heads["identical"],
    }


# -- idle ---------------------------------------------------------------------------------------
def run_idle(net: Net, args: argparse.Namespace) -> dict:
    accounts = accounts_of(net)[:10]
    rpcs = [Rpc(u) for u in net.urls]
    nonces = [int(rpcs[0].call("eth_getTransactionCount", "0x" + a.hex(), "pending"), 16) for a, _ in accounts]
    txs = presign(args.samples, accounts, nonces, len(net.urls), net.info.chain_id)
    first = min(head_number(u) for u in net.urls) + 1
    obs = Observer(net.urls, first, args.poll_interval)
    obs.start()
    rng = random.Random(args.seed)
    spy = maybe_spy(net, args, default=net.names[0])
    measured = Measured(lambda: cpu_of(net))
    samples = []
    failed = None
    time.sleep(1.5)  # past the block period of the last block before we start
    for t in txs:
        obs.watch([t])
        t.sent_at = time.perf_counter()
        try:
            answer = rpcs[t.node].call("eth_sendRawTransaction", t.raw)
            if answer != t.hash:
                raise RuntimeError(f"node answered {answer}")
        except Exception as exc:  # noqa: BLE001
            failed = f"tx {t.index}: {exc}"
            break
        t.answered_at = time.perf_counter()
        with obs.cond:
            while not t.final_at and not obs.failed:
                if not obs.cond.wait(timeout=30):
                    break
        if not t.final_at:
            failed = obs.failed or f"tx {t.index} not final in 30 s"
            break
        b = obs.blocks[t.node][t.block]
        samples.append({"i": t.index, "node": net.names[t.node], "latency_s": round(t.final_at - t.sent_at, 3),
                        "block": t.block, "round": b["round"], "txs_in_block": b["txs"],
                        "proposer_is_receiver": b["miner"].lower() == "0x" + net.info.nodes[t.node].address.hex()})
        time.sleep(rng.uniform(args.pause_min, args.pause_max))
    cpu_load = measured.end()
    detach_py_spy(spy)
    time.sleep(0.2)
    obs.stop()
    for r in rpcs:
        r.close()
    check_receipts(net, [t for t in txs if t.final_at])
    chains = obs.compare_chains()
    heads = heads_identical(net)
    lat = sorted(s["latency_s"] for s in samples)
    blocks0 = sorted(obs.blocks[0].values(), key=lambda b: b["number"])
    return {
        "samples": len(samples),
        "failure": failed,
        "latency_s": {"p50": percentile(lat, 50), "p90": percentile(lat, 90),
                      "max": lat[-1] if lat else None, "min": lat[0] if lat else None,
                      "mean": round(sum(lat) / len(lat), 3) if lat else None},
        "p50_goal_1s_met": bool(lat) and percentile(lat, 50) <= 1.0,
        "blocks_seen": len(blocks0),
        "empty_blocks_seen": sum(1 for b in blocks0 if b["txs"] == 0),
        "rounds_above_0": sum(1 for s in samples if s["round"]),
        "proposer_is_receiver": sum(1 for s in samples if s["proposer_is_receiver"]),
        "per_tx": samples,
        "status_1": sum(1 for t in txs if t.status == 1),
        "chains": chains,
        "heads": heads,
        **cpu_load,
        "ok": failed is None and len(samples) == args.samples and all(t.status == 1 for t in txs)
              and chains["identical"] and heads["identical"],
    }


# -- catch-up -------------------------------------------------------------------------------------
def build_chain(net: Net, count: int) -> dict:
    """`count` sealed empty blocks on genesis, in the first validator's data dir."""
    from chaincode_py import NativeChaincodeHost
    from network.config import load_node_config
    from network.genesis import load_genesis
    from node.config import NodeConfig
    from node.service import NodeService
    from rxledger.core.crypto import encode_signature, private_key_to_address, sign_hash
    from rxledger.core.light_client import quorum
    from rxledger.core.types.headers import recover_seal_signers, seal_hash

    cfgs = [load_node_config(n.config) for n in net.info.nodes if n.is_validator]
    keys = {private_key_to_address(k): k for k in (c.load_validator_key() for c in cfgs)}
    cfg = cfgs[0]
    genesis = load_genesis(cfg.genesis)
    # As `rxledger node start --config` (node/node.py new_node) builds it.
    service = NodeService(NodeConfig(data_dir=cfg.data_dir, rpc_host=cfg.rpc_host, rpc_port=cfg.rpc_port,
                                     node_name=cfg.name), genesis, validator_key=cfg.load_validator_key(),
                          chaincode=NativeChaincodeHost)
    chain = service.chain
    t0 = time.perf_counter()
    try:
        for _ in range(count):
            parent = chain.head
            vals = chain.next_validators(parent)
            q = quorum(len(vals))
            prev = parent.coinbase  # the round-0 proposer rotation (QbftNode.proposer)
            base = vals.index(prev) + 1 if prev in vals else next((i for i, v in enumerate(vals) if v > prev), 0)
            signers = [vals[(base + j) % len(vals)] for j in range(q)]
            block, execution = chain.build_block([], timestamp=int(time.time()), proposer=signers[0], round=0)
            digest = seal_hash(block.header)
            sealed = chain.seal(block, [encode_signature(*sign_hash(digest, keys[a])) for a in signers])
            if parent.number == 0 and recover_seal_signers(sealed.header) != signers:
                raise SystemExit("commit seals do not recover to the signers")
            chain.commit_block(sealed, execution)
        build_s = time.perf_counter() - t0
        head = chain.head
        out = {"blocks": head.number, "head_hash": "0x" + head.hash.hex(), "build_s": round(build_s, 2),
               "build_blocks_per_s": round(count / build_s, 1), "seals_per_block": q}
    finally:
        service.close()
    return out


def run_catchup(net: Net, args: argparse.Namespace) -> dict:
    from network.config import load_node_config

    built = build_chain(net, args.blocks)
    cfgs = [load_node_config(n.config) for n in net.info.nodes if n.is_validator]
    for cfg in cfgs[1:3]:
        if cfg.data_dir.exists():
            shutil.rmtree(cfg.data_dir)
        shutil.copytree(cfgs[0].data_dir, cfg.data_dir)
    if cfgs[3].data_dir.exists():
        shutil.rmtree(cfgs[3].data_dir)
    syncing = 3
    target = built["blocks"]
    rpc = Rpc(net.urls[syncing], timeout=2.0)
    quiet = wait_quiet(args.wait_quiet, args.quiet_cores) if args.wait_quiet else None
    probe_before = fsync_probe(net.dir)
    la0 = loadavg()
    busy = Busy()
    t0 = time.perf_counter()
    up_thread = start_net(net, timeout=args.timeout, watch=False, node_log_level=args.node_log_level)
    first_answer = first_progress = reached = None
    samples: list[tuple[float, int]] = []
    spy = None
    cpu_at_target: dict[str, float | None] = {}
    try:
        while time.perf_counter() - t0 < args.timeout:
            if net.up_error:
                raise SystemExit(f"up failed: {net.up_error}")
            if not net.pids:
                record_pids(net)
                if net.pids and args.py_spy:
                    spy = maybe_spy(net, args, default=net.names[syncing])
            h = rpc.health()
            now = time.perf_counter() - t0
            if h is not None and isinstance(h.get("head"), int):
                first_answer = first_answer if first_answer is not None else now
                if h["head"] > 0 and first_progress is None:
                    first_progress = now
                if not samples or samples[-1][1] != h["head"]:
                    samples.append((round(now, 3), h["head"]))
                if h["head"] >= target:
                    reached = now
                    cpu_at_target = cpu_of(net)
                    break
            time.sleep(0.05)
    finally:
        la1 = loadavg()
        others = busy.others_cores(sum(v for v in cpu_at_target.values() if v)) if cpu_at_target else None
        detach_py_spy(spy)
        rpc.close()
    up_thread.join(timeout=args.timeout)
    probe_after = fsync_probe(net.dir)
    heads = heads_identical(net)
    rpcs = [Rpc(u) for u in net.urls]
    at_target = {(r.call("eth_getBlockByNumber", hex(target), False) or {}).get("hash") for r in rpcs}
    for r in rpcs:
        r.close()
    rate = lambda seconds: round(target / seconds, 1) if seconds else None  # noqa: E731
    sync_s = reached - first_answer if reached is not None and first_answer is not None else None
    return {
        **({"wait_quiet": quiet} if quiet else {}),
        "built": built,
        "target": target,
        "syncing_node": net.names[syncing],
        "reached_s": round(reached, 3) if reached is not None else None,
        "first_health_answer_s": round(first_answer, 3) if first_answer is not None else None,
        "first_block_synced_s": round(first_progress, 3) if first_progress is not None else None,
        "blocks_per_s_from_up": rate(reached),
        "blocks_per_s_from_rpc_up": rate(sync_s),
        "goal_500_met": reached is not None and target / reached >= 500,
        "progress": samples[:: max(1, len(samples) // 40)] + samples[-1:],
        "node_cpu_s_at_target": {k: (round(v, 2) if v is not None else None) for k, v in cpu_at_target.items()},
        "up_returned_s": round(net.up_s, 3) if net.up_s else None,
        "block_at_target_identical": len(at_target) == 1 and None not in at_target,
        "heads": heads,
        "fsync_probe_before": probe_before,
        "fsync_probe_after": probe_after,
        "other_processes_cores": others,
        "loadavg_before": la0,
        "loadavg_after": la1,
        "ok": reached is not None and len(at_target) == 1 and None not in at_target,
    }


def send_warmup(net: Net, t0: float, timeout: float = 120.0) -> dict:
    """Idle mode: no empty block comes for `empty_block_period` after genesis, so block 1
    needs a transaction. Once all four nodes answer /health and each has its three peers,
    send one transfer (account 9 -> account 1) to the first node."""
    rpcs = [Rpc(u, timeout=2.0) for u in net.urls]
    out: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not net.up_error:
            hs = [r.health() for r in rpcs]
            if all(h is not None and len(h.get("peers") or []) >= len(rpcs) - 1 for h in hs):
                break
            time.sleep(0.02)
        out["all_connected_s"] = round(time.perf_counter() - t0, 3)
        address, key = accounts_of(net)[9]
        nonce = int(rpcs[0].call("eth_getTransactionCount", "0x" + address.hex(), "pending"), 16)
        raw, tx_hash = sign_transfer(key, nonce, accounts_of(net)[1][0], net.info.chain_id)
        out["sent_s"] = round(time.perf_counter() - t0, 3)
        rpcs[0].call("eth_sendRawTransaction", raw)
        out["to"] = net.names[0]
        out["hash"] = tx_hash
    finally:
        for r in rpcs:
            r.close()
    return out


def first_block(net: Net) -> dict:
    """Block 1 as the first node has it: its QBFT round and proposer."""
    rpc = Rpc(net.urls[0])
    try:
        block = rpc.call("eth_getBlockByNumber", "0x1", False) or {}
    finally:
        rpc.close()
    proposer = next((n.name for n in net.info.nodes if "0x" + n.address.hex() == block.get("miner", "").lower()),
                    None)
    return {"block1_round": decode_round(block["extraData"]) if block else None, "block1_proposer": proposer,
            "block1_txs": len(block.get("transactions", []))}


def maybe_spy(net: Net, args: argparse.Namespace, default: str) -> subprocess.Popen | None:
    if not args.py_spy:
        return None
    name = args.py_spy_node or default
    if not net.pids:
        record_pids(net)
    return attach_py_spy(net.pids[name], args.py_spy, args.py_spy_gil)


# -- main ---------------------------------------------------------------------------------------
def bench(args: argparse.Namespace) -> dict:
    from network.config import ConsensusSettings

    root = source_root()
    os.chdir(root)  # `up` starts `python -m rxledger` in our working directory
    tmp = Path(tempfile.mkdtemp(prefix=f"rxledger-net-{args.mode}-")) if args.dir is None else Path(args.dir)
    base_port = args.base_port or pick_base_port()
    empty = args.empty_block_period
    if empty is None:
        empty = 3600.0 if args.mode == "idle" else 10.0
    settings = ConsensusSettings(block_period=args.block_period, empty_block_period=empty,
                                 round_timeout=args.round_timeout, max_round_timeout=args.max_round_timeout)
    result: dict[str, Any] = {
        "machine": machine(),
        "source": source_label(root),
        "params": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "consensus": dataclasses.asdict(settings),
        "base_port": base_port,
        "finality_from": "first eth_getBlockByNumber batch answer of the receiving node holding the tx",
    }
    if args.wait_quiet and args.mode == "startup":  # `rxledger up` on a new directory: init, then up
        result["wait_quiet"] = wait_quiet(args.wait_quiet, args.quiet_cores)
    net = init_net(tmp / "net", base_port, settings)
    result["nodes"] = net.names
    if args.wait_quiet and args.mode in ("load", "idle"):  # catchup waits after building its chain
        result["wait_quiet"] = wait_quiet(args.wait_quiet, args.quiet_cores)
    try:
        if args.mode == "catchup":
            result.update(run_catchup(net, args))
        else:
            la_up = loadavg()
            genesis_age = time.time() - json.loads((net.dir / "genesis.json").read_text())["timestamp"]
            t0 = time.perf_counter()
            t = start_net(net, timeout=120.0, node_log_level=args.node_log_level)
            warmup = send_warmup(net, t0) if args.mode == "idle" else None
            t.join(timeout=130.0)
            t.watcher.join(timeout=5.0)  # type: ignore[attr-defined]
            if net.up_error:
                raise SystemExit(f"up failed: {net.up_error}")
            record_pids(net)
            result["startup"] = {"up_returned_s": round(net.up_s, 3) if net.up_s else None,
                                 "first_final_block_s": round(net.first_final_s, 3) if net.first_final_s else None,
                                 "first_final_on": net.first_final_node,
                                 "all_rpc_answering_s": round(net.all_rpc_s, 3) if net.all_rpc_s else None,
                                 "warmup_tx": warmup, "loadavg": la_up,
                                 "genesis_age_at_up_s": round(genesis_age, 1), **first_block(net)}
            if args.mode == "startup":
                result["ok"] = net.first_final_s is not None
                result["loadavg_after"] = loadavg()
            else:
                result.update(run_load(net, args) if args.mode == "load" else run_idle(net, args))
    finally:
        stop_net(net)
        if args.dir is None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif args.keep:
            result["kept"] = str(tmp)
    return result


def report(r: dict) -> None:
    m, p, c = r["machine"], r["params"], r["consensus"]
    print(f"machine: {m['cpu']} ({m['cpu_mhz']} MHz), {m['cores']} cores, {m['ram_gib']} GiB RAM, "
          f"Python {m['python']}, {m['platform']}")
    print(f"source: {r['source']}")
    print(f"network: 4 validators {', '.join(r['nodes'])} on 127.0.0.1 (base port {r['base_port']}); "
          f"block_period {c['block_period']}, empty_block_period {c['empty_block_period']}, "
          f"round_timeout {c['round_timeout']}, max_round_timeout {c['max_round_timeout']}")
    if "wait_quiet" in r:
        w = r["wait_quiet"]
        print(f"  waited {w['waited_s']} s for a quiet machine: {'quiet' if w['quiet'] else 'NOT quiet'} "
              f"(busy cores in the last second {w['busy_cores_last_s']})")
    if "startup" in r:
        s = r["startup"]
        print(f"  up -> first final block: {s['first_final_block_s']} s (seen on {s['first_final_on']}); "
              f"all four RPCs answering {s['all_rpc_answering_s']} s; up returned {s['up_returned_s']} s "
              f"(load average {s['loadavg']})")
        print(f"  block 1: round {s.get('block1_round')}, built by {s.get('block1_proposer')}, "
              f"{s.get('block1_txs')} txs; genesis was {s.get('genesis_age_at_up_s')} s old at the up call")
        if s.get("warmup_tx"):
            w = s["warmup_tx"]
            print(f"  (block 1 carries a transfer sent to {w.get('to')} at {w.get('sent_s')} s, once all four "
                  f"had their 3 peers at {w.get('all_connected_s')} s)")
    if p["mode"] == "load":
        print(f"load: {p['n']} transfers, {p['concurrency']} senders, window {p['window']}/account, "
              f"round-robin to 4 nodes, poll interval {p['poll_interval']} s")
        print(f"  final {r['final']}/{p['n']}, status 1: {r['status_1']}, nonce-too-high retries "
              f"{r['nonce_too_high_retries']}")
        print(f"  throughput: {r['tps']} tx/s (first send -> last final on its receiving node, {r['elapsed_s']} s); "
              f"admission {r['admission_tps']} tx/s")
        lat = r["latency_s"]
        print(f"  submit -> final (receiving node): p50 {lat['p50']} s, p90 {lat['p90']} s, p99 {lat['p99']} s, "
              f"max {lat['max']} s; first node to show it: p50 {r['latency_first_node_s']['p50']} s")
        tb = r["txs_per_block"]
        print(f"  blocks: {r['blocks']}, {tb['mean']} txs/block (max {tb['max']}), rounds > 0: "
              f"{r['rounds_above_0']}; sizes {r['block_sizes']}")
        print(f"  block intervals (s): {r['block_intervals_s']}")
    elif p["mode"] == "idle":
        lat = r["latency_s"]
        print(f"idle: {r['samples']} single transfers, one at a time, pause U({p['pause_min']}, {p['pause_max']}) s, "
              f"poll interval "
              f"{p['poll_interval']} s")
        print(f"  submit -> final: p50 {lat['p50']} s, p90 {lat['p90']} s, max {lat['max']} s "
              f"(min {lat['min']}, mean {lat['mean']}); goal p50 <= 1 s: "
              f"{'met' if r['p50_goal_1s_met'] else 'NOT met'}")
        print(f"  rounds > 0: {r['rounds_above_0']}; proposer was the receiving node: "
              f"{r['proposer_is_receiver']}/{r['samples']}; blocks seen {r['blocks_seen']} "
              f"({r['empty_blocks_seen']} empty)")
        print(f"  latencies: {[s['latency_s'] for s in r['per_tx']]}")
    elif p["mode"] == "catchup":
        b = r["built"]
        print(f"catch-up: built {b['blocks']} sealed empty blocks offline in {b['build_s']} s "
              f"({b['build_blocks_per_s']} blocks/s, {b['seals_per_block']} seals each)")
        print(f"  {r['syncing_node']} (empty data dir) reached head {r['target']} after {r['reached_s']} s from up: "
              f"{r['blocks_per_s_from_up']} blocks/s; from its first /health answer "
              f"({r['first_health_answer_s']} s): {r['blocks_per_s_from_rpc_up']} blocks/s; goal >= 500 blocks/s: "
              f"{'met' if r['goal_500_met'] else 'NOT met'}")
        print(f"  first synced block at {r['first_block_synced_s']} s; progress (s, head): {r['progress']}")
        print(f"  node CPU s at target: {r['node_cpu_s_at_target']}; block {r['target']} identical on all four: "
              f"{r['block_at_target_identical']}")
    if "chains" in r:
        ch = r["chains"]
        print(f"  chains: {ch['heights_compared']} heights seen by all four pollers, identical: {ch['identical']}; "
              f"a block reaches the last node p50 {ch['seen_spread_across_nodes_s']['p50']} s after the first "
              f"(max {ch['seen_spread_across_nodes_s']['max']})")
    if "heads" in r:
        print(f"  head hashes of the four nodes identical at the end: {r['heads']}")
    if "node_cpu_s" in r:
        print(f"  node CPU s over the run: {r['node_cpu_s']}")
    if "fsync_probe_before" in r:
        print(f"  synced LevelDB batch on this disk (fsync probe), before: {r['fsync_probe_before']}, "
              f"after: {r['fsync_probe_after']}")
    print(f"  load average before {r.get('loadavg_before')}, after {r['loadavg_after']}; other processes used "
          f"{r.get('other_processes_cores')} cores during the measurement")
    print("  OK" if r["ok"] else f"  FAILED: {r.get('failure')} {r.get('errors', '')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RxLedger 4-node network benchmark")
    parser.add_argument("--mode", choices=["load", "idle", "catchup", "startup"], default="load")
    parser.add_argument("--n", type=int, default=2000, help="load: transactions (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="load: sender threads (default 8)")
    parser.add_argument("--window", type=int, default=MAX_NONCE_GAP, help="load: per-account in flight (64)")
    parser.add_argument("--samples", type=int, default=30, help="idle: transactions (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="idle: seed of the pauses")
    parser.add_argument("--pause-min", type=float, default=1.0, help="idle: least pause after a final tx (1 s)")
    parser.add_argument("--pause-max", type=float, default=2.0, help="idle: longest pause (2 s)")
    parser.add_argument("--blocks", type=int, default=10_000, help="catchup: blocks to sync (default 10000)")
    parser.add_argument("--block-period", type=float, default=1.0)
    parser.add_argument("--empty-block-period", type=float, default=None,
                        help="default 3600 in idle mode (no empty blocks), else 10")
    parser.add_argument("--round-timeout", type=float, default=2.0)
    parser.add_argument("--max-round-timeout", type=float, default=30.0)
    parser.add_argument("--poll-interval", type=float, default=0.02,
                        help="seconds between block polls per node while nothing is new (0.02)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--base-port", type=int, default=None, help="default: a free random range")
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument("--py-spy", metavar="FILE", help="py-spy record one node during the run")
    parser.add_argument("--py-spy-node", help="which node (default: the syncing one, or the first)")
    parser.add_argument("--py-spy-gil", action="store_true", help="sample only the GIL holder")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to SECONDS for a quiet machine (see --quiet-cores)")
    parser.add_argument("--quiet-cores", type=float, default=0.3,
                        help="quiet: the machine used fewer cores than this for 10 s in a row (0.3)")
    parser.add_argument("--node-log-level", choices=["debug", "info", "warning", "error"],
                        help="diagnostic: the nodes' --log-level (debug logs every QBFT step; with --keep)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.py_spy:
        args.py_spy = str(Path(args.py_spy).absolute())
    result = bench(args)
    emit(result, args.json, report)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
