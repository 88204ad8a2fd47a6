"""Block validity: a block that differs from the honest one in any single header field is
rejected, one case per field (and per part of extraData), on each path a block takes in:

(a) `Chain.verify_execution` on a real chain (MemoryStore; one case on LevelDB);
(b) as a PROPOSAL, by every honest validator of a 4-validator in-process network (the
    deterministic harness of tests/sim with real `Chain`s and the runtime's block check),
    whose Byzantine proposer sends its honest block with that field changed and re-signed;
    the network then finalises an honest block in a later round;
(c) as a final block from block sync, sealed by a quorum of the validators, offered to a
    node catching up (a real `NodeService` on LevelDB with its consensus runtime).

The cases are `HEADER_MUTATIONS` of tests/sim/byzantine.py, which the Byzantine proposer
of the simulation uses too.
"""

from __future__ import annotations

import logging
import math
import random
import re
import sys
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from chaincode_py import NativeChaincodeHost

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))
from byzantine import HEADER_MUTATIONS, Byzantine, mutate_header  # noqa: E402
from harness import GENESIS_TIME, Network, SimNode, validator_keys  # noqa: E402

from node.chain import Chain  # noqa: E402
from node.config import NodeConfig  # noqa: E402
from node.consensus.qbft import QbftConfig  # noqa: E402
from node.genesis import GenesisConfig, dev_accounts, dev_genesis  # noqa: E402
from node.runtime import ConsensusRuntime  # noqa: E402
from node.service import NodeService  # noqa: E402
from node.storage import MemoryStore  # noqa: E402
from node.storage.leveldb import LevelDBStore  # noqa: E402
from node.txpool.pool import TxPool  # noqa: E402
from node.validation import validate_header  # noqa: E402
from rxledger.core.crypto import encode_signature, private_key_to_address, sign_hash  # noqa: E402
from rxledger.core.errors import InvalidBlock  # noqa: E402
from rxledger.core.types import decode_transaction  # noqa: E402
from rxledger.core.types.blocks import Block  # noqa: E402
from rxledger.core.types.headers import (  # noqa: E402
    HEADER_FIELDS,
    Header,
    block_hash,
    decode_extra,
    encode_extra,
    seal_hash,
)

CASES = tuple(HEADER_MUTATIONS)
KEYS = tuple(sorted(validator_keys(4, offset=700), key=private_key_to_address))
ADDRESSES = tuple(private_key_to_address(k) for k in KEYS)
SENDER = Account.from_key(dev_accounts()[9].private_key)


def genesis_config() -> GenesisConfig:
    return replace(dev_genesis(), validators=ADDRESSES, timestamp=GENESIS_TIME)


def transfer(nonce: int) -> Any:
    tx = dict(nonce=nonce, gasPrice=0, gas=21_000, to=to_checksum_address(dev_accounts()[1].address),
              value=0, chainId=dev_genesis().chain_id)
    return decode_transaction(bytes(SENDER.sign_transaction(tx).raw_transaction))


@lru_cache(maxsize=1)
def honest() -> tuple[Header, Block]:
    """The genesis header and block 1 as its round-0 proposer (the lowest address) builds
    it: two transactions, so every root and the gas used are not the empty ones."""
    builder = Chain(MemoryStore(), genesis_config(), NativeChaincodeHost)
    block, execution = builder.build_block([transfer(0), transfer(1)], timestamp=GENESIS_TIME + 1,
                                           proposer=ADDRESSES[0])
    assert len(execution.transactions) == 2 and execution.gas_used == 42_000
    return builder.head, block


def mutated(case: str) -> Block:
    parent, block = honest()
    return Block(mutate_header(case, block.header, parent), block.transactions)


def field_of(case: str) -> str:
    return case.split(".")[0]


def test_every_header_field_has_a_case_and_each_case_changes_only_its_field() -> None:
    assert {field_of(c) for c in CASES} == set(HEADER_FIELDS)
    _parent, block = honest()
    for case in CASES:
        bad = mutated(case).header
        differing = [f for f in HEADER_FIELDS if getattr(bad, f) != getattr(block.header, f)]
        assert differing == [field_of(case)], case


