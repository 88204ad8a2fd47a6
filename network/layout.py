"""Where a network directory keeps its files, and `network.json`, its index.

    <net>/network.json          the index (INTERFACES.md): chain, nodes, dev accounts
    <net>/genesis.json          the genesis every node reads
    <net>/ca-bundle.pem         every org CA certificate, concatenated
    <net>/orgs/<org>/ca.pem     the org's CA certificate
    <net>/orgs/<org>/ca.key     its private key (0600; belongs offline with the org)
    <net>/nodes/<name>/node.toml
    <net>/nodes/<name>/tls.pem  the node's TLS certificate (binds its address)
    <net>/nodes/<name>/keys/    0700: validator.key, tls.key (0600)
    <net>/nodes/<name>/data/    the node's LevelDB (made by the node)
    <net>/nodes/<name>/node.log the node's output under `rxledger up`
    <net>/run/pids.json         the processes of a running `rxledger up`
    <net>/deploy/               per-host bundles, docker-compose.yml, systemd unit

`network.json` carries the keys INTERFACES.md promises (chainId, genesisHash, nodes with
name, org, kind, rpc, p2p, validator, dataDir, config; accounts with org, role, address,
privateKey) and a few more: nodes[].role and nodes[].address (an observer's identity;
its "validator" is null), "orgs" (name, kind, CA certificate), "genesis", "caBundle".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from network.errors import ConfigError
from node.config import network_json

NETWORK_JSON = "network.json"
GENESIS_JSON = "genesis.json"
CA_BUNDLE = "ca-bundle.pem"
# What `network init --force` may remove: nothing else in the directory is ours.
OWNED_ENTRIES = (NETWORK_JSON, GENESIS_JSON, CA_BUNDLE, "orgs", "nodes", "deploy", "run")


@dataclass(frozen=True)
class NodePaths:
    dir: Path
    config: Path
    data: Path
    keys: Path
    validator_key: Path
    tls_cert: Path
    tls_key: Path
    log: Path


def node_paths(net_dir: Path, name: str) -> NodePaths:
    d = net_dir / "nodes" / name
    return NodePaths(dir=d, config=d / "node.toml", data=d / "data", keys=d / "keys",
                     validator_key=d / "keys" / "validator.key", tls_cert=d / "tls.pem",
                     tls_key=d / "keys" / "tls.key", log=d / "node.log")


def org_ca_paths(net_dir: Path, org: str) -> tuple[Path, Path]:
    """(certificate, private key) of an org's CA."""
    d = net_dir / "orgs" / org
    return d / "ca.pem", d / "ca.key"


def pids_path(net_dir: Path) -> Path:
    return net_dir / "run" / "pids.json"


@dataclass(frozen=True)
class OrgInfo:
    name: str
    kind: str
    ca: Path


@dataclass(frozen=True)
class NodeInfo:
    name: str
    org: str
    kind: str
    role: str  # validator | observer
    address: bytes
    rpc_host: str
    rpc_port: int
    p2p_host: str
    p2p_port: int
    data_dir: Path
    config: Path

    @property
    def rpc(self) -> str:
        return f"http://{self.rpc_host}:{self.rpc_port}"

    @property
    def p2p(self) -> str:
        return f"{self.p2p_host}:{self.p2p_port}"

    @property
    def is_validator(self) -> bool:
        return self.role == "validator"


@dataclass(frozen=True)
class AccountInfo:
    org: str | None
    role: str | None
    address: bytes
    private_key: bytes | None  # None without development keys


@dataclass(frozen=True)
class NetworkInfo:
    dir: Path
    chain_id: int
    genesis_hash: bytes
    orgs: tuple[OrgInfo, ...]
    nodes: tuple[NodeInfo, ...]
    accounts: tuple[AccountInfo, ...]

    @property
    def network_json(self) -> Path:
        return self.dir / NETWORK_JSON

    @property
    def genesis(self) -> Path:
        return self.dir / GENESIS_JSON

    @property
    def ca_bundle(self) -> Path:
        return self.dir / CA_BUNDLE

    def node(self, name: str) -> NodeInfo:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def org(self, name: str) -> OrgInfo:
        for org in self.orgs:
            if org.name == name:
                return org
        raise KeyError(name)


def network_to_json(info: NetworkInfo) -> dict[str, Any]:
    """The network.json object of `info` (`node.config.network_json`, plus orgs, genesis
    and CA bundle)."""
    nodes = [{
        "name": n.name, "org": n.org, "kind": n.kind, "role": n.role,
        "rpc": n.rpc, "p2p": n.p2p,
        "validator": n.address if n.is_validator else None,
        "address": n.address,
        "dataDir": str(n.data_dir), "config": str(n.config),
    } for n in info.nodes]
    return {
        **network_json(chain_id=info.chain_id, genesis_hash=info.genesis_hash, nodes=nodes,
                       accounts=[(a.org, a.role, a.address, a.private_key) for a in info.accounts]),
        "orgs": [{"name": o.name, "kind": o.kind, "ca": str(o.ca)} for o in info.orgs],
        "genesis": str(info.genesis),
        "caBundle": str(info.ca_bundle),
    }


def save_network(info: NetworkInfo) -> None:
    """Write `<dir>/network.json` atomically."""
    path = info.network_json
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(network_to_json(info), indent=2) + "\n")
    os.replace(tmp, path)


def _split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(value)
    return host, int(port)


def load_network(net_dir: str | os.PathLike[str]) -> NetworkInfo:
    """Read `<net_dir>/network.json`. Raises ConfigError if missing or malformed."""
    d = Path(net_dir).expanduser().absolute()
    path = d / NETWORK_JSON
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"no network in {d}: {path} does not exist "
                          "(create one with `rxledger network init`)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    where = "?"
    try:
        where = "orgs"
        orgs = tuple(OrgInfo(o["name"], o["kind"], Path(o["ca"])) for o in raw.get("orgs", []))
        nodes = []
        for i, n in enumerate(raw["nodes"]):
            where = f"nodes[{i}]"
            rpc_host, rpc_port = _split_hostport(n["rpc"].removeprefix("http://"))
            p2p_host, p2p_port = _split_hostport(n["p2p"])
            address = n.get("address") or n["validator"]
            nodes.append(NodeInfo(
                name=n["name"], org=n["org"], kind=n["kind"],
                role=n.get("role") or ("validator" if n["validator"] else "observer"),
                address=bytes.fromhex(address[2:]), rpc_host=rpc_host, rpc_port=rpc_port,
                p2p_host=p2p_host, p2p_port=p2p_port, data_dir=Path(n["dataDir"]),
                config=Path(n["config"]),
            ))
        accounts = []
        for i, a in enumerate(raw["accounts"]):
            where = f"accounts[{i}]"
            key = a.get("privateKey")
            accounts.append(AccountInfo(a["org"], a["role"], bytes.fromhex(a["address"][2:]),
                                        bytes.fromhex(key[2:]) if key else None))
        where = "chainId"
        chain_id = int(raw["chainId"])
        where = "genesisHash"
        genesis_hash = bytes.fromhex(raw["genesisHash"][2:])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: {where}: malformed ({exc!r})") from exc
    return NetworkInfo(d, chain_id, genesis_hash, orgs, tuple(nodes), tuple(accounts))
