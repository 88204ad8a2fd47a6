"""Bad input gets a clear JSON-RPC error, and the node keeps serving.

Every error answer is checked for its code AND a message a person can act on; after
each one the node must still answer `eth_blockNumber` (the `alive` helper).
"""

from __future__ import annotations

import json

import httpx
import pytest
from devnode import (
    CHAIN_ID,
    DEPLOYER,
    account,
    deploy_counter,
    post_raw,
    rpc,
    rpc_result,
    wait_for_receipt,
)
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SERVER_ERROR = -32000
EXECUTION_REVERTED = 3

DEPLOYER_ACCT = account(DEPLOYER)
DEPLOYER_ADDR = to_checksum_address(DEPLOYER_ACCT.address)
SENDER = account(5)  # used for the nonce tests, untouched by the rest of the module
SENDER_ADDR = to_checksum_address(SENDER.address)


def alive(node) -> None:
    """The node still serves a normal request."""
    answer = rpc(node.url, "eth_blockNumber")
    assert "result" in answer and answer["result"].startswith("0x"), answer
    assert node.alive()


def assert_error(answer, code: int, *substrings: str, id_=...) -> dict:
    """`answer` is a JSON-RPC error with `code` whose message contains every substring."""
    assert isinstance(answer, dict), answer
    assert answer.get("jsonrpc") == "2.0", answer
    assert "result" not in answer, answer
    error = answer.get("error")
    assert isinstance(error, dict), answer
    assert error.get("code") == code, f"expected code {code}, got {error}"
    message = error.get("message", "")
    assert isinstance(message, str) and message, error
    for part in substrings:
        assert part.lower() in message.lower(), f"{part!r} not in error message {message!r}"
    if id_ is not ...:
        assert answer.get("id") == id_, answer
    return error


def send_raw(node, raw: bytes | str) -> dict:
    raw_hex = raw if isinstance(raw, str) else "0x" + raw.hex()
    return rpc(node.url, "eth_sendRawTransaction", [raw_hex])


def transfer(nonce: int, *, key: bytes = SENDER.private_key, **fields) -> bytes:
    tx = {"to": DEPLOYER_ADDR, "value": 0, "gas": 21_000, "gasPrice": 0, "nonce": nonce,
          "chainId": CHAIN_ID, **fields}
    tx = {k: v for k, v in tx.items() if v is not None}
    return bytes(Account.sign_transaction(tx, key).raw_transaction)


def state_nonce(node, address: str, tag: str = "latest") -> int:
    return int(rpc_result(node.url, "eth_getTransactionCount", [address, tag]), 16)


# -- the request envelope --------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    b'{"jsonrpc": "2.0", "method": "eth_blockNumber", "id": 1',
    b'{"jsonrpc": "2.0", "method": "eth_blockNumber", "id": 1}}',
    b"not json at all",
    b"",
    b"\xff\xfe\x00garbage",
    b"{'jsonrpc': '2.0'}",
])
def test_invalid_json_is_a_parse_error(dev_node, body):
    response = post_raw(dev_node.url, body)
    assert response.status_code == 200
    assert_error(response.json(), PARSE_ERROR, "parse error", id_=None)
    alive(dev_node)


def test_empty_batch_is_an_invalid_request(dev_node):
    response = post_raw(dev_node.url, b"[]")
    assert_error(response.json(), INVALID_REQUEST, "empty batch", id_=None)
    alive(dev_node)


@pytest.mark.parametrize("body", ["1", '"eth_blockNumber"', "null", "true"])
def test_non_object_request_is_an_invalid_request(dev_node, body):
    response = post_raw(dev_node.url, body)
    assert_error(response.json(), INVALID_REQUEST, "invalid request", "object", id_=None)
    alive(dev_node)


def test_batch_of_non_objects_gets_one_error_each(dev_node):
    answers = post_raw(dev_node.url, "[1, 2, 3]").json()
    assert isinstance(answers, list) and len(answers) == 3
    for answer in answers:
        assert_error(answer, INVALID_REQUEST, "object", id_=None)
    alive(dev_node)


@pytest.mark.parametrize("version", ["1.0", "2", 2.0, None])
def test_wrong_jsonrpc_version(dev_node, version):
    request = {"id": 7, "method": "eth_blockNumber", "params": []}
    if version is not None:
        request["jsonrpc"] = version
    answer = post_raw(dev_node.url, json.dumps(request)).json()
    assert_error(answer, INVALID_REQUEST, "jsonrpc", "2.0", id_=7)
    alive(dev_node)


