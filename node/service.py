"""A running node: store, chain, txpool and block producer wired from one config.

`NodeService` is what the RPC layer talks to. The dev chain's producer (`DevProducer`)
is a thread that makes a block as soon as transactions wait and seals it with the one
dev validator key; the block is final when written. The QBFT runtime replaces the
producer on consortium networks and keeps the same `NodeService` surface.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from node.chain import Chain
from node.config import NodeConfig
from node.crypto import encode_signature, private_key_to_address, sign_hash
from node.errors import NodeError, TxPoolRefused
from node.execution.chaincode import ChaincodeHost
from node.genesis import GenesisConfig
from node.storage import open_store
from node.storage.base import KeyValueStore
from node.txpool.pool import TxPool
from node.types.blocks import Block
from node.types.headers import Vote, seal_hash
from node.types.receipts import Receipt
from node.types.transactions import SignedTransaction, decode_transaction

log = logging.getLogger("rxledger.node")


class NodeService:
    """The node's parts, and the operations RPC exposes over them."""

    def __init__(
        self,
        config: NodeConfig,
        genesis: GenesisConfig,
        *,
        validator_key: bytes | None = None,
        chaincode: ChaincodeHost | None = None,
        store: KeyValueStore | None = None,
    ) -> None:
        self.config = config
        self.store = store if store is not None else open_store(
            str(config.data_dir / "chaindata") if config.data_dir else None
        )
        self.chain = Chain(self.store, genesis, chaincode)
        self.pool = TxPool(
            chain_id=genesis.chain_id,
            block_gas_limit=self.chain.head.gas_limit,
            state_nonce=self.chain.state_nonce,
            is_enrolled=self.chain.is_enrolled,
            limits=config.pool,
        )
        self.chain.add_listener(self._on_block)
        self.validator_key = validator_key
        self.validator = private_key_to_address(validator_key) if validator_key else None
        self.pending_votes: dict[bytes, bool] = {}
        self._new_block = threading.Condition()
        self.producer: DevProducer | None = None

    # -- transactions ----------------------------------------------------------------------
    def submit_raw_transaction(self, raw: bytes) -> bytes:
        """Decode (recovering the sender once), admit to the pool; returns the hash."""
        if len(raw) > self.config.pool.max_tx_size:
            raise TxPoolRefused(
                f"oversized transaction: {len(raw)} bytes, the limit is {self.config.pool.max_tx_size}"
            )
        stx = decode_transaction(raw)
        if self.chain.locate_transaction(stx.hash) is not None:
            raise TxPoolRefused(f"already known: transaction 0x{stx.hash.hex()} is in a final block")
        return self.pool.add(stx)

    def pending_nonce(self, address: bytes) -> int:
        """The next nonce for `address` counting its waiting transactions."""
        return self.pool.next_nonce(address)

    # -- votes (QBFT validator changes) ----------------------------------------------------
    def propose_vote(self, validator: bytes, add: bool) -> None:
        if self.producer is not None:
            current = self.chain.validators_at(self.chain.head.number + 1)
            if add and validator not in current:
                raise NodeError(
                    "the dev chain has one validator and cannot seal with a second one it does "
                    "not run; use `rxledger up` for a network whose validators can change"
                )
            if not add and validator in current and len(current) == 1:
                raise NodeError("refusing to remove the only validator of the dev chain")
        self.pending_votes[validator] = add

    def take_vote(self) -> Vote | None:
        current = self.chain.validators_at(self.chain.head.number + 1)
        for validator, add in list(self.pending_votes.items()):
            if add == (validator in current):
                del self.pending_votes[validator]  # already in effect
                continue
            return Vote(validator, add)
        return None

    # -- blocks ----------------------------------------------------------------------------
    def _on_block(self, block: Block, receipts: list[Receipt]) -> None:
        self.pool.remove(list(block.transactions))
        self.pool.prune()
        with self._new_block:
            self._new_block.notify_all()

    def wait_for_block(self, after: int, timeout: float) -> bool:
        """Wait until the head passes block number `after`."""
        deadline = time.monotonic() + timeout
        with self._new_block:
            while self.chain.head.number <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._new_block.wait(left)
        return True

    def start_dev_producer(self) -> None:
        if self.validator_key is None:
            raise NodeError("a dev producer needs the validator key")
        self.producer = DevProducer(self, self.config)
        self.producer.start()

    def close(self) -> None:
        if self.producer is not None:
            self.producer.stop()
        self.store.close()


class DevProducer:
    """The one-validator dev chain: a block as soon as transactions wait, final when written."""

    def __init__(self, node: NodeService, config: NodeConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.config = config
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dev-producer", daemon=True)
        self.last_block_at = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.node.pool.wake()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        node = self.node
        wait = self.config.empty_block_period or 1.0
        while not self._stop.is_set():
            node.pool.wait_for_transactions(timeout=wait)
            if self._stop.is_set():
                return
            txs = node.pool.pending(max_gas=node.chain.head.gas_limit)
            idle_for = time.monotonic() - self.last_block_at
            if not txs and not (self.config.empty_block_period and idle_for >= self.config.empty_block_period):
                if len(node.pool):
                    self._stop.wait(0.05)  # only non-executable (future-nonce) transactions
                continue
            gap = self.config.min_block_interval - idle_for
            if gap > 0:
                self._stop.wait(gap)
            try:
                self.produce(node.pool.pending(max_gas=node.chain.head.gas_limit))
            except Exception:  # a broken invariant: stop loudly rather than write bad blocks
                log.exception("dev producer failed; no further blocks will be made")
                return

    def produce(self, txs: list[SignedTransaction]) -> Block:
        node = self.node
        assert node.validator_key is not None and node.validator is not None
        block, execution = node.chain.build_block(
            txs, timestamp=int(self.clock()), proposer=node.validator, vote=node.take_vote()
        )
        v, r, s = sign_hash(seal_hash(block.header), node.validator_key)
        block = node.chain.seal(block, [encode_signature(v, r, s)])
        node.chain.commit_block(block, execution)
        if execution.skipped:
            node.pool.remove([stx for stx, _ in execution.skipped])
            for stx, reason in execution.skipped:
                log.warning("dropped transaction 0x%s: %s", stx.hash.hex(), reason)
        self.last_block_at = time.monotonic()
        log.info("block %d final: %d txs, hash 0x%s", block.number, len(block.transactions),
                 block.hash.hex())
        return block
