"""Transaction load for the storage fault tests, and what a client saw final under it.

`Load` streams pre-signed transactions from several dev accounts to one node (one thread
per account, in nonce order, waiting while the txpool says a nonce is too far ahead) and
one observer thread polls their receipts, recording every receipt and block the client
saw final. When the node dies (SIGKILL, a full disk), the threads stop at their first
transport error. `check_final_kept` then asserts, on the restarted node, that everything
recorded is still there, byte for byte.

Used by test_crash_recovery.py (SIGKILL during commit), test_storage_faults.py (full disk)
and the soak command storage_soak.py. The module has a distinctive name because tests/
directories have no `__init__.py` (see devnode.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from devnode import CHAIN_ID, account, rpc_result
from eth_account import Account
from eth_utils import keccak, to_checksum_address

LOAD_ACCOUNTS = (5, 6, 7, 8)  # enrolled dev accounts (9, the deployer, is the crash test's)
SINK = to_checksum_address(account(1).address)


def presign(index: int, first_nonce: int, count: int, data_size: int = 0) -> list[bytes]:
    """`count` zero-value transfers from dev account `index` to SINK, carrying `data_size`
    bytes of call data (to make big blocks), alternating legacy and EIP-1559. The gas is
    the call-data floor (40 per non-zero byte) over the transfer's 21,000."""
    key = account(index).private_key
    data = b"\x01" * data_size
    out = []
    for i in range(count):
        tx: dict[str, Any] = {"to": SINK, "value": 0, "data": data, "gas": 21_000 + 40 * data_size,
                              "nonce": first_nonce + i, "chainId": CHAIN_ID}
        if i % 2:
            tx["gasPrice"] = 0
        else:
            tx.update(maxFeePerGas=0, maxPriorityFeePerGas=0)
        out.append(bytes(Account.sign_transaction(tx, key).raw_transaction))
    return out


def presign_load(url: str, count: int, data_size: int = 0) -> list[list[bytes]]:
    """`count` transactions for each load account, from its nonce at the node's head."""
    return [presign(i, int(rpc_result(url, "eth_getTransactionCount",
                                      [to_checksum_address(account(i).address), "latest"]), 16),
                    count, data_size) for i in LOAD_ACCOUNTS]


@dataclass
class Seen:
    """What the client saw final: receipts by transaction hash, block hashes by number."""

    receipts: dict[str, dict] = field(default_factory=dict)
    blocks: dict[int, str] = field(default_factory=dict)

    def highest(self) -> int:
        return max(self.blocks, default=0)


class Load:
    """Sends the streams and records their receipts until the node stops answering."""

    def __init__(self, url: str, streams: list[list[bytes]]) -> None:
        self.url = url
        self.streams = streams
        self.hashes = [["0x" + keccak(raw).hex() for raw in stream] for stream in streams]
        self.sent = [0] * len(streams)
        self.seen = Seen()
        self.refusals: list[str] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send, args=(i,), daemon=True, name=f"load-{i}")
                         for i in range(len(streams))]
        self._threads.append(threading.Thread(target=self._observe, daemon=True, name="observer"))

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def finish(self, timeout: float = 15.0) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def receipts(self) -> int:
        with self._lock:
            return len(self.seen.receipts)

    def _send(self, i: int) -> None:
        with httpx.Client(timeout=10) as client:
            for n, raw in enumerate(self.streams[i]):
                while True:
                    if self.stop.is_set():
                        return
                    try:
                        answer = client.post(self.url, json={
                            "jsonrpc": "2.0", "id": n, "method": "eth_sendRawTransaction",
                            "params": ["0x" + raw.hex()]}).json()
                    except (httpx.HTTPError, ValueError):
                        return  # the node is gone
                    error = answer.get("error")
                    if error is None:
                        self.sent[i] = n + 1
                        break
                    if "nonce too high" in error["message"] or "full" in error["message"]:
                        time.sleep(0.01)
                        continue
                    self.refusals.append(f"account {LOAD_ACCOUNTS[i]} nonce index {n}: {error}")
                    return

    def _observe(self) -> None:
        done = [0] * len(self.streams)  # receipts seen per stream (in nonce order)
        with httpx.Client(timeout=10) as client:
            def call(method: str, params: list[Any]) -> Any:
                answer = client.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                     "params": params}).json()
                if "error" in answer:
                    raise AssertionError(f"{method}{params}: {answer['error']}")
                return answer["result"]

            while not self.stop.is_set():
                progressed = False
                for i, hashes in enumerate(self.hashes):
                    if done[i] >= self.sent[i]:
                        continue
                    try:
                        receipt = call("eth_getTransactionReceipt", [hashes[done[i]]])
                    except (httpx.HTTPError, ValueError):
                        return  # the node is gone
                    if receipt is None:
                        continue
                    with self._lock:
                        self.seen.receipts[hashes[done[i]]] = receipt
                        self.seen.blocks[int(receipt["blockNumber"], 16)] = receipt["blockHash"]
                    done[i] += 1
                    progressed = True
                if not progressed:
                    time.sleep(0.005)


def check_final_kept(url: str, seen: Seen) -> int:
    """On a restarted node: its head is at least every block the client saw final, and
    those blocks and receipts are unchanged. Returns the head."""
    head = int(rpc_result(url, "eth_blockNumber"), 16)
    assert head >= seen.highest(), (
        f"head {head} after restart, but block {seen.highest()} was seen final before")
    for number, block_hash in sorted(seen.blocks.items()):
        block = rpc_result(url, "eth_getBlockByNumber", [hex(number), False])
        assert block is not None and block["hash"] == block_hash, f"final block {number} changed or lost"
    for tx_hash, before in seen.receipts.items():
        after = rpc_result(url, "eth_getTransactionReceipt", [tx_hash])
        assert after == before, f"receipt of {tx_hash} changed or lost: {before} → {after}"
    return head
