"""Compare eth-hash's two keccak256 backends: pycryptodome and pysha3 (safe-pysha3).

Two measurements, both backends in the same run (interleaved, best of several repeats):

1. Micro: ns per `keccak256(data)` call for 32, 64, 136, 532 (a typical branch trie
   node) and 4096-byte inputs.
2. End to end: `Chain.build_block` of 300 `Counter.increment()` transactions on a
   `MemoryStore`, with the process-wide eth-hash hasher (py-evm, trie, eth-utils) and the
   node's own `keccak256` imports pointed at each backend in turn.

Run:  .venv/bin/python bench/keccak_backends.py [--json] [--repeats N] [--txs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import timeit

import eth_hash.auto
from eth_hash.backends import pycryptodome, pysha3
from machine_info import machine

from chaincode_py import NativeChaincodeHost

SIZES = (32, 64, 136, 532, 4096)
BACKENDS = {"pycryptodome": pycryptodome.keccak256, "pysha3": pysha3.keccak256}

# Modules of the node that bind `rxledger.core.crypto.keccak256` at import time; patched with the
# eth-hash hasher so the end-to-end figure switches every keccak of the process.
_NODE_KECCAK_MODULES = (
    "rxledger.core.crypto",
    "rxledger.core.types.headers",
    "rxledger.core.types.transactions",
    "node.consensus.validators",
    "rxledger.core.wire",
)


# -- micro ---------------------------------------------------------------------------------
def micro(repeats: int) -> list[dict[str, object]]:
    rows = []
    for size in SIZES:
        data = os.urandom(size)
        assert BACKENDS["pycryptodome"](data) == BACKENDS["pysha3"](data)
        number = max(2_000, 400_000 // max(1, size // 32))
        best = {name: float("inf") for name in BACKENDS}
        for _ in range(repeats):  # interleave so drift hits both alike
            for name, fn in BACKENDS.items():
                t = timeit.timeit(lambda fn=fn, data=data: fn(data), number=number)
                best[name] = min(best[name], t / number * 1e9)
        rows.append({
            "bytes": size,
            "pycryptodome_ns": round(best["pycryptodome"], 1),
            "pysha3_ns": round(best["pysha3"], 1),
            "ratio": round(best["pycryptodome"] / best["pysha3"], 2),
        })
    return rows


# -- end to end ----------------------------------------------------------------------------
def install(fn) -> None:
    eth_hash.auto.keccak.hasher = fn
    for name in _NODE_KECCAK_MODULES:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "keccak256"):
            module.keccak256 = fn


def end_to_end(repeats: int, n_txs: int) -> dict[str, object]:
    from eth_abi import encode
    from eth_account import Account
    from eth_utils import keccak

    import rxledger.core.wire  # noqa: F401  (so its keccak256 binding is patched too)
    from node.chain import Chain
    from node.genesis import dev_accounts, dev_genesis, dev_validator_key
    from node.storage import MemoryStore
    from rxledger.core.artifacts import load_artifact
    from rxledger.core.crypto import private_key_to_address
    from rxledger.core.types import decode_transaction

    accounts = dev_accounts()
    deployer = Account.from_key(accounts[9].private_key)
    proposer = private_key_to_address(dev_validator_key())
    art = load_artifact("Counter")
    code = bytes.fromhex(art["bytecode"].removeprefix("0x")) + encode(["uint256"], [0])
    increment = keccak(text="increment()")[:4]
    deploy_raw = bytes(deployer.sign_transaction(
        dict(nonce=0, gasPrice=0, gas=1_000_000, data=code, chainId=2024)).raw_transaction)
    contract = keccak(bytes.fromhex("d694") + bytes.fromhex(deployer.address[2:]) + b"\x80")[12:]
    # 300 increments spread over the ten dev accounts, consecutive nonces per account
    raws = []
    signers = [Account.from_key(a.private_key) for a in accounts]
    nonces = [0] * 10
    nonces[9] = 1
    for i in range(n_txs):
        k = i % 10
        raws.append(bytes(signers[k].sign_transaction(dict(
            nonce=nonces[k], gasPrice=0, gas=100_000, to=contract, data=increment,
            chainId=2024)).raw_transaction))
        nonces[k] += 1

    times: dict[str, list[float]] = {name: [] for name in BACKENDS}
    roots: dict[str, bytes] = {}
    for rep in range(repeats + 1):  # the first round warms imports and caches; not counted
        for name, fn in BACKENDS.items():
            install(fn)
            chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
            block, ex = chain.build_block([decode_transaction(deploy_raw)], timestamp=1,
                                          proposer=proposer)
            chain.commit_block(chain.seal(block, []), ex)
            txs = [decode_transaction(r) for r in raws]
            t0 = time.perf_counter()
            block, ex = chain.build_block(txs, timestamp=2, proposer=proposer)
            dt = time.perf_counter() - t0
            assert len(ex.transactions) == n_txs and not ex.skipped, ex.skipped[:1]
            assert all(r.status == 1 for r in ex.receipts)
            roots.setdefault(name, block.header.state_root)
            if rep:
                times[name].append(dt)
    # How many hashes one build makes, and of what sizes (explains the end-to-end ratio).
    sizes: list[int] = []

    def counting(data, _inner=pysha3.keccak256):
        sizes.append(len(data))
        return _inner(data)

    install(counting)
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    block, ex = chain.build_block([decode_transaction(deploy_raw)], timestamp=1, proposer=proposer)
    chain.commit_block(chain.seal(block, []), ex)
    txs = [decode_transaction(r) for r in raws]
    sizes.clear()
    chain.build_block(txs, timestamp=2, proposer=proposer)
    install(pysha3.keccak256)
    assert roots["pycryptodome"] == roots["pysha3"], "backends disagree on the state root"
    out: dict[str, object] = {"txs": n_txs, "repeats": repeats}
    for name in BACKENDS:
        out[f"{name}_best_s"] = round(min(times[name]), 4)
        out[f"{name}_median_s"] = round(statistics.median(times[name]), 4)
        out[f"{name}_tx_per_s"] = round(n_txs / min(times[name]), 1)
    out["keccak_calls"] = len(sizes)
    out["keccak_mean_bytes"] = round(sum(sizes) / max(1, len(sizes)), 1)
    out["keccak_le_136_bytes_share"] = round(sum(1 for n in sizes if n <= 136) / max(1, len(sizes)), 3)
    out["ratio_best"] = round(min(times["pycryptodome"]) / min(times["pysha3"]), 3)
    out["ratio_median"] = round(
        statistics.median(times["pycryptodome"]) / statistics.median(times["pysha3"]), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats per measurement (default 5)")
    parser.add_argument("--txs", type=int, default=300, help="transactions in the block (default 300)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    result = {"machine": machine(), "micro": micro(args.repeats),
              "block_build": end_to_end(args.repeats, args.txs)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}")
    print(f"\nkeccak256 per call (best of {args.repeats}):")
    print(f"{'bytes':>6} {'pycryptodome ns':>16} {'pysha3 ns':>10} {'ratio':>6}")
    for row in result["micro"]:
        print(f"{row['bytes']:>6} {row['pycryptodome_ns']:>16.0f} {row['pysha3_ns']:>10.0f} "
              f"{row['ratio']:>5.2f}x")
    b = result["block_build"]
    print(f"\nChain.build_block of {b['txs']} Counter.increment() txs, MemoryStore "
          f"(best / median of {b['repeats']}):")
    for name in BACKENDS:
        print(f"  {name:>12}: {b[f'{name}_best_s'] * 1000:7.1f} ms / "
              f"{b[f'{name}_median_s'] * 1000:7.1f} ms  ({b[f'{name}_tx_per_s']:.0f} tx/s)")
    print(f"  ratio pycryptodome/pysha3: {b['ratio_best']:.3f}x best, {b['ratio_median']:.3f}x median")
    print(f"  keccak calls in one build: {b['keccak_calls']} (mean {b['keccak_mean_bytes']} bytes, "
          f"{100 * b['keccak_le_136_bytes_share']:.0f}% of them <= 136 bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
