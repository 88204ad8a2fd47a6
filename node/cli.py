"""The node's commands: `rxledger node start | check | status` (INTERFACES.md, "Command line").

    node.cli.add_commands(subparsers, parser_class, chaincode=NativeChaincodeHost)

mounts them (`rxledger.cli` does, beside the other packages' command sets); each sets
`handler`, a function of the parsed arguments returning the exit code. `start` parses its
arguments into a `node.node.NodeSetup` and hands it to the composition root
(`node.node.new_node`) with the chaincode host it was given. Bad arguments exit 2 with one
line saying what is wrong; a node that cannot start (port taken, data dir locked or from
another chain) exits 1 with the reason.

`port_arg` and `nonneg_float`/`nonneg_int` are argparse types the other command sets use too.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.config import DEFAULT_DEV_DATA_DIR, DEFAULT_RPC_PORT, NodeConfig

if TYPE_CHECKING:  # the chain and py-evm load when a node starts, not for `--help`
    from node.chain import ChaincodeFactory
    from node.execution.chaincode import ChaincodeHost


def port_arg(value: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {port}")
    return port


def _nonneg(kind: type[float] | type[int], what: str) -> Callable[[str], float]:
    """An argparse type: a number of `kind` that is not negative."""
    def parse(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {value!r}") from None
        if number < 0:
            raise argparse.ArgumentTypeError(f"must not be negative, got {number}")
        return number
    return parse


nonneg_float = _nonneg(float, "a number")
nonneg_int = _nonneg(int, "an integer")


def add_commands(commands: Any, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser, *,
                 chaincode: ChaincodeHost | ChaincodeFactory) -> None:
    """Add `node start | check | status` to `commands` (the result of `add_subparsers`);
    started nodes run `chaincode` (a host, or a factory of one over the node's store)."""
    node = commands.add_parser("node", help="run a node")
    node_commands = node.add_subparsers(dest="node_command", required=True, parser_class=parser_class)
    start = node_commands.add_parser("start", help="start a node")
    mode = start.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dev", action="store_true", help="one-validator development chain")
    mode.add_argument("--config", type=Path, metavar="FILE",
                      help="one consortium node from its node.toml (written by `rxledger network init`)")
    start.add_argument("--data-dir", type=Path, default=DEFAULT_DEV_DATA_DIR,
                       help=f"LevelDB data directory (default {DEFAULT_DEV_DATA_DIR})")
    start.add_argument("--rpc-host", default="127.0.0.1", help="JSON-RPC listen address (default 127.0.0.1)")
    start.add_argument("--rpc-port", type=port_arg, default=DEFAULT_RPC_PORT,
                       help=f"JSON-RPC port (default {DEFAULT_RPC_PORT})")
    start.add_argument("--empty-block-period", type=nonneg_float, default=0.0,
                       help="seconds between empty blocks while idle (default 0: no empty blocks)")
    start.add_argument("--min-block-interval", type=nonneg_float, default=0.0,
                       help="dev: least seconds between two blocks (default 0)")
    start.add_argument("--gather-window", type=nonneg_float, default=0.02,
                       help="dev: transactions arriving within this many seconds of the last block, while "
                            "more keep coming, go into one block (default 0.02; 0: a block as soon as "
                            "transactions wait)")
    start.add_argument("--rpc-gas-cap", type=nonneg_int, default=NodeConfig.rpc_gas_cap,
                       help="dev: most gas one eth_call/eth_estimateGas may use (default %(default)s, as "
                            "geth's --rpc.gascap; 0: the block gas limit); node.toml: [limits] rpc_gas_cap")
    start.add_argument("--rpc-evm-timeout", type=nonneg_float, default=NodeConfig.rpc_evm_timeout,
                       help="dev: seconds one eth_call/eth_estimateGas may run (default %(default)s, as "
                            "geth's --rpc.evmtimeout; 0: no limit); node.toml: [limits] rpc_evm_timeout")
    start.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    start.set_defaults(handler=functools.partial(node_start, chaincode=chaincode))

    check = node_commands.add_parser(
        "check", help="verify every table file and block checksum of a stopped node's database")
    check.add_argument("--data-dir", type=Path, default=DEFAULT_DEV_DATA_DIR,
                       help=f"the node's data directory (default {DEFAULT_DEV_DATA_DIR})")
    check.set_defaults(handler=node_check)
    status = node_commands.add_parser("status", help="print a node's head, round, validators and peers")
    status.add_argument("--rpc", default="http://127.0.0.1:8545", help="the node's RPC URL (default %(default)s)")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=node_status)


