"""A running node: store, chain, txpool and the consensus runtime wired from one config.

`NodeService` is the node's one face for the layers above it: the JSON-RPC methods
(`node.rpc`), and the coming REST API and explorer, read blocks, transactions, receipts,
state and logs, run calls and estimates, submit transactions and ask the node's status
through its public methods only, never through the chain, executor, store or pool
behind it. Its answers are the core types (`rxledger.core.types`) and the small records
below; formatting them for a wire is the caller's business (`rxledger.core.wire`).

Blocks are made by the QBFT state machine
driven by `node.runtime.ConsensusRuntime`; the dev chain runs it with one validator (the
dev validator key) and no peers, so a block is proposed as soon as transactions wait and
is final when written, by the same code path as a consortium network.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_bloom.bloom import BloomFilter

from node.chain import Chain, ChaincodeFactory, TxLocation
from node.config import NodeConfig
from node.consensus.qbft import QbftConfig
from node.execution.chaincode import ChaincodeHost, StaleChaincodeState
from node.execution.executor import BlockEnv, CallTimeout
from node.genesis import GenesisConfig
from node.p2p.allowlist import governance_org_ids, org_id
from node.runtime import ConsensusRuntime, Gathering, Transport
from node.storage import open_store
from node.storage.base import KeyValueStore
from node.txpool.pool import TxPool
from rxledger.core.addresses import GOVERNANCE
from rxledger.core.crypto import private_key_to_address
from rxledger.core.errors import ExecutionError, NodeError, Reverted, StorageError, TxPoolRefused
from rxledger.core.types.blocks import Block
from rxledger.core.types.headers import Header, Vote, is_valid_org_name
from rxledger.core.types.receipts import Log, Receipt
from rxledger.core.types.transactions import SignedTransaction, decode_transaction

__all__ = ["CallRequest", "LogFilter", "LogMatch", "NodeService", "TxLocation"]

log = logging.getLogger("rxledger.node")
T = TypeVar("T")

# A state query of the latest block that saw the head move (native chaincode keeps the
# head's state only) runs again on the new head, this many times at most, waiting this
# long (seconds) for the moving head: a commit in flight takes milliseconds.
_HEAD_RETRIES = 4
_HEAD_WAIT = 2.0


@dataclass(frozen=True, slots=True)
class CallRequest:
    """A message to run without committing it (eth_call, eth_estimateGas).

    `to` is b"" for a contract creation; `gas` None means the block gas limit."""

    sender: bytes = b"\x00" * 20
    to: bytes = b""
    data: bytes = b""
    value: int = 0
    gas: int | None = None


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which logs to return: those of one block (`block_hash`), or of the final blocks
    `from_block`..`to_block` (to_block beyond the head: up to the head), whose address is
    one of `addresses` (None: any) and whose topics match `topics` position by position
    (None at a position: any topic; a set: any of these)."""

    addresses: frozenset[bytes] | None = None
    topics: tuple[frozenset[bytes] | None, ...] = ()
    from_block: int = 0
    to_block: int = 0
    block_hash: bytes | None = None

    def matches(self, address: bytes, topics: Sequence[bytes]) -> bool:
        if self.addresses is not None and address not in self.addresses:
            return False
        if len(self.topics) > len(topics):
            return False
        return all(want is None or topics[i] in want for i, want in enumerate(self.topics))

    def may_match(self, bloom: bytes) -> bool:
        """False when the block's logs bloom rules out every match (no false negatives)."""
        f = BloomFilter(int.from_bytes(bloom, "big"))
        if self.addresses is not None and not any(a in f for a in self.addresses):
            return False
        return all(want is None or any(t in f for t in want) for want in self.topics)


@dataclass(frozen=True, slots=True)
class LogMatch:
    """A log that matched, with where it is: its block, its transaction's index in the
    block and its own index among the block's logs."""

    log: Log
    block: Block
    tx_index: int
    log_index: int

    @property
    def transaction(self) -> SignedTransaction:
        return self.block.transactions[self.tx_index]