def test_the_honest_block_keeps_every_header_rule() -> None:
    parent, block = honest()
    chain = Chain(MemoryStore(), genesis_config(), NativeChaincodeHost)
    validate_header(parent, block.header, chain.tally_after(parent))
    chain.verify_execution(block)


# -- (a) Chain.verify_execution --------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_verify_execution_rejects_a_block_with_one_wrong_header_field(case: str) -> None:
    chain = Chain(MemoryStore(), genesis_config(), NativeChaincodeHost)
    with pytest.raises(InvalidBlock, match=re.escape(field_of(case))):
        chain.verify_execution(mutated(case))
    assert chain.head.number == 0
    chain.verify_execution(honest()[1])  # the same chain accepts the honest block


@pytest.mark.parametrize("case", ["base_fee_per_gas", "requests_hash"])
def test_verify_execution_on_leveldb_rejects_a_wrong_header_field_and_commits_the_honest_block(
        tmp_path: Path, case: str) -> None:
    store = LevelDBStore(tmp_path / "chaindata")
    try:
        chain = Chain(store, genesis_config(), NativeChaincodeHost)
        with pytest.raises(InvalidBlock, match=case):
            chain.verify_execution(mutated(case))
        block = honest()[1]
        chain.commit_block(block, chain.verify_execution(block))
    finally:
        store.close()
    store = LevelDBStore(tmp_path / "chaindata")
    try:
        assert Chain(store, genesis_config(), NativeChaincodeHost).head.hash == block.hash
    finally:
        store.close()


# -- the runtime's execution cache -------------------------------------------------------------
def test_every_header_field_but_round_and_seals_changes_the_block_hash() -> None:
    """`ConsensusRuntime._validate_block` skips `verify_execution` for a block whose hash it
    holds an execution for (one it built or verified): safe because the block hash covers
    every header field; only the round and the commit seals are left out of it."""
    _parent, block = honest()
    header = block.header
    for case in CASES:
        bad = mutated(case).header
        try:
            decode_extra(bad.extra_data)
        except InvalidBlock:
            continue  # malformed extraData: no block hash at all (refused before hashing)
        assert block_hash(bad) != block_hash(header), case
    extra = decode_extra(header.extra_data)
    resealed = replace(header, extra_data=encode_extra(replace(extra, round=3, seals=(b"\x01" * 65,))))
    assert block_hash(resealed) == block_hash(header)
    assert seal_hash(resealed) != seal_hash(header)


@pytest.mark.parametrize("case", CASES)
def test_runtime_with_the_honest_execution_cached_rejects_the_mutated_block(case: str) -> None:
    chain = Chain(MemoryStore(), genesis_config(), NativeChaincodeHost)
    pool = TxPool(chain_id=chain.chain_id, block_gas_limit=chain.head.gas_limit,
                  state_nonce=chain.state_nonce, is_enrolled=chain.is_enrolled)
    runtime = ConsensusRuntime(chain, pool, QbftConfig(), KEYS[1])  # not started: no thread
    block = honest()[1]
    assert runtime._validate_block(block) is None  # verified once, and its execution cached
    assert block.hash in runtime._executions
    bad = mutated(case)
    try:
        decode_extra(bad.header.extra_data)
    except InvalidBlock:
        # Malformed extraData has no block hash, so no cached execution can match it; the
        # state machine refuses such a block before it asks the runtime ((b) and (c)).
        with pytest.raises(InvalidBlock, match="malformed QBFT extraData"):
            runtime._validate_block(bad)
        return
    reason = runtime._validate_block(bad)
    assert reason is not None and field_of(case) in reason


