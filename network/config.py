"""Writing `node.toml`, the node configuration file `network init` makes for each node.

The format, its reader (`load_node_config`) and its dataclasses are the node's own
(`node.config`): a node reads its file without `network/`. They are re-exported here;
reading through this module raises `network.errors.ConfigError` (a `NetworkError` and a
`node.config.ConfigError`), with the same message naming the file and the field.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import tomli_w

from network.errors import ConfigError
from node import config as _node_config
from node.config import (
    KINDS,
    ROLES,
    ConsensusSettings,
    LimitsSettings,
    NodeFileConfig,
    PeerConfig,
    is_valid_name,
)

__all__ = [
    "KINDS",
    "ROLES",
    "ConsensusSettings",
    "LimitsSettings",
    "NodeFileConfig",
    "PeerConfig",
    "dump_node_config",
    "is_valid_name",
    "load_node_config",
    "load_validator_key",
    "node_config_to_dict",
    "save_node_config",
]


def load_node_config(path: str | os.PathLike[str], *, check_files: bool = True) -> NodeFileConfig:
    """`node.config.load_node_config`, raising `network.errors.ConfigError`."""
    try:
        return _node_config.load_node_config(path, check_files=check_files)
    except _node_config.ConfigError as exc:
        raise ConfigError(str(exc)) from exc


def load_validator_key(path: Path) -> bytes:
    """`node.config.load_validator_key`, raising `network.errors.ConfigError`."""
    try:
        return _node_config.load_validator_key(path)
    except _node_config.ConfigError as exc:
        raise ConfigError(str(exc)) from exc


# -- writing ------------------------------------------------------------------------------

def _hex_address(address: bytes) -> str:
    return "0x" + address.hex()


def node_config_to_dict(config: NodeFileConfig) -> dict[str, Any]:
    """The TOML structure of `config` (inverse of the parser in `load_node_config`)."""
    return {
        "name": config.name,
        "org": config.org,
        "kind": config.kind,
        "role": config.role,
        "address": _hex_address(config.address),
        "data_dir": str(config.data_dir),
        "genesis": str(config.genesis),
        "validator_key_file": str(config.validator_key_file),
        "rpc": {"host": config.rpc_host, "port": config.rpc_port, "admin": config.rpc_admin},
        "storage": {"full_check_on_start": config.storage_full_check},
        "p2p": {"host": config.p2p_host, "port": config.p2p_port, **dict(config.p2p_budgets)},
        "tls": {"cert": str(config.tls_cert), "key": str(config.tls_key),
                "ca_bundle": str(config.ca_bundle)},
        "consensus": {
            "block_period": float(config.consensus.block_period),
            "empty_block_period": float(config.consensus.empty_block_period),
            "round_timeout": float(config.consensus.round_timeout),
            "max_round_timeout": float(config.consensus.max_round_timeout),
            "max_messages_per_author": config.consensus.max_messages_per_author,
            "max_bytes_per_author": config.consensus.max_bytes_per_author,
        },
        "limits": {f.name: getattr(config.limits, f.name) for f in fields(LimitsSettings)},
        "peers": [{"name": p.name, "address": _hex_address(p.address), "host": p.host, "port": p.port,
                   **({"org": p.org} if p.org else {}), **({"role": p.role} if p.role else {})}
                  for p in config.peers],
    }


def dump_node_config(config: NodeFileConfig, comment: str = "") -> str:
    """`config` as node.toml text (`comment` becomes the leading # lines)."""
    header = comment or (
        f"RxLedger node {config.name} ({config.role}) of {config.org}.\n"
        "Start it with: rxledger node start --config <this file>\n"
        "Written by `rxledger network init`; see docs/DEPLOY.md for every field."
    )
    return _comment(header) + tomli_w.dumps(node_config_to_dict(config))


def _comment(text: str) -> str:
    """`text` as TOML comment lines and a blank line (tomli-w writes no comments)."""
    lines = [("# " + line).rstrip() for line in text.splitlines()]
    return "".join(line + "\n" for line in lines) + "\n" if lines else ""


def save_node_config(config: NodeFileConfig, path: Path, comment: str = "") -> None:
    """Write `config` to `path` (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump_node_config(config, comment))
    os.replace(tmp, path)
