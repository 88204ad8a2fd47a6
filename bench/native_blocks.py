"""Native lifecycle transactions through `Chain.build_block` (and `commit_block`), in process.

Two uses (PERFORMANCE.md, lifecycle section):

- the profile of native block building: `--rounds 12 --block-txs 150` (default) builds, per
  round on a fresh `MemoryStore` chain, a block of 150 issues, one of 150 reviews and one
  of 150 dispenses (development accounts 1, 2, 3), and prints the time per transaction
  inside `build_block`. Profile with
  `py-spy record --rate 500 --format raw -o P.txt -- .venv/bin/python bench/native_blocks.py`.
- per-block overhead with small blocks on LevelDB, as the dev chain makes them under
  load: `--leveldb --block-txs 8` builds and commits (fsync) blocks of 8 issues, 8
  reviews, 8 dispenses, … (600 prescriptions), and prints build and commit time per block.

Run:  .venv/bin/python bench/native_blocks.py [--rounds 12] [--block-txs 150] [--leveldb]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from chaincode_py import NativeChaincodeHost

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import lifecycle_bench as lb  # noqa: E402
from eth_utils.crypto import keccak  # noqa: E402

from node.chain import Chain  # noqa: E402
from node.genesis import dev_genesis, dev_validator_key  # noqa: E402
from node.storage import MemoryStore  # noqa: E402
from rxledger.core.crypto import private_key_to_address  # noqa: E402
from rxledger.core.types import decode_transaction  # noqa: E402
from rxledger.core.types.transactions import SignedTransaction  # noqa: E402

NOW = 1_700_000_000


def signed_steps(tag: str, count: int) -> list[list[SignedTransaction]]:
    """Issues, reviews and dispenses of `count` prescriptions, nonces from 0."""
    keys = (lb.dev_key(1), lb.dev_key(2), lb.dev_key(3))
    rids = [keccak(text=f"{tag} rx {i}") for i in range(count)]
    return [[decode_transaction(bytes.fromhex(lb.sign(key, i, lb.NATIVE_REGISTRY,
                                                      lb.calldata(step, *lb.step_args(step, rid, i, NOW)),
                                                      195_000)[0][2:]))
             for i, rid in enumerate(rids)]
            for step, key in zip(lb.STEPS, keys, strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--block-txs", type=int, default=150)
    parser.add_argument("--leveldb", action="store_true", help="small blocks on LevelDB, with commits")
    args = parser.parse_args()
    proposer = private_key_to_address(dev_validator_key())
    if args.leveldb:
        from node.storage.leveldb import LevelDBStore

        steps = signed_steps("small blocks", 600)
        k = args.block_txs
        blocks = [steps[s][c:c + k] for c in range(0, 600, k) for s in range(3)]
        store = LevelDBStore(tempfile.mkdtemp(prefix="rxledger-native-blocks-") + "/db")
        chain = Chain(store, dev_genesis(), NativeChaincodeHost)
        build = commit = 0.0
        for b, txs in enumerate(blocks):
            t0 = time.perf_counter()
            block, execution = chain.build_block(txs, timestamp=NOW + b, proposer=proposer)
            t1 = time.perf_counter()
            chain.commit_block(chain.seal(block, []), execution)
            commit += time.perf_counter() - t1
            build += t1 - t0
            assert len(execution.receipts) == len(txs) and all(r.status == 1 for r in execution.receipts)
        n = sum(len(t) for t in blocks)
        print(f"{len(blocks)} blocks of {k}: build {build / len(blocks) * 1e3:.2f} ms/block, commit "
              f"{commit / len(blocks) * 1e3:.2f} ms/block; {(build + commit) / n * 1e3:.3f} ms/tx, "
              f"{n / (build + commit):.0f} tx/s")
        store.close()
        return 0
    rounds = [signed_steps(f"round {r}", args.block_txs) for r in range(args.rounds)]
    total = 0.0
    for steps in rounds:
        chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
        for s, txs in enumerate(steps):
            t0 = time.perf_counter()
            block, execution = chain.build_block(txs, timestamp=NOW + s, proposer=proposer)
            total += time.perf_counter() - t0
            assert len(execution.receipts) == len(txs) and all(r.status == 1 for r in execution.receipts)
            chain.commit_block(chain.seal(block, []), execution)
    n = args.rounds * 3 * args.block_txs
    print(f"{n} native transactions in build_block: {total:.3f} s, {total / n * 1e3:.3f} ms/tx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
