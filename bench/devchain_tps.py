"""Dev chain throughput: signed Counter.increment() transactions through JSON-RPC to finality.

What it does:

1. Starts `rxledger node start --dev` as a subprocess on a free port with a temporary
   LevelDB data dir (or uses a running node with `--url`).
2. Deploys Counter from dev account 9 and waits for its receipt.
3. Pre-signs `--n` (default 2000) `increment()` transactions spread round-robin over the
   ten dev accounts (consecutive nonces per account, gas 100000, zero fees, chain id 2024;
   legacy by default, `--tx-type 1559` for EIP-1559 with zero fees). Signing is not timed.
4. Sends them with `eth_sendRawTransaction` from `--concurrency` (default 8) threads, each
   with its own keep-alive `http.client` connection (see `Rpc`); `--batch K` sends JSON-RPC batches of K.
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
RPC socket created as IPPROTO_TCP (see docs/PERFORMANCE.md), not the shipped node.

Run:  .venv/bin/python bench/devchain_tps.py [--n 2000] [--concurrency 8] [--batch 1] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from machine_info import machine

CHAIN_ID = 2024
GAS = 100_000
MAX_NONCE_GAP = 64  # per-account nonces in flight: the old pool's window, kept so figures compare (the pool now holds 16+ pending and 256 gapped per account: PoolLimits)


# -- machine -------------------------------------------------------------------------------
def process_cpu_seconds(pid: int) -> float | None:
    """utime+stime of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# -- JSON-RPC ------------------------------------------------------------------------------
class RpcError(Exception):
    def __init__(self, error: dict) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


class Rpc:
    """JSON-RPC over one keep-alive `http.client` connection.

    Not httpx: its per-request Python cost (about 0.3 ms here) made the load generator,
    with eight sender threads sharing one interpreter, the bottleneck of a run. One
    `send` per request (http.client joins headers and a bytes body), TCP_NODELAY, orjson.
    """

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = url
        self.path = parts.path or "/"
        self._host, self._port, self._timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self._conn: http.client.HTTPConnection | None = None
        self._id = 0

    def _post(self, payload: object) -> Any:
        body = orjson.dumps(payload)
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
                self._conn.connect()
                self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self._conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                response = self._conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()  # the server closed an idle keep-alive connection: once more
                if attempt:
                    raise
                continue
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} from {self.url}: {data[:200]!r}")
            return orjson.loads(data)
        raise AssertionError("unreachable")

    def call(self, method: str, *params: object) -> object:
        self._id += 1
        body = self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)})
        if "error" in body:
            raise RpcError(body["error"])
        return body["result"]

    def batch(self, calls: list[tuple[str, list]]) -> list[dict]:
        payload = []
        for method, params in calls:
            self._id += 1
            payload.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        answers = self._post(payload)
        by_id = {a.get("id"): a for a in answers}
        return [by_id.get(p["id"], {"error": {"code": 0, "message": "no answer"}}) for p in payload]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# -- node ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# `--patch-tcp-nodelay`: run the CLI with its listening socket created as IPPROTO_TCP.
# asyncio sets TCP_NODELAY on accepted connections only when the listening socket's proto
# is IPPROTO_TCP; `node.node._bind` made it with proto 0, so responses (headers and body
# written separately by uvicorn's h11 protocol) meet Nagle + delayed ACK: ~40 ms a request.
_NODELAY_PATCH = """
import socket, sys
import node.node as assembly
import rxledger.cli as cli
_bind = assembly._bind
def _bind_tcp(host, port):
    s = _bind(host, port)
    fixed = socket.socket(s.family, socket.SOCK_STREAM, socket.IPPROTO_TCP, fileno=s.detach())
    fixed.set_inheritable(True)
    return fixed
assembly._bind = _bind_tcp
sys.exit(cli.main(sys.argv[1:]))
"""


