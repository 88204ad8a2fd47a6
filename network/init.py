"""`rxledger network init` and `network add-node`: a consortium's identities and files.

`init_network` makes, in one directory (layout in `network.layout`):

- per organisation a CA (`orgs/<org>/ca.pem`, `ca.key` 0600) and one validator node
  named after the org;
- per node a fresh random secp256k1 key (from `os.urandom`, never from the public dev
  mnemonic), a TLS certificate from its org's CA binding the key's address, `node.toml`
  listing every other node as a peer;
- `ca-bundle.pem`, `genesis.json` (validators: the org nodes, each bound to its
  organisation in `validator_orgs`; observers are not validators),
  `network.json` (INTERFACES.md), and `deploy/` (per-host bundles, docker-compose.yml,
  systemd unit; see `network.deploy`).

Node i (validators first, then observers, in spec order) gets JSON-RPC port
`base_port + i` and p2p port `base_port - 8545 + 30303 + i`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from network import pki
from network.config import (
    KINDS,
    ConsensusSettings,
    NodeFileConfig,
    PeerConfig,
    is_valid_name,
    load_node_config,
    save_node_config,
)
from network.deploy import write_deployment
from network.errors import ConfigError, NetworkError, NetworkExists, OrgSpecError
from network.genesis import genesis_hash, make_genesis, save_genesis
from network.layout import (
    CA_BUNDLE,
    NETWORK_JSON,
    OWNED_ENTRIES,
    AccountInfo,
    NetworkInfo,
    NodeInfo,
    OrgInfo,
    load_network,
    node_paths,
    org_ca_paths,
    save_network,
)
from node.genesis import DEV_CHAIN_ID, dev_accounts
from rxledger.core.crypto import SECP256K1_N, private_key_to_address

DEFAULT_ORGS = "hospital-a:hospital,hospital-b:hospital,pharmacy-a:pharmacy,regulator:regulator"
DEFAULT_NET_DIR = Path(".rxledger/net")
DEFAULT_BASE_PORT = 8545
P2P_PORT_OFFSET = 30303 - 8545
LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class OrgSpec:
    name: str
    kind: str  # hospital | pharmacy | regulator


@dataclass(frozen=True)
class ObserverSpec:
    name: str
    org: str


# -- specifications -----------------------------------------------------------------------

def parse_orgs(spec: str) -> tuple[OrgSpec, ...]:
    """Parse `--orgs`: comma-separated `name:kind`, kind one of hospital, pharmacy, regulator.

    Raises OrgSpecError with one line saying what is wrong.
    """
    if not spec or not spec.strip():
        raise OrgSpecError("--orgs is empty; give at least one name:kind, e.g. hospital-a:hospital")
    orgs: list[OrgSpec] = []
    for i, entry in enumerate(spec.split(","), start=1):
        entry = entry.strip()
        if not entry:
            raise OrgSpecError(f"--orgs entry {i} is empty (a stray comma in {spec!r}?)")
        name, colon, kind = (part.strip() for part in entry.partition(":"))
        if not colon:
            raise OrgSpecError(f"--orgs entry {entry!r} has no kind; write name:kind, "
                               f"kind one of {', '.join(KINDS)}")
        if not is_valid_name(name):
            raise OrgSpecError(f"--orgs: {name!r} is not a valid organisation name (lowercase letters, "
                               "digits and '-', starting and ending with a letter or digit, ≤ 63 chars)")
        if kind not in KINDS:
            raise OrgSpecError(f"--orgs: kind {kind!r} of {name!r} is not one of {', '.join(KINDS)}")
        if any(o.name == name for o in orgs):
            raise OrgSpecError(f"--orgs: organisation {name!r} is listed twice")
        orgs.append(OrgSpec(name, kind))
    return tuple(orgs)


def parse_observers(value: int | str | Sequence[str], orgs: Sequence[OrgSpec]) -> tuple[ObserverSpec, ...]:
    """Observers: a count N (named observer-1..N, run by the first regulator org, else the
    first org) or a list of `ORG` / `NAME@ORG`. Raises OrgSpecError."""
    if isinstance(value, str):
        value = int(value) if value.strip().isdigit() else [v for v in value.split(",") if v.strip()]
    org_names = [o.name for o in orgs]
    if isinstance(value, int):
        if value < 0:
            raise OrgSpecError(f"--observers must be 0 or more, got {value}")
        host = next((o.name for o in orgs if o.kind == "regulator"), orgs[0].name)
        out = [ObserverSpec(f"observer-{i}", host) for i in range(1, value + 1)]
    else:
        out = []
        for item in value:
            name, at, org = item.strip().rpartition("@")
            if not at:
                count = sum(1 for o in out if o.org == org) + 1
                name = f"{org}-observer-{count}"
            if org not in org_names:
                raise OrgSpecError(f"observer {item!r}: no organisation {org!r} (orgs: {', '.join(org_names)})")
            if not is_valid_name(name):
                raise OrgSpecError(f"observer {item!r}: {name!r} is not a valid node name")
            out.append(ObserverSpec(name, org))
    taken = set(org_names)
    for obs in out:
        if obs.name in taken:
            raise OrgSpecError(f"observer name {obs.name!r} is already a node's name")
        taken.add(obs.name)
    return tuple(out)


def node_ports(base_port: int, index: int) -> tuple[int, int]:
    """(JSON-RPC port, p2p port) of node `index` (0-based)."""
    return base_port + index, base_port + P2P_PORT_OFFSET + index


def validate_base_port(base_port: int, node_count: int) -> None:
    """Raise NetworkError unless every node's RPC and p2p port is within 1..65535."""
    if base_port < 1:
        raise NetworkError(f"--base-port must be at least 1, got {base_port}")
    last_rpc, last_p2p = node_ports(base_port, node_count - 1)
    if min(node_ports(base_port, 0)) < 1 or max(last_rpc, last_p2p) > 65535:
        raise NetworkError(
            f"--base-port {base_port} puts the ports of {node_count} nodes at RPC "
            f"{base_port}-{last_rpc} and p2p {base_port + P2P_PORT_OFFSET}-{last_p2p}; "
            f"ports end at 65535 (use a base port ≤ {65535 - P2P_PORT_OFFSET - node_count + 1})")


