"""Every client budget of the JSON-RPC boundary, exceeded on a real dev node process,
gets its documented refusal while another client is served (issue 11).

"Served meanwhile": `while_served` runs the hostile request(s) in one thread while this
thread sends eth_blockNumber on its own connection; each of those must be answered
correctly, and at least one must be answered while the hostile request was still
unanswered (an ordering, not a speed, assertion).

The budgets (node/config.py, node.toml [limits]): body size (413), batch size, JSON
nesting depth, JSON values, decoded-transaction size, eth_getLogs addresses and topics
per position, eth_call/eth_estimateGas gas cap and time cap.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from devnode import CHAIN_ID, DEPLOYER, account, post_raw, rpc, rpc_result, sign_and_send
from eth_account import Account
from eth_utils import to_checksum_address

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
SERVER_ERROR = -32000
T = TypeVar("T")

# Runtime code `JUMPDEST PUSH0 JUMP`: jumps back to 0 until the gas runs out. Deployed by
# init code that copies those 3 bytes from the end of memory word 0 and returns them.
LOOP_RUNTIME = bytes.fromhex("5b5f56")
LOOP_INIT = bytes.fromhex("62" + LOOP_RUNTIME.hex() + "600052" + "6003601df3")
DEPLOYER_ADDR = to_checksum_address(account(DEPLOYER).address)


def while_served(url: str, hostile: Callable[[], T], *, polls: int = 3, max_rounds: int = 200) -> list[T]:
    """Run `hostile` in a thread, again and again until another client has had `polls`
    eth_blockNumber answers while it ran (or `max_rounds` runs); returns its results."""
    results: list[T] = []
    errors: list[BaseException] = []
    answered_meanwhile = [0]
    done = threading.Event()

    def attack() -> None:
        try:
            for _ in range(max_rounds):
                results.append(hostile())
                if answered_meanwhile[0] >= polls:
                    break
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=attack, daemon=True)
    thread.start()
    with httpx.Client(timeout=60) as client:
        while not done.is_set():
            answer = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}).json()
            assert answer.get("result", "").startswith("0x"), answer
            if not done.is_set():
                answered_meanwhile[0] += 1
    thread.join()
    if errors:
        raise errors[0]
    assert answered_meanwhile[0] >= 1, "no other client was answered while the hostile request ran"
    return results


def assert_error(answer: Any, code: int, *parts: str) -> str:
    assert isinstance(answer, dict) and "error" in answer, answer
    assert answer["error"]["code"] == code, answer
    message = answer["error"]["message"]
    for part in parts:
        assert part.lower() in message.lower(), f"{part!r} not in {message!r}"
    return message


def alive(node) -> None:
    assert rpc(node.url, "eth_blockNumber")["result"].startswith("0x")
    assert node.alive()


def deploy_loop(w3) -> str:
    """An endless loop contract, deployed by dev account 9; its address."""
    receipt = sign_and_send(w3, {"data": "0x" + LOOP_INIT.hex(), "gas": 200_000, "gasPrice": 0,
                                 "value": 0, "chainId": CHAIN_ID}, account(DEPLOYER).private_key)
    assert receipt["status"] == 1
    address = receipt["contractAddress"]
    assert rpc_result(str(w3.provider.endpoint_uri), "eth_getCode", [address, "latest"]) == "0x" + LOOP_RUNTIME.hex()
    return address


@pytest.fixture(scope="module")
def loop(w3) -> str:
    return deploy_loop(w3)


# -- the JSON body ---------------------------------------------------------------------------
def test_deeply_nested_body_is_refused_and_the_node_keeps_serving(dev_node):
    """100,000 nested `[` (200 KB, no key) made the node die with SIGSEGV: the stdlib json
    fallback recursed under py-evm's recursion limit of 100,000."""
    bodies = [b"[" * 100_000, b'{"a":' * 100_000, b'["\\ud800",' + b"[" * 100_000]

    def send() -> list[httpx.Response]:
        return [post_raw(dev_node.url, body) for body in bodies]

    for responses in while_served(dev_node.url, send):
        for response in responses:
            assert response.status_code == 200
            assert_error(response.json(), PARSE_ERROR, "nested too deeply", "64")
    alive(dev_node)


def test_too_many_json_values_are_refused(dev_node):
    body = b"[" + b"0," * 150_000 + b"0]"  # 300 KB, 150,001 values (the limit is 100,000)
    for response in while_served(dev_node.url, lambda: post_raw(dev_node.url, body)):
        assert response.status_code == 200
        assert_error(response.json(), PARSE_ERROR, "too many JSON values", "100000")
    alive(dev_node)


def test_oversized_body_is_refused_while_others_are_served(dev_node):
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": ["' + b"a" * (5 * 1024 * 1024) + b'"]}'
    for response in while_served(dev_node.url, lambda: post_raw(dev_node.url, body), max_rounds=20):
        assert response.status_code == 413
        assert_error(response.json(), INVALID_REQUEST, "too large", str(5 * 1024 * 1024))
    alive(dev_node)


