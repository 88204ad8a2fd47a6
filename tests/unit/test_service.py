"""`NodeService` is the node's one face for the RPC, REST and explorer layers: its public
methods answer blocks, transactions, receipts, state at a block, calls, estimates and logs
on a real dev node (LevelDB, the consensus runtime, native chaincode), and the RPC layer
reaches nothing behind it.

The chain: blocks 1-3 each anchor one root in AnchorRegistry (one `Anchored` log each).
"""

from __future__ import annotations

import ast
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode, encode
from eth_account import Account

import node
from chaincode_py import NativeChaincodeHost
from node.config import NodeConfig
from node.consensus.qbft import QbftConfig
from node.execution.chaincode import PLACEHOLDER_CODE, StaleChaincodeState
from node.genesis import GenesisConfig, dev_accounts, dev_genesis, dev_validator_key
from node.service import CallRequest, LogFilter, NodeService
from rxledger.core.addresses import ANCHOR_REGISTRY
from rxledger.core.crypto import keccak256
from rxledger.core.errors import ExecutionError, NodeError, Reverted

SENDER = Account.from_key(dev_accounts()[0].private_key)  # hospital-a's admin: enrolled
ADDRESS = bytes.fromhex(SENDER.address[2:])
ANCHORED = keccak256(b"Anchored(bytes32,address,uint64,bytes32)")
ANCHORS = 3
FUNDS = 10**18


def genesis() -> GenesisConfig:
    return replace(dev_genesis(), balances=((ADDRESS, FUNDS),))


def root(n: int) -> bytes:
    return (n + 1).to_bytes(32, "big")


def anchor_data(root_: bytes) -> bytes:
    return keccak256(b"anchor(bytes32,uint64,bytes32)")[:4] + encode(
        ["bytes32", "uint64", "bytes32"], [root_, 1, b"\x00" * 32])


def anchor_tx(nonce: int) -> bytes:
    tx = dict(nonce=nonce, gasPrice=0, gas=200_000, to="0x" + ANCHOR_REGISTRY.hex(), value=0,
              data=anchor_data(root(nonce)), chainId=2024)
    return bytes(SENDER.sign_transaction(tx).raw_transaction)


def start(tmp_path: Path, **limits: Any) -> tuple[NodeService, list[bytes]]:
    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True, **limits), genesis(),
                          validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
    service.start_consensus(QbftConfig(block_period=0, empty_block_period=None))
    hashes = []
    for nonce in range(ANCHORS):  # one at a time: one block each
        tx_hash = service.submit_raw_transaction(anchor_tx(nonce))
        deadline = time.monotonic() + 15
        while service.transaction(tx_hash) is None:
            assert time.monotonic() < deadline, "anchor not final"
            time.sleep(0.01)
        hashes.append(tx_hash)
    return service, hashes


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Any:
    service, hashes = start(tmp_path_factory.mktemp("dev"), rpc_gas_cap=50_000)
    yield service, hashes
    service.close()


def test_blocks_headers_transactions_and_receipts_read_through_the_service(dev) -> None:
    service, hashes = dev
    head = service.head()
    assert head.number == ANCHORS and service.header(head.number + 1) is None and service.block(head.number + 1) is None
    for number, tx_hash in enumerate(hashes, start=1):
        block = service.block(number)
        assert block is not None and service.header(number) == block.header
        assert service.block_by_hash(block.hash) == block
        located = service.transaction(tx_hash)
        assert located is not None and located.block.hash == block.hash and located.index == 0
        assert located.receipt.status == 1 and located.log_index_before == 0 and located.cumulative_before == 0
        assert service.receipts(block.hash) == [located.receipt]
    assert service.block_by_hash(b"\x11" * 32) is None and service.receipts(b"\x11" * 32) is None
    assert service.transaction(b"\x22" * 32) is None and service.pending_transaction(b"\x22" * 32) is None
    assert service.chain_id == 2024 and service.genesis_hash == service.block(0).hash
    assert service.validators(head.number + 1) == genesis().validators


def test_state_is_read_at_the_block_asked(dev) -> None:
    service, _ = dev
    genesis, head = service.header(0), service.head()
    assert service.nonce(ADDRESS, genesis) == 0 and service.nonce(ADDRESS, head) == ANCHORS
    assert service.balance(ADDRESS, head) == service.balance(ADDRESS, genesis) == FUNDS  # gas price 0
    assert service.balance(b"\x42" * 20, head) == 0
    assert service.code(ANCHOR_REGISTRY, head) == PLACEHOLDER_CODE and service.code(ADDRESS, head) == b""
    assert service.storage(ADDRESS, 0, head) == 0