def test_method_not_a_string(dev_node):
    answer = post_raw(dev_node.url, json.dumps({"jsonrpc": "2.0", "id": 3, "method": 42})).json()
    assert_error(answer, INVALID_REQUEST, "method", id_=3)
    alive(dev_node)


def test_invalid_id(dev_node):
    answer = post_raw(dev_node.url, json.dumps(
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "eth_blockNumber"})).json()
    assert_error(answer, INVALID_REQUEST, "id", id_=None)
    alive(dev_node)


def test_params_not_an_array(dev_node):
    answer = post_raw(dev_node.url, json.dumps(
        {"jsonrpc": "2.0", "id": 4, "method": "eth_getBalance", "params": {"address": DEPLOYER_ADDR}})).json()
    error = assert_error(answer, answer["error"]["code"], "params", id_=4)
    assert error["code"] in (INVALID_REQUEST, INVALID_PARAMS)
    alive(dev_node)


@pytest.mark.parametrize("method", ["eth_doesNotExist", "eth_sign", "admin_peers", "", "ETH_BLOCKNUMBER"])
def test_unknown_method(dev_node, method):
    answer = rpc(dev_node.url, method, [], id="abc")
    error = assert_error(answer, METHOD_NOT_FOUND, "does not exist", id_="abc")
    assert method in error["message"]
    alive(dev_node)


# -- parameters ------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "params", "names"), [
    ("eth_getBalance", [1234, "latest"], ["address"]),
    ("eth_getBalance", ["0x1234", "latest"], ["address", "20 bytes"]),
    ("eth_getBalance", [DEPLOYER_ADDR[:-1], "latest"], ["address"]),  # odd number of digits
    ("eth_getBalance", ["f39fd6e51aad88f6f4ce6ab8827279cfffb92266", "latest"], ["address"]),  # no 0x
    ("eth_getBalance", [DEPLOYER_ADDR, "latestt"], ["block"]),
    ("eth_getBalance", [], ["address", "missing"]),
    ("eth_getBlockByNumber", ["0x01", False], ["block"]),
    ("eth_getBlockByNumber", ["latestt", False], ["block"]),
    ("eth_getBlockByNumber", [1, False], ["block"]),
    ("eth_getBlockByNumber", ["-0x1", False], ["block"]),
    ("eth_getBlockByNumber", ["latest", "yes"], ["hydrated"]),
    ("eth_getBlockByNumber", [], ["block", "missing"]),
    ("eth_getBlockByHash", ["0x1234", False], ["blockHash", "32 bytes"]),
    ("eth_getTransactionByHash", ["0xzz"], ["transactionHash"]),
    ("eth_getTransactionReceipt", [12], ["transactionHash"]),
    ("eth_getTransactionCount", [DEPLOYER_ADDR, "0xG"], ["block"]),
    ("eth_getStorageAt", [DEPLOYER_ADDR, "slot0", "latest"], ["slot"]),
    ("eth_getCode", [None], ["address"]),
    ("eth_call", ["not an object", "latest"], ["transaction"]),
    ("eth_call", [{"to": "0x12"}, "latest"], ["transaction.to"]),
    ("eth_call", [{"to": DEPLOYER_ADDR, "data": "0x123"}, "latest"], ["transaction.input"]),
    ("eth_call", [{"to": DEPLOYER_ADDR, "gas": "0xffffffffffff"}, "latest"], ["transaction.gas"]),
    ("eth_estimateGas", [{"to": DEPLOYER_ADDR, "value": "ten"}], ["transaction.value"]),
    ("eth_getLogs", ["not a filter"], ["filter"]),
    ("eth_getLogs", [{"address": "0x12"}], ["filter.address"]),
    ("eth_getLogs", [{"topics": ["0x12"]}], ["filter.topics"]),
    ("eth_getLogs", [{"fromBlock": "first"}], ["filter.fromBlock"]),
    ("eth_feeHistory", ["0x4", "latest", [90, 10]], ["rewardPercentiles"]),
    ("eth_feeHistory", ["four", "latest", []], ["blockCount"]),
    ("eth_sendRawTransaction", [1234], ["transaction"]),
    ("eth_sendRawTransaction", ["0x123"], ["transaction"]),
    ("eth_sendRawTransaction", ["0xf8\n"], ["transaction"]),  # bytes.fromhex would skip the newline
    ("eth_sendRawTransaction", ["0xf8 6c"], ["transaction"]),
    ("eth_sendRawTransaction", [], ["transaction", "missing"]),
    ("qbft_getValidatorsByBlockNumber", ["head"], ["block"]),
    ("qbft_proposeValidatorVote", [DEPLOYER_ADDR, "yes"], ["add"]),
])
def test_bad_params_name_the_argument(dev_node, method, params, names):
    answer = rpc(dev_node.url, method, params, id=11)
    assert_error(answer, INVALID_PARAMS, *names, id_=11)
    alive(dev_node)