# -- (b) as a proposal, in a 4-validator network ---------------------------------------------
@dataclass(eq=False)
class LedgerNode(SimNode):
    """A simulated validator on a real `Chain` (MemoryStore), built, checked and applied as
    `ConsensusRuntime` does it: its `_validate_block` (the execution cache, then
    `Chain.verify_execution`), `_apply`, and `_build`'s `Chain.build_block`."""

    genesis_config: GenesisConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        assert self.genesis_config is not None
        self.ledger = Chain(MemoryStore(), self.genesis_config, NativeChaincodeHost)
        self.pool = TxPool(chain_id=self.ledger.chain_id, block_gas_limit=self.ledger.head.gas_limit,
                           state_nonce=self.ledger.state_nonce, is_enrolled=self.ledger.is_enrolled)
        self.runtime: ConsensusRuntime | None = None

    @property
    def head(self) -> Header:
        return self.ledger.head

    @property
    def tally(self) -> Any:
        return self.ledger.tally_after(self.ledger.head)

    def start(self) -> None:
        self.runtime = ConsensusRuntime(self.ledger, self.pool, self.config, self.key, clock=self.clock)
        self.node = self.runtime.node
        self.node.set_pending(self.pending)
        self.up = True
        self.torn = None

    def commit(self, blocks: Any) -> None:
        assert self.runtime is not None
        for block in blocks:
            self.runtime._apply(block)
            self.chain.append(block)

    def build(self, height: int, round_: int) -> Block:
        assert self.runtime is not None
        earliest = self.head.timestamp + math.ceil(self.config.block_period)
        block, execution = self.ledger.build_block((), timestamp=max(int(self.clock()), earliest),
                                                   proposer=self.address, round=round_)
        self.runtime._remember(block.hash, execution)
        return block


# Why an honest validator refuses each mutated proposal: QBFT's own checks come first for
# the fields it reads (parent, height, timestamp against the block period, coinbase = the
# round's proposer, the validator set and its commitment, malformed extraData); the header
# rules of node.validation name the rest. (A decoder that refuses malformed extraData when
# the message is decoded drops it as undecodable instead.)
PROPOSAL_REASONS = {
    "parent_hash": "does not extend our head",
    "number": "block height, round or seals do not match",
    "timestamp": "earlier than parent \\+ block period",
    "coinbase": "coinbase is not the proposer",
    "extra_data.vanity": "next-validator commitment is wrong",
    "extra_data.validators": "different validator set",
    "extra_data.vote": "malformed QBFT extraData",
    "extra_data.round": "malformed QBFT extraData",
}


@pytest.mark.parametrize("case", CASES)
def test_every_honest_validator_rejects_a_proposal_with_one_wrong_header_field(case: str) -> None:
    config = QbftConfig(block_period=1.0, round_timeout=1.0, max_round_timeout=4.0)
    gc = genesis_config()
    genesis = Chain(MemoryStore(), gc, NativeChaincodeHost).head
    holder: list[Network] = []
    nodes = [LedgerNode(k, config, genesis, clock=lambda: holder[0].now, genesis_config=gc) for k in KEYS]
    net = Network(list(nodes), seed=11)
    holder.append(net)
    byz, honest_nodes = nodes[0], nodes[1:]  # the lowest address: height 1's round-0 proposer
    hook = Byzantine(("mutated_header",), random.Random(0), rate=1.0, header_cases=(case,))
    net.byzantine[byz.address] = hook
    net.start()
    assert net.run_until(GENESIS_TIME + 60, stop=lambda: all(len(s.chain) >= 1 for s in honest_nodes)), \
        "\n".join(net.trace[-60:])
    trace = "\n".join(net.trace)
    assert f"BYZ -> v1 mutated_header: PROPOSAL h1 r0 with a wrong {case}" in trace
    reason = PROPOSAL_REASONS.get(case, re.escape(field_of(case)))
    for sim in honest_nodes:
        name = net.name(sim.address)
        refused = re.compile(rf"^ *[\d.]+ {name} h1 r0: (rejected PROPOSAL r0 from {byz.address.hex()[:8]}: "
                             rf".*({reason})|dropped undecodable message"
                             rf"|dropped PROPOSAL h1 r0 \w+ from {byz.address.hex()[:8]}: .*carried block is invalid: "
                             rf".*malformed QBFT extraData)", re.M)
        assert refused.search(trace), f"{name} did not refuse the proposal:\n{trace}"
        assert not re.search(rf"^ *[\d.]+ {name} h1 r0: accepted proposal", trace, re.M), trace
    assert not net.violations
    final = {s.chain[0].hash for s in honest_nodes}
    assert len(final) == 1
    block = honest_nodes[0].chain[0]
    assert decode_extra(block.header.extra_data).round >= 1 and block.header.coinbase != byz.address
    validate_header(genesis, block.header, Chain(MemoryStore(), gc, NativeChaincodeHost).tally_after(genesis))