def node_start(args: argparse.Namespace, *, chaincode: ChaincodeHost | ChaincodeFactory) -> int:
    """`node start --dev` or `node start --config FILE`: build the node, start it, serve."""
    from node.node import NodeSetup, StartError, new_node
    from rxledger.core.errors import NodeError

    if args.dev:
        setup = NodeSetup.dev(NodeConfig(
            data_dir=args.data_dir.resolve(), rpc_host=args.rpc_host, rpc_port=args.rpc_port,
            empty_block_period=args.empty_block_period, min_block_interval=args.min_block_interval,
            gather_window=args.gather_window, dev=True,
            rpc_admin=True, rpc_gas_cap=args.rpc_gas_cap, rpc_evm_timeout=args.rpc_evm_timeout,
        ))
    else:
        try:
            setup = NodeSetup.from_file(args.config)
        except (NodeError, OSError) as exc:
            print(f"rxledger: cannot start the node: {exc}", file=sys.stderr)
            return 1
        assert setup.consortium is not None
        setup_logging(args.log_level, setup.consortium.name)
    try:
        node = new_node(setup, chaincode)
        node.start()
    except StartError as exc:
        print(f"rxledger: {exc}", file=sys.stderr)
        return 1
    chain, config = node.service.chain, setup.config
    what = "dev node" if setup.consortium is None else f"node {setup.consortium.name}"
    print(f"RxLedger {what}: JSON-RPC http://{config.rpc_host}:{config.rpc_port} "
          f"(chain id {chain.chain_id}, head {chain.head.number})", flush=True)
    return node.serve()


def node_status(args: argparse.Namespace) -> int:
    import json

    import httpx

    url = args.rpc.rstrip("/") + "/health"
    try:
        status = httpx.get(url, timeout=5.0).json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"rxledger: cannot reach the node at {args.rpc}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"node        {status.get('node')}  ({status.get('status')})")
    print(f"chain       id {status.get('chainId')}, genesis {status.get('genesisHash')}")
    print(f"head        {status.get('head')}  {status.get('headHash')}")
    if "round" in status:
        print(f"consensus   height {status['height']}, round {status['round']}")
    validators = status.get("validators", [])
    me = status.get("validator")
    print(f"validators  {len(validators)}" + ("" if me in validators else "  (this node is not one)"))
    for v in validators:
        print(f"  {v}{'  (this node)' if v == me else ''}")
    peers = status.get("peers", [])
    print(f"peers       {len(peers)}")
    for p in peers:
        print(f"  {p.get('name', '?'):<14} {p.get('address', '?')}  head {p.get('head', '?')}  {p.get('endpoint', '')}")
    print(f"txpool      {status.get('txpool')} waiting")
    return 0 if status.get("status") == "ok" else 1


def node_check(args: argparse.Namespace) -> int:
    """Full check of a stopped node's store (the one a node also runs at start); never repairs."""
    from node.storage import LevelDBStore, StorageError

    path = args.data_dir / "chaindata"
    if not path.is_dir():
        print(f"rxledger: no database at {path}", file=sys.stderr)
        return 1
    try:
        store = LevelDBStore(path, create_if_missing=False)
        try:
            result = store.check(full=True)
        finally:
            store.close()
    except StorageError as exc:
        print(f"rxledger: {exc}", file=sys.stderr)
        return 1
    print(f"database at {path} is intact: {result.tables} table files, "
          f"{result.table_bytes / 1e6:.1f} MB, {result.keys} keys read with checksums verified "
          f"in {result.seconds:.1f} s")
    return 0


class _NodeLogFilter(logging.Filter):
    """Adds the node's name to every record, for logs of many nodes side by side."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.node = name

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        return True


def setup_logging(level: str, node_name: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_NodeLogFilter(node_name))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(node)s] %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
