"""node.toml's `[rpc] admin` and `[limits]` (issue 11): network init writes admin on and
every budget with its default; the loader reads them into NodeConfig's fields, names
file and field on a bad value, and refuses unknown budgets."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
from network_helpers import free_base_port

from network.config import LimitsSettings, load_node_config
from network.errors import ConfigError
from network.init import init_network
from network.layout import NetworkInfo
from node.config import NodeConfig


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkInfo:
    return init_network(tmp_path_factory.mktemp("cfg") / "net", base_port=free_base_port(), deploy=False)


@pytest.fixture
def config(net: NetworkInfo, tmp_path: Path) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(net.nodes[0].config.read_text())
    return path


def test_network_init_writes_admin_on_and_every_limit(net: NetworkInfo) -> None:
    data = tomllib.loads(net.nodes[0].config.read_text())
    assert data["rpc"]["admin"] is True
    assert set(data["limits"]) == {f.name for f in fields(LimitsSettings)}
    loaded = load_node_config(net.nodes[0].config)
    assert loaded.rpc_admin is True
    assert loaded.limits == LimitsSettings()


def test_limits_defaults_are_node_configs() -> None:
    node = NodeConfig(data_dir=None, **LimitsSettings().node_config_fields())
    assert node == NodeConfig(data_dir=None)


def test_admin_absent_is_off_and_must_be_a_boolean(config: Path) -> None:
    text = config.read_text()
    config.write_text(re.sub(r"^admin = true\n", "", text, flags=re.MULTILINE))
    assert load_node_config(config).rpc_admin is False
    config.write_text(text.replace("admin = true", 'admin = "yes"'))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(config))}: rpc\.admin: must be true or false"):
        load_node_config(config)


def test_limits_are_read_into_node_config(config: Path) -> None:
    text = re.sub(r"\[limits\]\n(?:[a-z_]+ = .*\n)+", "", config.read_text())
    config.write_text(text + "\n[limits]\nrpc_evm_timeout = 2.5\nrpc_gas_cap = 0\nmax_tx_bytes = 1000\n"
                             "max_logs_addresses = 10\n")
    limits = load_node_config(config).limits
    node = NodeConfig(data_dir=None, **limits.node_config_fields())
    assert (node.rpc_evm_timeout, node.rpc_gas_cap, node.pool.max_tx_size, node.max_logs_addresses) == (
        2.5, 0, 1000, 10)
    assert node.max_json_depth == NodeConfig.max_json_depth  # the rest keep their defaults


@pytest.mark.parametrize(("line", "field", "problem"), [
    ("max_json_depth = 0", "limits.max_json_depth", "at least 1"),
    ("rpc_gas_cap = -1", "limits.rpc_gas_cap", "at least 0"),
    ('max_batch_requests = "many"', "limits.max_batch_requests", "integer"),
    ("rpc_evm_timeout = -1.0", "limits.rpc_evm_timeout", "at least 0"),
    ("max_getlogs = 5", "limits.max_getlogs", "unknown setting"),
])
def test_bad_limits_are_named(config: Path, line: str, field: str, problem: str) -> None:
    key = line.split(" = ")[0]
    text = re.sub(rf"^{key} = .*\n", "", config.read_text(), flags=re.MULTILINE)
    config.write_text(text.replace("[limits]\n", f"[limits]\n{line}\n"))
    with pytest.raises(ConfigError) as info:
        load_node_config(config)
    message = str(info.value)
    assert message.startswith(f"{config}: {field}: "), message
    assert problem in message


def test_consensus_memory_budgets_are_read_and_checked(config: Path) -> None:
    """[consensus] max_messages_per_author / max_bytes_per_author: QbftConfig's per-author
    memory budgets, settable per node; too small a budget would starve honest rounds."""
    assert load_node_config(config).consensus.max_messages_per_author == 256
    text = re.sub(r"^max_messages_per_author = .*$", "max_messages_per_author = 64", config.read_text(),
                  flags=re.MULTILINE)
    text = re.sub(r"^max_bytes_per_author = .*$", "max_bytes_per_author = 2097152", text, flags=re.MULTILINE)
    config.write_text(text)
    consensus = load_node_config(config).consensus
    assert (consensus.max_messages_per_author, consensus.max_bytes_per_author) == (64, 2_097_152)
    config.write_text(text.replace("max_messages_per_author = 64", "max_messages_per_author = 3"))
    with pytest.raises(ConfigError, match="consensus.max_messages_per_author: .*at least 16"):
        load_node_config(config)


def test_the_full_storage_check_at_start_can_be_turned_off(config: Path) -> None:
    """[storage] full_check_on_start: on by default (every key read with its checksum); an
    operator of a store of many GB can keep only the table size and footer checks."""
    assert load_node_config(config).storage_full_check is True
    config.write_text(re.sub(r"^full_check_on_start = .*$", "full_check_on_start = false",
                             config.read_text(), flags=re.MULTILINE))
    assert load_node_config(config).storage_full_check is False
    config.write_text(re.sub(r"^full_check_on_start = .*$", 'full_check_on_start = "no"',
                             config.read_text(), flags=re.MULTILINE))
    with pytest.raises(ConfigError, match="storage.full_check_on_start: must be true or false"):
        load_node_config(config)
