"""The sync importer alone: how fast one node imports final blocks without p2p or RPC.

A diagnostic for `bench/network_bench.py --mode catchup`. It makes a 4-validator network
directory (`init_network`), builds `--blocks` sealed empty blocks into the first
validator's data dir exactly as the catch-up benchmark does (`network_bench.build_chain`),
reads them back encoded (as BLOCKS frames carry them), then opens the fourth validator's
empty data dir with the node's own `NodeService` and starts its QBFT runtime
(`ConsensusRuntime`, no peers). The timed part decodes each block (`decode_block`, as
`P2PTransport.on_blocks` does) and hands it to `runtime.deliver_block`, all at once, and
waits until the head reaches the last block: the same import path as sync
(`QbftNode.import_block` → seal and validator checks → re-execution → `Chain.commit_block`
with one fsynced LevelDB batch per block), minus the network and the serving node.

`--cprofile FILE` instead drives the runtime in this thread (`_handle` then `_carry_out`
per block, what its thread does per input) under cProfile and prints call counts per
block of the hot functions. `--no-fsync` (diagnostic, not the shipped node) makes the
store's synced batches unsynced, to show what the per-block fsync costs.

Run:  .venv/bin/python bench/sync_import.py [--blocks 2000] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import init_net, loadavg, source_label, source_root, wait_quiet
from machine_info import machine
from network_bench import build_chain, fsync_probe

from chaincode_py import NativeChaincodeHost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RxLedger sync importer alone")
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--cprofile", metavar="FILE", help="drive the runtime in this thread under cProfile")
    parser.add_argument("--no-fsync", action="store_true", help="diagnostic: unsynced batches")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to SECONDS for a quiet machine (as network_bench.py)")
    parser.add_argument("--quiet-cores", type=float, default=0.3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from network.config import ConsensusSettings, load_node_config
    from network.genesis import load_genesis
    from node.config import NodeConfig
    from node.consensus.qbft import QbftConfig
    from node.service import NodeService
    from rxledger.core.types.blocks import decode_block, encode_block

    if args.no_fsync:
        from node.storage.leveldb import LevelDBStore

        batch = LevelDBStore.batch

        def unsynced(self, sync: bool = False):  # type: ignore[no-untyped-def]
            return batch(self, sync=False)

        LevelDBStore.batch = unsynced  # type: ignore[method-assign]

    tmp = Path(tempfile.mkdtemp(prefix="rxledger-sync-import-"))
    try:
        net = init_net(tmp / "net", 40000, ConsensusSettings())
        built = build_chain(net, args.blocks)
        cfgs = [load_node_config(n.config) for n in net.info.nodes if n.is_validator]
        genesis = load_genesis(cfgs[0].genesis)
        source = NodeService(NodeConfig(data_dir=cfgs[0].data_dir, node_name=cfgs[0].name), genesis, chaincode=NativeChaincodeHost)
        encoded = [encode_block(source.chain.block_by_number(n)) for n in range(1, args.blocks + 1)]
        source.close()
        cfg = cfgs[3]
        service = NodeService(NodeConfig(data_dir=cfg.data_dir, node_name=cfg.name), genesis,
                              validator_key=cfg.load_validator_key(), chaincode=NativeChaincodeHost)
        qbft = QbftConfig(block_period=1.0, empty_block_period=10.0, round_timeout=2.0, max_round_timeout=30.0)
        quiet = wait_quiet(args.wait_quiet, args.quiet_cores) if args.wait_quiet else None
        probe = fsync_probe(tmp)
        la0 = loadavg()
        cpu0 = time.process_time()
        profile_top: list[dict] = []
        if args.cprofile:
            from node.runtime import ConsensusRuntime

            runtime = ConsensusRuntime(service.chain, service.pool, qbft, cfg.load_validator_key())
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            for data in encoded:
                runtime._handle("block", decode_block(data))
                runtime._carry_out()
            prof.disable()
            elapsed = time.perf_counter() - t0
            prof.dump_stats(args.cprofile)
            stats = pstats.Stats(prof)
            rows = []
            for (file, line, fn), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
                rows.append({"function": f"{fn} ({Path(file).name}:{line})", "calls_per_block": round(nc / args.blocks, 2),
                             "tottime_ms_per_block": round(tt * 1000 / args.blocks, 3),
                             "cumtime_ms_per_block": round(ct * 1000 / args.blocks, 3)})
            profile_top = sorted(rows, key=lambda r: -r["cumtime_ms_per_block"])[:45]
        else:
            runtime = service.start_consensus(qbft)
            t0 = time.perf_counter()
            for data in encoded:
                runtime.deliver_block(decode_block(data))
            while service.chain.head.number < args.blocks:
                if runtime.failed:
                    raise SystemExit(f"runtime failed: {runtime.failed}")
                time.sleep(0.002)
            elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        la1 = loadavg()
        head = service.chain.head
        service.close()
        result = {
            "machine": machine(), "source": source_label(source_root()), "blocks": args.blocks,
            "no_fsync": args.no_fsync, "cprofile": bool(args.cprofile), "built": built,
            "head_matches": "0x" + head.hash.hex() == built["head_hash"],
            "import_s": round(elapsed, 3), "blocks_per_s": round(args.blocks / elapsed, 1),
            "process_cpu_s": round(cpu, 2), "loadavg_before": la0, "loadavg_after": la1,
            "fsync_probe": probe, "wait_quiet": quiet,
            "profile_top": profile_top,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        m = result["machine"]
        print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; source {result['source']}")
        print(f"imported {args.blocks} sealed empty blocks in {result['import_s']} s: {result['blocks_per_s']} blocks/s"
              f"{' (UNSYNCED batches, diagnostic)' if args.no_fsync else ''}"
              f"{' (under cProfile, in this thread)' if args.cprofile else ''}; process CPU {result['process_cpu_s']} s; "
              f"head matches the built chain: {result['head_matches']}; load average before {la0}, after {la1}; "
              f"synced LevelDB batch just before (fsync probe): {probe}; quiet wait: {quiet}")
        for r in profile_top:
            print(f"  {r['cumtime_ms_per_block']:8.3f} ms cum  {r['tottime_ms_per_block']:7.3f} ms self  "
                  f"{r['calls_per_block']:7.2f} calls/block  {r['function']}")
    return 0 if result["head_matches"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