# -- (c) as a final block from block sync ----------------------------------------------------
def sealed(block: Block, keys: tuple[bytes, ...]) -> Block:
    """`block` with the commit seals of `keys` (if its extraData can hold them)."""
    try:
        extra = decode_extra(block.header.extra_data)
    except InvalidBlock:
        return block  # malformed: nothing to seal
    digest = seal_hash(block.header)
    seals = tuple(encode_signature(*sign_hash(digest, k)) for k in keys)
    return Block(replace(block.header, extra_data=encode_extra(replace(extra, seals=seals))), block.transactions)


SYNC_REASONS = {
    "parent_hash": "does not extend our head",
    "number": "does not extend our head",  # buffered as block 2; refused once block 1 is in
    "extra_data.vanity": "next-validator commitment is wrong",
    "extra_data.validators": "different validator set",
    "extra_data.vote": "malformed QBFT extraData",
    "extra_data.round": "malformed QBFT extraData",
}


@pytest.mark.parametrize("case", CASES)
def test_a_node_catching_up_rejects_a_synced_final_block_with_one_wrong_header_field(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str) -> None:
    caplog.set_level(logging.INFO, logger="rxledger.consensus")
    quorum = KEYS[:3]  # 3 of 4 validators seal it
    bad, good = sealed(mutated(case), quorum), sealed(honest()[1], quorum)
    service = NodeService(NodeConfig(data_dir=tmp_path / "late"), genesis_config(), validator_key=KEYS[3], chaincode=NativeChaincodeHost)
    runtime = service.start_consensus(QbftConfig(block_period=0, empty_block_period=None, round_timeout=30.0))
    try:
        runtime.deliver_block(bad)
        runtime.deliver_block(good)
        deadline = time.monotonic() + 30
        while service.chain.head.number < 1 and runtime.failed is None:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.01)
    finally:
        service.close()  # stops the runtime after its current turn: every event is logged
    assert runtime.failed is None, runtime.failed
    reason = SYNC_REASONS.get(case, re.escape(field_of(case)))
    assert re.search(rf"rejected synced block \d: .*({reason})", caplog.text), caplog.text
    store = LevelDBStore(tmp_path / "late" / "chaindata")
    try:
        assert Chain(store, genesis_config(), NativeChaincodeHost).head.hash == good.hash
    finally:
        store.close()


def test_a_refusal_names_the_block_the_field_and_the_expected_and_found_values() -> None:
    parent, block = honest()
    tally = Chain(MemoryStore(), genesis_config(), NativeChaincodeHost).tally_after(parent)
    with pytest.raises(InvalidBlock) as refused:
        validate_header(parent, mutated("difficulty").header, tally)
    assert str(refused.value) == "block 1: difficulty is 2, expected 1"
    with pytest.raises(InvalidBlock) as refused:
        validate_header(parent, mutated("mix_hash").header, tally)
    assert str(refused.value).startswith("block 1: mix_hash is 0x") and str(refused.value).endswith(
        ", expected 0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365")
    # A timestamp beyond 64 bits (as Ethereum's header types) is refused as such.
    with pytest.raises(InvalidBlock, match="timestamp 18446744073709551616 does not fit in 64 bits"):
        validate_header(parent, replace(block.header, timestamp=2**64), tally)
