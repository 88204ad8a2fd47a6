"""The composition root (node/node.py): one NodeSetup builds a dev or a consortium node,
with the chaincode host its assembler passes; the node's own files are read by the node."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from network_helpers import free_base_port

from chaincode_py import NativeChaincodeHost
from network.errors import ConfigError as NetworkConfigError
from network.errors import NetworkError
from network.init import init_network
from node.chain import Chain
from node.config import ConfigError, NodeConfig, load_node_config
from node.execution.chaincode import NoChaincode
from node.genesis import dev_genesis
from node.node import TRUST_FILE, NodeSetup, StartError, new_node
from node.storage import MemoryStore

GOVERNANCE = bytes.fromhex("0000000000000000000000000000000000001002")


def test_the_chain_runs_the_chaincode_host_it_is_given() -> None:
    native = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)  # a factory over the chain's store
    assert GOVERNANCE in native.chaincode.addresses()
    assert isinstance(native.chaincode, NativeChaincodeHost) and native.chaincode.store is native.store
    bare = Chain(MemoryStore(), dev_genesis(), NoChaincode())  # a host instance
    assert bare.chaincode.addresses() == ()
    # The host's genesis state is part of the genesis block.
    assert native.genesis_hash != bare.genesis_hash


def test_the_node_package_imports_no_package_above_it() -> None:
    code = ("import sys, node.node, node.cli, node.config, node.chain, node.service, node.p2p.tls\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'network', 'chaincode_py', 'client_sdk'}), 'rxledger.cli' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] False"


def test_a_dev_node_from_its_setup(tmp_path: Path) -> None:
    setup = NodeSetup.dev(NodeConfig(data_dir=tmp_path, rpc_port=0, dev=True, rpc_admin=True,
                                     min_block_interval=0.5, gather_window=0.1, empty_block_period=3.0))
    assert setup.consortium is None and setup.qbft.block_period == 0.0
    assert setup.qbft.empty_block_period == 3.0
    assert (setup.gathering.gather, setup.gathering.min_interval) == (0.1, 0.5)
    node = new_node(setup, NativeChaincodeHost)
    try:
        assert node.p2p is None
        trust = json.loads((tmp_path / TRUST_FILE).read_text())
        assert trust["genesisHash"] == "0x" + node.service.chain.genesis_hash.hex()
        assert trust["nodes"][0]["rpc"] == f"http://127.0.0.1:{node.sock.getsockname()[1]}"  # the bound port
        node.start()
        assert node.service.runtime is not None
    finally:
        node.close()


def test_a_port_taken_is_a_start_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        setup = NodeSetup.dev(NodeConfig(data_dir=tmp_path, rpc_port=port, dev=True))
        with pytest.raises(StartError, match=f"^cannot listen on 127.0.0.1:{port}: "):
            new_node(setup, NativeChaincodeHost)
    assert not (tmp_path / "chaindata").exists()  # the store was not opened


def test_another_chain_in_the_data_dir_is_a_start_error(tmp_path: Path) -> None:
    first = new_node(NodeSetup.dev(NodeConfig(data_dir=tmp_path, rpc_port=0, dev=True)), NoChaincode())
    first.close()
    with pytest.raises(StartError, match="^cannot start the node: the data directory holds a different chain"):
        new_node(NodeSetup.dev(NodeConfig(data_dir=tmp_path, rpc_port=0, dev=True)), NativeChaincodeHost)


def test_a_consortium_node_from_its_node_toml(tmp_path: Path) -> None:
    base = free_base_port()
    info = init_network(tmp_path / "net", orgs_spec="hospital-a:hospital", base_port=base)
    [member] = info.nodes
    setup = NodeSetup.from_file(member.config)
    file = load_node_config(member.config)
    assert setup.consortium == file
    assert setup.config.rpc_port == member.rpc_port and setup.config.node_name == member.name
    assert setup.qbft.block_period == float(int(file.consensus.block_period))
    node = new_node(setup, NativeChaincodeHost)
    try:
        assert node.p2p is not None
        assert not (member.data_dir / TRUST_FILE).exists()  # network init wrote the consortium's
        node.start()
        with socket.create_connection((member.p2p_host, member.p2p_port), timeout=5):
            pass  # p2p listens
        assert node.service.chain.genesis_hash == info.genesis_hash
    finally:
        node.close()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{member.rpc}/health", timeout=1)


def test_a_bad_node_toml_names_the_file_and_field(tmp_path: Path) -> None:
    info = init_network(tmp_path / "net", orgs_spec="hospital-a:hospital", base_port=free_base_port())
    path = info.nodes[0].config
    path.write_text(path.read_text().replace("[rpc]\n", "[rpc]\nbogus = 1\n"))
    with pytest.raises(ConfigError, match=f"^{path}: rpc.bogus: unknown setting$"):
        NodeSetup.from_file(path)
    # network's reader raises the same message as a NetworkError.
    from network.config import load_node_config as network_load

    with pytest.raises(NetworkConfigError, match="rpc.bogus: unknown setting") as caught:
        network_load(path)
    assert isinstance(caught.value, NetworkError) and isinstance(caught.value, ConfigError)


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:8545"),
    ("0.0.0.0", "http://127.0.0.1:8545"),
    ("::", "http://[::1]:8545"),
    ("::1", "http://[::1]:8545"),
    ("node-a.example.org", "http://node-a.example.org:8545"),
])
def test_the_trust_file_names_a_url_a_client_can_dial(host: str, url: str) -> None:
    from node.node import _dial_url

    assert _dial_url(host, 8545) == url
