"""One configuration dataclass from which the node's parts are built.

The client-facing budgets (body, batch, JSON shape, eth_call/eth_estimateGas gas and time,
eth_getLogs filter sizes) sit together below with the geth and Besu settings they
correspond to; node.toml sets them in its `[limits]` table (network/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from node.txpool.pool import PoolLimits

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