def test_calls_and_estimates_run_on_a_block_and_keep_their_budgets(dev) -> None:
    service, _ = dev
    head = service.head()
    anchored_at = keccak256(b"anchoredAt(bytes32)")[:4]
    for n in range(ANCHORS):
        out = service.call(CallRequest(to=ANCHOR_REGISTRY, data=anchored_at + root(n)), head, follow_head=True)
        assert decode(["uint64"], out) == (n + 1,)
    with pytest.raises(StaleChaincodeState):  # native chaincode keeps the head's state only
        service.call(CallRequest(to=ANCHOR_REGISTRY, data=anchored_at + root(0)), service.header(0))
    assert service.estimate_gas(CallRequest(sender=ADDRESS, to=b"\x42" * 20), head) == 21_000
    with pytest.raises(Reverted, match="Anchor: root already anchored"):
        service.call(CallRequest(sender=ADDRESS, to=ANCHOR_REGISTRY, data=anchor_data(root(0))), head)
    # rpc_gas_cap = 50,000 of the fixture: a creation that loops until out of gas says so
    loop = bytes.fromhex("5b600056")  # JUMPDEST PUSH1 0 JUMP
    with pytest.raises(ExecutionError, match=r"with 50000 gas: this node caps the gas .* rpc_gas_cap"):
        service.call(CallRequest(sender=ADDRESS, data=loop, gas=1_000_000), head)


def test_logs_are_filtered_by_the_service_by_range_block_address_and_topics(dev) -> None:
    service, hashes = dev
    everything = service.logs(LogFilter(from_block=0, to_block=10**6))  # to_block past the head: the head
    assert [(m.block.number, m.tx_index, m.log_index) for m in everything] == [(1, 0, 0), (2, 0, 0), (3, 0, 0)]
    assert [m.transaction.hash for m in everything] == hashes
    assert [m.log.topics[1] for m in everything] == [root(n) for n in range(ANCHORS)]
    by_root = service.logs(LogFilter(topics=(frozenset({ANCHORED}), frozenset({root(1), root(2)})),
                                     from_block=0, to_block=ANCHORS))
    assert [m.block.number for m in by_root] == [2, 3]
    assert service.logs(LogFilter(addresses=frozenset({ADDRESS}), from_block=0, to_block=ANCHORS)) == []
    assert service.logs(LogFilter(topics=(None, None, None, None, None), from_block=0, to_block=ANCHORS)) == []
    one = service.logs(LogFilter(addresses=frozenset({ANCHOR_REGISTRY}), block_hash=service.block(2).hash))
    assert [m.block.number for m in one] == [2]
    assert service.logs(LogFilter(from_block=3, to_block=2)) == []
    with pytest.raises(NodeError, match="unknown block: no final block with that hash"):
        service.logs(LogFilter(block_hash=b"\x33" * 32))


def test_log_queries_over_the_node_budgets_are_refused_naming_the_limit(tmp_path) -> None:
    service, _ = start(tmp_path, max_logs_block_range=2, max_logs_results=1)
    try:
        with pytest.raises(NodeError, match="block range too large: 3 blocks, the limit is 2"):
            service.logs(LogFilter(from_block=1, to_block=3))
        with pytest.raises(NodeError, match="query returned more than 1 results; narrow"):
            service.logs(LogFilter(from_block=1, to_block=2))
        assert len(service.logs(LogFilter(from_block=3, to_block=3))) == 1
    finally:
        service.close()


def test_a_log_filter_matches_by_position_with_wildcards() -> None:
    a, b, c = b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32
    flt = LogFilter(addresses=frozenset({b"\x01" * 20}), topics=(None, frozenset({b, c})))
    assert flt.matches(b"\x01" * 20, (a, b)) and flt.matches(b"\x01" * 20, (a, c, a))
    assert not flt.matches(b"\x02" * 20, (a, b))  # another address
    assert not flt.matches(b"\x01" * 20, (a,))  # fewer topics than positions asked
    assert not flt.matches(b"\x01" * 20, (b, a))
    assert LogFilter().matches(b"\x02" * 20, ())


def test_the_rpc_layer_imports_nothing_behind_the_service() -> None:
    behind = ("node.chain", "node.execution", "node.storage", "node.txpool", "node.runtime", "node.consensus",
              "node.p2p", "chaincode_py", "network", "client_sdk")
    for path in sorted((Path(node.__file__).parent / "rpc").glob("*.py")):
        for item in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in item.names] if isinstance(item, ast.Import)
                     else [item.module] if isinstance(item, ast.ImportFrom) and item.module else [])
            for name in names:
                assert not name.startswith(behind), f"{path.name} imports {name}"