def start_node(data_dir: Path, port: int, py_spy: str | None, patch_nodelay: bool,
               py_spy_gil: bool = False) -> subprocess.Popen:
    script = Path(sys.executable).parent / "rxledger"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "rxledger"]
    if patch_nodelay:
        cmd = [sys.executable, "-c", _NODELAY_PATCH]
    cmd += ["node", "start", "--dev", "--data-dir", str(data_dir), "--rpc-port", str(port),
            "--log-level", "warning"]
    if py_spy:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        fmt = {".svg": "flamegraph", ".txt": "raw"}.get(Path(py_spy).suffix, "speedscope")
        cmd = [spy, "record", "--threads", "--rate", "200", "--format", fmt, "-o", py_spy,
               *(["--gil"] if py_spy_gil else []), "--", *cmd]
    log = open(data_dir.parent / "node.log", "wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen | None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the node exited with {proc.returncode} before becoming healthy")
        try:
            if httpx.get(url.rstrip("/") + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the node at {url} did not become healthy in {timeout:.0f}s")


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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = rpc.call("eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            if int(receipt["status"], 16) != 1:
                raise SystemExit("the Counter deployment reverted")
            return bytes.fromhex(receipt["contractAddress"][2:]), int(receipt["blockNumber"], 16)
        time.sleep(0.05)
    raise SystemExit("the Counter deployment was not final in time")


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
                if len(txs) == 1:
                    try:
                        rpc.call("eth_sendRawTransaction", txs[0].raw)
                        answers = [{"result": txs[0].hash}]
                    except RpcError as exc:
                        answers = [{"error": exc.error}]
                else:
                    answers = rpc.batch([("eth_sendRawTransaction", [t.raw]) for t in txs])
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
        with run.lock:
            run.failed = run.failed or f"sender: {exc!r}"
            run.lock.notify_all()
    finally:
        rpc.close()


LOOKAHEAD = 16  # blocks asked for in one batch per poll


def poller(run: Run, url: str, first_block: int, interval: float, blocks: list[dict]) -> None:
    """Observe final blocks: one batch `eth_getBlockByNumber(n..n+15, false)` per poll."""
    rpc = Rpc(url)
    by_hash = {t.hash: t for t in run.txs}
    n = first_block
    try:
        while not run.done.is_set():
            answers = rpc.batch([("eth_getBlockByNumber", [hex(m), False])
                                 for m in range(n, n + LOOKAHEAD)])
            seen = time.perf_counter()
            new = 0
            for answer in answers:
                if "error" in answer:
                    raise RpcError(answer["error"])
                block = answer["result"]
                if block is None:
                    break
                ours = 0
                with run.lock:
                    for h in block["transactions"]:
                        t = by_hash.get(h)
                        if t is None:
                            continue
                        ours += 1
                        t.final_at, t.block = seen, n
                        run.final_count[t.account] = max(run.final_count[t.account],
                                                         t.nonce - run.queues[t.account][0].nonce + 1)
                        run.finals += 1
                    run.lock.notify_all()
                blocks.append({"number": n, "txs": len(block["transactions"]), "ours": ours,
                               "gasUsed": int(block["gasUsed"], 16), "seen": seen})
                n += 1
                new += 1
            if run.finals >= len(run.txs):
                run.done.set()
            elif not new:
                with run.lock:
                    if run.failed:
                        return
                time.sleep(interval)
    except Exception as exc:
        with run.lock:
            run.failed = run.failed or f"poller: {exc!r}"
            run.lock.notify_all()
        run.done.set()
    finally:
        rpc.close()


def check_receipts(rpc: Rpc, txs: list[Tx], blocks: list[dict]) -> None:
    """After the run: every block's receipts (batched), each transaction's status."""
    by_hash = {t.hash: t for t in txs}
    numbers = [b["number"] for b in blocks if b["ours"]]
    for i in range(0, len(numbers), 16):
        for answer in rpc.batch([("eth_getBlockReceipts", [hex(m)]) for m in numbers[i:i + 16]]):
            for r in answer.get("result") or []:
                t = by_hash.get(r["transactionHash"])
                if t is not None:
                    t.status = int(r["status"], 16)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def bench(args: argparse.Namespace) -> dict:
    tmp = proc = None
    url = args.url
    if url is None:
        tmp = Path(tempfile.mkdtemp(prefix="rxledger-tps-"))
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        proc = start_node(tmp / "data", port, args.py_spy, args.patch_tcp_nodelay, args.py_spy_gil)
    try:
        wait_healthy(url, proc)
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
        node_pid = None
        if proc is not None:
            node_pid = proc.pid
            if args.py_spy:  # the node is py-spy's child
                try:
                    node_pid = int(subprocess.check_output(["pgrep", "-P", str(proc.pid)]).split()[0])
                except (subprocess.CalledProcessError, IndexError, ValueError):
                    node_pid = None
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
    finally:
        if proc is not None:
            # SIGINT: uvicorn stops cleanly and py-spy (if any) writes its profile
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

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
                   "poll_interval_s": args.poll_interval, "node": "started" if proc else url,
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
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