HUGE_NUMBER = "0x" + "f" * 30  # more than 64 bits: no block can have this number


@pytest.mark.parametrize(("method", "params"), [
    ("eth_getBlockByNumber", [HUGE_NUMBER, False]),
    ("eth_getBlockTransactionCountByNumber", [HUGE_NUMBER]),
    ("eth_getTransactionByBlockNumberAndIndex", [HUGE_NUMBER, "0x0"]),
    ("eth_getBlockReceipts", [HUGE_NUMBER]),
    ("eth_getBalance", [DEPLOYER_ADDR, HUGE_NUMBER]),
    ("eth_getTransactionCount", [DEPLOYER_ADDR, HUGE_NUMBER]),
    ("eth_getCode", [DEPLOYER_ADDR, {"blockNumber": HUGE_NUMBER}]),
    ("eth_call", [{"to": DEPLOYER_ADDR}, HUGE_NUMBER]),
    ("qbft_getValidatorsByBlockNumber", [HUGE_NUMBER]),
])
def test_block_number_beyond_64_bits_is_not_an_internal_error(dev_node, method, params):
    """A block number no block can have is the client's mistake: either "no such block"
    (null / header not found) or invalid params naming the block, never -32603."""
    answer = rpc(dev_node.url, method, params, id=12)
    if "error" not in answer:
        assert answer["result"] is None, answer
    else:
        error = answer["error"]
        assert error["code"] != -32603, f"{method} answered an internal error: {error}"
        assert error["code"] in (INVALID_PARAMS, SERVER_ERROR), error
        assert "block" in error["message"].lower() or "header not found" in error["message"], error
    alive(dev_node)


# -- eth_sendRawTransaction refusals ---------------------------------------------------------
@pytest.mark.parametrize("raw", ["0xf8ff00", "0x02c0", "0xdeadbeef", "0xc0", "0x02", "0xf86480"])
def test_malformed_rlp_transaction(dev_node, raw):
    answer = send_raw(dev_node, raw)
    error = assert_error(answer, SERVER_ERROR, "invalid transaction")
    assert "rlp" in error["message"].lower() or "malformed" in error["message"].lower(), error
    alive(dev_node)


def test_empty_and_unknown_type_transactions(dev_node):
    assert_error(send_raw(dev_node, "0x"), SERVER_ERROR, "invalid transaction", "empty")
    assert_error(send_raw(dev_node, "0x7f00"), SERVER_ERROR, "unknown transaction type", "0x7f")
    alive(dev_node)


def test_non_canonical_and_trailing_bytes(dev_node):
    raw = transfer(state_nonce(dev_node, SENDER_ADDR))
    assert_error(send_raw(dev_node, raw + b"\x00"), SERVER_ERROR, "invalid transaction")
    alive(dev_node)


def test_wrong_chain_id(dev_node):
    raw = transfer(state_nonce(dev_node, SENDER_ADDR), chainId=1)
    error = assert_error(send_raw(dev_node, raw), SERVER_ERROR, "chain id")
    assert str(CHAIN_ID) in error["message"] and "1" in error["message"]
    dynamic = transfer(state_nonce(dev_node, SENDER_ADDR), chainId=1, gasPrice=None,
                       maxFeePerGas=0, maxPriorityFeePerGas=0)
    assert_error(send_raw(dev_node, dynamic), SERVER_ERROR, "chain id")
    alive(dev_node)


def test_value_or_fees_beyond_the_balance_are_refused_on_admission(dev_node):
    """Accounts hold no ether on a zero-fee chain: a transfer of value (or a gas price) it
    cannot pay is refused when sent, not accepted and silently dropped by the block."""
    nonce = state_nonce(dev_node, SENDER_ADDR)
    error = assert_error(send_raw(dev_node, transfer(nonce, value=1)), SERVER_ERROR, "insufficient funds")
    assert "0 wei" in error["message"] and "needs 1" in error["message"], error
    assert_error(send_raw(dev_node, transfer(nonce, gasPrice=1)), SERVER_ERROR, "insufficient funds", "21000")
    alive(dev_node)


