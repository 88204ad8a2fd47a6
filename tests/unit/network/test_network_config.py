"""node.toml: what is written reads back through tomllib; the loader names file and field."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from network_helpers import free_base_port

from network.config import (
    dump_node_config,
    load_node_config,
    load_validator_key,
    node_config_to_dict,
    save_node_config,
)
from network.errors import ConfigError
from network.init import init_network
from network.layout import NetworkInfo


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkInfo:
    return init_network(tmp_path_factory.mktemp("cfg") / "net", base_port=free_base_port(), deploy=False)


# -- writing node.toml (tomli-w and a comment header) --------------------------------------

def test_every_written_node_toml_reads_back_as_its_config(net: NetworkInfo) -> None:
    for node in net.nodes:
        text = node.config.read_text()
        config = load_node_config(node.config)
        assert tomllib.loads(text) == node_config_to_dict(config)
        assert dump_node_config(config) == text
        assert text.startswith(f"# RxLedger node {node.name} (")


def test_node_toml_comment_header_keeps_every_line(net: NetworkInfo) -> None:
    config = load_node_config(net.nodes[0].config)
    text = dump_node_config(config, comment="a comment\n\nthird line ")
    assert text.startswith("# a comment\n#\n# third line\n\nname = ")
    assert tomllib.loads(text) == node_config_to_dict(config)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_node_toml_writes_any_path_string(net: NetworkInfo, value: str) -> None:
    config = load_node_config(net.nodes[0].config)
    path = Path("/x" + value)
    text = dump_node_config(replace(config, data_dir=path, tls_cert=path))
    parsed = tomllib.loads(text)
    assert parsed["data_dir"] == parsed["tls"]["cert"] == str(path)


# -- loading --------------------------------------------------------------------------------

def edit(path: Path, pattern: str, replacement: str, count: int = 1) -> None:
    text = path.read_text()
    new, n = re.subn(pattern, replacement, text, count=count, flags=re.MULTILINE)
    assert n, f"{pattern!r} not found"
    path.write_text(new)


@pytest.fixture
def config(net: NetworkInfo, tmp_path: Path) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(net.nodes[0].config.read_text())
    return path


@pytest.mark.parametrize(("pattern", "replacement", "field", "problem"), [
    (r'^kind = .*$', 'kind = "clinic"', "kind", "must be one of hospital, pharmacy, regulator"),
    (r'^role = .*$', 'role = "leader"', "role", "must be one of validator, observer"),
    (r'^name = .*$', 'name = "Bad Name"', "name", "not a valid name"),
    (r'^org = .*$', "org = 7", "org", "must be a non-empty string"),
    (r'^address = .*$', 'address = "0x1234"', "address", "20-byte hex address"),
    (r'^(\[rpc\]\nhost = .*\n)port = \d+$', r"\1port = 0", "rpc.port", "between 1 and 65535"),
    (r'^(\[p2p\]\nhost = .*\n)port = \d+$', r'\1port = "30303"', "p2p.port", "between 1 and 65535"),
    (r'^host = .*$', 'host = ""', "rpc.host", "non-empty string"),
    (r'^data_dir = .*\n', "", "data_dir", "missing"),
    (r'^\[tls\]\n', "[tls]\nkye = 1\n", "tls.kye", "unknown setting"),
    (r'^round_timeout = .*$', "round_timeout = 0", "consensus.round_timeout", "greater than 0"),
    (r'^block_period = .*$', "block_period = -1.0", "consensus.block_period", "at least 0"),
    (r'^max_round_timeout = .*$', "max_round_timeout = 1.0", "consensus.max_round_timeout",
     "at least round_timeout"),
    (r'^empty_block_period = .*$', "empty_block_period = true", "consensus.empty_block_period",
     "number of seconds"),
    (r'^(\[\[peers\]\]\nname = )"[^"]*"', r'\1"hospital-a"', "peers[0].name", "this node itself"),
    (r'^(\[\[peers\]\]\nname = )"[^"]*"(\naddress = )"[^"]*"', r'\1"x"\2"0x1234"', "peers[0].address",
     "20-byte hex address"),
    (r'^\[\[peers\]\]\n', "[[peers]]\nextra = 1\n", "peers[0].extra", "unknown setting"),
    (r'^validator_key_file = .*$', 'validator_key_file = "/nonexistent/k"', "validator_key_file",
     "cannot read /nonexistent/k"),
    (r'^genesis = .*$', 'genesis = "/nonexistent/genesis.json"', "genesis", "does not exist"),
])
def test_invalid_fields_are_named_with_the_file(config: Path, pattern: str, replacement: str,
                                                field: str, problem: str) -> None:
    edit(config, pattern, replacement)
    with pytest.raises(ConfigError) as info:
        load_node_config(config)
    message = str(info.value)
    assert message.startswith(f"{config}: {field}: "), message
    assert problem in message


def test_a_peer_listed_twice_is_refused(config: Path) -> None:
    text = config.read_text()
    first = text.index("[[peers]]")
    second = text.index("[[peers]]", first + 1)
    config.write_text(text + "\n" + text[first:second])  # the first peer again, as peers[3]
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(config))}: peers\[3\]\.name: .* listed twice"):
        load_node_config(config)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_node_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match=f"{bad}: not valid TOML"):
        load_node_config(bad)


def test_key_files_must_be_private_and_match_the_address(net: NetworkInfo, config: Path,
                                                         tmp_path: Path) -> None:
    cfg = load_node_config(config)
    key = tmp_path / "validator.key"
    key.write_text(cfg.validator_key_file.read_text())
    os.chmod(key, 0o644)
    edit(config, r'^validator_key_file = .*$', f'validator_key_file = "{key}"')
    with pytest.raises(ConfigError, match=r"validator_key_file: .*mode 0644.*chmod 600"):
        load_node_config(config)
    os.chmod(key, 0o600)
    assert load_node_config(config).load_validator_key() == cfg.load_validator_key()
    key.write_text(net.nodes[1].config.parent.joinpath("keys", "validator.key").read_text())
    with pytest.raises(ConfigError, match="validator_key_file: .* holds the key of 0x"):
        load_node_config(config)
    key.write_text("0x" + "00" * 32)
    with pytest.raises(ConfigError, match="not a secp256k1 private key"):
        load_validator_key(key)
    key.write_text("ff" * 32)  # ≥ the curve order
    with pytest.raises(ConfigError, match="not a secp256k1 private key"):
        load_validator_key(key)


def test_check_files_false_reads_the_structure_only(config: Path) -> None:
    edit(config, r'^genesis = .*$', 'genesis = "/nonexistent/genesis.json"')
    assert load_node_config(config, check_files=False).genesis == Path("/nonexistent/genesis.json")


def test_relative_paths_are_relative_to_the_file(net: NetworkInfo, tmp_path: Path) -> None:
    node_dir = net.nodes[0].config.parent
    text = net.nodes[0].config.read_text().replace(str(node_dir) + "/", "")
    (node_dir / "relative.toml").write_text(text)
    cfg = load_node_config(node_dir / "relative.toml")
    assert cfg.validator_key_file == node_dir / "keys" / "validator.key"
    assert cfg.data_dir == node_dir / "data"


def test_save_then_load_is_identity(net: NetworkInfo, tmp_path: Path) -> None:
    cfg = load_node_config(net.nodes[0].config)
    save_node_config(cfg, tmp_path / "copy.toml")
    again = load_node_config(tmp_path / "copy.toml")
    assert again == cfg.__class__(**{**cfg.__dict__, "source": tmp_path / "copy.toml"})


def test_defaults_apply_without_a_consensus_table(config: Path) -> None:
    text = config.read_text()
    start = text.index("[consensus]")
    end = text.index("[[peers]]")
    config.write_text(text[:start] + text[end:])
    cfg = load_node_config(config)
    assert (cfg.consensus.block_period, cfg.consensus.empty_block_period,
            cfg.consensus.round_timeout, cfg.consensus.max_round_timeout) == (1.0, 10.0, 2.0, 30.0)
