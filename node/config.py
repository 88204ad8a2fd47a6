"""One configuration dataclass from which the node's parts are built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from node.txpool.pool import PoolLimits

DEFAULT_DEV_DATA_DIR = Path(".rxledger/dev")
DEFAULT_RPC_PORT = 8545
MAX_REQUEST_BYTES = 5 * 1024 * 1024  # as geth's HTTP server
MAX_BATCH_REQUESTS = 1000  # as geth's BatchRequestLimit


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
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_batch_requests: int = MAX_BATCH_REQUESTS
    max_logs_block_range: int = 10_000
    max_logs_results: int = 10_000
    pool: PoolLimits = field(default_factory=PoolLimits)
    node_name: str = "dev"
    dev: bool = False  # the one-validator development chain