class NodeService:
    """The node's parts, and the operations the RPC, REST and explorer layers use.

    The public methods below are the whole API for those layers; `chain`, `pool`,
    `store` and `runtime` are the parts the composition root wires, not an API."""

    def __init__(
        self,
        config: NodeConfig,
        genesis: GenesisConfig,
        *,
        validator_key: bytes | None = None,
        chaincode: ChaincodeHost | ChaincodeFactory,
        store: KeyValueStore | None = None,
    ) -> None:
        self.config = config
        self.store = store if store is not None else open_store(
            str(config.data_dir / "chaindata") if config.data_dir else None,
            full_check=config.storage_full_check,
        )
        # chaincode: the host or its factory, chosen by whoever assembles the node (node.node)
        self.chain = Chain(self.store, genesis, chaincode)
        self.pool = TxPool(
            chain_id=genesis.chain_id,
            block_gas_limit=self.chain.head.gas_limit,
            state_nonce=self.chain.state_nonce,
            is_enrolled=self.chain.is_enrolled,
            limits=config.pool,
            state_balance=lambda address: self.chain.executor.get_balance(self.chain.head.state_root, address),
        )
        self.chain.add_listener(self._on_block)
        self.validator_key = validator_key
        self.validator = private_key_to_address(validator_key) if validator_key else None
        self.pending_votes: dict[bytes, bool] = {}
        self.pending_vote_orgs: dict[bytes, str] = {}  # the organisation of a validator to add
        self._new_block = threading.Condition()
        self.runtime: ConsensusRuntime | None = None
        # Sends an admitted transaction to the peers (set when the node has a p2p layer).
        self.gossip: Callable[[bytes], None] | None = None

    # -- chain reads -----------------------------------------------------------------------
    @property
    def chain_id(self) -> int:
        return self.chain.chain_id

    @property
    def genesis_hash(self) -> bytes:
        return self.chain.genesis_hash

    def head(self) -> Header:
        """The header of the latest final block."""
        return self.chain.head

    def header(self, number: int) -> Header | None:
        """The final header at `number` (None beyond the head)."""
        return self.chain.header_by_number(number)

    def block(self, number: int) -> Block | None:
        """The final block at `number` (None beyond the head)."""
        return self.chain.block_by_number(number)

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        return self.chain.block_by_hash(block_hash)

    def receipts(self, block_hash: bytes) -> list[Receipt] | None:
        """The receipts of a final block, in transaction order (None: no such block)."""
        return self.chain.receipts(block_hash)

    def transaction(self, tx_hash: bytes) -> TxLocation | None:
        """Where a final transaction is: its block, index, receipt and the gas and logs
        before it in the block (None: not in a final block)."""
        return self.chain.locate_transaction(tx_hash)

    def pending_transaction(self, tx_hash: bytes) -> SignedTransaction | None:
        """A transaction waiting in the pool (None: not waiting)."""
        return self.pool.get(tx_hash)

    def validators(self, number: int) -> tuple[bytes, ...]:
        """The validators that seal block `number` (at most one past the head)."""
        return self.chain.validators_at(number)

    # -- state at a block ------------------------------------------------------------------
    def nonce(self, address: bytes, at: Header) -> int:
        return self.chain.executor.get_nonce(at.state_root, address)

    def balance(self, address: bytes, at: Header) -> int:
        return self.chain.executor.get_balance(at.state_root, address)

    def code(self, address: bytes, at: Header) -> bytes:
        return self.chain.executor.get_code(at.state_root, address)

    def storage(self, address: bytes, slot: int, at: Header) -> int:
        return self.chain.executor.get_storage(at.state_root, address, slot)

    # -- calls and estimates ---------------------------------------------------------------
    def call(self, request: CallRequest, at: Header, *, follow_head: bool = False) -> bytes:
        """Run `request` on the state of `at`, as if in the block after it (as geth does
        for "latest"), and return its output. `Reverted` carries the revert data.

        The gas is the request's (default: the block gas limit), at most `rpc_gas_cap`,
        and the call stops after `rpc_evm_timeout`: past it, an `ExecutionError` names
        the setting; a call failing with its gas capped says so too. `follow_head`: `at`
        is the latest block, and when a new block becomes the head during the call
        (see `StaleChaincodeState`) the call runs again on the new head."""
        asked = at.gas_limit if request.gas is None else request.gas
        deadline = self._deadline()
        with self._budgets(asked):
            result = self._at_head(at, follow_head, lambda h: self.chain.executor.call(
                h.state_root, _env(h), sender=request.sender, to=request.to, data=request.data,
                value=request.value, gas=self._gas_cap(asked), deadline=deadline))
        return result.output

    def estimate_gas(self, request: CallRequest, at: Header, *, follow_head: bool = False) -> int:
        """The least gas with which `request` succeeds on the state of `at` (binary search
        up to the request's gas, the block gas limit and `rpc_gas_cap`, within one
        `rpc_evm_timeout`); budgets and `follow_head` as for `call`."""
        asked = min(request.gas or at.gas_limit, at.gas_limit)  # no more than a block can hold
        deadline = self._deadline()
        with self._budgets(asked):
            return self._at_head(at, follow_head, lambda h: self.chain.executor.estimate_gas(
                h.state_root, _env(h), sender=request.sender, to=request.to, data=request.data,
                value=request.value, cap=self._gas_cap(asked), deadline=deadline))

    def _at_head(self, header: Header, follow_head: bool, run: Callable[[Header], T]) -> T:
        """Run a state query; when it was asked of the latest block and a new block became
        the head during the call (native chaincode keeps the head's state only and refuses
        a call that saw the head move), run it again on the new head rather than fail."""
        for _ in range(_HEAD_RETRIES):
            try:
                return run(header)
            except StaleChaincodeState:
                if not follow_head:
                    raise
                # The chaincode state of the next block is written and its header becomes
                # the head a moment later (after the batch's fsync): wait for that moment.
                if self.chain.head.number == header.number and not self.wait_for_block(header.number, _HEAD_WAIT):
                    raise
                header = self.chain.head
        return run(header)

    def _gas_cap(self, asked: int) -> int:
        """The gas a call may use: what it asks for, at most `rpc_gas_cap` (as geth caps a
        call's gas at its RPCGasCap)."""
        cap = self.config.rpc_gas_cap
        return min(asked, cap) if cap else asked

    def _deadline(self) -> float | None:
        """When a call must stop (`rpc_evm_timeout` from now; None: no limit)."""
        timeout = self.config.rpc_evm_timeout
        return time.monotonic() + timeout if timeout else None

    @contextlib.contextmanager
    def _budgets(self, asked: int) -> Iterator[None]:
        """A call past its deadline fails as geth's does, naming the setting; a call that
        failed with its gas capped says so."""
        try:
            yield
        except CallTimeout:
            raise ExecutionError(f"execution aborted (timeout = {self.config.rpc_evm_timeout:g}s): "
                                 "the call ran longer than this node allows for one eth_call or "
                                 "eth_estimateGas ([limits] rpc_evm_timeout)") from None
        except (Reverted, StaleChaincodeState):
            raise
        except ExecutionError as exc:
            cap = self._gas_cap(asked)
            if cap < asked:
                raise ExecutionError(f"{exc} (with {cap} gas: this node caps the gas of one eth_call "
                                     "or eth_estimateGas, [limits] rpc_gas_cap)") from None
            raise

    # -- logs ------------------------------------------------------------------------------
    def logs(self, flt: LogFilter) -> list[LogMatch]:
        """The logs of final blocks that match `flt`, in chain order.

        Refused (`NodeError`): an unknown `block_hash`, a range of more than
        `max_logs_block_range` blocks, more than `max_logs_results` matches."""
        numbers: Iterable[int]
        if flt.block_hash is not None:
            block = self.chain.block_by_hash(flt.block_hash)
            if block is None:
                raise NodeError("unknown block: no final block with that hash")
            numbers = range(block.number, block.number + 1)
        else:
            start, end = flt.from_block, min(flt.to_block, self.chain.head.number)
            if start > end:
                return []
            if end - start + 1 > self.config.max_logs_block_range:
                raise NodeError(f"block range too large: {end - start + 1} blocks, "
                                f"the limit is {self.config.max_logs_block_range}")
            numbers = range(start, end + 1)
        limit = self.config.max_logs_results
        out: list[LogMatch] = []
        for number in numbers:
            header = self.chain.header_by_number(number)
            if header is None or not flt.may_match(header.logs_bloom):
                continue
            block = self.chain.block_by_number(number)
            receipts = self.chain.receipts(block.hash) if block else None
            if block is None or receipts is None:
                continue
            log_index = 0
            for tx_index, receipt in enumerate(receipts):
                for entry in receipt.logs:
                    if flt.matches(entry.address, entry.topics):
                        out.append(LogMatch(entry, block, tx_index, log_index))
                        if len(out) > limit:
                            raise NodeError(f"query returned more than {limit} results; "
                                            "narrow the block range or the filter")
                    log_index += 1
        return out

    # -- transactions ----------------------------------------------------------------------
    def submit_raw_transaction(self, raw: bytes, *, gossip: bool = True) -> bytes:
        """Decode (recovering the sender once), admit to the pool, tell the peers (unless
        it came from one); returns the hash."""
        if len(raw) > self.config.pool.max_tx_size:
            raise TxPoolRefused(
                f"oversized transaction: {len(raw)} bytes, the limit is {self.config.pool.max_tx_size}"
            )
        stx = decode_transaction(raw)
        if self.chain.locate_transaction(stx.hash) is not None:
            raise TxPoolRefused(f"already known: transaction 0x{stx.hash.hex()} is in a final block")
        tx_hash = self.pool.add(stx)
        if self.runtime is not None:
            self.runtime.arrived()
        if gossip and self.gossip is not None:
            self.gossip(raw)
        return tx_hash

    def pending_nonce(self, address: bytes) -> int:
        """The next nonce for `address` counting its waiting transactions."""
        return self.pool.next_nonce(address)

    def status(self) -> dict[str, Any]:
        """Head, consensus position, validators and peers, as JSON (`GET /health`).

        `status` is "ok", or why the node cannot be relied on: "storage failed: …" (the
        consensus runtime stopped on a `StorageError`), "consensus stopped: …" (it
        stopped on anything else), or "syncing: N blocks behind" (peers announce a head
        more than `health_max_blocks_behind` ahead of ours)."""
        runtime = self.runtime
        out: dict[str, Any] = {"status": "ok", "node": self.config.node_name, "chainId": self.chain.chain_id,
                               "genesisHash": "0x" + self.chain.genesis_hash.hex()}
        try:
            head = self.chain.head
            out.update({
                "head": head.number,
                "headHash": "0x" + head.hash.hex(),
                "headTimestamp": head.timestamp,
                "txpool": len(self.pool),
                "validator": "0x" + self.validator.hex() if self.validator else None,
                "validators": ["0x" + v.hex() for v in self.chain.validators_at(head.number + 1)],
            })
            if runtime is not None:
                out["height"] = runtime.node.height
                out["round"] = runtime.node.round
                out["peers"] = runtime.peers()
        except StorageError as exc:  # the store failed under us: say so rather than fail /health
            out["status"] = f"storage failed: {exc}"
            return out
        failed = runtime.failed if runtime is not None else None
        if isinstance(failed, StorageError):
            out["status"] = f"storage failed: {failed}"
        elif failed is not None:
            out["status"] = f"consensus stopped: {type(failed).__name__}: {failed}".rstrip(": ")
        else:
            # Only validators' announced heads count: two observers announcing a false head
            # would otherwise make every validator answer 503 (and an orchestrator restart it).
            validators = {v.lower() for v in out["validators"]}
            announced = [p for p in out.get("peers", []) if str(p.get("address", "")).lower() in validators]
            behind = self._blocks_behind(announced, out["head"], len(out["validators"]))
            if behind > self.config.health_max_blocks_behind:
                out["status"] = f"syncing: {behind} blocks behind"
        return out

    @staticmethod
    def _blocks_behind(peers: list[dict[str, Any]], head: int, validators: int) -> int:
        """How far our head is behind the network's, as our peers announce it.

        A single peer could announce any head; the network's head is taken as the
        (f+1)-th highest announced (f = the faults the validator set tolerates), which at
        least one honest peer has reached when at most f lie. With fewer peers, the lowest."""
        heads = sorted((p["head"] for p in peers if isinstance(p.get("head"), int)), reverse=True)
        if not heads:
            return 0
        f = (validators - 1) // 3
        return max(0, int(heads[min(f, len(heads) - 1)]) - head)

    # -- votes (QBFT validator changes) ----------------------------------------------------
    def propose_vote(self, validator: bytes, add: bool, org: str | None = None) -> None:
        """Vote (in the headers this node proposes) to add or remove `validator`. Adding
        names the new validator's organisation (`org`), required where genesis binds
        validators to organisations: its certificate must then come from that org's CA."""
        if org is not None and not add:
            raise NodeError("a vote to remove a validator names no organisation")
        if org is not None and not is_valid_org_name(org):
            raise NodeError(f"{org!r} is not an organisation name (lowercase letters, digits and '-')")
        if add and org is None and self.chain.genesis.validator_orgs:
            raise NodeError("this network binds each validator to its organisation: name the new "
                            "validator's organisation, qbft_proposeValidatorVote(address, true, \"<org>\")")
        if org is not None:
            known = {name for name, _ in self.chain.genesis.organisations()}
            known |= {o for _, o in self.chain.genesis.validator_orgs}
            governed = governance_org_ids(self.chain)
            if known and org not in known and (governed is None or org_id(org) not in governed):
                raise NodeError(f"no organisation {org!r} in this network (known: {', '.join(sorted(known))})")
        if self.config.dev:
            current = self.chain.validators_at(self.chain.head.number + 1)
            if add and validator not in current:
                raise NodeError(
                    "the dev chain has one validator and cannot seal with a second one it does "
                    "not run; use `rxledger up` for a network whose validators can change"
                )
            if not add and validator in current and len(current) == 1:
                raise NodeError("refusing to remove the only validator of the dev chain")
        self.pending_votes[validator] = add
        if org is not None:
            self.pending_vote_orgs[validator] = org
        else:
            self.pending_vote_orgs.pop(validator, None)

    def take_vote(self) -> Vote | None:
        current = self.chain.validators_at(self.chain.head.number + 1)
        for validator, add in list(self.pending_votes.items()):
            if add == (validator in current):
                del self.pending_votes[validator]  # already in effect
                self.pending_vote_orgs.pop(validator, None)
                continue
            return Vote(validator, add, self.pending_vote_orgs.get(validator) if add else None)
        return None

    # -- blocks ----------------------------------------------------------------------------
    def _on_block(self, block: Block, receipts: list[Receipt]) -> None:
        self.pool.remove(list(block.transactions))
        self.pool.prune()
        if any(log.address == GOVERNANCE for receipt in receipts for log in receipt.logs):
            # Membership may have changed: a revoked sender's waiting transactions go too.
            self.pool.drop_senders(lambda sender: not self.chain.is_enrolled(sender))
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

    def start_consensus(self, config: QbftConfig, transport: Transport | None = None,
                        gathering: Gathering | None = None) -> ConsensusRuntime:
        """Start the QBFT runtime (a validator when this node holds a validator key)."""
        self.runtime = ConsensusRuntime(
            self.chain, self.pool, config, self.validator_key, transport=transport,
            take_vote=self.take_vote, gathering=gathering,
        )
        self.runtime.start()
        return self.runtime

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
        self.store.close()


def _env(header: Header) -> BlockEnv:
    # A call runs as if in the block after `header`, as geth does for "latest".
    return BlockEnv(header.number + 1, header.timestamp, header.coinbase, header.gas_limit, header.mix_hash)
