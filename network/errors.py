"""Errors of the consortium tooling (`network/`), under the node's root `NodeError`.

    NodeError                      (rxledger.core.errors)
    └── NetworkError               anything `network init`, `up`, `down`, `add-node` refuse
        ├── ConfigError            a node.toml, genesis.json or network.json is invalid
        │                          (also a node.config.ConfigError);
        │                          the message names the file and the field
        ├── OrgSpecError           an `--orgs` / `--observers` specification is invalid
        ├── NetworkExists          `network init` would overwrite an existing network
        └── LauncherError          `up` / `down` could not do their job
            ├── AlreadyRunning     pids.json shows live nodes of this network
            └── NodeDied           a node exited while the network was starting

Every message is one or a few lines a person can act on.
"""

from __future__ import annotations

from node.config import ConfigError as NodeConfigError
from rxledger.core.errors import NodeError


class NetworkError(NodeError):
    """Root of the errors of `network/`."""


class ConfigError(NetworkError, NodeConfigError):
    """A configuration file is missing, unreadable or has an invalid field (the node's
    own readers in `node.config` raise its base, `node.config.ConfigError`)."""


class OrgSpecError(NetworkError, ValueError):
    """An organisation or observer specification (`--orgs`, `--observers`) is invalid."""


class NetworkExists(NetworkError):
    """The output directory already holds a network (or other files)."""


class LauncherError(NetworkError):
    """Starting or stopping a local network failed."""


class AlreadyRunning(LauncherError):
    """The network of this directory is already running."""


class NodeDied(LauncherError):
    """A node process exited during start. `name`, `returncode` and `log_tail` say which and why."""

    def __init__(self, name: str, returncode: int | None, log_tail: str, log_path: str) -> None:
        how = f"exited with code {returncode}" if returncode is not None else "exited"
        tail = "\n".join("    " + line for line in log_tail.splitlines()) or "    (its log is empty)"
        super().__init__(f"node {name} {how} during start; last lines of {log_path}:\n{tail}")
        self.name = name
        self.returncode = returncode
        self.log_tail = log_tail
        self.log_path = log_path
