"""The dev node's pipeline without HTTP: the ceiling JSON-RPC could reach on this machine.

Builds a `NodeService` on a temporary LevelDB data dir with its one-validator QBFT runtime
started as `rxledger node start --dev` starts it (node/node.py `new_node`: `QbftConfig(
block_period=0.0, empty_block_period=None, round_timeout=1.0, max_round_timeout=10.0)`,
the defaults of `--min-block-interval` and `--empty-block-period`), minus uvicorn/FastAPI;
deploys Counter, pre-signs `--n` `increment()` transactions over the ten dev accounts and
hands them to
`NodeService.submit_raw_transaction` (decode + sender recovery + txpool admission, what
`eth_sendRawTransaction` calls) from `--threads` threads. A transaction refused as "nonce
too high" (the pool's 64-nonce gap) is retried after the next block. Reports transactions
per second from the first submission until the last one is in a committed block, and the
blocks made.

Run:  .venv/bin/python bench/inprocess_pipeline.py [--n 2000] [--threads 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from chaincode_py import NativeChaincodeHost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RxLedger dev node pipeline without HTTP")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from eth_abi.abi import encode
    from eth_account import Account
    from eth_utils.crypto import keccak

    from node.config import NodeConfig
    from node.consensus.qbft import QbftConfig
    from node.genesis import dev_accounts, dev_genesis, dev_validator_key
    from node.service import NodeService
    from rxledger.core.artifacts import load_artifact
    from rxledger.core.errors import TxPoolRefused

    tmp = Path(tempfile.mkdtemp(prefix="rxledger-inproc-"))
    config = NodeConfig(data_dir=tmp, dev=True)
    svc = NodeService(config, dev_genesis(), validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
    committed: list[tuple[float, int]] = []
    svc.chain.add_listener(lambda block, receipts: committed.append(
        (time.perf_counter(), len(block.transactions))))
    try:
        svc.start_consensus(QbftConfig(
            block_period=config.min_block_interval,
            empty_block_period=config.empty_block_period or None,
            round_timeout=1.0, max_round_timeout=10.0,
        ))
        signers = [Account.from_key(a.private_key) for a in dev_accounts()]
        code = bytes.fromhex(load_artifact("Counter")["bytecode"].removeprefix("0x"))
        code += encode(["uint256"], [0])
        svc.submit_raw_transaction(bytes(signers[9].sign_transaction(dict(
            nonce=0, gasPrice=0, gas=1_000_000, data=code, chainId=2024)).raw_transaction))
        if not svc.wait_for_block(0, timeout=30):
            raise SystemExit("the deployment was not final in time")
        contract = keccak(b"\xd6\x94" + bytes.fromhex(signers[9].address[2:]) + b"\x80")[12:]
        data = keccak(text="increment()")[:4]
        nonces = [0] * 10
        nonces[9] = 1
        raws = []
        for i in range(args.n):
            k = i % 10
            raws.append(bytes(signers[k].sign_transaction(dict(
                nonce=nonces[k], gasPrice=0, gas=100_000, to=contract, data=data,
                chainId=2024)).raw_transaction))
            nonces[k] += 1
        committed.clear()
        start_height = svc.chain.head.number
        queue = iter(raws)
        lock = threading.Lock()
        retries = [0]

        def submit() -> None:
            while True:
                with lock:
                    raw = next(queue, None)
                if raw is None:
                    return
                while True:
                    try:
                        svc.submit_raw_transaction(raw)
                        break
                    except TxPoolRefused as exc:
                        if "nonce too high" not in str(exc):
                            raise
                        with lock:
                            retries[0] += 1
                        svc.wait_for_block(svc.chain.head.number, timeout=5)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=submit) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_admitted = time.perf_counter()
        deadline = time.monotonic() + 300
        while sum(n for _, n in committed) < args.n and time.monotonic() < deadline:
            time.sleep(0.002)
        t_end = committed[-1][0] if committed else float("nan")
        sizes = [n for _, n in committed]
        result = {
            "n": args.n, "threads": args.threads,
            "final": sum(sizes), "tps": round(sum(sizes) / (t_end - t0), 1),
            "elapsed_s": round(t_end - t0, 3), "admission_s": round(t_admitted - t0, 3),
            "blocks": len(sizes), "txs_per_block": round(sum(sizes) / max(1, len(sizes)), 1),
            "block_sizes": sizes, "nonce_too_high_retries": retries[0],
            "start_height": start_height,
        }
    finally:
        svc.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"in-process pipeline: {result['final']}/{args.n} final, {result['tps']} tx/s "
              f"({result['elapsed_s']} s; all submitted after {result['admission_s']} s), "
              f"{result['blocks']} blocks, {result['txs_per_block']} txs/block, "
              f"nonce-too-high retries {result['nonce_too_high_retries']}")
        print(f"  block sizes: {result['block_sizes']}")
    return 0 if result["final"] == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
