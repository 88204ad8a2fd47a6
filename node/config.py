"""The node's configuration: `NodeConfig`, and the node's own files, `node.toml` and `genesis.json`.

`NodeConfig` holds what the store, chain, pool and RPC of one node are built with (the
composition root, `node.node`, builds a whole node from a `node.node.NodeSetup`). The
client-facing budgets (body, batch, JSON shape, eth_call/eth_estimateGas gas and time,
eth_getLogs filter sizes) sit together below with the geth and Besu settings they
correspond to; node.toml sets them in its `[limits]` table.

The files are the node's: it reads them here (`load_node_config`, `load_genesis`);
`network init` writes them (`network.config`, `network.genesis`). Errors are
`ConfigError`, naming the file and the field.

`node.toml`
-----------

`network init` writes one per node; `load_node_config` reads and validates it, and every
error names the file and the field (`/…/node.toml: rpc.port: …`). The format:

    name = "hospital-a"                 # the node's name (a DNS label)
    org = "hospital-a"                  # its organisation (a DNS label)
    kind = "hospital"                   # hospital | pharmacy | regulator (the org's kind)
    role = "validator"                  # validator | observer
    address = "0x…"                     # the node's identity: address of its secp256k1 key
    data_dir = "/…/nodes/hospital-a/data"
    genesis = "/…/genesis.json"
    validator_key_file = "/…/nodes/hospital-a/keys/validator.key"   # 0600, hex

    [rpc]                               # JSON-RPC, REST, /health
    host = "127.0.0.1"
    port = 8545
    admin = true                        # serve administrative methods (qbft_proposeValidatorVote, …);
                                        # absent or false: they answer -32601

    [limits]                            # client budgets; each optional (defaults: node/config.py)
    max_request_bytes = 5242880         # JSON-RPC body (HTTP 413 beyond)      geth: 5 MB
    max_batch_requests = 1000           # requests in one batch                 geth: BatchRequestLimit 1000
    max_json_depth = 64                 # nesting of arrays/objects in a body   Besu: Jackson 1000
    max_json_values = 100000            # JSON values in a body                 (none)
    rpc_gas_cap = 50000000              # gas of eth_call/eth_estimateGas (0: block limit only)
                                        #                                       geth --rpc.gascap, Besu --rpc-gas-cap
    rpc_evm_timeout = 5.0               # seconds of eth_call/eth_estimateGas (0: none)  geth --rpc.evmtimeout
    max_logs_block_range = 10000        # blocks of one eth_getLogs             Besu --rpc-max-logs-range 5000
    max_logs_results = 10000            # logs of one eth_getLogs
    max_logs_addresses = 1000           # addresses of one eth_getLogs filter   (none)
    max_logs_topics = 1000              # alternatives per topic position       (none)
    max_tx_bytes = 131072               # a raw transaction                     geth txMaxSize 128 KB
    health_max_blocks_behind = 32       # /health 503 "syncing" beyond this     Besu maxBlocksBehind 2

    [p2p]                               # mutual-TLS peer connections
    host = "127.0.0.1"
    port = 30303
    # optional budgets (node/p2p/peers.py P2PBudgets: defaults, geth/Besu/CometBFT), e.g.
    # max_pending_handshakes = 64
    # max_pending_handshakes_per_ip = 16
    # max_connections_per_ip = 32
    # peer_message_rate = 1000.0        # frames a second per peer ...
    # peer_message_burst = 4000         # ... with this burst
    # peer_score_limit = 100.0          # misbehaviour score that disconnects a peer

    [storage]
    full_check_on_start = true          # read every key with checksums at start (false: sizes only)

    [tls]
    cert = "/…/nodes/hospital-a/tls.pem"        # issued by the org's CA, binds `address`
    key = "/…/nodes/hospital-a/keys/tls.key"    # 0600
    ca_bundle = "/…/ca-bundle.pem"              # every org CA of the consortium

    [consensus]                         # seconds
    block_period = 1.0                  # least time between two blocks
    empty_block_period = 10.0           # an empty block after this much idle time (0: never)
    round_timeout = 2.0                 # first QBFT round timeout; doubles per round ...
    max_round_timeout = 30.0            # ... up to this
    # max_messages_per_author = 256     # consensus messages one validator may have held
    # max_bytes_per_author = 16777216   # ... and their bytes (per height; future heights apart)

    [[peers]]                           # one per other node; also the p2p allowlist
    name = "hospital-b"
    address = "0x…"
    host = "127.0.0.1"
    port = 30304
    org = "hospital-b"                  # optional: its organisation (its certificate's CA)
    role = "validator"                  # optional: validator | observer

A peer's `role` decides how long it is allowed: a validator only while it is in the
validator set (a validator removed by vote is refused), an observer while it is listed.
Without `role` (files written before it), a genesis validator counts as a validator and
anyone else as an observer.

Paths are absolute as generated; a relative path is taken relative to the directory of
the file, and `~` is expanded. Observers have a key too: it is their identity on the p2p
layer (their certificate binds its address), they never seal blocks. Unknown keys are
errors, so a misspelt setting never goes silently unused.

`genesis.json`
--------------

The file holds exactly the fields of `GenesisConfig` (so `GenesisConfig.decode` reads it
too), pretty-printed:

    {"chain_id": 2024,
     "validators": ["0x…", …],                       # the org nodes' addresses
     "enrolments": [{"address": "0x…", "org": "hospital-a", "role": "prescriber"}, …],
     "gas_limit": 30000000, "timestamp": 1700000000,
     "balances": [["0x…", 0], …],
     "orgs": [["hospital-a", "hospital"], …],        # optional: name, kind
     "validator_orgs": [["0x…", "hospital-a"], …]}    # optional: each validator's org

`validator_orgs` binds each genesis validator to the organisation whose CA must have
issued its TLS certificate (`node.genesis` says why it lives here and not in the
genesis hash); `network init` writes it for every validator, and `load_genesis` refuses
a binding to an address that is not a validator or to an organisation the genesis does
not name.

Every node of a network reads the same file; its genesis block hash is in network.json.
With development keys the enrolments are the accounts of INTERFACES.md; without them the
genesis enrols only the org admins given (`admins`), and everything else is enrolled
through governance.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from node.consensus.qbft import QbftConfig
from node.genesis import Enrolment, GenesisConfig
from node.txpool.pool import PoolLimits
from rxledger.core.crypto import SECP256K1_N, private_key_to_address
from rxledger.core.errors import NodeError

DEFAULT_DEV_DATA_DIR = Path(".rxledger/dev")
DEFAULT_RPC_PORT = 8545
MAX_REQUEST_BYTES = 5 * 1024 * 1024  # as geth's HTTP server
MAX_BATCH_REQUESTS = 1000  # as geth's BatchRequestLimit
# JSON nesting of a request body: a JSON-RPC request needs fewer than 10 levels (batch,
# request, params, filter, topics, ...). geth: Go's encoding/json limit of 10,000; Besu:
# Jackson's StreamReadConstraints default of 1,000. Deeper input is refused before any
# recursive parse (see node.rpc.decode).
MAX_JSON_DEPTH = 64
# JSON values (array elements, object members, the root) of a request body: bounds the
# Python objects one body becomes (a 5 MB body of `[0,0,…]` is 2.5 million). A full batch
# of 1,000 transactions is ~6,000 values. geth and Besu bound only the body size.
MAX_JSON_VALUES = 100_000
RPC_GAS_CAP = 50_000_000  # gas of one eth_call / eth_estimateGas: geth --rpc.gascap (RPCGasCap), Besu --rpc-gas-cap
RPC_EVM_TIMEOUT = 5.0  # seconds of one eth_call / eth_estimateGas: geth --rpc.evmtimeout (RPCEVMTimeout)
# eth_getLogs: geth and Besu set no limit on a filter's addresses or topics; each is a
# bloom test per block of the range and a set lookup per log, so 1,000 (ten times what
# an indexer asks for at once) keeps one filter over 10,000 blocks within a few seconds.
MAX_LOGS_ADDRESSES = 1000
MAX_LOGS_TOPICS = 1000  # alternatives per topic position
# /health says "syncing" (HTTP 503) while peers report a head this many blocks ahead of
# ours. Besu's readiness check: maxBlocksBehind, default 2; geth has no health endpoint.
# Larger here: with one block a second a node a few blocks behind is normal under load.
HEALTH_MAX_BLOCKS_BEHIND = 32


@dataclass(frozen=True)
class NodeConfig:
    data_dir: Path | None  # None: in-memory store (tests only)
    rpc_host: str = "127.0.0.1"
    rpc_port: int = DEFAULT_RPC_PORT
    # Empty blocks are made every `empty_block_period` seconds while idle (0: never).
    empty_block_period: float = 0.0
    # At most one block per `min_block_interval` (runtime clock, not header timestamps).
    min_block_interval: float = 0.0
    # Transactions arriving within `gather_window` of the last block gather into the next
    # one (see node.runtime.Gathering; 0: a block as soon as transactions wait).
    gather_window: float = 0.02
    # -- client budgets (node.toml [limits]) --
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_batch_requests: int = MAX_BATCH_REQUESTS
    max_json_depth: int = MAX_JSON_DEPTH
    max_json_values: int = MAX_JSON_VALUES
    rpc_gas_cap: int = RPC_GAS_CAP  # 0: no cap beyond the block gas limit
    rpc_evm_timeout: float = RPC_EVM_TIMEOUT  # 0: no time limit
    max_logs_block_range: int = 10_000
    max_logs_results: int = 10_000
    max_logs_addresses: int = MAX_LOGS_ADDRESSES
    max_logs_topics: int = MAX_LOGS_TOPICS
    health_max_blocks_behind: int = HEALTH_MAX_BLOCKS_BEHIND
    # Administrative JSON-RPC methods (qbft_proposeValidatorVote, ...): node.toml
    # `[rpc] admin = true` (network init writes it; the dev chain sets it).
    rpc_admin: bool = False
    pool: PoolLimits = field(default_factory=PoolLimits)
    node_name: str = "dev"
    # Read every key of the store with checksums verified at start (0.4-4 s per 470 MB
    # measured; False: table sizes and footers only). geth and Besu check nothing at start.
    storage_full_check: bool = True
    dev: bool = False  # the one-validator development chain


class ConfigError(NodeError):
    """A node's configuration file (node.toml, genesis.json, a key file) is missing,
    unreadable or has an invalid field; the message names the file and the field."""


# -- node.toml ------------------------------------------------------------------------------

KINDS = ("hospital", "pharmacy", "regulator")
ROLES = ("validator", "observer")
# Names become directory names, compose service names and host names: DNS labels.
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def is_valid_name(name: str) -> bool:
    """Whether `name` may name a node or an organisation (a lowercase DNS label)."""
    return bool(_NAME.match(name))


@dataclass(frozen=True)
class PeerConfig:
    """Another node this node connects to, and accepts connections from."""

    name: str
    address: bytes
    host: str
    port: int
    org: str | None = None  # its organisation: its certificate must come from that org's CA
    role: str | None = None  # validator | observer (None: as genesis says)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ConsensusSettings:
    """QBFT timing, in seconds, and what one validator's messages may hold in memory
    (`QbftConfig`'s budgets; Besu: `futureMessagesLimit` 1,000 shared by all)."""

    block_period: float = 1.0
    empty_block_period: float = 10.0
    round_timeout: float = 2.0
    max_round_timeout: float = 30.0
    max_messages_per_author: int = QbftConfig().max_messages_per_author
    max_bytes_per_author: int = QbftConfig().max_bytes_per_author


# -- client budgets: node.toml [limits] (helper "rpc", issue 11) ----------------------------

@dataclass(frozen=True)
class LimitsSettings:
    """The `[limits]` table: client budgets, named as NodeConfig's fields (max_tx_bytes
    is the txpool's max_tx_size). Defaults are NodeConfig's."""

    max_request_bytes: int = NodeConfig.max_request_bytes
    max_batch_requests: int = NodeConfig.max_batch_requests
    max_json_depth: int = NodeConfig.max_json_depth
    max_json_values: int = NodeConfig.max_json_values
    rpc_gas_cap: int = NodeConfig.rpc_gas_cap
    rpc_evm_timeout: float = NodeConfig.rpc_evm_timeout
    max_logs_block_range: int = NodeConfig.max_logs_block_range
    max_logs_results: int = NodeConfig.max_logs_results
    max_logs_addresses: int = NodeConfig.max_logs_addresses
    max_logs_topics: int = NodeConfig.max_logs_topics
    max_tx_bytes: int = PoolLimits.max_tx_size
    health_max_blocks_behind: int = NodeConfig.health_max_blocks_behind

    def node_config_fields(self) -> dict[str, Any]:
        """Keyword arguments for NodeConfig (the transaction size goes into its pool limits)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "max_tx_bytes"}
        out["pool"] = replace(PoolLimits(), max_tx_size=self.max_tx_bytes)
        return out


# Integers that may be 0 (no limit beyond others); the rest must be at least 1.
_ZERO_ALLOWED = frozenset({"rpc_gas_cap"})


def _read_limits(table: _Reader) -> LimitsSettings:
    values: dict[str, Any] = {}
    for f in fields(LimitsSettings):
        default = getattr(LimitsSettings, f.name)
        if isinstance(default, float):
            values[f.name] = table.seconds(f.name, default, positive=False)
        else:
            values[f.name] = table.count(f.name, default, minimum=0 if f.name in _ZERO_ALLOWED else 1)
    table.finish()
    return LimitsSettings(**values)


# -- end of [limits] ------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeFileConfig:
    """One node's `node.toml`, validated; paths absolute."""

    name: str
    org: str
    kind: str
    role: str
    address: bytes
    data_dir: Path
    genesis: Path
    validator_key_file: Path
    rpc_host: str
    rpc_port: int
    p2p_host: str
    p2p_port: int
    tls_cert: Path
    tls_key: Path
    ca_bundle: Path
    peers: tuple[PeerConfig, ...] = ()
    consensus: ConsensusSettings = field(default_factory=ConsensusSettings)
    rpc_admin: bool = False  # [rpc] admin: serve administrative JSON-RPC methods
    storage_full_check: bool = True  # [storage] full_check_on_start (NodeConfig.storage_full_check)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    source: Path | None = None  # the file this was read from
    # -- p2p budgets (helper p2p): overrides of node.p2p.peers.P2PBudgets from [p2p] -----
    p2p_budgets: tuple[tuple[str, int | float], ...] = ()

    @property
    def is_validator(self) -> bool:
        return self.role == "validator"

    def load_validator_key(self) -> bytes:
        """The node's 32-byte secp256k1 key; raises ConfigError naming the file."""
        return load_validator_key(self.validator_key_file)


class _Reader:
    """Typed access to one TOML table, with errors naming `file: field`."""

    def __init__(self, file: Path, data: Mapping[str, Any], prefix: str = "") -> None:
        self.file = file
        self.data = data
        self.prefix = prefix
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.prefix}{key}: {problem}")

    def raw(self, key: str, *, required: bool = True) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self.fail(key, "missing")
            return None
        return self.data[key]

    def string(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.string(key)
        if value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def name(self, key: str) -> str:
        value = self.string(key)
        if not is_valid_name(value):
            raise self.fail(key, f"{value!r} is not a valid name (lowercase letters, digits and '-', "
                                 "starting and ending with a letter or digit, at most 63 characters)")
        return value

    def address(self, key: str) -> bytes:
        value = self.string(key)
        if not _ADDRESS.match(value):
            raise self.fail(key, f"must be a 20-byte hex address 0x…, got {value!r}")
        return bytes.fromhex(value[2:])

    def port(self, key: str) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise self.fail(key, f"must be an integer between 1 and 65535, got {value!r}")
        return value

    def host(self, key: str) -> str:
        value = self.string(key)
        if any(c.isspace() for c in value) or "/" in value:
            raise self.fail(key, f"must be a host name or IP address, got {value!r}")
        return value

    def path(self, key: str) -> Path:
        value = Path(self.string(key)).expanduser()
        return value if value.is_absolute() else (self.file.parent / value).resolve()

    def seconds(self, key: str, default: float, *, positive: bool) -> float:
        value = self.raw(key, required=False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise self.fail(key, f"must be a number of seconds, got {value!r}")
        if value < 0 or (positive and value == 0):
            raise self.fail(key, f"must be {'greater than' if positive else 'at least'} 0, got {value!r}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, required=False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def count(self, key: str, default: int, *, minimum: int) -> int:
        value = self.raw(key, required=False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be an integer of at least {minimum}, got {value!r}")
        return value

    def table(self, key: str, *, required: bool = True) -> _Reader:
        value = self.raw(key, required=required)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table [{self.prefix}{key}]")
        return _Reader(self.file, value, f"{self.prefix}{key}.")

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown setting" + (
                f" (also unknown: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""))


def load_validator_key(path: Path) -> bytes:
    """Read a validator key file (hex, with or without 0x; mode 0600). Raises ConfigError."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the validator key {path}: {exc.strerror or exc}") from exc
    text = text[2:] if text.lower().startswith("0x") else text
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32 or not 0 < int.from_bytes(key, "big") < SECP256K1_N:
        raise ConfigError(f"{path}: not a secp256k1 private key (expected 64 hex digits)")
    return key


def _check_private_file(reader: _Reader, key: str, path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise reader.fail(key, f"cannot read {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise reader.fail(key, f"{path} is accessible to other users (mode {stat.S_IMODE(mode):04o}); "
                               f"run: chmod 600 {path}")


def _check_file(reader: _Reader, key: str, path: Path) -> None:
    if not path.is_file():
        raise reader.fail(key, f"{path} does not exist or is not a file")


def load_node_config(path: str | os.PathLike[str], *, check_files: bool = True) -> NodeFileConfig:
    """Read and validate a node.toml.

    With `check_files` (the default, what a starting node wants) the genesis, TLS and CA
    files must exist, the key files must be private (no group/other access), and the
    validator key must be the key of `address`. Raises ConfigError naming file and field.
    """
    file = Path(path).expanduser().absolute()
    try:
        with open(file, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"node config {file} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read node config {file}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc

    top = _Reader(file, data)
    name = top.name("name")
    org = top.name("org")
    kind = top.choice("kind", KINDS)
    role = top.choice("role", ROLES)
    address = top.address("address")
    data_dir = top.path("data_dir")
    genesis = top.path("genesis")
    key_file = top.path("validator_key_file")

    rpc = top.table("rpc")
    rpc_host, rpc_port = rpc.host("host"), rpc.port("port")
    rpc_admin = rpc.flag("admin", False)
    rpc.finish()
    storage = top.table("storage", required=False)
    storage_full_check = storage.flag("full_check_on_start", True)
    storage.finish()
    limits = _read_limits(top.table("limits", required=False))
    p2p = top.table("p2p")
    p2p_host, p2p_port = p2p.host("host"), p2p.port("port")
    p2p_budgets = _p2p_budgets(p2p)
    p2p.finish()
    tls = top.table("tls")
    tls_cert, tls_key, ca_bundle = tls.path("cert"), tls.path("key"), tls.path("ca_bundle")

    cons = top.table("consensus", required=False)
    consensus = ConsensusSettings(
        block_period=cons.seconds("block_period", ConsensusSettings.block_period, positive=False),
        empty_block_period=cons.seconds("empty_block_period", ConsensusSettings.empty_block_period,
                                        positive=False),
        round_timeout=cons.seconds("round_timeout", ConsensusSettings.round_timeout, positive=True),
        max_round_timeout=cons.seconds("max_round_timeout", ConsensusSettings.max_round_timeout,
                                       positive=True),
        max_messages_per_author=cons.count("max_messages_per_author",
                                           ConsensusSettings.max_messages_per_author, minimum=16),
        max_bytes_per_author=cons.count("max_bytes_per_author", ConsensusSettings.max_bytes_per_author,
                                        minimum=1024 * 1024),
    )
    if consensus.max_round_timeout < consensus.round_timeout:
        raise cons.fail("max_round_timeout", f"must be at least round_timeout "
                                             f"({consensus.round_timeout}), got {consensus.max_round_timeout}")
    cons.finish()

    raw_peers = top.raw("peers", required=False)
    if raw_peers is None:
        raw_peers = []
    if not isinstance(raw_peers, list):
        raise top.fail("peers", "must be an array of tables [[peers]]")
    peers: list[PeerConfig] = []
    for i, item in enumerate(raw_peers):
        if not isinstance(item, Mapping):
            raise top.fail(f"peers[{i}]", "must be a table with name, address, host, port")
        entry = _Reader(file, item, f"peers[{i}].")
        peer = PeerConfig(entry.name("name"), entry.address("address"), entry.host("host"),
                          entry.port("port"),
                          org=entry.name("org") if "org" in item else None,
                          role=entry.choice("role", ROLES) if "role" in item else None)
        entry.finish()
        if peer.name == name:
            raise entry.fail("name", f"{peer.name!r} is this node itself")
        if peer.address == address:
            raise entry.fail("address", f"0x{peer.address.hex()} is this node's own address")
        for other in peers:
            if other.name == peer.name:
                raise entry.fail("name", f"{peer.name!r} is listed twice")
            if other.address == peer.address:
                raise entry.fail("address", f"0x{peer.address.hex()} is also peer {other.name!r}")
        peers.append(peer)
    top.finish()

    if check_files:
        _check_file(top, "genesis", genesis)
        _check_file(tls, "cert", tls_cert)
        _check_file(tls, "ca_bundle", ca_bundle)
        _check_private_file(tls, "key", tls_key)
        _check_private_file(top, "validator_key_file", key_file)
        try:
            key = load_validator_key(key_file)
        except ConfigError as exc:
            raise top.fail("validator_key_file", str(exc)) from None
        actual = private_key_to_address(key)
        if actual != address:
            raise top.fail("validator_key_file", f"{key_file} holds the key of 0x{actual.hex()}, "
                                                 f"not of address = 0x{address.hex()}")
    tls.finish()

    return NodeFileConfig(
        name=name, org=org, kind=kind, role=role, address=address, data_dir=data_dir,
        genesis=genesis, validator_key_file=key_file, rpc_host=rpc_host, rpc_port=rpc_port,
        p2p_host=p2p_host, p2p_port=p2p_port, tls_cert=tls_cert, tls_key=tls_key,
        ca_bundle=ca_bundle, peers=tuple(peers), consensus=consensus, rpc_admin=rpc_admin,
        storage_full_check=storage_full_check,
        limits=limits, source=file, p2p_budgets=p2p_budgets,
    )


# -- p2p budgets (helper p2p) ---------------------------------------------------------------

def _p2p_budgets(p2p: _Reader) -> tuple[tuple[str, int | float], ...]:
    """The budgets set in [p2p] (every other key of the table stays an unknown setting)."""
    from node.p2p.peers import P2PBudgets

    out: list[tuple[str, int | float]] = []
    for name, default in P2PBudgets.defaults().items():
        value = p2p.raw(name, required=False)
        if value is None:
            continue
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise p2p.fail(name, f"must be a whole number of at least 1, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise p2p.fail(name, f"must be a number greater than 0, got {value!r}")
        out.append((name, type(default)(value)))
    return tuple(out)


# -- network.json ---------------------------------------------------------------------------

def network_json(
    *,
    chain_id: int,
    genesis_hash: bytes,
    nodes: Iterable[Mapping[str, Any]],
    accounts: Iterable[tuple[str | None, str | None, bytes, bytes | None]],
) -> dict[str, Any]:
    """The object of a `network.json` (INTERFACES.md): `network init` writes one for a
    consortium (adding orgs, genesis and CA bundle), a dev node one for its chain (its trust
    file). `nodes` are objects whose `validator` and `address` are bytes (or None), written
    as checksummed addresses; `accounts` are (org, role, address, private key or None)."""
    def checksum(value: Any) -> Any:
        return to_checksum_address(value) if isinstance(value, bytes) else value

    out_accounts = []
    for org, role, address, key in accounts:
        entry: dict[str, Any] = {"org": org, "role": role, "address": to_checksum_address(address)}
        if key is not None:
            entry["privateKey"] = "0x" + key.hex()
        out_accounts.append(entry)
    return {
        "chainId": chain_id,
        "genesisHash": "0x" + genesis_hash.hex(),
        "nodes": [{k: checksum(v) if k in ("validator", "address") else v for k, v in n.items()} for n in nodes],
        "accounts": out_accounts,
    }


# -- genesis.json ---------------------------------------------------------------------------

_FIELDS = ("chain_id", "validators", "enrolments", "gas_limit", "timestamp", "balances")
_OPTIONAL_FIELDS = ("orgs", "validator_orgs")


def _fail(path: Path, field: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: {field}: {problem}")


def _address(path: Path, field: str, value: Any) -> bytes:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise _fail(path, field, f"must be a 20-byte hex address 0x…, got {value!r}")
    return bytes.fromhex(value[2:])


def _int(path: Path, field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(path, field, f"must be an integer ≥ {minimum}, got {value!r}")
    return value


def _optional_str(path: Path, field: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(path, field, f"must be a non-empty string or null, got {value!r}")
    return value


def load_genesis(path: str | os.PathLike[str]) -> GenesisConfig:
    """Read and validate genesis.json. Raises ConfigError naming the file and the field."""
    file = Path(path).expanduser().absolute()
    try:
        raw = json.loads(file.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"genesis file {file} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read genesis file {file}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{file}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: must hold a JSON object")
    for key in _FIELDS:
        if key not in raw:
            raise _fail(file, key, "missing")
    unknown = sorted(set(raw) - set(_FIELDS) - set(_OPTIONAL_FIELDS))
    if unknown:
        raise _fail(file, unknown[0], "unknown field")

    chain_id = _int(file, "chain_id", raw["chain_id"], 1)
    if not isinstance(raw["validators"], list) or not raw["validators"]:
        raise _fail(file, "validators", "must be a non-empty list of addresses")
    validators = tuple(_address(file, f"validators[{i}]", v) for i, v in enumerate(raw["validators"]))
    if len(set(validators)) != len(validators):
        raise _fail(file, "validators", "lists an address twice")

    if not isinstance(raw["enrolments"], list):
        raise _fail(file, "enrolments", "must be a list")
    enrolments: list[Enrolment] = []
    for i, item in enumerate(raw["enrolments"]):
        where = f"enrolments[{i}]"
        if not isinstance(item, dict) or set(item) != {"address", "org", "role"}:
            raise _fail(file, where, "must be an object with exactly address, org, role")
        address = _address(file, where + ".address", item["address"])
        if any(e.address == address for e in enrolments):
            raise _fail(file, where + ".address", f"{item['address']} is enrolled twice")
        enrolments.append(Enrolment(address, _optional_str(file, where + ".org", item["org"]),
                                    _optional_str(file, where + ".role", item["role"])))

    if not isinstance(raw["balances"], list):
        raise _fail(file, "balances", "must be a list of [address, amount]")
    balances: list[tuple[bytes, int]] = []
    for i, item in enumerate(raw["balances"]):
        if not isinstance(item, list) or len(item) != 2:
            raise _fail(file, f"balances[{i}]", "must be [address, amount]")
        balances.append((_address(file, f"balances[{i}][0]", item[0]),
                         _int(file, f"balances[{i}][1]", item[1], 0)))

    orgs: list[tuple[str, str]] = []
    for i, item in enumerate(raw.get("orgs", [])):
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
                and item[1] in KINDS):
            raise _fail(file, f"orgs[{i}]", f"must be [name, kind] with kind one of {', '.join(KINDS)}")
        orgs.append((item[0], item[1]))

    raw_bindings = raw.get("validator_orgs", [])
    if not isinstance(raw_bindings, list):
        raise _fail(file, "validator_orgs", "must be a list of [validator address, organisation]")
    named = {name for name, _ in orgs} | {e.org for e in enrolments if e.org}
    bindings: dict[bytes, str] = {}
    for i, item in enumerate(raw_bindings):
        where = f"validator_orgs[{i}]"
        if not isinstance(item, list) or len(item) != 2:
            raise _fail(file, where, "must be [validator address, organisation]")
        address, org = _address(file, where + "[0]", item[0]), item[1]
        if address not in validators:
            raise _fail(file, where + "[0]", f"{item[0]} is not one of the validators")
        if address in bindings:
            raise _fail(file, where + "[0]", f"{item[0]} is bound twice")
        if not isinstance(org, str) or org not in named:
            raise _fail(file, where + "[1]", f"must name an organisation of the genesis "
                                             f"({', '.join(sorted(named)) or 'none named'}), got {org!r}")
        bindings[address] = org
    return GenesisConfig(
        chain_id=chain_id,
        validators=validators,
        enrolments=tuple(enrolments),
        orgs=tuple(orgs),
        gas_limit=_int(file, "gas_limit", raw["gas_limit"], 5000),
        timestamp=_int(file, "timestamp", raw["timestamp"], 0),
        balances=tuple(balances),
        validator_orgs=tuple((a, bindings[a]) for a in validators if a in bindings),
    )
