"""`network init` / `add-node`: every file written, with the right modes, shapes and keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from network_helpers import free_base_port

from chaincode_py import NativeChaincodeHost
from network import pki
from network.config import load_node_config
from network.errors import NetworkError, NetworkExists, OrgSpecError
from network.genesis import genesis_hash, load_genesis
from network.init import add_node, init_network, parse_observers, parse_orgs
from network.layout import NetworkInfo, load_network
from node.chain import Chain
from node.genesis import GenesisConfig, dev_accounts
from node.storage import MemoryStore
from rxledger.core.crypto import SECP256K1_N, private_key_to_address

INTERFACES_NODE_KEYS = {"name", "org", "kind", "rpc", "p2p", "validator", "dataDir", "config"}
INTERFACES_ACCOUNT_KEYS = {"org", "role", "address", "privateKey"}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkInfo:
    return init_network(tmp_path_factory.mktemp("net") / "net", base_port=free_base_port(), observers=1)


@pytest.fixture(scope="module")
def raw(net: NetworkInfo) -> dict:
    return json.loads(net.network_json.read_text())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_network_json_has_the_shape_of_interfaces(net: NetworkInfo, raw: dict) -> None:
    assert raw["chainId"] == 2024
    assert raw["genesisHash"] == "0x" + net.genesis_hash.hex() and len(raw["genesisHash"]) == 66
    assert [n["name"] for n in raw["nodes"]] == ["hospital-a", "hospital-b", "pharmacy-a", "regulator",
                                                "observer-1"]
    for node in raw["nodes"]:
        assert INTERFACES_NODE_KEYS <= set(node)
        assert Path(node["dataDir"]).is_absolute() and Path(node["config"]).is_absolute()
        assert Path(node["config"]).is_file()
        assert node["rpc"].startswith("http://127.0.0.1:") and node["p2p"].startswith("127.0.0.1:")
    validators = [n for n in raw["nodes"] if n["role"] == "validator"]
    assert [n["kind"] for n in validators] == ["hospital", "hospital", "pharmacy", "regulator"]
    assert all(n["validator"] == n["address"] and n["validator"].startswith("0x") for n in validators)
    observer = raw["nodes"][4]
    assert observer["validator"] is None and observer["role"] == "observer" and observer["org"] == "regulator"
    assert len(raw["accounts"]) == 10
    for account, dev in zip(raw["accounts"], dev_accounts(), strict=True):
        assert set(account) == INTERFACES_ACCOUNT_KEYS
        assert account["address"].lower() == "0x" + dev.address.hex()
        assert account["privateKey"] == "0x" + dev.private_key.hex()
        assert (account["org"], account["role"]) == (dev.org, dev.role)
    assert raw["accounts"][0]["address"] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # EIP-55


def test_ports_follow_the_base_port(net: NetworkInfo) -> None:
    base = net.nodes[0].rpc_port
    for i, node in enumerate(net.nodes):
        assert node.rpc_port == base + i
        assert node.p2p_port == base - 8545 + 30303 + i


def test_secrets_are_private(net: NetworkInfo) -> None:
    for org in net.orgs:
        assert mode(org.ca.with_name("ca.key")) == 0o600
        assert mode(org.ca.parent) == 0o700
    for node in net.nodes:
        keys = node.config.parent / "keys"
        assert mode(keys) == 0o700
        assert mode(keys / "validator.key") == 0o600 and mode(keys / "tls.key") == 0o600


def test_genesis_file_and_hash(net: NetworkInfo) -> None:
    genesis = load_genesis(net.genesis)
    assert genesis == GenesisConfig.decode(net.genesis.read_bytes())
    assert genesis.chain_id == 2024
    assert genesis.validators == tuple(n.address for n in net.nodes if n.is_validator)
    assert len(genesis.validators) == 4  # the observer is not a validator
    assert {e.address for e in genesis.enrolments} == {a.address for a in dev_accounts()}
    assert Chain(MemoryStore(), genesis, NativeChaincodeHost).genesis_hash == net.genesis_hash == genesis_hash(genesis)


def test_validator_keys_are_fresh_and_match_their_addresses(net: NetworkInfo) -> None:
    dev_keys = {a.private_key for a in dev_accounts()}
    seen = set()
    for node in net.nodes:
        key = load_node_config(node.config).load_validator_key()
        assert 0 < int.from_bytes(key, "big") < SECP256K1_N
        assert private_key_to_address(key) == node.address
        assert key not in dev_keys and key not in seen
        seen.add(key)


def test_node_certificates_chain_to_their_org_ca_and_bind_the_address(net: NetworkInfo) -> None:
    bundle = x509.load_pem_x509_certificates(net.ca_bundle.read_bytes())
    assert [c.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value for c in bundle] == \
        [o.name for o in net.orgs]
    for node in net.nodes:
        cert = x509.load_pem_x509_certificate((node.config.parent / "tls.pem").read_bytes())
        ca = x509.load_pem_x509_certificate(net.org(node.org).ca.read_bytes())
        cert.verify_directly_issued_by(ca)
        for other in net.orgs:
            if other.name != node.org:
                with pytest.raises((ValueError, InvalidSignature)):
                    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(other.ca.read_bytes()))
        der = cert.public_bytes(Encoding.DER)
        assert pki.bound_address(der) == node.address
        assert pki.organisation_of(der) == node.org
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_every_node_toml_loads_and_lists_every_other_node(net: NetworkInfo) -> None:
    for node in net.nodes:
        cfg = load_node_config(node.config)
        assert (cfg.name, cfg.org, cfg.kind, cfg.role, cfg.address) == \
            (node.name, node.org, node.kind, node.role, node.address)
        assert (cfg.rpc_port, cfg.p2p_port) == (node.rpc_port, node.p2p_port)
        assert cfg.data_dir == node.data_dir and cfg.genesis == net.genesis and cfg.ca_bundle == net.ca_bundle
        assert {p.name for p in cfg.peers} == {n.name for n in net.nodes} - {node.name}
        for peer in cfg.peers:
            other = net.node(peer.name)
            assert (peer.address, peer.host, peer.port) == (other.address, "127.0.0.1", other.p2p_port)
        assert (cfg.consensus.block_period, cfg.consensus.empty_block_period) == (1.0, 10.0)
        assert (cfg.consensus.round_timeout, cfg.consensus.max_round_timeout) == (2.0, 30.0)


def test_load_network_round_trips(net: NetworkInfo) -> None:
    assert load_network(net.dir) == net


def test_no_dev_keys_writes_no_private_key(tmp_path: Path) -> None:
    admin = "0x" + "ab" * 20
    info = init_network(tmp_path / "net", base_port=free_base_port(), dev_keys=False,
                        admins={"hospital-a": admin})
    text = info.network_json.read_text()
    assert "privateKey" not in text
    for account in dev_accounts():
        assert account.private_key.hex() not in text
    raw = json.loads(text)
    assert raw["accounts"] == [{"org": "hospital-a", "role": "org admin",
                                "address": "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"}]
    genesis = load_genesis(info.genesis)
    assert [(e.address, e.org, e.role) for e in genesis.enrolments] == [(bytes.fromhex("ab" * 20), "hospital-a",
                                                                         "org admin")]
    bare = init_network(tmp_path / "bare", base_port=free_base_port(), dev_keys=False)
    assert json.loads(bare.network_json.read_text())["accounts"] == []
    assert load_genesis(bare.genesis).enrolments == ()


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty"),
    ("  ", "empty"),
    ("hospital-a:hospital,,regulator:regulator", "entry 2 is empty"),
    ("hospital-a", "has no kind"),
    ("hospital-a:clinic", "kind 'clinic' of 'hospital-a' is not one of hospital, pharmacy, regulator"),
    ("a:hospital,a:pharmacy", "'a' is listed twice"),
    ("Hospital_A:hospital", "not a valid organisation name"),
    (":hospital", "not a valid organisation name"),
])
def test_bad_orgs_specs_are_refused_clearly(spec: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(OrgSpecError, match=message):
        parse_orgs(spec)
    with pytest.raises(OrgSpecError, match=message):
        init_network(tmp_path / "net", orgs_spec=spec)
    assert not (tmp_path / "net").exists()


def test_custom_orgs_and_observers(tmp_path: Path) -> None:
    orgs = parse_orgs(" clinic-1:hospital , drugstore:pharmacy ")
    assert [(o.name, o.kind) for o in orgs] == [("clinic-1", "hospital"), ("drugstore", "pharmacy")]
    assert [(o.name, o.org) for o in parse_observers(2, orgs)] == [("observer-1", "clinic-1"),
                                                                   ("observer-2", "clinic-1")]
    assert [(o.name, o.org) for o in parse_observers("drugstore,mirror@clinic-1", orgs)] == \
        [("drugstore-observer-1", "drugstore"), ("mirror", "clinic-1")]
    with pytest.raises(OrgSpecError, match="no organisation 'nowhere'"):
        parse_observers(["nowhere"], orgs)
    with pytest.raises(OrgSpecError, match="already a node's name"):
        parse_observers(["clinic-1@drugstore"], orgs)
    with pytest.raises(OrgSpecError, match="0 or more"):
        parse_observers(-1, orgs)


def test_base_port_range_is_checked(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="ports end at 65535"):
        init_network(tmp_path / "net", base_port=50000)
    assert not (tmp_path / "net").exists()


def test_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "net"
    first = init_network(target, base_port=free_base_port())
    with pytest.raises(NetworkExists, match="already holds a network.*--force"):
        init_network(target)
    (target / "notes.txt").write_text("mine")
    second = init_network(target, base_port=free_base_port(), force=True)
    assert second.genesis_hash != first.genesis_hash
    assert (target / "notes.txt").read_text() == "mine"  # --force removes only what init wrote
    other = tmp_path / "other"
    other.mkdir()
    (other / "file").write_text("x")
    with pytest.raises(NetworkExists, match="not empty"):
        init_network(other)


def test_add_node_issues_a_validator_and_updates_every_config(tmp_path: Path) -> None:
    info = init_network(tmp_path / "net", base_port=free_base_port())
    node = add_node(info.dir, "hospital-b", "hospital-b-2")
    assert node.role == "validator" and node.org == "hospital-b" and node.kind == "hospital"
    assert node.rpc_port == info.nodes[-1].rpc_port + 1 and node.p2p_port == info.nodes[-1].p2p_port + 1
    cfg = load_node_config(node.config)
    assert private_key_to_address(cfg.load_validator_key()) == node.address
    assert {p.name for p in cfg.peers} == {n.name for n in info.nodes}
    cert = x509.load_pem_x509_certificate(cfg.tls_cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(info.org("hospital-b").ca.read_bytes()))
    for existing in info.nodes:
        peers = load_node_config(existing.config).peers
        assert peers[-1].name == "hospital-b-2" and peers[-1].address == node.address
    updated = load_network(info.dir)
    assert updated.nodes[-1] == node and updated.genesis_hash == info.genesis_hash
    raw = json.loads(updated.network_json.read_text())
    assert raw["nodes"][-1]["validator"] is not None
    # genesis is unchanged: the new validator joins by vote
    assert node.address not in load_genesis(info.genesis).validators
    assert (info.dir / "deploy" / "hospital-b-2" / "node.toml").is_file()

    obs = add_node(info.dir, "regulator", "audit-mirror", observer=True)
    assert json.loads(updated.network_json.read_text())["nodes"][-1]["validator"] is None
    assert obs.p2p_port == node.p2p_port + 1

    with pytest.raises(NetworkError, match="already exists"):
        add_node(info.dir, "hospital-a", "hospital-b-2")
    with pytest.raises(NetworkError, match="no organisation 'nope'"):
        add_node(info.dir, "nope", "x")
    with pytest.raises(NetworkError, match="not a valid node name"):
        add_node(info.dir, "hospital-a", "Bad Name")
    (info.dir / "orgs" / "pharmacy-a" / "ca.key").unlink()  # the org keeps its CA key offline
    with pytest.raises(NetworkError, match="CA of pharmacy-a is not in this directory"):
        add_node(info.dir, "pharmacy-a", "pharmacy-a-2")
    assert not (info.dir / "nodes" / "pharmacy-a-2").exists()
