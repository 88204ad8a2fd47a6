"""A burst of pre-signed transactions round-robin over the 4-node network (issue 11, item 5).

The client of the issue: `--n` (2000) transactions signed beforehand by `--accounts` (8)
development accounts (transaction i is account i mod 8's next nonce), sent as JSON-RPC
batches of `--batch` (100) `eth_sendRawTransaction`, batch b to node b mod `--nodes` (4;
1 sends everything to the first node, as against one Hardhat node), one batch after the
other, nothing retried. Each is an AnchorRegistry `anchor(bytes32,uint64,bytes32)` call
with its own root (gas: `eth_estimateGas` of one × 5/4), which every enrolled account may
make. A node receives nonces whose predecessors went to another node and have not been
gossiped to it yet: its pool must queue them, not refuse them.

The network is `rxledger network init` + `up --detach` in a temporary directory (the
helpers of bench/common.py, as bench/network_bench.py: the same nodes, pollers and receipt check). Reported:
accepted / refused (with the first refusals), final (seen in a block by the poller of
the receiving node) and status 1, tx/s from the first send to the last final,
admission rate (first send to last answer), blocks and their sizes, chains identical.

Run:  PYTHONPATH=. .venv/bin/python bench/pool_burst.py [--n 2000] [--accounts 8] [--batch 100] [--nodes 4] [--json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    Measured,
    Observer,
    RoutedTx,
    Rpc,
    accounts_of,
    check_receipts,
    cpu_of,
    emit,
    head_number,
    heads_identical,
    init_net,
    pick_base_port,
    record_pids,
    source_label,
    source_root,
    start_net,
    stop_net,
)
from machine_info import machine

ANCHOR_REGISTRY = bytes.fromhex("00" * 18 + "1003")


def anchor_data(root: bytes) -> bytes:
    from eth_abi.abi import encode

    from rxledger.core.crypto import keccak256

    return keccak256(b"anchor(bytes32,uint64,bytes32)")[:4] + encode(["bytes32", "uint64", "bytes32"],
                                                                     [root, 1, b"\x00" * 32])


def presign(args: argparse.Namespace, accounts: list[tuple[bytes, bytes]], nonces: list[int], chain_id: int,
            gas: int) -> list[RoutedTx]:
    from eth_account import Account

    from rxledger.core.crypto import keccak256

    salt = os.urandom(8)
    out = []
    for i in range(args.n):
        k = i % len(accounts)
        nonce = nonces[k] + i // len(accounts)
        signed = Account.from_key(accounts[k][1]).sign_transaction(dict(
            nonce=nonce, gas=gas, gasPrice=0, to=ANCHOR_REGISTRY, value=0, chainId=chain_id,
            data=anchor_data(keccak256(salt + i.to_bytes(4, "big")))))
        node = (i // args.batch) % args.nodes
        out.append(RoutedTx(i, k, nonce, node, "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()))
    return out


def run_burst(net: Any, args: argparse.Namespace) -> dict:
    accounts = accounts_of(net)[:args.accounts]
    chain_id = net.info.chain_id
    rpc0 = Rpc(net.urls[0])
    nonces = [int(rpc0.call("eth_getTransactionCount", "0x" + a.hex(), "latest"), 16) for a, _ in accounts]
    estimate = int(rpc0.call("eth_estimateGas", {"from": "0x" + accounts[0][0].hex(),
                                                 "to": "0x" + ANCHOR_REGISTRY.hex(),
                                                 "data": "0x" + anchor_data(os.urandom(32)).hex()}), 16)
    rpc0.close()
    t_sign = time.perf_counter()
    txs = presign(args, accounts, nonces, chain_id, estimate * 5 // 4)
    sign_s = time.perf_counter() - t_sign
    first = min(head_number(u) for u in net.urls) + 1
    obs = Observer(net.urls, first, args.poll_interval)
    obs.watch(txs)
    rpcs = [Rpc(u) for u in net.urls]
    measured = Measured(lambda: cpu_of(net))
    obs.start()
    refused: list[RoutedTx] = []
    t_start = time.perf_counter()
    for b in range(0, len(txs), args.batch):
        batch = txs[b:b + args.batch]
        sent_at = time.perf_counter()
        answers = rpcs[batch[0].node].batch([("eth_sendRawTransaction", [t.raw]) for t in batch])
        answered_at = time.perf_counter()
        for t, answer in zip(batch, answers, strict=True):
            t.sent_at, t.answered_at = sent_at, answered_at
            if "error" in answer:
                t.error = str(answer["error"].get("message"))
                refused.append(t)
            elif answer.get("result") != t.hash:
                t.error = f"answered {answer.get('result')}"
                refused.append(t)
    t_sent = time.perf_counter()
    for rpc in rpcs:
        rpc.close()
    accepted = len(txs) - len(refused)
    deadline = time.monotonic() + args.timeout
    with obs.cond:
        while obs.finals < accepted and not obs.failed and time.monotonic() < deadline:
            obs.cond.wait(0.5)
    cpu_load = measured.end()
    time.sleep(2 * args.poll_interval + 0.1)
    obs.stop()
    check_receipts(net, txs)
    chains = obs.compare_chains()
    heads = heads_identical(net)
    finals = [t for t in txs if t.final_at]
    last_final = max((t.final_at for t in finals), default=float("nan"))
    elapsed = last_final - t_start
    blocks0 = obs.blocks[0]
    numbers = sorted({t.block for t in finals})
    ours = [blocks0[m] for m in range(numbers[0], numbers[-1] + 1) if m in blocks0] if numbers else []
    status_1 = sum(1 for t in txs if t.status == 1)
    return {
        "sign_s": round(sign_s, 2),
        "gas_per_tx": estimate * 5 // 4,
        "accepted": accepted,
        "refused": len(refused),
        "refusals": [f"tx {t.index} (account {t.account}, nonce {t.nonce}) at node {t.node}: {t.error}"
                     for t in refused[:5]],
        "final": len(finals),
        "status_1": status_1,
        "failure": obs.failed,
        "send_s": round(t_sent - t_start, 3),
        "admission_tps": round(len(txs) / (t_sent - t_start), 1),
        "elapsed_s": round(elapsed, 3),
        "tps": round(len(finals) / elapsed, 1) if finals else 0.0,
        "blocks": len(ours),
        "block_sizes": [b["txs"] for b in ours],
        "rounds_above_0": sum(1 for b in ours if b["round"]),
        "chains": chains,
        "heads": heads,
        **cpu_load,
        "ok": (not refused and len(finals) == len(txs) and status_1 == len(txs) and chains["identical"]
               and heads["identical"]),
    }


def bench(args: argparse.Namespace) -> dict:
    from network.config import ConsensusSettings

    root = source_root()
    os.chdir(root)  # `up` starts `python -m rxledger` in our working directory
    tmp = Path(tempfile.mkdtemp(prefix="rxledger-pool-burst-"))
    settings = ConsensusSettings(block_period=args.block_period, empty_block_period=10.0,
                                 round_timeout=args.round_timeout, max_round_timeout=30.0)
    result: dict[str, Any] = {"machine": machine(), "source": source_label(root),
                              "params": {k: v for k, v in vars(args).items() if k != "json"}}
    net = init_net(tmp / "net", pick_base_port(), settings)
    try:
        t = start_net(net, timeout=120.0)
        t.join(timeout=130.0)
        if net.up_error:
            raise SystemExit(f"up failed: {net.up_error}")
        record_pids(net)
        result.update(run_burst(net, args))
    finally:
        stop_net(net)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def report(r: dict) -> None:
    m, p = r["machine"], r["params"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; source: {r['source']}")
    print(f"burst: {p['n']} anchors from {p['accounts']} accounts, batches of {p['batch']} round-robin over "
          f"{p['nodes']} of 4 nodes (block period {p['block_period']} s), gas {r['gas_per_tx']} each")
    print(f"  accepted {r['accepted']}/{p['n']} (refused {r['refused']}{': ' if r['refusals'] else ''}"
          f"{'; '.join(r['refusals'][:2])})")
    print(f"  final {r['final']}/{p['n']}, status 1: {r['status_1']}")
    print(f"  throughput: {r['tps']} tx/s (first send -> last final on its receiving node, {r['elapsed_s']} s); "
          f"sending took {r['send_s']} s ({r['admission_tps']} tx/s admitted)")
    print(f"  blocks: {r['blocks']}, sizes {r['block_sizes']}, rounds > 0: {r['rounds_above_0']}; chains identical: "
          f"{r['chains']['identical']}, heads identical: {r['heads']['identical']}")
    print(f"  node CPU s: {r['node_cpu_s']}; load average before {r['loadavg_before']}, after "
          f"{r['loadavg_after']}; other processes used {r['other_processes_cores']} cores")
    print("  OK" if r["ok"] else f"  FAILED {r.get('failure') or ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RxLedger pool burst: presigned batches round-robin over 4 nodes")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--accounts", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=4, choices=[1, 2, 3, 4], help="receiving nodes (4)")
    parser.add_argument("--block-period", type=float, default=1.0)
    parser.add_argument("--round-timeout", type=float, default=2.0)
    parser.add_argument("--poll-interval", type=float, default=0.02)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = bench(args)
    emit(result, args.json, report)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