def test_unprotected_legacy_transaction_is_refused(dev_node):
    tx = {"to": DEPLOYER_ADDR, "value": 0, "gas": 21_000, "gasPrice": 0,
          "nonce": state_nonce(dev_node, SENDER_ADDR)}  # no chainId: pre-EIP-155 signature
    raw = bytes(Account.sign_transaction(tx, SENDER.private_key).raw_transaction)
    assert_error(send_raw(dev_node, raw), SERVER_ERROR, "EIP-155")
    alive(dev_node)


def test_replayed_transaction_and_used_nonce(dev_node):
    nonce = state_nonce(dev_node, SENDER_ADDR)
    raw = transfer(nonce)
    tx_hash = rpc_result(dev_node.url, "eth_sendRawTransaction", ["0x" + raw.hex()])
    assert tx_hash == "0x" + keccak(raw).hex()
    receipt = wait_for_receipt(dev_node.url, tx_hash)
    assert receipt["status"] == "0x1"
    # the very same bytes again, once mined
    error = assert_error(send_raw(dev_node, raw), SERVER_ERROR)
    assert any(s in error["message"].lower() for s in ("already known", "nonce too low")), error
    # another transaction with the used nonce
    other = transfer(nonce, value=1)
    assert_error(send_raw(dev_node, other), SERVER_ERROR, "nonce too low", str(nonce))
    # nothing was mined for either refusal
    assert state_nonce(dev_node, SENDER_ADDR) == nonce + 1
    alive(dev_node)


def test_nonce_too_far_ahead(dev_node):
    nonce = state_nonce(dev_node, SENDER_ADDR)
    error = assert_error(send_raw(dev_node, transfer(nonce + 10_000)), SERVER_ERROR, "nonce too high")
    assert str(nonce + 10_000) in error["message"]
    assert state_nonce(dev_node, SENDER_ADDR, "pending") == nonce
    alive(dev_node)


def test_unsupported_transaction_type(dev_node):
    nonce = state_nonce(dev_node, SENDER_ADDR)
    raw = transfer(nonce, type=1, accessList=[])
    assert raw[0] == 1
    assert_error(send_raw(dev_node, raw), SERVER_ERROR, "not supported", "access-list")
    alive(dev_node)


def test_intrinsic_gas_and_block_gas_limit(dev_node):
    nonce = state_nonce(dev_node, SENDER_ADDR)
    assert_error(send_raw(dev_node, transfer(nonce, gas=20_000)), SERVER_ERROR, "intrinsic gas too low")
    assert_error(send_raw(dev_node, transfer(nonce, gas=10**9)), SERVER_ERROR, "gas limit")
    alive(dev_node)


def test_oversized_transaction(dev_node):
    nonce = state_nonce(dev_node, SENDER_ADDR)
    raw = transfer(nonce, data=b"\x01" * 200_000, gas=29_000_000)
    assert_error(send_raw(dev_node, raw), SERVER_ERROR, "oversized")
    alive(dev_node)


def test_unknown_sender(dev_node):
    stranger = Account.create()
    raw = transfer(0, key=bytes(stranger.key))
    error = assert_error(send_raw(dev_node, raw), SERVER_ERROR, "not enrolled")
    assert stranger.address.lower() in error["message"].lower()
    alive(dev_node)


# -- transport limits --------------------------------------------------------------------------
def test_oversized_body_is_refused_with_413(dev_node):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
                       "params": ["0x" + "00" * (3 * 1024 * 1024)]}).encode()
    assert len(body) > 6 * 1024 * 1024
    response = post_raw(dev_node.url, body)
    assert response.status_code == 413
    assert_error(response.json(), INVALID_REQUEST, "too large")
    alive(dev_node)


def test_oversized_chunked_body_is_refused_with_413(dev_node):
    # no Content-Length: the node must stop reading at the limit on its own
    def chunks():
        yield b'{"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": ["'
        for _ in range(6 * 16):
            yield b"a" * 65536
        yield b'"]}'

    response = httpx.post(dev_node.url, content=chunks(), headers={"content-type": "application/json"},
                          timeout=30)
    assert response.status_code == 413
    assert_error(response.json(), INVALID_REQUEST, "too large")
    alive(dev_node)