# -- keys and certificates ----------------------------------------------------------------

def new_validator_key() -> bytes:
    """A fresh secp256k1 private key from the OS's CSPRNG (rejection-sampled below n)."""
    while True:
        key = os.urandom(32)
        if 0 < int.from_bytes(key, "big") < SECP256K1_N:
            return key


def _write_org_ca(net_dir: Path, org: str) -> pki.Issued:
    ca = pki.make_org_ca(org)
    cert_path, key_path = org_ca_paths(net_dir, org)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(cert_path.parent, 0o700)
    cert_path.write_bytes(ca.cert_pem)
    pki.write_private(key_path, ca.key_pem)
    return ca


def _load_org_ca(net_dir: Path, org: str) -> pki.Issued:
    cert_path, key_path = org_ca_paths(net_dir, org)
    try:
        return pki.Issued(key_path.read_bytes(), cert_path.read_bytes())
    except FileNotFoundError as exc:
        raise NetworkError(
            f"the CA of {org} is not in this directory ({exc.filename} is missing); issue the "
            "node's certificate where the organisation keeps its CA key") from None


def _issue_node(net_dir: Path, ca: pki.Issued, *, org: str, kind: str, name: str, role: str,
                rpc_port: int, p2p_port: int) -> NodeInfo:
    """Make a node's key, TLS certificate and directories (not its node.toml)."""
    paths = node_paths(net_dir, name)
    paths.keys.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.keys, 0o700)
    key = new_validator_key()
    address = private_key_to_address(key)
    pki.write_private(paths.validator_key, ("0x" + key.hex() + "\n").encode())
    # The node's name is a DNS name too: docker-compose services and hosts carry it.
    tls = pki.issue_node_cert(ca, org=org, node_name=name, address=address,
                              hosts=(LOCAL_HOST, "localhost", name))
    paths.tls_cert.write_bytes(tls.cert_pem)
    pki.write_private(paths.tls_key, tls.key_pem)
    return NodeInfo(name=name, org=org, kind=kind, role=role, address=address,
                    rpc_host=LOCAL_HOST, rpc_port=rpc_port, p2p_host=LOCAL_HOST, p2p_port=p2p_port,
                    data_dir=paths.data, config=paths.config)


def node_file_config(net_dir: Path, node: NodeInfo, peers: Sequence[NodeInfo],
                     consensus: ConsensusSettings | None = None) -> NodeFileConfig:
    """The local (loopback) node.toml of `node`, every node of `peers` but itself as a peer."""
    paths = node_paths(net_dir, node.name)
    return NodeFileConfig(
        name=node.name, org=node.org, kind=node.kind, role=node.role, address=node.address,
        data_dir=paths.data, genesis=net_dir / "genesis.json", validator_key_file=paths.validator_key,
        rpc_host=node.rpc_host, rpc_port=node.rpc_port, p2p_host=node.p2p_host,
        p2p_port=node.p2p_port, tls_cert=paths.tls_cert, tls_key=paths.tls_key,
        ca_bundle=net_dir / CA_BUNDLE,
        peers=tuple(PeerConfig(p.name, p.address, p.p2p_host, p.p2p_port, org=p.org, role=p.role)
                    for p in peers if p.name != node.name),
        consensus=consensus or ConsensusSettings(),
        rpc_admin=True,  # administrative RPC on: a network's own operators run it (INTERFACES.md)
    )


