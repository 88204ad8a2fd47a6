"""kill -9 of the dev node during a stream of transactions, then a restart on the same data dir.

A block is final when written (one atomic, fsynced batch), so whatever a client saw as
final before the crash must still be there, byte for byte, after it: receipts, block
hashes, state roots. Transactions that were only waiting in the txpool may be gone, but
the state must be exactly that of the blocks kept, and the node must carry on from there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
from devnode import (
    CHAIN_ID,
    DEPLOYER,
    account,
    deploy_counter,
    make_web3,
    rpc_result,
    wait_for_receipt,
)
from eth_account import Account
from eth_utils import keccak, to_checksum_address

DEPLOYER_ACCT = account(DEPLOYER)
DEPLOYER_ADDR = to_checksum_address(DEPLOYER_ACCT.address)
STREAM = 300  # pre-signed increment() transactions
KILL_AFTER = 50  # receipts observed before the SIGKILL
INCREMENT_GAS = 60_000


@dataclass
class Observed:
    receipts: dict[str, dict] = field(default_factory=dict)  # tx hash → receipt JSON
    blocks: dict[int, tuple[str, str]] = field(default_factory=dict)  # number → (hash, stateRoot)
    latest_headers: list[dict] = field(default_factory=list)  # {number, hash, stateRoot}


class Sender(threading.Thread):
    """Sends the pre-signed transactions in nonce order, waiting when the txpool says the
    nonce is too far ahead; stops at the first transport error (the node is gone)."""

    def __init__(self, url: str, raws: list[bytes]) -> None:
        super().__init__(name="tx-stream", daemon=True)
        self.url = url
        self.raws = raws
        self.sent = 0
        self.stop = threading.Event()
        self.refusals: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for i, raw in enumerate(self.raws):
                while not self.stop.is_set():
                    try:
                        answer = client.post(self.url, json={
                            "jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction",
                            "params": ["0x" + raw.hex()]}).json()
                    except (httpx.HTTPError, ValueError):
                        return
                    error = answer.get("error")
                    if error is None:
                        self.sent = i + 1
                        break
                    if "nonce too high" in error["message"]:
                        time.sleep(0.01)
                        continue
                    self.refusals.append(f"nonce index {i}: {error}")
                    return
                if self.stop.is_set():
                    return


def presign_increments(counter_address: str, data: str, first_nonce: int, n: int) -> list[bytes]:
    key = DEPLOYER_ACCT.private_key
    out = []
    for i in range(n):
        tx = {"to": counter_address, "data": data, "gas": INCREMENT_GAS, "nonce": first_nonce + i,
              "chainId": CHAIN_ID, "value": 0}
        # alternate EIP-1559 and legacy transactions
        if i % 2:
            tx["gasPrice"] = 0
        else:
            tx.update(maxFeePerGas=0, maxPriorityFeePerGas=0)
        out.append(bytes(Account.sign_transaction(tx, key).raw_transaction))
    return out


def observe_until_killed(node, hashes: list[str], observed: Observed, sender: Sender,
                         timeout: float = 40.0) -> None:
    """Poll receipts in nonce order, recording each final one with its block and the latest
    header; SIGKILL the node once KILL_AFTER receipts were seen."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as client:
        def call(method, params):
            answer = client.post(node.url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                 "params": params}).json()
            assert "error" not in answer, answer
            return answer["result"]

        index = 0
        while len(observed.receipts) < KILL_AFTER:
            assert time.monotonic() < deadline, (
                f"only {len(observed.receipts)} receipts in {timeout}s; sent {sender.sent}, "
                f"refusals {sender.refusals}\n{node.output()[-3000:]}")
            assert sender.is_alive() or sender.sent == len(hashes), f"sender stopped: {sender.refusals}"
            receipt = call("eth_getTransactionReceipt", [hashes[index]])
            if receipt is None:
                time.sleep(0.01)
                continue
            observed.receipts[hashes[index]] = receipt
            number = int(receipt["blockNumber"], 16)
            if number not in observed.blocks:
                block = call("eth_getBlockByNumber", [receipt["blockNumber"], False])
                assert block["hash"] == receipt["blockHash"]
                observed.blocks[number] = (block["hash"], block["stateRoot"])
            latest = call("eth_getBlockByNumber", ["latest", False])
            observed.latest_headers.append(
                {"number": int(latest["number"], 16), "hash": latest["hash"], "stateRoot": latest["stateRoot"]})
            index += 1
    assert sender.sent < len(hashes), "the stream must still be running when the node is killed"
    node.kill()  # SIGKILL: no shutdown code runs
    sender.stop.set()
    sender.join(10)