# -- batches -----------------------------------------------------------------------------------
def test_mixed_batch_gets_per_item_answers(dev_node):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": "two", "method": "eth_nope", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x12", "latest"]},
        {"jsonrpc": "1.0", "id": 4, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 5, "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "id": 6, "method": "eth_sendRawTransaction", "params": ["0xdeadbeef"]},
        {"jsonrpc": "2.0", "method": "eth_chainId", "params": []},  # a notification: no answer
        7,
        {"jsonrpc": "2.0", "id": 8, "method": "net_version"},
    ]
    answers = post_raw(dev_node.url, json.dumps(batch)).json()
    assert isinstance(answers, list)
    assert len(answers) == 8, answers
    by_id = {}
    for answer in answers:
        assert answer["jsonrpc"] == "2.0"
        by_id.setdefault(json.dumps(answer["id"]), []).append(answer)
    assert by_id["1"][0]["result"] == hex(CHAIN_ID)
    assert_error(by_id['"two"'][0], METHOD_NOT_FOUND, "eth_nope")
    assert_error(by_id["3"][0], INVALID_PARAMS, "address")
    assert_error(by_id["4"][0], INVALID_REQUEST, "jsonrpc")
    assert by_id["5"][0]["result"].startswith("0x")
    assert_error(by_id["6"][0], SERVER_ERROR, "invalid transaction")
    assert_error(by_id["null"][0], INVALID_REQUEST, "object")
    assert by_id["8"][0]["result"] == str(CHAIN_ID)
    alive(dev_node)


def test_batch_of_notifications_only(dev_node):
    batch = [{"jsonrpc": "2.0", "method": "eth_chainId"}, {"jsonrpc": "2.0", "method": "eth_blockNumber"}]
    response = post_raw(dev_node.url, json.dumps(batch))
    assert response.status_code in (200, 204)
    assert response.content in (b"", b"[]") or response.json() in ([], None)
    alive(dev_node)


def test_batch_limit(dev_node):
    ok = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(1000)]
    answers = post_raw(dev_node.url, json.dumps(ok)).json()
    assert len(answers) == 1000
    assert sorted(a["id"] for a in answers) == list(range(1000))
    assert all(a["result"] == hex(CHAIN_ID) for a in answers)

    too_many = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(1001)]
    response = post_raw(dev_node.url, json.dumps(too_many))
    answer = response.json()
    assert isinstance(answer, dict), "an over-limit batch gets one error, not per-item answers"
    assert_error(answer, INVALID_REQUEST, "batch", "1000")
    alive(dev_node)


# -- reverts ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def counter(w3):
    contract, _ = deploy_counter(w3, 5)
    return contract


def _error_string_data(reason: str) -> str:
    return "0x" + (keccak(text="Error(string)")[:4] + abi_encode(["string"], [reason])).hex()


@pytest.mark.parametrize("method", ["eth_call", "eth_estimateGas"])
def test_reverted_call_gets_code_3_with_revert_data(dev_node, counter, method):
    data = counter.encode_abi("fail")
    params = [{"from": DEPLOYER_ADDR, "to": counter.address, "data": data}]
    if method == "eth_call":
        params.append("latest")
    error = assert_error(rpc(dev_node.url, method, params), EXECUTION_REVERTED)
    assert error["message"] == "execution reverted: Counter: always fails"
    assert error["data"] == _error_string_data("Counter: always fails")
    alive(dev_node)


def test_require_failure_gets_code_3(dev_node, counter):
    data = counter.encode_abi("set", args=[1_000_001])
    error = assert_error(rpc(dev_node.url, "eth_call", [{"to": counter.address, "data": data}, "latest"]),
                         EXECUTION_REVERTED, "execution reverted", "Counter: value too large")
    assert error["data"] == _error_string_data("Counter: value too large")


def test_custom_error_gets_code_3_with_its_data(dev_node, counter):
    caller = to_checksum_address(account(1).address)
    data = counter.encode_abi("reset")
    error = assert_error(
        rpc(dev_node.url, "eth_call", [{"from": caller, "to": counter.address, "data": data}, "latest"]),
        EXECUTION_REVERTED, "execution reverted")
    expected = keccak(text="NotOwner(address)")[:4] + abi_encode(["address"], [caller])
    assert error["data"] == "0x" + expected.hex()
    alive(dev_node)


def test_call_to_unknown_block(dev_node, counter):
    data = counter.encode_abi("count")
    assert_error(rpc(dev_node.url, "eth_call", [{"to": counter.address, "data": data}, "0xffffff"]),
                 SERVER_ERROR, "header not found")
    assert_error(rpc(dev_node.url, "eth_getBalance", [DEPLOYER_ADDR, "0xffffff"]),
                 SERVER_ERROR, "header not found")
    alive(dev_node)


def test_node_survived_everything(dev_node):
    assert dev_node.alive()
    assert dev_node.health()["status"] == "ok"
    # every bad request above was answered without an unexpected exception in the node
    assert "Traceback" not in dev_node.output(), dev_node.output()[-4000:]
