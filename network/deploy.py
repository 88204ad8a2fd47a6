"""`<net>/deploy/`: the same consortium on separate hosts (or containers), one node each.

    deploy/<name>/node.toml       binds 0.0.0.0; paths under /etc/rxledger/<name> and
                                  /var/lib/rxledger/<name>; peers by host name, port 30303
    deploy/<name>/genesis.json    copies of the public files the node needs
    deploy/<name>/ca-bundle.pem
    deploy/<name>/tls.pem
    deploy/<name>/keys/           empty, 0700: the node's keys go here on its host (they
                                  stay in nodes/<name>/keys/; nothing secret is copied)
    deploy/docker-compose.yml     one service per node on one Docker host
    deploy/Dockerfile             the image (example; build from the repository root)
    deploy/rxledger-node@.service the systemd unit, one instance per node

Host names default to the node names (the compose service names); pass `hosts` to name
real hosts. Peers authenticate by their certificate's org CA and bound address, not by
host name, so changing host names needs no new certificates. docs/DEPLOY.md says how to
ship the bundles and keys, open ports and start the nodes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath

from network.config import NodeFileConfig, load_node_config, save_node_config
from network.errors import NetworkError
from network.layout import CA_BUNDLE, GENESIS_JSON, NetworkInfo, NodeInfo, node_paths

TEMPLATES = Path(__file__).parent / "templates"
ETC = PurePosixPath("/etc/rxledger")
VAR = PurePosixPath("/var/lib/rxledger")
HOST_RPC_PORT = 8545
HOST_P2P_PORT = 30303
IMAGE = "rxledger:0.1.0"


def _host_and_port(node: NodeInfo, hosts: Mapping[str, str]) -> tuple[str, int]:
    value = hosts.get(node.name, node.name)
    host, colon, port = value.rpartition(":")
    if colon and port.isdigit() and host and "]" not in port:
        number = int(port)
        if not 0 < number < 65536:
            raise NetworkError(f"host of {node.name}: port {number} is not between 1 and 65535")
        return host, number
    return value, HOST_P2P_PORT


def host_node_config(local: NodeFileConfig, nodes: tuple[NodeInfo, ...],
                     hosts: Mapping[str, str]) -> NodeFileConfig:
    """The per-host variant of a node's config: listen on all interfaces, FHS paths, peers
    by host name."""
    etc = Path(ETC / local.name)
    by_name = {n.name: n for n in nodes}
    own_host_port = _host_and_port(by_name[local.name], hosts)[1]
    peers = []
    for peer in local.peers:
        if peer.name not in by_name:
            raise NetworkError(f"{local.source}: peer {peer.name!r} is not a node of network.json")
        host, port = _host_and_port(by_name[peer.name], hosts)
        peers.append(replace(peer, host=host, port=port))
    return replace(
        local,
        data_dir=Path(VAR / local.name),
        genesis=etc / GENESIS_JSON,
        validator_key_file=etc / "keys" / "validator.key",
        rpc_host="0.0.0.0", rpc_port=HOST_RPC_PORT,
        p2p_host="0.0.0.0", p2p_port=own_host_port,
        tls_cert=etc / "tls.pem", tls_key=etc / "keys" / "tls.key", ca_bundle=etc / CA_BUNDLE,
        peers=tuple(peers),
    )


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def compose_yaml(info: NetworkInfo, configs: Mapping[str, NodeFileConfig]) -> str:
    """docker-compose.yml: one service per node, RPC published on the node's local port
    (loopback of the Docker host only), p2p between containers on the compose network."""
    lines = [
        f"# RxLedger consortium (chain id {info.chain_id}) on one Docker host: one service per node.",
        "# Written by `rxledger network init`; see docs/DEPLOY.md. Before `docker compose up -d`:",
        f"#   docker build -t {IMAGE} -f network/templates/Dockerfile .   (in the repository)",
        "#   export RXLEDGER_UID=$(id -u) RXLEDGER_GID=$(id -g)   (the owner of the 0600 keys)",
        "name: rxledger",
        "services:",
    ]
    for node in info.nodes:
        cfg = configs[node.name]
        paths = node_paths(info.dir, node.name)
        keys = os.path.relpath(paths.keys, info.dir / "deploy")
        data = os.path.relpath(paths.dir / "docker-data", info.dir / "deploy")
        lines += [
            f"  {node.name}:",
            f"    image: {_q(IMAGE)}",
            f"    hostname: {_q(node.name)}",
            f"    command: [\"node\", \"start\", \"--config\", {_q(str(ETC / node.name / 'node.toml'))}]",
            "    user: \"${RXLEDGER_UID:?set RXLEDGER_UID and RXLEDGER_GID, see DEPLOY.md}:"
            "${RXLEDGER_GID:?set RXLEDGER_GID}\"",
            "    restart: unless-stopped",
            "    stop_grace_period: 30s",
            "    volumes:",
            f"      - {_q(f'./{node.name}:{ETC / node.name}:ro')}",
            f"      - {_q(f'{keys}:{ETC / node.name}/keys:ro')}",
            f"      - {_q(f'{data}:{cfg.data_dir}')}",
            "    ports:",
            f"      - {_q(f'127.0.0.1:{node.rpc_port}:{cfg.rpc_port}')}",
        ]
    return "\n".join(lines) + "\n"


def write_deployment(info: NetworkInfo, hosts: Mapping[str, str] | None = None) -> Path:
    """(Re)write `<net>/deploy/` for `info`; `hosts` maps node name -> "host" or "host:port"
    (default: the node name, port 30303). Returns the deploy directory."""
    hosts = dict(hosts or {})
    unknown = sorted(set(hosts) - {n.name for n in info.nodes})
    if unknown:
        raise NetworkError(f"--host {unknown[0]}=…: no node named {unknown[0]!r}")
    out = info.dir / "deploy"
    if out.exists():
        shutil.rmtree(out)  # generated files only: no keys, no chain data live here
    out.mkdir(parents=True)
    configs: dict[str, NodeFileConfig] = {}
    for node in info.nodes:
        local = load_node_config(node.config, check_files=False)
        cfg = host_node_config(local, info.nodes, hosts)
        configs[node.name] = cfg
        bundle = out / node.name
        (bundle / "keys").mkdir(parents=True)
        os.chmod(bundle / "keys", 0o700)
        save_node_config(cfg, bundle / "node.toml", comment=(
            f"RxLedger node {node.name} ({node.role}) of {node.org}, for its own host.\n"
            f"Install this directory as {ETC / node.name}/ and the node's keys (validator.key,\n"
            f"tls.key: nodes/{node.name}/keys/ of the network directory) in its keys/ with mode 0600.\n"
            "See docs/DEPLOY.md."))
        shutil.copyfile(info.dir / GENESIS_JSON, bundle / GENESIS_JSON)
        shutil.copyfile(info.dir / CA_BUNDLE, bundle / CA_BUNDLE)
        shutil.copyfile(node_paths(info.dir, node.name).tls_cert, bundle / "tls.pem")
        # Docker's bind mount source for the chain data: made here so it is ours, not root's.
        data = node_paths(info.dir, node.name).dir / "docker-data"
        data.mkdir(exist_ok=True)
        os.chmod(data, 0o700)
    (out / "docker-compose.yml").write_text(compose_yaml(info, configs))
    shutil.copyfile(TEMPLATES / "Dockerfile", out / "Dockerfile")
    shutil.copyfile(TEMPLATES / "rxledger-node@.service", out / "rxledger-node@.service")
    return out