def test_oversized_batch_is_refused_while_others_are_served(dev_node):
    batch = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(1001)])
    for response in while_served(dev_node.url, lambda: post_raw(dev_node.url, batch)):
        assert_error(response.json(), INVALID_REQUEST, "batch too large", "1000")
    alive(dev_node)


def test_oversized_transaction_is_refused_before_decoding(dev_node):
    raw = "0x" + "ff" * (128 * 1024 + 1)  # not even RLP: refused by size before any decoding
    for answer in while_served(dev_node.url, lambda: rpc(dev_node.url, "eth_sendRawTransaction", [raw])):
        assert_error(answer, SERVER_ERROR, "oversized transaction", "131072")
    alive(dev_node)


# -- eth_getLogs filters ---------------------------------------------------------------------
def test_too_many_log_addresses_are_refused(dev_node):
    addresses = ["0x" + i.to_bytes(20, "big").hex() for i in range(1001)]
    within = rpc(dev_node.url, "eth_getLogs", [{"fromBlock": "0x0", "address": addresses[:1000]}])
    assert within.get("result") == [], within
    flt = {"fromBlock": "0x0", "address": addresses}
    for answer in while_served(dev_node.url, lambda: rpc(dev_node.url, "eth_getLogs", [flt])):
        assert_error(answer, INVALID_PARAMS, "filter.address", "1001 addresses", "limit is 1000")
    alive(dev_node)


def test_too_many_log_topics_per_position_are_refused(dev_node):
    topics = ["0x" + i.to_bytes(32, "big").hex() for i in range(1001)]
    within = rpc(dev_node.url, "eth_getLogs", [{"fromBlock": "0x0", "topics": [None, topics[:1000]]}])
    assert within.get("result") == [], within
    flt = {"fromBlock": "0x0", "topics": [None, topics]}
    for answer in while_served(dev_node.url, lambda: rpc(dev_node.url, "eth_getLogs", [flt])):
        assert_error(answer, INVALID_PARAMS, "filter.topics[1]", "1001 alternatives", "limit is 1000")
    alive(dev_node)


# -- eth_call / eth_estimateGas: time -------------------------------------------------------------
@pytest.mark.parametrize("method", ["eth_estimateGas", "eth_call"])
def test_endless_loop_call_is_stopped_by_the_time_budget(dev_node, loop, method):
    """eth_estimateGas of an endless loop with gas 2^62 ran for more than 30 s (it took any
    gas as its cap, and nothing bounded its time); eth_call had no time budget either.
    Default budgets: 50,000,000 gas (the dev block gas limit, 30,000,000, is lower) and
    5 s, and 30,000,000 gas of this loop take longer than 5 s in py-evm."""
    call: dict[str, Any] = {"from": DEPLOYER_ADDR, "to": loop, "gas": hex(2**62)}
    if method == "eth_call":
        call.pop("gas")  # eth_call refuses gas above the block gas limit; its default is that limit
    params: list[Any] = [call, "latest"]
    answers = while_served(dev_node.url, lambda: rpc(dev_node.url, method, params, timeout=60), max_rounds=1)
    assert_error(answers[0], SERVER_ERROR, "execution aborted", "timeout = 5s", "rpc_evm_timeout")
    alive(dev_node)


# -- eth_call / eth_estimateGas: gas ---------------------------------------------------------------
@pytest.fixture(scope="module")
def capped_node(tmp_path_factory):
    from devnode import make_web3, start_dev_node

    node = start_dev_node(tmp_path_factory.mktemp("capped") / "data",
                          extra_args=["--rpc-gas-cap", "1000000", "--rpc-evm-timeout", "0"])
    try:
        yield node, deploy_loop(make_web3(node.url))
    finally:
        node.stop()


@pytest.mark.parametrize("method", ["eth_estimateGas", "eth_call"])
def test_gas_cap_bounds_a_call(capped_node, method):
    """With no time budget, the gas cap alone bounds the loop: it runs out of 1,000,000
    gas (not the 2^62 asked for, nor the block's 30,000,000)."""
    node, loop = capped_node
    call: dict[str, Any] = {"from": DEPLOYER_ADDR, "to": loop}
    if method == "eth_estimateGas":
        call["gas"] = hex(2**62)
    answers = while_served(node.url, lambda: rpc(node.url, method, [call, "latest"], timeout=60), max_rounds=1)
    assert_error(answers[0], SERVER_ERROR, "out of gas", "with 1000000 gas", "rpc_gas_cap")
    alive(node)
    # A call that fits the cap is answered as before.
    transfer = {"from": DEPLOYER_ADDR, "to": to_checksum_address(Account.create().address), "value": "0x0"}
    assert rpc_result(node.url, "eth_estimateGas", [transfer, "latest"]) == hex(21_000)
