"""kill -9 of the dev node during a stream of transactions, then a restart on the same data dir.

A block is final when written (one atomic, fsynced batch), so whatever a client saw as
final before the crash must still be there, byte for byte, after it: receipts, block
hashes, state roots. Transactions that were only waiting in the txpool may be gone, but
the state must be exactly that of the blocks kept, and the node must carry on from there.

`kill_during_commit` repeats it: SIGKILL at a random moment while blocks are being
committed under load from several accounts, restart (the store is checked in full at
start), check, again. CI runs a few kills; the soak (storage_soak.py) runs >= 50.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from devnode import (
    CHAIN_ID,
    DEPLOYER,
    DevNode,
    account,
    deploy_counter,
    make_web3,
    rpc_result,
    wait_for_receipt,
)
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from storage_load import Load, Seen, check_final_kept, presign_load

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


# -- SIGKILL during block commit, many times ------------------------------------------------------
CI_KILLS = 4
PER_ACCOUNT = 200  # transactions pre-signed per load account and cycle (more than a cycle sends)


@dataclass
class KillRun:
    kills: int = 0
    kills_while_streaming: int = 0  # sent transactions were not yet seen final at the kill
    final_blocks_checked: int = 0
    receipts_checked: int = 0
    head: int = 0


def kill_during_commit(start_node: Callable[[Path], DevNode], data_dir: Path, kills: int,
                       rng: random.Random, report: Callable[[str], None] = lambda line: None) -> KillRun:
    """`kills` times: load the node from several accounts, SIGKILL it at a random moment
    while blocks are being committed, restart it on the same data dir and check that its
    head is at least every block the client saw final and that those blocks and receipts
    are unchanged. Then check the chain goes on. Returns what was done."""
    run = KillRun()
    node = start_node(data_dir)
    seen = Seen()
    for cycle in range(kills):
        streams = presign_load(node.url, PER_ACCOUNT)
        load = Load(node.url, streams).start()
        # A random moment by progress, not by the clock (so that it falls while blocks are
        # being made on a fast machine too): after 1-100 receipts, then within about one
        # block interval (the dev node gathers transactions for 20 ms).
        target = rng.randint(1, 100)
        deadline = time.monotonic() + 120
        while load.receipts() < target:
            assert time.monotonic() < deadline, (
                f"{load.receipts()} receipts in 120 s: {load.refusals}\n{node.output()[-3000:]}")
            assert not load.refusals, load.refusals
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        assert node.alive(), node.output()[-3000:]
        streaming = sum(load.sent) > load.receipts()  # sent transactions not yet seen final
        node.kill()  # SIGKILL: no shutdown code runs
        load.finish()
        assert not load.refusals, load.refusals
        seen = load.seen
        run.kills += 1
        run.kills_while_streaming += streaming
        node = start_node(data_dir)  # opens only if the store passes its full check
        run.head = check_final_kept(node.url, seen)
        run.final_blocks_checked += len(seen.blocks)
        run.receipts_checked += len(seen.receipts)
        report(f"kill {cycle + 1}/{kills}: {len(seen.receipts)} receipts in {len(seen.blocks)} blocks "
               f"seen final (highest {seen.highest()}); head {run.head} after restart")
    # the chain goes on after the last restart
    streams = presign_load(node.url, 3)
    load = Load(node.url, streams).start()
    deadline = time.monotonic() + 60
    while load.receipts() < 3 * len(streams):
        assert time.monotonic() < deadline, f"the chain did not go on: {load.refusals}\n{node.output()[-3000:]}"
        time.sleep(0.02)
    load.finish()
    assert int(rpc_result(node.url, "eth_blockNumber"), 16) > run.head
    node.stop()
    assert "Traceback" not in node.output(), node.output()[-3000:]
    # and a full check of the stopped node's store finds nothing wrong
    check = subprocess.run([sys.executable, "-m", "rxledger", "node", "check", "--data-dir", str(data_dir)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "intact" in check.stdout, check.stdout + check.stderr
    return run


def test_sigkill_during_block_commit_never_loses_a_final_block(node_factory, tmp_path):
    """A few SIGKILLs at random moments of a loaded dev node (CI); the soak runs >= 50:
    `python tests/integration/storage_soak.py --kills 50`."""
    run = kill_during_commit(node_factory, tmp_path / "chain", CI_KILLS, random.Random(11))
    assert run.kills == CI_KILLS
    assert run.kills_while_streaming == CI_KILLS  # every kill landed while blocks were still coming
    assert run.receipts_checked > 0