# -- init ---------------------------------------------------------------------------------

def _remove_owned(net_dir: Path) -> None:
    for entry in OWNED_ENTRIES:
        path = net_dir / entry
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _prepare_dir(net_dir: Path, force: bool) -> None:
    from network._proc import is_alive, load_pids

    if net_dir.exists() and not net_dir.is_dir():
        raise NetworkExists(f"{net_dir} exists and is not a directory")
    if not net_dir.exists():
        net_dir.mkdir(parents=True)
        return
    has_network = (net_dir / NETWORK_JSON).exists()
    if not force:
        if has_network:
            raise NetworkExists(f"{net_dir} already holds a network; use another directory, or "
                                "--force to replace it (its keys and chain data are deleted)")
        if any(net_dir.iterdir()):
            raise NetworkExists(f"{net_dir} exists and is not empty; use an empty or new directory, "
                                "or --force")
        return
    running = [n for n in (load_pids(net_dir) or []) if is_alive(n.pid, n.config)]
    if running:
        raise NetworkExists(f"the network in {net_dir} is running (nodes "
                            f"{', '.join(n.name for n in running)}); `rxledger down` first")
    _remove_owned(net_dir)


def init_network(
    out_dir: str | os.PathLike[str] = DEFAULT_NET_DIR,
    orgs_spec: str | Sequence[OrgSpec] = DEFAULT_ORGS,
    base_port: int = DEFAULT_BASE_PORT,
    chain_id: int = DEV_CHAIN_ID,
    observers: int | str | Sequence[str] = 0,
    dev_keys: bool = True,
    force: bool = False,
    admins: Mapping[str, str | bytes] | None = None,
    consensus: ConsensusSettings | None = None,
    deploy: bool = True,
) -> NetworkInfo:
    """Create a consortium in `out_dir` and return what network.json says about it.

    `orgs_spec`: "name:kind,…" (or parsed OrgSpecs); one validator node per org.
    `observers`: a count or a list of "ORG" / "NAME@ORG" (see `parse_observers`).
    `dev_keys`: enrol the development accounts and list their keys in network.json;
    without, no private key is written to network.json and only `admins` (org -> address,
    as org admins) are enrolled: everything else goes through governance.
    `force`: replace a network already in `out_dir` (refused while it runs).
    `deploy`: also write `deploy/` (per-host bundles, docker-compose.yml, systemd unit).
    Raises OrgSpecError, NetworkExists or NetworkError with a message for people.
    """
    orgs = parse_orgs(orgs_spec) if isinstance(orgs_spec, str) else tuple(orgs_spec)
    if not orgs:
        raise OrgSpecError("no organisations given")
    observer_specs = parse_observers(observers, orgs)
    if chain_id < 1:
        raise NetworkError(f"chain id must be a positive integer, got {chain_id}")
    validate_base_port(base_port, len(orgs) + len(observer_specs))
    admin_addresses = _parse_admins(admins or {}, orgs)

    net_dir = Path(out_dir).expanduser().absolute()
    _prepare_dir(net_dir, force)
    try:
        return _init_in(net_dir, orgs, observer_specs, base_port, chain_id, dev_keys,
                        admin_addresses, consensus, deploy)
    except BaseException:
        _remove_owned(net_dir)  # never leave half a network behind
        raise


