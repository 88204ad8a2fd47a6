"""Dev chain throughput: signed Counter.increment() transactions through JSON-RPC to finality.

What it does:

1. Starts `rxledger node start --dev` as a subprocess on a free port with a temporary
   LevelDB data dir (or uses a running node with `--url`).
2. Deploys Counter from dev account 9 and waits for its receipt.
3. Pre-signs `--n` (default 2000) `increment()` transactions spread round-robin over the
   ten dev accounts (consecutive nonces per account, gas 100000, zero fees, chain id 2024;
   legacy by default, `--tx-type 1559` for EIP-1559 with zero fees). Signing is not timed.
4. Sends them with `eth_sendRawTransaction` from `--concurrency` (default 8) threads, each
   with its own keep-alive `http.client` connection (see `common.Rpc`); `--batch K` sends JSON-RPC batches of K.
   The pool refuses a nonce more than 64 ahead of the account's state nonce, so each
   account has at most `--window` (default 64) transactions sent but not yet seen final;
   a refusal "nonce too high" is retried (and counted).
5. A poller thread asks for the next 16 blocks in one JSON-RPC batch of
   `eth_getBlockByNumber(n, false)` (one HTTP round trip however many blocks are new),
   again at once if it found a new block, else after `--poll-interval` seconds (default
   0.01). A transaction's finality time is the moment the poller first received its block
   (dev blocks are final when written, and their receipts exist from then on). After the
   run, every block's receipts are fetched (`eth_getBlockReceipts`, batched) and each
   transaction's status must be 1; the Counter must have grown by `--n`.

Reported: transactions per second from the first send to the last final block observed,
p50/p90/p99/max latency from each transaction's submission (the moment its HTTP request
was started) to its block being observed, the admission rate (sends alone), blocks
produced and transactions per block, and, for a node it started, the node process's CPU
time (user+system) over the run; before the load, the idle `eth_blockNumber` round trip.

Diagnostics: `--py-spy FILE` runs the node under `py-spy record` (speedscope JSON; a
flamegraph if FILE ends in .svg, collapsed stacks for bench/pyspy_summary.py if .txt;
`--py-spy-gil` samples only the GIL holder). `--patch-tcp-nodelay` starts the node with its
TCP sockets created as IPPROTO_TCP (see docs/PERFORMANCE.md), not the shipped node.

Starting and stopping the node, the JSON-RPC client and following blocks are bench/common.py's.

Run:  .venv/bin/python bench/devchain_tps.py [--n 2000] [--concurrency 8] [--batch 1] [--json]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field

from common import (
    MAX_NONCE_GAP,
    DevNode,
    Rpc,
    emit,
    follow_run,
    mark_final,
    percentile,
    process_cpu_seconds,
    receipt_statuses,
    record_failure,
    send_raw,
    wait_receipts,
)
from machine_info import machine

CHAIN_ID = 2024
GAS = 100_000


# -- transactions --------------------------------------------------------------------------
@dataclass
class Tx:
    index: int
    account: int
    nonce: int
    raw: str
    hash: str
    sent_at: float = 0.0
    answered_at: float = 0.0
    final_at: float = 0.0
    block: int = -1
    status: int | None = None
    error: str | None = None


def presign(n: int, contract: bytes, nonces: list[int], tx_type: str) -> list[Tx]:
    from eth_account import Account
    from eth_utils import keccak

    from node.genesis import dev_accounts

    signers = [Account.from_key(a.private_key) for a in dev_accounts()]
    data = keccak(text="increment()")[:4]
    out = []
    next_nonce = list(nonces)
    for i in range(n):
        k = i % len(signers)
        fields: dict = dict(nonce=next_nonce[k], gas=GAS, to=contract, data=data, chainId=CHAIN_ID)
        if tx_type == "1559":
            fields.update(maxFeePerGas=0, maxPriorityFeePerGas=0, type=2)
        else:
            fields.update(gasPrice=0)
        signed = signers[k].sign_transaction(fields)
        out.append(Tx(i, k, next_nonce[k], "0x" + bytes(signed.raw_transaction).hex(),
                      "0x" + bytes(signed.hash).hex()))
        next_nonce[k] += 1
    return out


def deploy_counter(rpc: Rpc, timeout: float) -> tuple[bytes, int]:
    from eth_abi import encode
    from eth_account import Account

    from node.genesis import dev_accounts
    from rxledger.core.artifacts import load_artifact

    deployer = Account.from_key(dev_accounts()[9].private_key)
    art = load_artifact("Counter")
    code = bytes.fromhex(art["bytecode"].removeprefix("0x")) + encode(["uint256"], [0])
    nonce = int(rpc.call("eth_getTransactionCount", deployer.address, "pending"), 16)
    signed = deployer.sign_transaction(dict(nonce=nonce, gasPrice=0, gas=1_000_000, data=code,
                                            chainId=CHAIN_ID))
    tx_hash = rpc.call("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
    receipt = wait_receipts(rpc, [tx_hash], "Counter deployment", timeout)[0]
    if int(receipt["status"], 16) != 1:
        raise SystemExit("the Counter deployment reverted")
    return bytes.fromhex(receipt["contractAddress"][2:]), int(receipt["blockNumber"], 16)


# -- the run -------------------------------------------------------------------------------
@dataclass
class Run:
    txs: list[Tx]
    window: int
    accounts: int = 10
    lock: threading.Condition = field(default_factory=threading.Condition)
    queues: list[list[Tx]] = field(default_factory=list)
    next_i: list[int] = field(default_factory=list)
    final_count: list[int] = field(default_factory=list)
    rr: int = 0
    sent: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    finals: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    failed: str | None = None

    def __post_init__(self) -> None:
        self.queues = [[t for t in self.txs if t.account == k] for k in range(self.accounts)]
        self.next_i = [0] * self.accounts
        self.final_count = [0] * self.accounts

    def take(self, k_max: int) -> list[Tx]:
        """Up to `k_max` transactions that may be sent now (blocks while all are held back)."""
        with self.lock:
            while True:
                if self.failed or self.sent >= len(self.txs):
                    return []
                out: list[Tx] = []
                for step in range(self.accounts):
                    k = (self.rr + step) % self.accounts
                    q, i = self.queues[k], self.next_i[k]
                    while i < len(q) and i < self.final_count[k] + self.window and len(out) < k_max:
                        out.append(q[i])
                        i += 1
                    self.next_i[k] = i
                    if len(out) >= k_max:
                        break
                self.rr = (self.rr + 1) % self.accounts
                if out:
                    self.sent += len(out)
                    return out
                self.lock.wait(0.5)


def sender(run: Run, url: str, batch: int) -> None:
    rpc = Rpc(url)
    try:
        while True:
            txs = run.take(batch)
            if not txs:
                return
            while txs:
                t0 = time.perf_counter()
                answers = send_raw(rpc, [t.raw for t in txs])
                t1 = time.perf_counter()
                again = []
                for t, a in zip(txs, answers, strict=True):
                    t.sent_at = t.sent_at or t0  # a retried transaction keeps its first send time
                    if "error" in a:
                        msg = str(a["error"].get("message"))
                        if "nonce too high" in msg:  # should not happen inside the window
                            again.append(t)
                            continue
                        t.error = msg
                        with run.lock:
                            run.errors.append(f"tx {t.index} (account {t.account} nonce {t.nonce}): {msg}")
                            run.failed = run.failed or msg
                            run.lock.notify_all()
                        continue
                    if a["result"] != t.hash:
                        t.error = f"node answered hash {a['result']}, expected {t.hash}"
                        with run.lock:
                            run.failed = run.failed or t.error
                    t.answered_at = t1
                if again:
                    with run.lock:
                        run.retries += len(again)
                    time.sleep(0.02)
                txs = again
    except Exception as exc:  # report, and let the main thread stop
        record_failure(run, f"sender: {exc!r}")
    finally:
        rpc.close()


def poller(run: Run, url: str, first_block: int, interval: float, blocks: list[dict]) -> None:
    """Observe final blocks (`common.follow_blocks`: one batch of 16 `eth_getBlockByNumber` per poll)."""
    by_hash = {t.hash: t for t in run.txs}

    def on_final(t: Tx) -> None:  # under the lock
        run.final_count[t.account] = max(run.final_count[t.account], t.nonce - run.queues[t.account][0].nonce + 1)

    def on_block(n: int, block: dict, seen: float) -> None:
        ours = mark_final(run, by_hash, block, n, seen, on_final)
        blocks.append({"number": n, "txs": len(block["transactions"]), "ours": ours,
                       "gasUsed": int(block["gasUsed"], 16), "seen": seen})

    follow_run(run, url, first_block, interval, len(run.txs), on_block)


def check_receipts(rpc: Rpc, txs: list[Tx], blocks: list[dict]) -> None:
    """After the run: every block's receipts (batched), each transaction's status."""
    statuses = receipt_statuses(rpc, [b["number"] for b in blocks if b["ours"]])
    for t in txs:
        if t.hash in statuses:
            t.status = statuses[t.hash]


def bench(args: argparse.Namespace) -> dict:
    with DevNode(args.url, prefix="rxledger-tps-", keep=args.keep, py_spy=args.py_spy, py_spy_gil=args.py_spy_gil,
                 patch_nodelay=args.patch_tcp_nodelay) as node:
        url = node.url
        assert url is not None
        rpc = Rpc(url)
        contract, deploy_block = deploy_counter(rpc, timeout=60)
        from node.genesis import dev_accounts

        nonces = [int(rpc.call("eth_getTransactionCount", "0x" + a.address.hex(), "pending"), 16)
                  for a in dev_accounts()]
        t_sign = time.perf_counter()
        txs = presign(args.n, contract, nonces, args.tx_type)
        sign_s = time.perf_counter() - t_sign
        rtts = []
        for _ in range(30):  # one idle round trip, before the load
            t = time.perf_counter()
            head = int(rpc.call("eth_blockNumber"), 16)
            rtts.append(time.perf_counter() - t)
        rtts.sort()
        counter_before = int(rpc.call("eth_call", {"to": "0x" + contract.hex(), "data": "0x06661abd"},
                                      "latest"), 16)
        run = Run(txs, window=args.window)
        blocks: list[dict] = []
        node_pid = node.node_pid()
        node_cpu0 = process_cpu_seconds(node_pid) if node_pid else None
        client_cpu0 = time.process_time()
        poll = threading.Thread(target=poller, args=(run, url, head + 1, args.poll_interval, blocks),
                                daemon=True)
        senders = [threading.Thread(target=sender, args=(run, url, args.batch), daemon=True)
                   for _ in range(args.concurrency)]
        t_start = time.perf_counter()
        poll.start()
        for s in senders:
            s.start()
        for s in senders:
            s.join()
        t_sent = time.perf_counter()
        if not run.done.wait(args.timeout):
            run.failed = run.failed or f"not all transactions final after {args.timeout}s"
        run.done.set()
        poll.join(timeout=10)
        node_cpu1 = process_cpu_seconds(node_pid) if node_pid else None
        client_cpu = time.process_time() - client_cpu0
        check_receipts(rpc, txs, blocks)
        counter_after = int(rpc.call("eth_call", {"to": "0x" + contract.hex(), "data": "0x06661abd"},
                                     "latest"), 16)
        rpc.close()

    first_send = min((t.sent_at for t in txs if t.sent_at), default=t_start)
    finals = [t for t in txs if t.final_at]
    last_final = max((t.final_at for t in finals), default=float("nan"))
    last_answer = max((t.answered_at for t in txs if t.answered_at), default=float("nan"))
    lat = sorted(t.final_at - t.sent_at for t in finals)
    ours = [b for b in blocks if b["ours"]]
    sizes = [b["ours"] for b in ours]
    elapsed = last_final - first_send
    result = {
        "machine": machine(),
        "params": {"n": args.n, "concurrency": args.concurrency, "batch": args.batch,
                   "tx_type": args.tx_type, "window": args.window,
                   "poll_interval_s": args.poll_interval, "node": "started" if args.url is None else url,
                   "patch_tcp_nodelay": args.patch_tcp_nodelay,
                   "finality_from": "first eth_getBlockByNumber answer holding the tx"},
        "ok": run.failed is None and len(finals) == len(txs)
              and all(t.status == 1 for t in txs) and counter_after - counter_before == len(txs),
        "failure": run.failed,
        "errors": run.errors[:10],
        "sign_s": round(sign_s, 2),
        "idle_rtt_ms": {"p50": round(rtts[15] * 1000, 2), "max": round(rtts[-1] * 1000, 2)},
        "sent": sum(1 for t in txs if t.answered_at),
        "final": len(finals),
        "status_1": sum(1 for t in txs if t.status == 1),
        "counter_increase": counter_after - counter_before,
        "nonce_too_high_retries": run.retries,
        "elapsed_s": round(elapsed, 3),
        "tps": round(len(finals) / elapsed, 1) if finals else 0.0,
        "admission_s": round(last_answer - first_send, 3),
        "admission_tps": round(len(txs) / (last_answer - first_send), 1) if txs else 0.0,
        "senders_done_s": round(t_sent - t_start, 3),
        "latency_s": {
            "p50": round(percentile(lat, 50), 3), "p90": round(percentile(lat, 90), 3),
            "p99": round(percentile(lat, 99), 3), "max": round(lat[-1], 3) if lat else None,
            "min": round(lat[0], 3) if lat else None,
        },
        "blocks": len(ours),
        "blocks_observed": len(blocks),
        "txs_per_block": {"mean": round(sum(sizes) / len(sizes), 1) if sizes else 0,
                          "min": min(sizes, default=0), "max": max(sizes, default=0)},
        "block_sizes": sizes,
        "block_intervals_s": [round(b["seen"] - a["seen"], 3) for a, b in zip(ours, ours[1:], strict=False)],
        "node_cpu_s": round(node_cpu1 - node_cpu0, 2) if node_cpu0 is not None and node_cpu1 is not None else None,
        "client_cpu_s": round(client_cpu, 2),
        "deploy_block": deploy_block,
    }
    return result


def report(r: dict) -> None:
    m, p = r["machine"], r["params"]
    print(f"machine: {m['cpu']} ({m['cpu_mhz']} MHz), {m['cores']} cores, {m['ram_gib']} GiB RAM, "
          f"Python {m['python']}, {m['platform']}")
    print(f"run: {p['n']} Counter.increment() txs ({p['tx_type']}), {p['concurrency']} senders, "
          f"batch {p['batch']}, window {p['window']}/account, node {p['node']}"
          + (" WITH the TCP_NODELAY patch (diagnostic)" if p["patch_tcp_nodelay"] else ""))
    print(f"  presigned in {r['sign_s']} s (not timed); idle eth_blockNumber round trip "
          f"p50 {r['idle_rtt_ms']['p50']} ms")
    print(f"  final {r['final']}/{p['n']}, status 1: {r['status_1']}, counter +{r['counter_increase']}, "
          f"nonce-too-high retries {r['nonce_too_high_retries']}")
    print(f"  throughput: {r['tps']} tx/s  ({r['final']} txs, first send -> last final block "
          f"{r['elapsed_s']} s)")
    print(f"  admission:  {r['admission_tps']} tx/s  (all eth_sendRawTransaction answered after "
          f"{r['admission_s']} s)")
    lat = r["latency_s"]
    print(f"  submit -> final block observed: p50 {lat['p50']} s, p90 {lat['p90']} s, "
          f"p99 {lat['p99']} s, max {lat['max']} s")
    tb = r["txs_per_block"]
    print(f"  blocks: {r['blocks']} with our txs, {tb['mean']} txs/block (min {tb['min']}, "
          f"max {tb['max']}); sizes {r['block_sizes']}")
    if r["node_cpu_s"] is not None:
        print(f"  node process CPU: {r['node_cpu_s']} s over {r['elapsed_s']} s "
              f"({r['node_cpu_s'] / r['elapsed_s']:.2f} cores); client CPU {r['client_cpu_s']} s")
    print("  OK: every transaction final with status 1" if r["ok"] else
          f"  FAILED: {r['failure']}; {r['errors']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RxLedger dev chain TPS benchmark")
    parser.add_argument("--n", type=int, default=2000, help="transactions to send (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent senders (default 8)")
    parser.add_argument("--batch", type=int, default=1,
                        help="transactions per JSON-RPC request; >1 sends batches (default 1)")
    parser.add_argument("--tx-type", choices=["legacy", "1559"], default="legacy")
    parser.add_argument("--window", type=int, default=MAX_NONCE_GAP,
                        help="per-account transactions in flight (default 64, the pool's nonce gap)")
    parser.add_argument("--poll-interval", type=float, default=0.01,
                        help="seconds between polls for the next block (default 0.01)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for finality after the last send (default 600)")
    parser.add_argument("--url", help="use a running node's JSON-RPC URL instead of starting one")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="run the started node under py-spy record, writing FILE")
    parser.add_argument("--py-spy-gil", action="store_true",
                        help="with --py-spy: sample only the thread holding the GIL (where CPU goes)")
    parser.add_argument("--patch-tcp-nodelay", action="store_true",
                        help="diagnostic: start the node with its RPC socket made as IPPROTO_TCP so "
                             "asyncio sets TCP_NODELAY (not the shipped node)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir and node.log")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.url and (args.py_spy or args.patch_tcp_nodelay):
        parser.error("--py-spy and --patch-tcp-nodelay need a node the benchmark starts (no --url)")
    if args.n < 1 or args.concurrency < 1 or args.batch < 1 or not 1 <= args.window <= MAX_NONCE_GAP:
        parser.error("--n, --concurrency and --batch must be positive; --window 1..64")
    result = bench(args)
    emit(result, args.json, report)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
