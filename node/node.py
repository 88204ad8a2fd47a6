"""The composition root: a whole node built from one `NodeSetup`.

    setup = NodeSetup.dev(NodeConfig(data_dir=..., dev=True, rpc_admin=True))   # or
    setup = NodeSetup.from_file("nodes/hospital-a/node.toml")                   # a consortium node
    node = new_node(setup, chaincode=NativeChaincodeHost)   # bind RPC, open store, chain, pool, p2p
    node.start()                                            # consensus (and p2p)
    node.serve()                                            # JSON-RPC until SIGINT/SIGTERM, then stop

As cometbft's `node.NewNode`: every part is made and wired here, and only here — the
store, chain, txpool and service (`node.service.NodeService`), the consensus runtime,
and for a consortium node the p2p transport, its TLS identity, the allowlist following
governance and transaction gossip; then the JSON-RPC app. The command line
(`node.cli`) parses arguments into a `NodeSetup` and calls this module. The chaincode
host is passed in by whoever assembles the node (`rxledger.cli` passes
`chaincode_py.NativeChaincodeHost`); the node imports no chaincode package.

A dev node writes its trust file, `<data dir>/network.json` (INTERFACES.md, "Dev chain
trust file"), when it opens, so `rxledger anchor verify --trust` works against it offline.

Failures to start raise `StartError`, whose message is the one line the command prints
after `rxledger: ` (exit 1).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from node.chain import ChaincodeFactory
from node.config import (
    ConfigError,
    NodeConfig,
    NodeFileConfig,
    load_genesis,
    load_node_config,
    network_json,
)
from node.consensus.qbft import QbftConfig
from node.execution.chaincode import ChaincodeHost
from node.genesis import DEV_ORGS, GenesisConfig, dev_accounts, dev_genesis, dev_validator_key
from node.runtime import Gathering
from rxledger.core.crypto import private_key_to_address
from rxledger.core.errors import NodeError

if TYPE_CHECKING:
    from node.p2p import P2PService, P2PTransport
    from node.p2p.allowlist import ConsortiumAllowlist
    from node.service import NodeService

log = logging.getLogger("rxledger.node")

TRUST_FILE = "network.json"  # the dev chain's trust file, in its data dir


class StartError(NodeError):
    """The node cannot start; the message says why (one line, printed after `rxledger: `)."""


@dataclass(frozen=True)
class NodeSetup:
    """Everything a node is built from.

    `config` configures the store, chain, pool and RPC; `qbft` and `gathering` the
    consensus runtime; `consortium` (a validated node.toml) the p2p side of a consortium
    node: TLS identity, peers and allowlist. Without it the node is the one-validator dev
    chain, which has no peers.
    """

    config: NodeConfig
    genesis: GenesisConfig
    validator_key: bytes
    qbft: QbftConfig
    gathering: Gathering = field(default_factory=Gathering)
    consortium: NodeFileConfig | None = None

    @classmethod
    def dev(cls, config: NodeConfig) -> NodeSetup:
        """The dev chain: its genesis and validator key; blocks spaced by the runtime's
        clock (`min_block_interval`, `gather_window`), never by header timestamps."""
        return cls(
            config=config, genesis=dev_genesis(), validator_key=dev_validator_key(),
            # The runtime spaces the dev chain's blocks (sub-second intervals too); QBFT's
            # block period would space their whole-second timestamps instead.
            qbft=QbftConfig(block_period=0.0, empty_block_period=config.empty_block_period or None,
                            round_timeout=1.0, max_round_timeout=10.0),
            gathering=Gathering(gather=config.gather_window, min_interval=config.min_block_interval),
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> NodeSetup:
        """A consortium node from its node.toml (and the genesis and key it names).
        Raises `ConfigError` naming the file and the field."""
        file = load_node_config(path)
        return cls.from_node_file(file, load_genesis(file.genesis), file.load_validator_key())

    @classmethod
    def from_node_file(cls, file: NodeFileConfig, genesis: GenesisConfig, key: bytes) -> NodeSetup:
        consensus = file.consensus
        # Header timestamps are whole seconds, so QBFT spaces blocks by whole seconds; a
        # fractional block period (0.2, 1.5) is kept by the runtime on its clock instead.
        whole_period = float(math.floor(consensus.block_period))
        return cls(
            config=NodeConfig(data_dir=file.data_dir, rpc_host=file.rpc_host, rpc_port=file.rpc_port,
                              node_name=file.name, rpc_admin=file.rpc_admin,
                              storage_full_check=file.storage_full_check, **file.limits.node_config_fields()),
            genesis=genesis, validator_key=key,
            qbft=QbftConfig(
                block_period=whole_period,
                empty_block_period=consensus.empty_block_period or None,  # 0: never (node.toml)
                round_timeout=consensus.round_timeout, max_round_timeout=consensus.max_round_timeout,
                max_messages_per_author=consensus.max_messages_per_author,
                max_bytes_per_author=consensus.max_bytes_per_author,
            ),
            gathering=Gathering(
                min_interval=consensus.block_period if consensus.block_period != whole_period else 0.0),
            consortium=file,
        )


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


def _dial_url(host: str, port: int) -> str:
    """The URL a client on this machine dials for a server bound to `host`: a wildcard
    address becomes loopback, an IPv6 address is bracketed."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def write_trust_file(service: NodeService, setup: NodeSetup, rpc_port: int) -> Path:
    """Write the dev chain's `network.json` into its data dir (atomically: temp file and
    rename), in the format of `network init`'s (INTERFACES.md); `rpc_port` is the port
    the node listens on."""
    config = setup.config
    assert config.data_dir is not None
    chain = service.chain
    validator = private_key_to_address(setup.validator_key)
    org, kind = DEV_ORGS[0]
    body = network_json(
        chain_id=chain.chain_id, genesis_hash=chain.genesis_hash,
        nodes=[{"name": config.node_name, "org": org, "kind": kind, "role": "validator",
                "rpc": _dial_url(config.rpc_host, rpc_port), "p2p": None,
                "validator": validator, "address": validator,
                "dataDir": str(config.data_dir), "config": None}],
        accounts=[(a.org, a.role, a.address, a.private_key) for a in dev_accounts()],
    )
    path = config.data_dir / TRUST_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp, path)
    return path


