"""The `rxledger` command line (INTERFACES.md, "Command line").

Bad arguments exit 2 with one line saying what is wrong; a node that cannot start
(port taken, data dir locked or from another chain) exits 1 with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from network.cli import port_arg
from node import __version__
from node.config import DEFAULT_DEV_DATA_DIR, DEFAULT_RPC_PORT, NodeConfig

if TYPE_CHECKING:
    from node.genesis import GenesisConfig
    from node.service import NodeService


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        sys.stderr.write(f"rxledger: error: {message} (see --help)\n")
        sys.exit(2)


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


_nonneg_float = _nonneg(float, "a number")
_nonneg_int = _nonneg(int, "an integer")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rxledger", description="RxLedger: a permissioned QBFT ledger for e-prescriptions")
    parser.add_argument("--version", action="version", version=f"rxledger {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    node = commands.add_parser("node", help="run a node")
    node_commands = node.add_subparsers(dest="node_command", required=True, parser_class=_Parser)
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
    start.add_argument("--empty-block-period", type=_nonneg_float, default=0.0,
                       help="seconds between empty blocks while idle (default 0: no empty blocks)")
    start.add_argument("--min-block-interval", type=_nonneg_float, default=0.0,
                       help="dev: least seconds between two blocks (default 0)")
    start.add_argument("--gather-window", type=_nonneg_float, default=0.02,
                       help="dev: transactions arriving within this many seconds of the last block, while "
                            "more keep coming, go into one block (default 0.02; 0: a block as soon as "
                            "transactions wait)")
    start.add_argument("--rpc-gas-cap", type=_nonneg_int, default=NodeConfig.rpc_gas_cap,
                       help="dev: most gas one eth_call/eth_estimateGas may use (default %(default)s, as "
                            "geth's --rpc.gascap; 0: the block gas limit); node.toml: [limits] rpc_gas_cap")
    start.add_argument("--rpc-evm-timeout", type=_nonneg_float, default=NodeConfig.rpc_evm_timeout,
                       help="dev: seconds one eth_call/eth_estimateGas may run (default %(default)s, as "
                            "geth's --rpc.evmtimeout; 0: no limit); node.toml: [limits] rpc_evm_timeout")
    start.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    from network.cli import add_commands

    add_commands(commands, _Parser)
    from client_sdk._rx_cli import add_rx_commands

    add_rx_commands(commands, _Parser)
    from client_sdk._anchor_cli import add_anchor_commands

    add_anchor_commands(commands, _Parser)

    check = node_commands.add_parser(
        "check", help="verify every table file and block checksum of a stopped node's database")
    check.add_argument("--data-dir", type=Path, default=DEFAULT_DEV_DATA_DIR,
                       help=f"the node's data directory (default {DEFAULT_DEV_DATA_DIR})")
    status = node_commands.add_parser("status", help="print a node's head, round, validators and peers")
    status.add_argument("--rpc", default="http://127.0.0.1:8545", help="the node's RPC URL (default %(default)s)")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only for
    # such sockets; without it every answer waits ~40 ms on Nagle and delayed ACKs.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, which would kill
        the process before the node closes its store; we finish the shutdown ourselves."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    return Server


def _open_node(config: NodeConfig, genesis: GenesisConfig, key: bytes) -> tuple[socket.socket, NodeService] | None:
    """Bind the RPC port, then open the store and chain; None (reason printed) if either fails."""
    from node.service import NodeService
    from rxledger.core.errors import NodeError

    try:
        sock = _bind(config.rpc_host, config.rpc_port)
    except OSError as exc:
        print(f"rxledger: cannot listen on {config.rpc_host}:{config.rpc_port}: {exc.strerror}", file=sys.stderr)
        return None
    try:
        return sock, NodeService(config, genesis, validator_key=key)
    except NodeError as exc:
        sock.close()
        print(f"rxledger: cannot start the node: {exc}", file=sys.stderr)
        return None


def _serve(service: NodeService, sock: socket.socket, on_stop: Callable[[], None] = lambda: None) -> int:
    """Serve JSON-RPC until SIGINT/SIGTERM, then stop everything cleanly."""
    import uvicorn

    from node.rpc.app import create_app
    from node.rpc.http import CoalescingHttpToolsProtocol

    server = _server_class()(uvicorn.Config(create_app(service), log_level="warning", access_log=False,
                                            http=CoalescingHttpToolsProtocol))
    try:
        server.run(sockets=[sock])
    finally:
        on_stop()
        service.close()
        logging.getLogger("rxledger.node").info("stopped cleanly at head %d", service.chain.head.number)
    return 0


def start_dev(args: argparse.Namespace) -> int:
    from node.consensus.qbft import QbftConfig
    from node.genesis import dev_genesis, dev_validator_key
    from node.runtime import Gathering

    config = NodeConfig(
        data_dir=args.data_dir.resolve(), rpc_host=args.rpc_host, rpc_port=args.rpc_port,
        empty_block_period=args.empty_block_period, min_block_interval=args.min_block_interval,
        gather_window=args.gather_window, dev=True,
        rpc_admin=True, rpc_gas_cap=args.rpc_gas_cap, rpc_evm_timeout=args.rpc_evm_timeout,
    )
    opened = _open_node(config, dev_genesis(), dev_validator_key())
    if opened is None:
        return 1
    sock, service = opened
    log = logging.getLogger("rxledger.node")
    head = service.chain.head
    log.info("dev chain: chain id %d, genesis 0x%s, head %d, data dir %s",
             service.chain.chain_id, service.chain.genesis_hash.hex(), head.number, config.data_dir)
    # The runtime spaces the dev chain's blocks (sub-second intervals too); QBFT's block
    # period would space their whole-second timestamps instead.
    service.start_consensus(QbftConfig(
        block_period=0.0,
        empty_block_period=config.empty_block_period or None,
        round_timeout=1.0, max_round_timeout=10.0,
    ), gathering=Gathering(gather=config.gather_window, min_interval=config.min_block_interval))
    print(f"RxLedger dev node: JSON-RPC http://{config.rpc_host}:{config.rpc_port} "
          f"(chain id {service.chain.chain_id}, head {head.number})", flush=True)
    return _serve(service, sock)


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


def start_config(args: argparse.Namespace) -> int:
    """A consortium node: its node.toml → store, chain, p2p (TLS), QBFT, JSON-RPC."""

    from network.config import load_node_config
    from network.errors import NetworkError
    from network.genesis import load_genesis
    from node.consensus.qbft import QbftConfig
    from node.p2p import P2PConfig, P2PService, P2PTransport, PeerInfo, TlsIdentity
    from node.p2p.allowlist import AllowedPeer, ConsortiumAllowlist, follow_governance
    from node.runtime import Gathering
    from rxledger.core.errors import NodeError

    try:
        cfg = load_node_config(args.config)
        genesis = load_genesis(cfg.genesis)
        key = cfg.load_validator_key()
    except (NetworkError, NodeError, OSError) as exc:
        print(f"rxledger: cannot start the node: {exc}", file=sys.stderr)
        return 1
    setup_logging(args.log_level, cfg.name)
    log = logging.getLogger("rxledger.node")
    config = NodeConfig(data_dir=cfg.data_dir, rpc_host=cfg.rpc_host, rpc_port=cfg.rpc_port, node_name=cfg.name,
                        rpc_admin=cfg.rpc_admin, storage_full_check=cfg.storage_full_check,
                        **cfg.limits.node_config_fields())
    opened = _open_node(config, genesis, key)
    if opened is None:
        return 1
    sock, service = opened
    chain = service.chain
    peers = tuple(PeerInfo(p.name, p.address, p.host, p.port) for p in cfg.peers)
    # Who may connect: the validators of the next block and the listed observers, bound to
    # their organisations' CAs, following votes and Governance (node/p2p/allowlist.py).
    allowlist = ConsortiumAllowlist(chain, [AllowedPeer(p.name, p.address, p.org, p.role) for p in cfg.peers])

    transport = P2PTransport(
        chain, submit_transaction=lambda raw: service.submit_raw_transaction(raw, gossip=False),
        waiting_transactions=lambda: [t.raw for t in service.pool.waiting_longer_than(5.0)],
    )
    try:
        tls = TlsIdentity.load(cfg.tls_cert, cfg.tls_key, [cfg.ca_bundle])
        p2p = P2PService(
            P2PConfig(host=cfg.p2p_host, port=cfg.p2p_port, address=cfg.address, chain_id=chain.chain_id,
                      genesis_hash=chain.genesis_hash, peers=peers, **dict(cfg.p2p_budgets)),  # type: ignore[arg-type]
            tls, allow=allowlist, head=lambda: (chain.head.number, chain.head.hash),
            **transport.handlers(),  # type: ignore[arg-type]
        )
    except (NodeError, OSError, ValueError) as exc:
        service.close()
        print(f"rxledger: cannot start p2p: {exc}", file=sys.stderr)
        return 1
    transport.attach(p2p)
    service.gossip = transport.gossip_transaction
    consensus = cfg.consensus
    # Header timestamps are whole seconds, so QBFT spaces blocks by whole seconds; a
    # fractional block period (0.2, 1.5) is kept by the runtime on its clock instead.
    whole_period = float(math.floor(consensus.block_period))
    runtime = service.start_consensus(QbftConfig(
        block_period=whole_period, empty_block_period=consensus.empty_block_period or None,  # 0: never (node.toml)
        round_timeout=consensus.round_timeout, max_round_timeout=consensus.max_round_timeout,
        max_messages_per_author=consensus.max_messages_per_author,
        max_bytes_per_author=consensus.max_bytes_per_author,
    ), transport, gathering=Gathering(
        min_interval=consensus.block_period if consensus.block_period != whole_period else 0.0))
    transport.bind_runtime(runtime)
    announced = [0.0]

    def announce(block: object, receipts: object) -> None:
        # Peers learn our head from STATUS; at most 5 a second (not one per synced block).
        now = time.monotonic()
        if now - announced[0] >= 0.2:
            announced[0] = now
            p2p.announce_status()

    chain.add_listener(announce)
    follow_governance(chain, allowlist, p2p)  # a vote or Governance closes who may no longer connect
    try:
        p2p.start()
    except (NodeError, OSError) as exc:
        service.close()
        print(f"rxledger: cannot start p2p on {cfg.p2p_host}:{cfg.p2p_port}: {exc}", file=sys.stderr)
        return 1
    log.info("node %s (%s of %s): chain id %d, genesis 0x%s, head %d, p2p %s:%d, %s",
             cfg.name, cfg.role, cfg.org, chain.chain_id, chain.genesis_hash.hex(), chain.head.number,
             cfg.p2p_host, cfg.p2p_port, "validator" if cfg.address in chain.validators_at(chain.head.number + 1)
             else "not a validator now")
    print(f"RxLedger node {cfg.name}: JSON-RPC http://{config.rpc_host}:{config.rpc_port} "
          f"(chain id {chain.chain_id}, head {chain.head.number})", flush=True)
    return _serve(service, sock, on_stop=p2p.stop)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "log_level", "info"), "dev")
    if args.command == "node" and args.node_command == "start" and args.dev:
        return start_dev(args)
    if args.command == "node" and args.node_command == "start":
        return start_config(args)
    if args.command == "node" and args.node_command == "status":
        return node_status(args)
    if args.command == "node" and args.node_command == "check":
        return node_check(args)
    if (handler := getattr(args, "handler", None)) is not None:
        return int(handler(args))
    raise AssertionError("unreachable: argparse requires a known command")


if __name__ == "__main__":
    sys.exit(main())
