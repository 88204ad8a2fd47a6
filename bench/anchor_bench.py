"""Anchoring throughput and offline receipt verification (client_sdk._anchor).

What it does:

1. Starts `rxledger node start --dev` as a subprocess on a free port with a temporary
   LevelDB data dir (or uses a running node with `--url`).
2. For each `--batch-sizes` entry (default 10000 and 100000), `--runs` times (default 2):
   makes `--n` (default 100000) random records of `--record-size` bytes (default 256; not
   timed), then times `Anchorer.submit(records)` with dev account 1: SHA-256 of every
   record, one Merkle tree per batch, one `anchor` transaction per batch (all sent before
   waiting), finality, the block's header, transactions and receipts, both trie proofs,
   and one `AnchorReceipt` per record. Reported as records/s ("anchor").
3. Times `verify_receipts` over all those receipts with a fresh `Trust` (one seal check
   and two trie proofs per batch, then an audit path per receipt): receipts/s on one
   core ("verify"); "end to end" is records/s from the call to `submit` to every receipt
   verified.
4. Serialises `--json-sample` receipts (default 20000) with `to_json`, drops the receipt
   objects, then times `AnchorReceipt.from_json` + `verify_receipt` on the texts with a
   fresh `Trust`: what a verifier reading receipt files does ("from JSON", receipts/s).

Before and after, the load average is recorded (the machine has 2 shared cores; other
benchmarks may run). `--profile DIR` writes cProfile stats of the first submit and of the
first verification (`python -m pstats`).

Goals (issue 6): >= 100,000 records/s anchored and >= 20,000 receipts/s verified on one core.

Run:  .venv/bin/python bench/anchor_bench.py [--n 100000] [--batch-sizes 10000,100000] [--runs 2] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from machine_info import machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client_sdk._anchor import Anchorer, AnchorReceipt, Trust, verify_receipt, verify_receipts  # noqa: E402
from node.genesis import DEV_CHAIN_ID, dev_accounts, dev_validator_key  # noqa: E402
from rxledger.core.crypto import private_key_to_address  # noqa: E402

ANCHORER = 1  # dev account 1: an enrolled prescriber


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_node(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rxledger", "node", "start", "--dev", "--data-dir", str(data_dir),
         "--rpc-port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the dev node exited with {proc.returncode}")
        try:
            if httpx.get(url + "health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the dev node at {url} did not answer within {timeout} s")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_once(url: str, n: int, batch_size: int, record_size: int, json_sample: int,
             profile_dir: Path | None, tag: str) -> dict[str, object]:
    records = [os.urandom(record_size) for _ in range(n)]
    key = dev_accounts()[ANCHORER].private_key
    validator = private_key_to_address(dev_validator_key())
    gc.collect()
    profiler = cProfile.Profile() if profile_dir else None
    with Anchorer(url, key, batch_size=batch_size) as anchorer:
        t0 = time.perf_counter()
        c0 = time.process_time()
        if profiler:
            profiler.enable()
        receipts = anchorer.submit(records)
        if profiler:
            profiler.disable()
            profiler.dump_stats(str(profile_dir / f"submit-{tag}.prof"))
        t1 = time.perf_counter()
        c1 = time.process_time()
    trust = Trust.from_validators([validator], chain_id=DEV_CHAIN_ID)
    profiler = cProfile.Profile() if profile_dir else None
    if profiler:
        profiler.enable()
    t2 = time.perf_counter()
    results = verify_receipts(receipts, trust)
    t3 = time.perf_counter()
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(profile_dir / f"verify-{tag}.prof"))
    assert results == [None] * n, [r for r in results if r][:3]
    sample = receipts[:: max(1, n // json_sample)][:json_sample]
    texts = [r.to_json() for r in sample]
    blocks = sorted({r.block_number for r in receipts})
    # A verifier reading files does not hold 100,000 receipt objects that every cyclic
    # GC pass would walk: drop them before timing it.
    del receipts, results, sample
    gc.collect()
    fresh = Trust.from_validators([validator], chain_id=DEV_CHAIN_ID)
    t4 = time.perf_counter()
    for text in texts:
        verify_receipt(AnchorReceipt.from_json(text), fresh)
    t5 = time.perf_counter()
    return {
        "n": n, "batch_size": batch_size, "batches": -(-n // batch_size),
        "blocks": len(blocks),
        "anchor_s": round(t1 - t0, 3), "anchor_rps": round(n / (t1 - t0)),
        "anchor_client_cpu_s": round(c1 - c0, 3),
        "verify_s": round(t3 - t2, 3), "verify_rps": round(n / (t3 - t2)),
        "end_to_end_rps": round(n / ((t1 - t0) + (t3 - t2))),
        "json_sample": len(texts), "receipt_json_bytes": len(texts[0]),
        "verify_json_rps": round(len(texts) / (t5 - t4)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", help="use a running dev node (its dev account 1 anchors)")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch-sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--record-size", type=int, default=256)
    parser.add_argument("--json-sample", type=int, default=20_000)
    parser.add_argument("--profile", type=Path, metavar="DIR")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="anchor-bench-"))
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        proc = start_node(tmp / "data", port)
    try:
        wait_healthy(url, proc)
        report: dict[str, object] = {"machine": machine(), "load_before": loadavg(), "runs": []}
        runs: list[dict[str, object]] = []
        for size in sizes:
            for i in range(args.runs):
                result = run_once(url, args.n, size, args.record_size, args.json_sample,
                                  args.profile if i == 0 else None, f"{size}")
                result["load"] = loadavg()
                runs.append(result)
                if not args.json:
                    print(f"batch {size:>6}: anchor {result['anchor_rps']:>7} rec/s "
                          f"({result['anchor_s']} s, client CPU {result['anchor_client_cpu_s']} s, "
                          f"{result['batches']} tx in {result['blocks']} block(s)); "
                          f"verify {result['verify_rps']:>7} rec/s; end to end {result['end_to_end_rps']:>7} rec/s; "
                          f"from JSON {result['verify_json_rps']:>6} rec/s "
                          f"({result['receipt_json_bytes']} B/receipt); load {result['load']}", flush=True)
        report["runs"] = runs
        report["load_after"] = loadavg()
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"load before {report['load_before']}, after {report['load_after']}")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