class Node:
    """A node made by `new_node`: its service (store, chain, pool, consensus), the bound
    JSON-RPC socket and, for a consortium node, its p2p service."""

    def __init__(self, setup: NodeSetup, service: NodeService, sock: socket.socket,
                 p2p: tuple[P2PService, P2PTransport, ConsortiumAllowlist] | None = None) -> None:
        self.setup = setup
        self.service = service
        self.sock = sock
        self.p2p: P2PService | None = p2p[0] if p2p else None
        self._transport: P2PTransport | None = p2p[1] if p2p else None
        self._allowlist: ConsortiumAllowlist | None = p2p[2] if p2p else None

    def start(self) -> None:
        """Start consensus and, for a consortium node, p2p. Raises StartError (and closes)."""
        service, chain, setup = self.service, self.service.chain, self.setup
        if self.p2p is None:
            log.info("dev chain: chain id %d, genesis 0x%s, head %d, data dir %s",
                     chain.chain_id, chain.genesis_hash.hex(), chain.head.number, setup.config.data_dir)
            service.start_consensus(setup.qbft, gathering=setup.gathering)
            return
        from node.p2p.allowlist import follow_governance

        p2p, transport, allowlist = self.p2p, self._transport, self._allowlist
        assert transport is not None and allowlist is not None
        runtime = service.start_consensus(setup.qbft, transport, gathering=setup.gathering)
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
        cfg = setup.consortium
        assert cfg is not None
        try:
            p2p.start()
        except (NodeError, OSError) as exc:
            service.close()
            self.sock.close()
            raise StartError(f"cannot start p2p on {cfg.p2p_host}:{cfg.p2p_port}: {exc}") from exc
        log.info("node %s (%s of %s): chain id %d, genesis 0x%s, head %d, p2p %s:%d, %s",
                 cfg.name, cfg.role, cfg.org, chain.chain_id, chain.genesis_hash.hex(), chain.head.number,
                 cfg.p2p_host, cfg.p2p_port, "validator" if cfg.address in chain.validators_at(chain.head.number + 1)
                 else "not a validator now")

    def serve(self) -> int:
        """Serve JSON-RPC until SIGINT/SIGTERM, then stop everything cleanly; 0."""
        import uvicorn

        from node.rpc.app import create_app
        from node.rpc.http import CoalescingHttpToolsProtocol

        server = _server_class()(uvicorn.Config(create_app(self.service), log_level="warning", access_log=False,
                                                http=CoalescingHttpToolsProtocol))
        try:
            server.run(sockets=[self.sock])
        finally:
            self.close()
            log.info("stopped cleanly at head %d", self.service.chain.head.number)
        return 0

    def close(self) -> None:
        """Stop p2p and consensus, close the store and the RPC socket."""
        if self.p2p is not None:
            self.p2p.stop()
        self.service.close()
        self.sock.close()


def new_node(setup: NodeSetup, chaincode: ChaincodeHost | ChaincodeFactory) -> Node:
    """Bind the RPC port, open the store, chain, pool and (consortium) p2p; nothing runs
    yet (`Node.start`). Raises StartError saying what failed."""
    from node.service import NodeService

    config = setup.config
    try:
        sock = _bind(config.rpc_host, config.rpc_port)
    except OSError as exc:
        raise StartError(f"cannot listen on {config.rpc_host}:{config.rpc_port}: {exc.strerror}") from exc
    try:
        service = NodeService(config, setup.genesis, validator_key=setup.validator_key, chaincode=chaincode)
    except NodeError as exc:
        sock.close()
        raise StartError(f"cannot start the node: {exc}") from exc
    if setup.consortium is None:
        node = Node(setup, service, sock)
        if config.dev and config.data_dir is not None:
            try:
                write_trust_file(service, setup, sock.getsockname()[1])
            except OSError as exc:
                node.close()
                raise StartError(f"cannot start the node: cannot write {config.data_dir / TRUST_FILE}: "
                                 f"{exc.strerror or exc}") from exc
        return node
    return _with_p2p(setup, setup.consortium, service, sock)


def _with_p2p(setup: NodeSetup, cfg: NodeFileConfig, service: NodeService, sock: socket.socket) -> Node:
    """A consortium node's p2p side: transport, TLS identity, allowlist, gossip."""
    from node.p2p import P2PConfig, P2PService, P2PTransport, PeerInfo, TlsIdentity
    from node.p2p.allowlist import AllowedPeer, ConsortiumAllowlist

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
        sock.close()
        raise StartError(f"cannot start p2p: {exc}") from exc
    transport.attach(p2p)
    service.gossip = transport.gossip_transaction
    return Node(setup, service, sock, (p2p, transport, allowlist))


__all__ = ["ConfigError", "Node", "NodeSetup", "StartError", "new_node", "write_trust_file"]
