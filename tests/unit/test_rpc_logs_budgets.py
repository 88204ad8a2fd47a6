"""The `eth_getLogs` block-range and result budgets (`[limits] max_logs_block_range`,
`max_logs_results`): a query over either is refused with the limit named, and the node goes
on answering. A real dev NodeService on LevelDB with real blocks of AnchorRegistry logs,
behind the real ASGI application, in-process (the dev CLI has no flags for these limits).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from starlette.testclient import TestClient

from chaincode_py import NativeChaincodeHost
from node.config import NodeConfig
from node.consensus.qbft import QbftConfig
from node.genesis import dev_accounts, dev_genesis, dev_validator_key
from node.rpc.app import create_app
from node.service import NodeService
from rxledger.core.crypto import keccak256

ANCHOR_REGISTRY = "0x0000000000000000000000000000000000001003"
SENDER = Account.from_key(dev_accounts()[0].private_key)  # hospital-a's admin: enrolled
RANGE, RESULTS = 3, 2


def anchor_tx(nonce: int) -> bytes:
    data = keccak256(b"anchor(bytes32,uint64,bytes32)")[:4] + encode(
        ["bytes32", "uint64", "bytes32"], [(nonce + 1).to_bytes(32, "big"), 1, b"\x00" * 32])  # a zero root is refused
    tx = dict(nonce=nonce, gasPrice=0, gas=200_000, to=ANCHOR_REGISTRY, value=0, data=data, chainId=2024)
    return bytes(SENDER.sign_transaction(tx).raw_transaction)


@pytest.fixture
def http(tmp_path) -> Any:
    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True, max_logs_block_range=RANGE,
                                     max_logs_results=RESULTS),
                          dev_genesis(), validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
    service.start_consensus(QbftConfig(block_period=0, empty_block_period=None))
    for nonce in range(4):  # one anchor per block: blocks 1-4 each hold one Anchored log
        tx_hash = service.submit_raw_transaction(anchor_tx(nonce))
        deadline = time.monotonic() + 15
        while service.chain.locate_transaction(tx_hash) is None:
            assert time.monotonic() < deadline, "anchor not final"
            time.sleep(0.01)
    yield TestClient(create_app(service))
    service.close()


def call(http: TestClient, method: str, params: list[Any]) -> dict[str, Any]:
    answer: dict[str, Any] = http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                  "params": params}).json()
    return answer


def test_a_log_query_over_the_block_range_budget_is_refused_naming_the_limit(http) -> None:
    answer = call(http, "eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x4"}])
    assert answer["error"]["code"] == -32000, answer
    assert "block range too large: 4 blocks, the limit is 3" in answer["error"]["message"]
    within = call(http, "eth_getLogs", [{"fromBlock": "0x2", "toBlock": "0x3", "address": ANCHOR_REGISTRY}])
    assert len(within["result"]) == 2  # the same query within the budget is answered
    assert int(call(http, "eth_blockNumber", [])["result"], 16) >= 4  # and the node goes on


def test_a_log_query_over_the_result_budget_is_refused_saying_how_to_narrow_it(http) -> None:
    answer = call(http, "eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x3", "address": ANCHOR_REGISTRY}])
    assert answer["error"]["code"] == -32000, answer
    message = answer["error"]["message"]
    assert "more than 2 results" in message and "narrow" in message
    assert int(call(http, "eth_blockNumber", [])["result"], 16) >= 4
