"""Transaction load for fault runs, and what it saw final.

`Load(net, targets)` runs lanes in threads, each sending signed transactions round-robin
over `targets()` (the honest nodes the runner believes reachable now) and waiting until
they are final:

- `rx`: prescription lifecycles: prescriber (dev account 1) issues a few prescriptions
  of 1 or 2 fills, the hospital pharmacist (2) approves them, the pharmacist (3) tries to
  dispense each one fill MORE than allowed (the extra fill must revert);
- `anchor-4`, `anchor-5`: Merkle-root anchors from the auditor (4) and hospital-b's
  prescriber (5) to the AnchorRegistry;
- `transfer`: zero-value transfers from the regulator's admin (8).

Dev accounts 9 and 0 stay free for the runner's own `progress` steps.

Each lane sends a batch (consecutive nonces of its accounts) to one node, polls for the
receipts on the targets in turn, and after `resend_after` seconds sends what is not yet
final again, to the next node: the same signed bytes, so a transaction is never doubled
and no nonce is skipped whatever happened to the node it first went to. Every receipt
any node returns is recorded in `final` (tx hash -> where and in which block it was first
reported final); the runner checks afterwards that each is still there on every honest
node.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from netharness import Net, hex_address

REGISTRY = "0x0000000000000000000000000000000000001001"
ANCHORS = "0x0000000000000000000000000000000000001003"
PRESCRIBER, REVIEWER, PHARMACIST = 1, 2, 3
ANCHOR_ACCOUNTS = (4, 5)
TRANSFER_ACCOUNT = 8
GAS = 300_000
ISSUE = "issue(bytes32,bytes32,bytes32,uint8,uint16,uint32,uint64,uint64)"
DISPENSE = "dispense(bytes32,uint32,bytes32)"
_NET_ERRORS = (httpx.HTTPError, ValueError, KeyError)  # no answer, or not JSON-RPC
DISPENSED_TOPIC = "0x" + keccak(text="Dispensed(bytes32,bytes32,address,uint16,uint32,bytes32)").hex()


def calldata(signature: str, *args: Any) -> bytes:
    types = signature[signature.index("(") + 1:-1].split(",") if not signature.endswith("()") else []
    return keccak(text=signature)[:4] + abi_encode(types, list(args))


@dataclass(frozen=True)
class FinalTx:
    lane: str
    block_number: int
    block_hash: str
    reported_by: str
    status: int


@dataclass
class _Signer:
    key: bytes
    nonce: int
    chain_id: int

    def sign(self, to: str, data: bytes = b"") -> tuple[str, str]:
        signed = Account.sign_transaction({"nonce": self.nonce, "gasPrice": 0, "gas": GAS, "to": to, "value": 0,
                                           "data": data, "chainId": self.chain_id}, self.key)
        self.nonce += 1
        return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()


@dataclass
class Load:
    net: Net
    targets: Callable[[], list[str]]
    seed: int = 0
    resend_after: float = 6.0
    batch: int = 3
    final: dict[str, FinalTx] = field(default_factory=dict)
    prescriptions: dict[str, int] = field(default_factory=dict)  # rx id hex -> fills allowed
    sent: int = 0
    resent: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _turn: int = 0

    # -- life ------------------------------------------------------------------------------
    def start(self) -> None:
        lanes: list[tuple[str, Callable[[httpx.Client, random.Random], None]]] = [
            ("rx", self._rx_lane),
            *((f"anchor-{a}", self._anchor_lane(a)) for a in ANCHOR_ACCOUNTS),
            ("transfer", self._transfer_lane),
        ]
        for i, (name, body) in enumerate(lanes):
            thread = threading.Thread(target=self._run_lane, args=(name, body, self.seed * 100 + i),
                                      name=f"load-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def summary(self) -> str:
        lanes: dict[str, int] = {}
        for tx in self.final.values():
            lanes[tx.lane] = lanes.get(tx.lane, 0) + 1
        return (f"{len(self.final)} final ({', '.join(f'{k} {v}' for k, v in sorted(lanes.items()))}), "
                f"{self.sent} sent, {self.resent} re-sent, {len(self.prescriptions)} prescriptions")

    def _run_lane(self, name: str, body: Callable[[httpx.Client, random.Random], None], seed: int) -> None:
        with httpx.Client(trust_env=False, timeout=3.0) as client:
            rng = random.Random(seed)
            while not self._stop.is_set():
                try:
                    body(client, rng)
                except _Stopped:
                    return
                except Exception as exc:  # recorded; the runner fails the run on errors
                    self.errors.append(f"lane {name}: {exc!r}")
                    return

    # -- lanes -----------------------------------------------------------------------------
    def _signer(self, client: httpx.Client, index: int) -> _Signer:
        account = self.net.info.accounts[index]
        assert account.private_key is not None, "the network has no development keys"
        while True:
            node = self._next_target()
            try:
                answer = self._post(client, node, [("eth_getTransactionCount",
                                                    [hex_address(account.address), "latest"])])[0]
                return _Signer(account.private_key, int(answer["result"], 16), self.net.info.chain_id)
            except _NET_ERRORS:
                self._sleep(0.5)

    def _rx_lane(self, client: httpx.Client, rng: random.Random) -> None:
        prescriber, reviewer, pharmacist = (self._signer(client, i) for i in (PRESCRIBER, REVIEWER, PHARMACIST))
        while True:
            now = int(time.time())
            rx = [(keccak(text=f"fault load {self.seed} {now} {rng.random()}"), rng.choice((1, 2)))
                  for _ in range(self.batch)]
            issues = [prescriber.sign(REGISTRY, calldata(ISSUE, rid, keccak(rid + b"c"), keccak(rid + b"p"), 0,
                                                         fills, 30, now - 3600, now + 30 * 86_400))
                      for rid, fills in rx]
            receipts = self.submit("rx", client, issues)
            for rid, fills in rx:
                self.prescriptions["0x" + rid.hex()] = fills
            self._expect_success("issue", receipts)
            self._expect_success("review", self.submit("rx", client, [
                reviewer.sign(REGISTRY, calldata("review(bytes32,bool,bytes32)", rid, True, b"\x00" * 32))
                for rid, _ in rx]))
            # one fill more than allowed, each: the last of each prescription must revert
            fills_txs = [pharmacist.sign(REGISTRY, calldata(DISPENSE, rid, 30, keccak(rid + bytes([k]))))
                         for rid, fills in rx for k in range(fills + 1)]
            self.submit("rx", client, fills_txs)

    def _anchor_lane(self, account: int) -> Callable[[httpx.Client, random.Random], None]:
        def lane(client: httpx.Client, rng: random.Random) -> None:
            signer = self._signer(client, account)
            while True:
                txs = [signer.sign(ANCHORS, calldata("anchor(bytes32,uint64,bytes32)", rng.randbytes(32),
                                                     rng.randrange(1, 1000), b"\x00" * 32))
                       for _ in range(self.batch)]
                self._expect_success("anchor", self.submit(f"anchor-{account}", client, txs))
        return lane

    def _transfer_lane(self, client: httpx.Client, rng: random.Random) -> None:
        signer = self._signer(client, TRANSFER_ACCOUNT)
        while True:
            to = to_checksum_address(rng.randbytes(20))
            self.submit("transfer", client, [signer.sign(to) for _ in range(self.batch)])

    def _expect_success(self, what: str, receipts: dict[str, dict[str, Any]]) -> None:
        for tx_hash, receipt in receipts.items():
            if receipt.get("status") != "0x1":
                self.errors.append(f"{what} {tx_hash} failed: {receipt}")

    # -- sending until final ---------------------------------------------------------------
    def submit(self, lane: str, client: httpx.Client, txs: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """Send `txs` and re-send them elsewhere until every one has a receipt; the receipts."""
        got: dict[str, dict[str, Any]] = {}
        first = True
        while True:
            pending = [(raw, h) for raw, h in txs if h not in got]
            if not pending:
                return got
            node = self._next_target()
            try:
                self._post(client, node, [("eth_sendRawTransaction", [raw]) for raw, _ in pending])
            except _NET_ERRORS:
                pass  # unreachable now: the next attempt goes elsewhere
            with self._lock:
                if first:
                    self.sent += len(pending)
                else:
                    self.resent += len(pending)
            first = False
            deadline = time.monotonic() + self.resend_after
            while time.monotonic() < deadline and len(got) < len(txs):
                self._sleep(0.25)
                self._poll(lane, client, [h for _, h in txs if h not in got], got)

    def _poll(self, lane: str, client: httpx.Client, hashes: list[str], got: dict[str, dict[str, Any]]) -> None:
        node = self._next_target()
        try:
            answers = self._post(client, node, [("eth_getTransactionReceipt", [h]) for h in hashes])
        except _NET_ERRORS:
            return
        for tx_hash, answer in zip(hashes, answers, strict=True):
            receipt = answer.get("result")
            if receipt:
                got[tx_hash] = receipt
                with self._lock:
                    self.final.setdefault(tx_hash, FinalTx(lane, int(receipt["blockNumber"], 16),
                                                           receipt["blockHash"], node,
                                                           int(receipt["status"], 16)))

    def _next_target(self) -> str:
        while True:
            targets = self.targets()
            if targets:
                with self._lock:
                    self._turn += 1
                    return targets[self._turn % len(targets)]
            self._sleep(0.2)

    def _post(self, client: httpx.Client, node: str, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        data = client.post(self.net.node(node).rpc, json=body).json()
        if not isinstance(data, list):
            raise ValueError(f"{node} answered a batch with {str(data)[:200]}")
        answers = {a.get("id"): a for a in data if isinstance(a, dict)}
        return [answers.get(i, {}) for i in range(len(calls))]

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped


class _Stopped(Exception):
    pass
