"""Result shapes of a real dev node conform to the official execution-apis schemas.

A module fixture makes some traffic first: deploy Counter, increments with events,
an EIP-1559 and a legacy transaction, and a transaction calling `fail()` with an
explicit gas limit so it is mined with status 0. Each (method, params) case then
validates the live result with `openrpc.validate_result` (tests/conformance/openrpc.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from devnode import (
    CHAIN_ID,
    DEPLOYER,
    account,
    deploy_counter,
    rpc,
    rpc_result,
    sign_and_send,
)
from eth_account import Account
from eth_utils import to_checksum_address

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
import openrpc  # noqa: E402  (tests/conformance is not a package)

DEPLOYER_KEY = account(DEPLOYER).private_key
DEPLOYER_ADDR = to_checksum_address(account(DEPLOYER).address)
PRESCRIBER = account(1)


def _hex(value) -> str:
    return "0x" + bytes(value).hex()


@pytest.fixture(scope="module")
def traffic(w3, dev_node):
    """Produce blocks of every kind of interest; returns the hashes and numbers to query."""
    contract, deploy = deploy_counter(w3, 5)

    def call_tx(fn, key=DEPLOYER_KEY, **fields):
        sender = Account.from_key(key).address
        tx = fn.build_transaction({"from": sender, "chainId": CHAIN_ID,
                                   "nonce": w3.eth.get_transaction_count(sender, "pending"), **fields})
        return sign_and_send(w3, tx, key)

    dynamic = call_tx(contract.functions.increment(), maxFeePerGas=0, maxPriorityFeePerGas=0)
    legacy = call_tx(contract.functions.increment(), key=PRESCRIBER.private_key, gasPrice=0)
    set_receipt = call_tx(contract.functions.set(77), gasPrice=0)
    # fail() with an explicit gas: no estimate, so it is mined and reverts (status 0)
    failing = sign_and_send(w3, {
        "to": contract.address, "data": contract.encode_abi("fail"), "gas": 100_000,
        "maxFeePerGas": 0, "maxPriorityFeePerGas": 0,
    }, DEPLOYER_KEY)
    assert deploy["status"] == 1 and dynamic["status"] == 1 and legacy["status"] == 1
    assert set_receipt["status"] == 1
    assert failing["status"] == 0
    return {
        "contract": contract.address,
        "deploy": _hex(deploy["transactionHash"]),
        "deploy_block": hex(deploy["blockNumber"]),
        "dynamic": _hex(dynamic["transactionHash"]),
        "dynamic_block": hex(dynamic["blockNumber"]),
        "dynamic_block_hash": _hex(dynamic["blockHash"]),
        "legacy": _hex(legacy["transactionHash"]),
        "failing": _hex(failing["transactionHash"]),
        "count_call": contract.encode_abi("count"),
        "increment_call": contract.encode_abi("increment"),
        "url": dev_node.url,
    }


# (case id, method, params builder taking the traffic dict, extra check on the result)
def _non_empty(result):
    assert result, "expected a non-empty result"


def _status(value):
    def check(result):
        assert result["status"] == value, result
    return check


def _contract_creation(result):
    assert result["contractAddress"] is not None and result["to"] is None, result


def _has_transactions(result):
    assert result["transactions"], result


def _has_full_transactions(result):
    assert result["transactions"] and isinstance(result["transactions"][0], dict), result


def _type(value):
    def check(result):
        assert result["type"] == value, result
    return check


CASES = [
    ("chainId", "eth_chainId", lambda t: [], lambda r: r == hex(CHAIN_ID)),
    ("blockNumber", "eth_blockNumber", lambda t: [], None),
    ("block-latest", "eth_getBlockByNumber", lambda t: ["latest", False], None),
    ("block-latest-full", "eth_getBlockByNumber", lambda t: ["latest", True], None),
    ("block-with-txs", "eth_getBlockByNumber", lambda t: [t["dynamic_block"], False], _has_transactions),
    ("block-with-txs-full", "eth_getBlockByNumber", lambda t: [t["dynamic_block"], True],
     _has_full_transactions),
    ("block-genesis", "eth_getBlockByNumber", lambda t: ["0x0", False], None),
    ("block-genesis-full", "eth_getBlockByNumber", lambda t: ["0x0", True], None),
    ("block-earliest", "eth_getBlockByNumber", lambda t: ["earliest", False], None),
    ("block-finalized", "eth_getBlockByNumber", lambda t: ["finalized", False], None),
    ("block-safe", "eth_getBlockByNumber", lambda t: ["safe", False], None),
    ("block-beyond-head", "eth_getBlockByNumber", lambda t: ["0xffffff", False], lambda r: r is None),
    ("block-by-hash", "eth_getBlockByHash", lambda t: [t["dynamic_block_hash"], False], _has_transactions),
    ("block-by-hash-full", "eth_getBlockByHash", lambda t: [t["dynamic_block_hash"], True],
     _has_full_transactions),
    ("block-by-unknown-hash", "eth_getBlockByHash", lambda t: ["0x" + "11" * 32, False], lambda r: r is None),
    ("tx-1559", "eth_getTransactionByHash", lambda t: [t["dynamic"]], _type("0x2")),
    ("tx-legacy", "eth_getTransactionByHash", lambda t: [t["legacy"]], _type("0x0")),
    ("tx-creation", "eth_getTransactionByHash", lambda t: [t["deploy"]], None),
    ("tx-failing", "eth_getTransactionByHash", lambda t: [t["failing"]], None),
    ("tx-unknown", "eth_getTransactionByHash", lambda t: ["0x" + "22" * 32], lambda r: r is None),
    ("tx-by-block-number-and-index", "eth_getTransactionByBlockNumberAndIndex",
     lambda t: [t["dynamic_block"], "0x0"], None),
    ("tx-by-block-hash-and-index", "eth_getTransactionByBlockHashAndIndex",
     lambda t: [t["dynamic_block_hash"], "0x0"], None),
    ("receipt-success", "eth_getTransactionReceipt", lambda t: [t["dynamic"]], _status("0x1")),
    ("receipt-legacy", "eth_getTransactionReceipt", lambda t: [t["legacy"]], _status("0x1")),
    ("receipt-failure", "eth_getTransactionReceipt", lambda t: [t["failing"]], _status("0x0")),
    ("receipt-creation", "eth_getTransactionReceipt", lambda t: [t["deploy"]], _contract_creation),
    ("receipt-unknown", "eth_getTransactionReceipt", lambda t: ["0x" + "33" * 32], lambda r: r is None),
    ("block-receipts", "eth_getBlockReceipts", lambda t: [t["dynamic_block"]], _non_empty),
    ("block-receipts-latest", "eth_getBlockReceipts", lambda t: ["latest"], _non_empty),
    ("block-receipts-genesis", "eth_getBlockReceipts", lambda t: ["0x0"], None),
    ("logs", "eth_getLogs", lambda t: [{"fromBlock": t["deploy_block"], "toBlock": "latest"}], _non_empty),
    ("logs-by-address", "eth_getLogs",
     lambda t: [{"fromBlock": "0x0", "address": t["contract"]}], _non_empty),
    ("logs-by-block-hash", "eth_getLogs", lambda t: [{"blockHash": t["dynamic_block_hash"]}], _non_empty),
    ("fee-history", "eth_feeHistory", lambda t: ["0x4", "latest", [10, 50, 90]],
     lambda r: len(r["reward"]) == len(r["gasUsedRatio"]) == 4),
    ("fee-history-no-percentiles", "eth_feeHistory", lambda t: ["0x2", "latest", []], None),
    ("gasPrice", "eth_gasPrice", lambda t: [], lambda r: r == "0x0"),
    ("maxPriorityFeePerGas", "eth_maxPriorityFeePerGas", lambda t: [], None),
    ("balance", "eth_getBalance", lambda t: [DEPLOYER_ADDR, "latest"], None),
    ("balance-at-genesis", "eth_getBalance", lambda t: [DEPLOYER_ADDR, "0x0"], None),
    ("code", "eth_getCode", lambda t: [t["contract"], "latest"], lambda r: len(r) > 2),
    ("code-of-an-account", "eth_getCode", lambda t: [DEPLOYER_ADDR, "latest"], lambda r: r == "0x"),
    ("storage", "eth_getStorageAt", lambda t: [t["contract"], "0x0", "latest"],
     lambda r: int(r, 16) == 77),
    ("storage-32-byte-slot", "eth_getStorageAt", lambda t: [t["contract"], "0x" + "00" * 32, "latest"], None),
    ("transactionCount", "eth_getTransactionCount", lambda t: [DEPLOYER_ADDR, "latest"], None),
    ("transactionCount-pending", "eth_getTransactionCount", lambda t: [DEPLOYER_ADDR, "pending"], None),
    ("call", "eth_call", lambda t: [{"to": t["contract"], "data": t["count_call"]}, "latest"],
     lambda r: int(r, 16) == 77),
    ("call-at-block", "eth_call",
     lambda t: [{"to": t["contract"], "data": t["count_call"]}, t["dynamic_block"]], None),
    ("estimateGas", "eth_estimateGas",
     lambda t: [{"from": DEPLOYER_ADDR, "to": t["contract"], "data": t["increment_call"]}], None),
    ("estimateGas-transfer", "eth_estimateGas", lambda t: [{"from": DEPLOYER_ADDR, "to": DEPLOYER_ADDR}],
     lambda r: r == hex(21_000)),
    ("syncing", "eth_syncing", lambda t: [], None),
    ("accounts", "eth_accounts", lambda t: [], None),
    ("net_version", "net_version", lambda t: [], lambda r: r == str(CHAIN_ID)),
    ("txCount-by-number", "eth_getBlockTransactionCountByNumber", lambda t: [t["dynamic_block"]], None),
    ("txCount-by-number-latest", "eth_getBlockTransactionCountByNumber", lambda t: ["latest"], None),
    ("txCount-by-hash", "eth_getBlockTransactionCountByHash", lambda t: [t["dynamic_block_hash"]], None),
]

# Only methods the vendored specification defines (e.g. net_version, eth_getBlockReceipts).
SPEC_METHODS = set(openrpc.method_names())
CASES = [case for case in CASES if case[1] in SPEC_METHODS]


@pytest.mark.parametrize(("method", "build", "check"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_result_conforms(traffic, method, build, check):
    params = build(traffic)
    answer = rpc(traffic["url"], method, params)
    assert "error" not in answer, f"{method}{params}: {answer['error']}"
    result = answer["result"]
    openrpc.validate_result(method, result,
                            allow_ambiguous_one_of=(method == "eth_getLogs" and result == []))
    if check is not None:
        outcome = check(result)
        assert outcome is None or outcome is True, f"{method}{params} gave {result!r}"


def test_every_transaction_and_receipt_in_the_chain_conforms(traffic):
    """All blocks made so far: full blocks, each transaction and receipt."""
    url = traffic["url"]
    head = int(rpc_result(url, "eth_blockNumber"), 16)
    assert head >= 5
    seen_types = set()
    for number in range(head + 1):
        block = rpc_result(url, "eth_getBlockByNumber", [hex(number), True])
        openrpc.validate_result("eth_getBlockByNumber", block)
        for tx in block["transactions"]:
            seen_types.add(tx["type"])
            openrpc.validate_result("eth_getTransactionByHash", rpc_result(url, "eth_getTransactionByHash",
                                                                           [tx["hash"]]))
            openrpc.validate_result("eth_getTransactionReceipt",
                                    rpc_result(url, "eth_getTransactionReceipt", [tx["hash"]]))
        openrpc.validate_result("eth_getBlockReceipts", rpc_result(url, "eth_getBlockReceipts", [hex(number)]))
    assert seen_types == {"0x0", "0x2"}


def test_send_raw_transaction_result_conforms(traffic):
    raw = Account.sign_transaction({"to": DEPLOYER_ADDR, "value": 0, "gas": 21_000, "gasPrice": 0,
                                    "nonce": int(rpc_result(traffic["url"], "eth_getTransactionCount",
                                                            [DEPLOYER_ADDR, "pending"]), 16),
                                    "chainId": CHAIN_ID}, DEPLOYER_KEY).raw_transaction
    result = rpc_result(traffic["url"], "eth_sendRawTransaction", [_hex(raw)])
    openrpc.validate_result("eth_sendRawTransaction", result)