def test_kill_9_during_a_transaction_stream_loses_nothing_final(node_factory, tmp_path):
    data_dir = tmp_path / "chain"
    node = node_factory(data_dir)
    w3 = make_web3(node.url)
    contract, deploy_receipt = deploy_counter(w3, 0)
    first_nonce = w3.eth.get_transaction_count(DEPLOYER_ADDR, "latest")
    data = contract.encode_abi("increment")
    raws = presign_increments(contract.address, data, first_nonce, STREAM)
    hashes = ["0x" + keccak(raw).hex() for raw in raws]
    deploy_block = deploy_receipt["blockNumber"]

    observed = Observed()
    sender = Sender(node.url, raws)
    sender.start()
    observe_until_killed(node, hashes, observed, sender)
    assert not node.alive() and node.process.returncode == -9
    highest_final = max(observed.blocks)
    highest_seen = max(h["number"] for h in observed.latest_headers)
    assert highest_seen >= highest_final

    # -- restart on the same data dir ---------------------------------------------------------
    node2 = node_factory(data_dir)
    url = node2.url
    head = int(rpc_result(url, "eth_blockNumber"), 16)
    assert node2.health()["head"] == head
    assert head >= highest_seen >= highest_final, (
        f"head {head} after restart, but block {highest_seen} was seen final before the crash")

    # every receipt observed before the crash is returned identically
    for tx_hash, before in observed.receipts.items():
        after = rpc_result(url, "eth_getTransactionReceipt", [tx_hash])
        assert after == before, f"receipt of {tx_hash} changed across the crash"
        assert after["status"] == "0x1"
    # the blocks they were in, and every latest header seen, are unchanged
    for number, (block_hash, state_root) in observed.blocks.items():
        block = rpc_result(url, "eth_getBlockByNumber", [hex(number), False])
        assert (block["hash"], block["stateRoot"]) == (block_hash, state_root), f"block {number} changed"
    for seen in observed.latest_headers:
        block = rpc_result(url, "eth_getBlockByNumber", [hex(seen["number"]), False])
        assert (block["hash"], block["stateRoot"]) == (seen["hash"], seen["stateRoot"])

    # the chain is whole: each block links to its parent, tx index entries agree
    parent_hash = rpc_result(url, "eth_getBlockByNumber", ["0x0", False])["hash"]
    included = []
    for number in range(1, head + 1):
        block = rpc_result(url, "eth_getBlockByNumber", [hex(number), False])
        assert block is not None, f"block {number} missing below the head {head}"
        assert block["parentHash"] == parent_hash, f"block {number} does not link to its parent"
        parent_hash = block["hash"]
        if number > deploy_block:
            included.extend(block["transactions"])
    assert rpc_result(url, "eth_getBlockByNumber", [hex(head + 1), False]) is None

    # state is exactly that of the blocks kept: one increment per included transaction
    assert included == hashes[: len(included)], "the included transactions are the stream's prefix"
    mined = len(included)
    assert mined >= len(observed.receipts)
    for tx_hash in hashes[:mined]:
        receipt = rpc_result(url, "eth_getTransactionReceipt", [tx_hash])
        assert receipt is not None and receipt["status"] == "0x1"
    for tx_hash in hashes[mined:]:
        assert rpc_result(url, "eth_getTransactionReceipt", [tx_hash]) is None
    w3b = make_web3(url)
    counter = w3b.eth.contract(address=contract.address, abi=contract.abi)
    assert counter.functions.count().call() == mined
    events = counter.events.Incremented().get_logs(from_block=deploy_block)
    assert [e["args"]["newCount"] for e in events] == list(range(1, mined + 1))
    assert w3b.eth.get_transaction_count(DEPLOYER_ADDR, "latest") == first_nonce + mined
    assert w3b.eth.get_transaction_count(DEPLOYER_ADDR, "pending") == first_nonce + mined

    # the node carries on: the rest of the stream is accepted and mined
    for raw_hash, raw in zip(hashes[mined:mined + 20], raws[mined:mined + 20], strict=True):
        assert rpc_result(url, "eth_sendRawTransaction", ["0x" + raw.hex()]) == raw_hash
    for raw_hash in hashes[mined:mined + 20]:
        assert wait_for_receipt(url, raw_hash)["status"] == "0x1"
    assert counter.functions.count().call() == mined + 20
    assert int(rpc_result(url, "eth_blockNumber"), 16) > head
    # a transaction mined before the crash cannot be replayed
    replay = rpc_result_or_error(url, "eth_sendRawTransaction", ["0x" + raws[0].hex()])
    assert "error" in replay and ("already known" in replay["error"]["message"]
                                  or "nonce too low" in replay["error"]["message"]), replay
    node2.stop()
    assert "Traceback" not in node2.output(), node2.output()[-3000:]


def rpc_result_or_error(url, method, params):
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                      timeout=30).json()
