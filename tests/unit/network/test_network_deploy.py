"""deploy/: per-host node.toml, docker-compose.yml (valid YAML), Dockerfile, systemd unit.

Docker and systemd cannot run here; these tests check the files' structure and that they
agree with each other and with the network.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
import yaml
from network_helpers import free_base_port

from network.config import load_node_config
from network.deploy import write_deployment
from network.errors import NetworkError
from network.init import init_network
from network.layout import NetworkInfo


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkInfo:
    return init_network(tmp_path_factory.mktemp("deploy") / "net", base_port=free_base_port(), observers=1)


def test_compose_file_is_yaml_with_one_service_per_node(net: NetworkInfo) -> None:
    compose = yaml.safe_load((net.dir / "deploy" / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {n.name for n in net.nodes}
    for node in net.nodes:
        service = compose["services"][node.name]
        assert service["image"] == "rxledger:0.1.0"
        assert service["hostname"] == node.name
        assert service["command"] == ["node", "start", "--config", f"/etc/rxledger/{node.name}/node.toml"]
        assert service["ports"] == [f"127.0.0.1:{node.rpc_port}:8545"]
        sources = {}
        for volume in service["volumes"]:
            source, target, *options = volume.split(":")
            sources[target] = (source, options)
            local = (net.dir / "deploy" / source).resolve()
            assert local.is_dir(), volume  # every bind-mount source exists
        assert sources[f"/etc/rxledger/{node.name}"][1] == ["ro"]
        assert (net.dir / "deploy" / sources[f"/etc/rxledger/{node.name}/keys"][0]).resolve() == \
            node.config.parent / "keys"
        assert f"/var/lib/rxledger/{node.name}" in sources


def test_per_host_configs_bind_all_interfaces_and_name_peers_by_host(net: NetworkInfo) -> None:
    for node in net.nodes:
        bundle = net.dir / "deploy" / node.name
        assert {p.name for p in bundle.iterdir()} == {"node.toml", "genesis.json", "ca-bundle.pem", "tls.pem",
                                                      "keys"}
        assert list((bundle / "keys").iterdir()) == []  # no secret is copied into deploy/
        assert (bundle / "keys").stat().st_mode & 0o777 == 0o700
        cfg = load_node_config(bundle / "node.toml", check_files=False)
        assert (cfg.rpc_host, cfg.rpc_port, cfg.p2p_host, cfg.p2p_port) == ("0.0.0.0", 8545, "0.0.0.0", 30303)
        assert cfg.address == node.address and cfg.role == node.role
        assert cfg.data_dir == Path(f"/var/lib/rxledger/{node.name}")
        assert cfg.validator_key_file == Path(f"/etc/rxledger/{node.name}/keys/validator.key")
        assert cfg.tls_cert == Path(f"/etc/rxledger/{node.name}/tls.pem")
        assert cfg.genesis == Path(f"/etc/rxledger/{node.name}/genesis.json")
        assert [(p.name, p.host, p.port) for p in cfg.peers] == \
            [(n.name, n.name, 30303) for n in net.nodes if n.name != node.name]
        assert (bundle / "genesis.json").read_bytes() == net.genesis.read_bytes()
        assert (bundle / "tls.pem").read_bytes() == (node.config.parent / "tls.pem").read_bytes()


def test_hosts_can_be_named(net: NetworkInfo) -> None:
    write_deployment(net, {"hospital-a": "ha.example.org", "hospital-b": "10.0.0.2:40000"})
    cfg = load_node_config(net.dir / "deploy" / "pharmacy-a" / "node.toml", check_files=False)
    peers = {p.name: (p.host, p.port) for p in cfg.peers}
    assert peers["hospital-a"] == ("ha.example.org", 30303)
    assert peers["hospital-b"] == ("10.0.0.2", 40000)
    assert peers["regulator"] == ("regulator", 30303)
    own = load_node_config(net.dir / "deploy" / "hospital-b" / "node.toml", check_files=False)
    assert own.p2p_port == 40000
    with pytest.raises(NetworkError, match="no node named 'nobody'"):
        write_deployment(net, {"nobody": "x"})
    write_deployment(net)


def test_systemd_unit_and_dockerfile(net: NetworkInfo) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((net.dir / "deploy" / "rxledger-node@.service").read_text())
    assert unit["Service"]["ExecStart"] == \
        "/opt/rxledger/venv/bin/rxledger node start --config /etc/rxledger/%i/node.toml"
    assert unit["Service"]["StateDirectory"] == "rxledger/%i"  # = the per-host data_dir
    assert unit["Service"]["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    dockerfile = (net.dir / "deploy" / "Dockerfile").read_text()
    assert "EXPOSE 8545 30303" in dockerfile and 'ENTRYPOINT ["rxledger"]' in dockerfile
    assert "/health" in dockerfile
