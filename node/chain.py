"""The chain: genesis, the final head, building and committing blocks, reading them back.

`Chain` owns the store and the executor. A block is built (`build_block`) or received
and checked (`verify_execution`: the header rules of `node.validation`, then execution),
executed once, sealed by consensus and committed (`commit_block`) in one atomic, fsynced
storage batch. Only final blocks are ever written: QBFT finality is immediate, so there
are no forks to keep and no reorganisation.

Thread model: the block producer commits from one thread; RPC handlers read from
others. Reads go to the store (thread-safe) and `head` is replaced atomically.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from node.consensus.validators import VoteTally, tally_vote, validators_commitment
from node.execution.chaincode import (
    PLACEHOLDER_CODE,
    ChaincodeGenesis,
    ChaincodeHost,
    EnrolmentSource,
)
from node.execution.executor import BlockEnv, BlockExecution, Executor
from node.genesis import GenesisConfig
from node.storage import chain_store as cs
from node.storage.base import KeyValueStore
from node.validation import validate_header
from rxledger.core.errors import InvalidBlock, NodeError
from rxledger.core.types.blocks import Block, ordered_trie_root
from rxledger.core.types.headers import (
    BASE_FEE_PER_GAS,
    BLOB_GAS_USED,
    EMPTY_OMMERS_HASH,
    EMPTY_REQUESTS_HASH,
    EMPTY_TRIE_ROOT,
    EXCESS_BLOB_GAS,
    PARENT_BEACON_BLOCK_ROOT,
    QBFT_DIFFICULTY,
    QBFT_MIX_HASH,
    QBFT_NONCE,
    ZERO_HASH,
    Header,
    QbftExtra,
    Vote,
    block_hash,
    encode_extra,
)
from rxledger.core.types.receipts import Receipt
from rxledger.core.types.transactions import SignedTransaction

log = logging.getLogger(__name__)

ZERO_ADDRESS = b"\x00" * 20
EMPTY_BLOOM = b"\x00" * 256


@dataclass(frozen=True, slots=True)
class TxLocation:
    block: Block
    index: int
    receipt: Receipt
    cumulative_before: int
    log_index_before: int


# Makes the chaincode host over a store (e.g. the class `chaincode_py.NativeChaincodeHost`).
ChaincodeFactory = Callable[[KeyValueStore], ChaincodeHost]


def _show(value: bytes | int) -> str:
    """A header value for an error message (a bloom's 256 bytes are not shown)."""
    if isinstance(value, int):
        return str(value)
    return f"0x{value.hex()}" if len(value) <= 32 else f"0x{value[:8].hex()}… ({len(value)} bytes)"


class Chain:
    """The final chain held in one key-value store.

    `chaincode` is the chaincode host, or a factory that makes it over the chain's store:
    whoever assembles the node chooses it (`chaincode_py.NativeChaincodeHost` for the native
    PrescriptionRegistry, Governance and AnchorRegistry at 0x…1001-1003, with Governance's
    genesis state from `genesis`; `node.execution.chaincode.NoChaincode()` for a chain
    without them). The node imports no chaincode package itself.
    """

    def __init__(
        self,
        store: KeyValueStore,
        genesis: GenesisConfig,
        chaincode: ChaincodeHost | ChaincodeFactory,
    ) -> None:
        self.store = store
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.chaincode: ChaincodeHost = chaincode(store) if callable(chaincode) else chaincode
        self.executor = Executor(store, genesis.chain_id, self.canonical_hash, self.chaincode)
        self._lock = threading.RLock()  # commits
        self._cache_lock = threading.Lock()  # the block cache (readers never wait for a commit)
        self._blocks: OrderedDict[bytes, Block] = OrderedDict()
        self._listeners: list[Callable[[Block, list[Receipt]], None]] = []
        # Nonces at one state root; a new dict is made when the head's root differs, so a
        # reader never mixes two heads.
        self._nonces: tuple[bytes, dict[bytes, int]] = (b"", {})
        # Senders: genesis accounts with no role always; others while Governance enrols them.
        self.enrolled = frozenset(e.address for e in genesis.enrolments)
        self.genesis_senders = frozenset(e.address for e in genesis.enrolments if e.role is None)
        self._governance = self.chaincode if isinstance(self.chaincode, EnrolmentSource) else None
        self._enrolment: tuple[bytes, dict[bytes, bool]] = (b"", {})
        stored = store.get(cs.META_GENESIS_CONFIG)
        if stored is None:
            self._write_genesis()
        elif stored != genesis.encode():
            raise NodeError(
                "the data directory holds a different chain (its genesis differs from this "
                "node's configuration); use another --data-dir or the matching genesis"
            )
        elif store.get(cs.META_GENESIS_HASH) != self._genesis_block()[0].hash:
            raise NodeError(
                "the data directory holds a different chain: its genesis block is not the one "
                "this node makes from the same configuration (made by an older version?); "
                "use another --data-dir"
            )
        head_hash = cs.load_head_hash(store)
        head = cs.load_header(store, head_hash) if head_hash else None
        if head is None:
            raise NodeError("the data directory is corrupt: no head block")
        self.head: Header = head
        self.genesis_hash: bytes = store.get(cs.META_GENESIS_HASH) or b""

    # -- genesis ---------------------------------------------------------------------------
    def _genesis_block(self) -> tuple[Block, dict[bytes, bytes | None]]:
        """The genesis block and its state writes (EVM state and chaincode state)."""
        chaincode_writes: Mapping[bytes, bytes | None] = {}
        commitment = ZERO_HASH
        if isinstance(self.chaincode, ChaincodeGenesis):
            chaincode_writes, commitment = self.chaincode.genesis(self.genesis)
        codes = tuple((address, PLACEHOLDER_CODE) for address in self.chaincode.addresses())
        state_root, state_writes = self.executor.genesis_state(self.genesis.balances, commitment, codes)
        state_writes.update(chaincode_writes)
        validators = tuple(sorted(self.genesis.validators))
        extra = QbftExtra(validators_commitment(validators), validators, None, 0, ())
        header = Header(
            parent_hash=ZERO_HASH, ommers_hash=EMPTY_OMMERS_HASH, coinbase=ZERO_ADDRESS,
            state_root=state_root, transactions_root=EMPTY_TRIE_ROOT,
            receipts_root=EMPTY_TRIE_ROOT, logs_bloom=EMPTY_BLOOM, difficulty=QBFT_DIFFICULTY, number=0,
            gas_limit=self.genesis.gas_limit, gas_used=0, timestamp=self.genesis.timestamp,
            extra_data=encode_extra(extra), mix_hash=QBFT_MIX_HASH, nonce=QBFT_NONCE,
            base_fee_per_gas=BASE_FEE_PER_GAS, withdrawals_root=EMPTY_TRIE_ROOT,
            blob_gas_used=BLOB_GAS_USED, excess_blob_gas=EXCESS_BLOB_GAS,
            parent_beacon_block_root=PARENT_BEACON_BLOCK_ROOT, requests_hash=EMPTY_REQUESTS_HASH,
        )
        return Block(header, ()), state_writes

    def _write_genesis(self) -> None:
        block, state_writes = self._genesis_block()
        validators = tuple(sorted(self.genesis.validators))
        cs.save_block(
            self.store, block, [], state_writes,
            {cs.META_GENESIS_CONFIG: self.genesis.encode(), cs.META_GENESIS_HASH: block.hash,
             cs.tally_key(block.hash): VoteTally(validators).encode()},
        )

    # -- reading ---------------------------------------------------------------------------
    # Reads stop at the head: a block being committed is in the store a moment (its
    # batch's fsync) before it is the head, and no answer may run ahead of the head.
    def canonical_hash(self, number: int) -> bytes | None:
        if number > self.head.number:
            return None
        return cs.load_canonical_hash(self.store, number)

    def header_by_number(self, number: int) -> Header | None:
        h = self.canonical_hash(number)
        return None if h is None else cs.load_header(self.store, h)

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        with self._cache_lock:
            block = self._blocks.get(block_hash)
            if block is not None:
                self._blocks.move_to_end(block_hash)
                return block
        block = cs.load_block(self.store, block_hash)
        if block is None or block.number > self.head.number:
            return None
        self._remember(block)
        return block

    def block_by_number(self, number: int) -> Block | None:
        h = self.canonical_hash(number)
        return None if h is None else self.block_by_hash(h)

    def receipts(self, block_hash: bytes) -> list[Receipt] | None:
        return cs.load_receipts(self.store, block_hash)

    def locate_transaction(self, tx_hash: bytes) -> TxLocation | None:
        """The final block holding a transaction, its index, receipt and offsets."""
        loc = cs.load_tx_location(self.store, tx_hash)
        if loc is None:
            return None
        block = self.block_by_hash(loc[0])
        receipts = self.receipts(loc[0])
        if block is None or receipts is None:
            return None
        index = loc[1]
        before = receipts[index - 1].cumulative_gas_used if index else 0
        log_before = sum(len(r.logs) for r in receipts[:index])
        return TxLocation(block, index, receipts[index], before, log_before)

    def validators_at(self, number: int) -> tuple[bytes, ...]:
        """The validators that seal block `number` (for the head's successor, those next)."""
        if number > self.head.number:
            return self.next_validators(self.head)
        header = self.header_by_number(number)
        if header is None:
            raise NodeError(f"no block {number}")
        return header.extra.validators

    def tally_after(self, header: Header) -> VoteTally:
        """Validators of the block after `header` and the ballots still open (one read)."""
        data = self.store.get(cs.tally_key(block_hash(header)))
        if data is None:
            raise NodeError(f"no vote tally stored for block {header.number}")
        return VoteTally.decode(data)

    def next_validators(self, parent: Header) -> tuple[bytes, ...]:
        """The validator set of the block after `parent`: parent's set with its votes applied."""
        return self.tally_after(parent).validators

    def is_enrolled(self, address: bytes) -> bool:
        """Permissioned senders: accounts Governance gives a role at the head, and the genesis
        accounts with no role (the deployer). Cached until the next block, so an account
        enrolled on-chain may send from the next block on and a revoked one may not.

        Without a governance-aware chaincode host: the genesis enrolments.
        """
        if self._governance is None:
            return address in self.enrolled
        head = self.head.hash
        cached_head, answers = self._enrolment
        if cached_head != head:
            answers = {}
            self._enrolment = (head, answers)
        answer = answers.get(address)
        if answer is None:
            answer = answers[address] = (
                address in self.genesis_senders or self._governance.is_enrolled(address)
            )
        return answer

    def state_nonce(self, address: bytes) -> int:
        """The account's nonce at the head (cached until the next block)."""
        root = self.head.state_root
        cached_root, nonces = self._nonces
        if cached_root != root:
            nonces = {}
            self._nonces = (root, nonces)
        nonce = nonces.get(address)
        if nonce is None:
            nonce = nonces[address] = self.executor.get_nonce(root, address)
        return nonce

    # -- writing ---------------------------------------------------------------------------
    def env_for(self, parent: Header, timestamp: int, coinbase: bytes) -> BlockEnv:
        return BlockEnv(parent.number + 1, timestamp, coinbase, parent.gas_limit, ZERO_HASH)

    def build_block(
        self,
        transactions: Sequence[SignedTransaction],
        *,
        timestamp: int,
        proposer: bytes,
        round: int = 0,
        vote: Vote | None = None,
    ) -> tuple[Block, BlockExecution]:
        """Execute `transactions` on the head and assemble an unsealed block."""
        parent = self.head
        timestamp = max(timestamp, parent.timestamp)
        env = self.env_for(parent, timestamp, proposer)
        execution = self.executor.execute_block(parent.state_root, env, transactions, skip_invalid=True)
        tally = self.tally_after(parent)
        # The header commits to the set that seals the block after it (vanity field).
        following = tally_vote(tally, proposer, vote).validators
        extra = QbftExtra(validators_commitment(following), tally.validators, vote, round, ())
        header = Header(
            parent_hash=parent.hash, ommers_hash=EMPTY_OMMERS_HASH, coinbase=proposer,
            state_root=execution.state_root,
            transactions_root=ordered_trie_root([t.raw for t in execution.transactions]),
            receipts_root=ordered_trie_root(execution.encoded_receipts()),
            logs_bloom=execution.logs_bloom, difficulty=QBFT_DIFFICULTY, number=parent.number + 1,
            gas_limit=parent.gas_limit, gas_used=execution.gas_used, timestamp=timestamp,
            extra_data=encode_extra(extra), mix_hash=QBFT_MIX_HASH, nonce=QBFT_NONCE,
            base_fee_per_gas=BASE_FEE_PER_GAS, withdrawals_root=EMPTY_TRIE_ROOT,
            blob_gas_used=BLOB_GAS_USED, excess_blob_gas=EXCESS_BLOB_GAS,
            parent_beacon_block_root=PARENT_BEACON_BLOCK_ROOT, requests_hash=EMPTY_REQUESTS_HASH,
        )
        return Block(header, tuple(execution.transactions)), execution

    def verify_execution(self, block: Block) -> BlockExecution:
        """Check a block from elsewhere against the head and re-execute it there: every
        header rule (`node.validation.validate_header`) first, then the transactions root,
        then execution and its results. Raises `InvalidBlock` naming the first field that
        differs from what this chain defines or computes."""
        parent = self.head
        header = block.header
        validate_header(parent, header, self.tally_after(parent))
        transactions_root = ordered_trie_root([t.raw for t in block.transactions])
        if header.transactions_root != transactions_root:
            raise InvalidBlock(f"block {header.number}: transactions_root is 0x{header.transactions_root.hex()}, "
                               f"expected 0x{transactions_root.hex()} (the root of its transactions)")
        env = self.env_for(parent, header.timestamp, header.coinbase)
        execution = self.executor.execute_block(
            parent.state_root, env, block.transactions, skip_invalid=False
        )
        checks = (
            ("state root", "state_root", header.state_root, execution.state_root),
            ("receipts root", "receipts_root", header.receipts_root,
             ordered_trie_root(execution.encoded_receipts())),
            ("gas used", "gas_used", header.gas_used, execution.gas_used),
            ("logs bloom", "logs_bloom", header.logs_bloom, execution.logs_bloom),
        )
        for what, name, claimed, computed in checks:
            if claimed != computed:
                raise InvalidBlock(f"block {header.number}: {what} does not match execution: {name} is "
                                   f"{_show(claimed)}, execution gives {_show(computed)}")
        return execution

    def seal(self, block: Block, seals: Iterable[bytes]) -> Block:
        """The block with commit seals written into its extraData."""
        extra = block.header.extra
        header = replace(block.header, extra_data=encode_extra(replace(extra, seals=tuple(seals))))
        return Block(header, block.transactions)

    def add_listener(self, listener: Callable[[Block, list[Receipt]], None]) -> None:
        """Called after each committed block (txpool pruning, RPC subscriptions)."""
        self._listeners.append(listener)

    def commit_block(self, block: Block, execution: BlockExecution) -> None:
        """Write a final block in one fsynced batch and make it the head."""
        with self._lock:
            if block.header.parent_hash != self.head.hash:
                raise InvalidBlock(f"block {block.number} does not extend the head {self.head.number}")
            extra = block.header.extra
            tally = tally_vote(self.tally_after(self.head), block.header.coinbase, extra.vote)
            cs.save_block(self.store, block, execution.receipts, execution.writes,
                          {cs.tally_key(block.hash): tally.encode()}, execution.encoded_receipts())
            self.head = block.header
            self._remember(block)
        for listener in self._listeners:
            listener(block, execution.receipts)

    def _remember(self, block: Block) -> None:
        with self._cache_lock:
            self._blocks[block.hash] = block
            self._blocks.move_to_end(block.hash)
            while len(self._blocks) > 256:
                self._blocks.popitem(last=False)