def _parse_admins(admins: Mapping[str, str | bytes], orgs: Sequence[OrgSpec]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for org, address in admins.items():
        if not any(o.name == org for o in orgs):
            raise OrgSpecError(f"--admin {org}=…: no organisation {org!r}")
        if isinstance(address, str):
            text = address[2:] if address.lower().startswith("0x") else address
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raw = b""
        else:
            raw = address
        if len(raw) != 20:
            raise OrgSpecError(f"--admin {org}={address!r}: not a 20-byte hex address")
        out[org] = raw
    return out


def _init_in(net_dir: Path, orgs: Sequence[OrgSpec], observers: Sequence[ObserverSpec],
             base_port: int, chain_id: int, dev_keys: bool, admins: Mapping[str, bytes],
             consensus: ConsensusSettings | None, deploy: bool) -> NetworkInfo:
    kinds = {o.name: o.kind for o in orgs}
    cas = {o.name: _write_org_ca(net_dir, o.name) for o in orgs}
    (net_dir / CA_BUNDLE).write_bytes(b"".join(cas[o.name].cert_pem for o in orgs))

    planned = [(o.name, o.name, "validator") for o in orgs]
    planned += [(obs.name, obs.org, "observer") for obs in observers]
    nodes: list[NodeInfo] = []
    for index, (name, org, role) in enumerate(planned):
        rpc_port, p2p_port = node_ports(base_port, index)
        nodes.append(_issue_node(net_dir, cas[org], org=org, kind=kinds[org], name=name, role=role,
                                 rpc_port=rpc_port, p2p_port=p2p_port))

    genesis = make_genesis(chain_id, [n.address for n in nodes if n.is_validator],
                           dev_keys=dev_keys, admins=admins, orgs=[(o.name, o.kind) for o in orgs],
                           validator_orgs={n.address: n.org for n in nodes if n.is_validator})
    save_genesis(net_dir / "genesis.json", genesis)
    for node in nodes:
        save_node_config(node_file_config(net_dir, node, nodes, consensus), node.config)

    accounts: list[AccountInfo] = []
    if dev_keys:
        accounts += [AccountInfo(a.org, a.role, a.address, a.private_key) for a in dev_accounts()]
    accounts += [AccountInfo(org, "org admin", address, None) for org, address in admins.items()]
    info = NetworkInfo(
        dir=net_dir, chain_id=chain_id, genesis_hash=genesis_hash(genesis),
        orgs=tuple(OrgInfo(o.name, o.kind, org_ca_paths(net_dir, o.name)[0]) for o in orgs),
        nodes=tuple(nodes), accounts=tuple(accounts),
    )
    save_network(info)
    if deploy:
        write_deployment(info)
    return info


# -- add-node -----------------------------------------------------------------------------

def add_node(net_dir: str | os.PathLike[str], org: str, name: str, observer: bool = False) -> NodeInfo:
    """Issue a new node of `org` in an existing network directory and wire it in.

    Makes its key, a certificate from the org's CA, its node.toml (every existing node a
    peer) with the next free ports, adds it to network.json and to the peers of every
    existing node.toml, and rewrites `deploy/` if present. Genesis is unchanged: a new
    validator signs blocks once a majority of validators vote it in
    (`qbft_proposeValidatorVote`); running nodes see the new peer after a restart.
    """
    info = load_network(net_dir)
    net = info.dir
    try:
        kind = info.org(org).kind
    except KeyError:
        raise NetworkError(f"no organisation {org!r} in {net} "
                           f"(orgs: {', '.join(o.name for o in info.orgs)})") from None
    if not is_valid_name(name):
        raise NetworkError(f"{name!r} is not a valid node name (lowercase letters, digits and '-', "
                           "starting and ending with a letter or digit, ≤ 63 chars)")
    if any(n.name == name for n in info.nodes) or node_paths(net, name).dir.exists():
        raise NetworkError(f"a node named {name!r} already exists in {net}")
    rpc_port = max(n.rpc_port for n in info.nodes) + 1
    p2p_port = max(n.p2p_port for n in info.nodes) + 1
    if max(rpc_port, p2p_port) > 65535:
        raise NetworkError("no free port left above the network's ports")
    ca = _load_org_ca(net, org)

    # Check every existing config first, so a broken one stops us before anything changes.
    configs = {}
    for existing in info.nodes:
        try:
            configs[existing.name] = load_node_config(existing.config, check_files=False)
        except ConfigError as exc:
            raise NetworkError(f"cannot add {name}: {exc}") from exc

    node = _issue_node(net, ca, org=org, kind=kind, name=name,
                       role="observer" if observer else "validator",
                       rpc_port=rpc_port, p2p_port=p2p_port)
    nodes = (*info.nodes, node)
    consensus = next(iter(configs.values())).consensus if configs else None
    save_node_config(node_file_config(net, node, nodes, consensus), node.config)
    for existing in info.nodes:
        cfg = configs[existing.name]
        peers = (*cfg.peers, PeerConfig(node.name, node.address, node.p2p_host, node.p2p_port,
                                        org=node.org, role=node.role))
        save_node_config(replace(cfg, peers=peers), existing.config)
    updated = NetworkInfo(info.dir, info.chain_id, info.genesis_hash, info.orgs, nodes, info.accounts)
    save_network(updated)
    if (net / "deploy").is_dir():
        write_deployment(updated)
    return node
