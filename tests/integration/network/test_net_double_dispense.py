"""No double dispensing on a real four-node consortium.

The network's development accounts (network.json "accounts"): prescriber 1 and hospital
pharmacist 2 of hospital-a, pharmacist 3 and admin 7 of pharmacy-a. A second pharmacist
of pharmacy-a is enrolled at the start with a new key, through Governance
`enroll(address, 3)` sent by the pharmacy-a admin (the txpool admits it from the next
block).

100 one-fill prescriptions are issued and approved first, pipelined over a few blocks (the
pool takes at most 64 transactions ahead per account). Then, for each of them, the two
pharmacists submit the last fill at the same moment (two threads released by a barrier)
to two different nodes, rotating over every pair of nodes. The rounds are not waited
for one by one: each pharmacist's fills go out back to back, 50 rounds at a time, and
the two of a round land in the same block or in consecutive ones as the proposers see
them. For every prescription exactly one fill succeeds; the other's receipt has status 0,
and replaying it as an eth_call at "latest" reverts with "Rx: no fills left"
(docs/CONTRACTS.md: fills are checked before the status, for exactly this race). Every
node gives the same receipts, and getPrescription on all four shows fillsUsed 1 and
status completed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.crypto import keccak
from netharness import Net, hex_address, record, wait_until

REGISTRY = "0x0000000000000000000000000000000000001001"
GOVERNANCE = "0x0000000000000000000000000000000000001002"
PRESCRIBER, REVIEWER, PHARMACIST, PHARMACY_ADMIN = 1, 2, 3, 7
PHARMACIST_ROLE, COMPLETED = 3, 4
ROUNDS = 100
ROUNDS_AT_ONCE = 50  # per pharmacist in flight: under the pool's 64-ahead nonce limit
WAVE = 60  # issues or reviews from one account before waiting for them to be final
GAS = 300_000
QUANTITY = 30
NO_FILLS_LEFT = "Rx: no fills left"
SECOND_PHARMACIST_KEY = keccak(text="rxledger test: pharmacy-a second pharmacist")

DISPENSE = "dispense(bytes32,uint32,bytes32)"
ISSUE = "issue(bytes32,bytes32,bytes32,uint8,uint16,uint32,uint64,uint64)"
RECORD_TYPES = ["bytes32", "bytes32", "address", "bytes32", "uint8", "uint16", "uint16", "uint32",
                "uint64", "uint64", "uint64", "uint8", "uint64"]


def calldata(signature: str, *args: Any) -> bytes:
    types = signature[signature.index("(") + 1:-1].split(",") if not signature.endswith("()") else []
    return keccak(text=signature)[:4] + abi_encode(types, list(args))


def error_string(reason: str) -> str:
    return "0x08c379a0" + abi_encode(["string"], [reason]).hex()


@dataclass
class Signer:
    key: bytes
    nonce: int
    chain_id: int
    address: str = field(init=False)

    def __post_init__(self) -> None:
        self.address = Account.from_key(self.key).address

    def sign(self, to: str, data: bytes) -> tuple[str, str]:
        """A legacy zero-price transaction with the next nonce: (raw hex, hash hex)."""
        signed = Account.sign_transaction({"nonce": self.nonce, "gasPrice": 0, "gas": GAS, "to": to,
                                           "value": 0, "data": data, "chainId": self.chain_id}, self.key)
        self.nonce += 1
        return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()


def batch(client: httpx.Client, url: str, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """One JSON-RPC batch; the answers in the order of `calls`."""
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    answers = {a["id"]: a for a in client.post(url, json=body, timeout=30.0).json()}
    return [answers[i] for i in range(len(calls))]


def send_all(net: Net, client: httpx.Client, name: str, raws: list[str]) -> None:
    for answer in batch(client, net.node(name).rpc, [("eth_sendRawTransaction", [r]) for r in raws]):
        assert "error" not in answer, f"{name} refused a transaction: {answer['error']}"


def final_receipts(net: Net, client: httpx.Client, name: str, hashes: list[str],
                   timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """Wait until every transaction of `hashes` has a receipt on node `name`; the receipts."""
    got: dict[str, dict[str, Any]] = {}

    def all_final() -> bool:
        missing = [h for h in hashes if h not in got]
        for i in range(0, len(missing), 100):
            chunk = missing[i:i + 100]
            for h, answer in zip(chunk, batch(client, net.node(name).rpc,
                                              [("eth_getTransactionReceipt", [h]) for h in chunk]),
                                 strict=True):
                if answer.get("result") is not None:
                    got[h] = answer["result"]
        return len(got) == len(hashes)

    try:
        wait_until(all_final, timeout, f"{len(hashes)} receipts on {name}", interval=0.1)
    except AssertionError:
        stuck = next(h for h in hashes if h not in got)
        raise AssertionError(f"{len(hashes) - len(got)} of {len(hashes)} transactions not final on {name} "
                             f"after {timeout:g} s; the first: {net.describe_tx(stuck)}") from None
    return got


def test_two_pharmacists_racing_for_the_last_fill_on_two_nodes_only_one_dispenses(net: Net) -> None:
    started = time.monotonic()
    names = net.names
    assert len(names) == 4
    chain_id = net.info.chain_id
    client = httpx.Client(trust_env=False)
    accounts = net.info.accounts

    def signer(index: int) -> Signer:
        acc = accounts[index]
        assert acc.private_key is not None, "the network has no development keys"
        address = hex_address(acc.address)
        nonce = int(net.call(names[0], "eth_getTransactionCount", [address, "pending"]), 16)
        return Signer(acc.private_key, nonce, chain_id)

    assert (accounts[PRESCRIBER].org, accounts[PRESCRIBER].role) == ("hospital-a", "prescriber")
    assert (accounts[REVIEWER].org, accounts[REVIEWER].role) == ("hospital-a", "hospital pharmacist")
    assert (accounts[PHARMACIST].org, accounts[PHARMACIST].role) == ("pharmacy-a", "pharmacist")
    assert (accounts[PHARMACY_ADMIN].org, accounts[PHARMACY_ADMIN].role) == ("pharmacy-a", "org admin")
    prescriber, reviewer, pharmacist_a, admin = (signer(i) for i in (PRESCRIBER, REVIEWER, PHARMACIST,
                                                                      PHARMACY_ADMIN))
    pharmacist_b = Signer(SECOND_PHARMACIST_KEY, 0, chain_id)

    # -- a second pharmacist, enrolled by pharmacy-a's admin; 100 prescriptions issued and
    #    approved, pipelined: each wave goes out while the previous one becomes final.
    now = int(time.time())
    rx_ids = [keccak(text=f"double-dispense {now} {i}") for i in range(ROUNDS)]
    issues = [prescriber.sign(REGISTRY, calldata(
        ISSUE, rid, keccak(text=f"commitment {i}"), keccak(text=f"patient {i}"), 0, 1, QUANTITY,
        now - 3600, now + 86_400)) for i, rid in enumerate(rx_ids)]
    reviews = [reviewer.sign(REGISTRY, calldata("review(bytes32,bool,bytes32)", rid, True, b"\x00" * 32))
               for rid in rx_ids]
    enrol = admin.sign(GOVERNANCE, calldata("enroll(address,uint8)", pharmacist_b.address, PHARMACIST_ROLE))
    send_all(net, client, names[0], [enrol[0]] + [raw for raw, _ in issues[:WAVE]])
    waves = [(names[0], [enrol[1]] + [h for _, h in issues[:WAVE]])]
    final_receipts(net, client, names[0], waves[-1][1])
    send_all(net, client, names[1], [raw for raw, _ in issues[WAVE:]] + [raw for raw, _ in reviews[:WAVE]])
    waves.append((names[1], [h for _, h in issues[WAVE:]] + [h for _, h in reviews[:WAVE]]))
    final_receipts(net, client, names[1], waves[-1][1])
    send_all(net, client, names[2], [raw for raw, _ in reviews[WAVE:]])
    waves.append((names[2], [h for _, h in reviews[WAVE:]]))
    for name, hashes in waves:
        for h, receipt in final_receipts(net, client, name, hashes).items():
            assert receipt["status"] == "0x1", f"set-up transaction {h} failed: {receipt}"
    # the new pharmacist is enrolled everywhere before it sends anything
    for name in names:
        final_receipts(net, client, name, [enrol[1], reviews[-1][1]])
    setup_seconds = time.monotonic() - started

    # -- the race: per round, both fills at the same moment to two different nodes
    fill_data = [[calldata(DISPENSE, rid, QUANTITY, keccak(text=f"{side} {i}")) for i, rid in enumerate(rx_ids)]
                 for side in "AB"]
    fill_a = [pharmacist_a.sign(REGISTRY, data) for data in fill_data[0]]
    fill_b = [pharmacist_b.sign(REGISTRY, data) for data in fill_data[1]]
    # every ordered pair of distinct nodes, in turn
    pairs = [(a, b) for a in names for b in names if a != b]
    targets = [pairs[i % len(pairs)] for i in range(ROUNDS)]
    sent_at: dict[str, float] = {}
    errors: list[str] = []

    def racer(side: int, fills: list[tuple[str, str]], rounds: range, barrier: threading.Barrier) -> None:
        with httpx.Client(trust_env=False) as own:
            for i in rounds:
                name = targets[i][side]
                body = {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [fills[i][0]]}
                barrier.wait(timeout=30)
                sent_at[fills[i][1]] = time.monotonic()
                answer = own.post(net.node(name).rpc, json=body, timeout=30.0).json()
                if "error" in answer or answer.get("result") != fills[i][1]:
                    errors.append(f"round {i}, pharmacist {'AB'[side]} to {name}: {answer}")

    race_started = time.monotonic()
    for first in range(0, ROUNDS, ROUNDS_AT_ONCE):
        rounds = range(first, min(first + ROUNDS_AT_ONCE, ROUNDS))
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=racer, args=(side, fills, rounds, barrier))
                   for side, fills in ((0, fill_a), (1, fill_b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a racer hung"
        assert not errors, errors
        for side, fills in ((0, fill_a), (1, fill_b)):
            for name in names:  # each node's own sends, then the others come with the blocks
                own_hashes = [fills[i][1] for i in rounds if targets[i][side] == name]
                final_receipts(net, client, name, own_hashes)
    race_seconds = time.monotonic() - race_started

    # -- exactly one fill per prescription; the same receipts on every node
    hashes = [h for _, h in fill_a] + [h for _, h in fill_b]
    receipts = {name: final_receipts(net, client, name, hashes) for name in names}
    for name in names[1:]:
        for h in hashes:
            assert receipts[name][h] == receipts[names[0]][h], f"receipt of {h} on {name} differs"
    first_node = receipts[names[0]]
    same_block = wins_b = 0
    dispensed_topic = "0x" + keccak(text="Dispensed(bytes32,bytes32,address,uint16,uint32,bytes32)").hex()
    losers: list[tuple[int, str, str, str]] = []  # round, loser address, calldata, node it was sent to
    for i, rid in enumerate(rx_ids):
        a, b = first_node[fill_a[i][1]], first_node[fill_b[i][1]]
        statuses = (int(a["status"], 16), int(b["status"], 16))
        assert sorted(statuses) == [0, 1], f"round {i} ({targets[i]}): statuses A, B = {statuses}"
        winner, loser = (a, b) if statuses == (1, 0) else (b, a)
        wins_b += statuses == (0, 1)
        same_block += a["blockNumber"] == b["blockNumber"]
        assert loser["logs"] == []
        assert [log["topics"][0] for log in winner["logs"]][0] == dispensed_topic
        assert winner["logs"][0]["topics"][1] == "0x" + rid.hex()
        assert int(winner["logs"][0]["topics"][3], 16) == int(winner["from"], 16)
        side = 0 if loser is a else 1
        assert Account.recover_transaction((fill_a, fill_b)[side][i][0]).lower() == loser["from"].lower()
        data = "0x" + fill_data[side][i].hex()
        losers.append((i, loser["from"], data, targets[i][side]))

    # -- the refused fill, replayed at "latest" on the node it was sent to
    for i, sender, data, name in losers:
        answer = net.rpc(name, "eth_call", [{"from": sender, "to": REGISTRY, "data": data}, "latest"])
        assert "error" in answer, f"round {i}: the refused fill succeeds as a call at latest: {answer}"
        assert answer["error"]["code"] == 3, answer
        assert answer["error"]["message"] == f"execution reverted: {NO_FILLS_LEFT}", answer
        assert answer["error"]["data"] == error_string(NO_FILLS_LEFT), answer

    # -- every node: fillsUsed 1, 30 dispensed, completed
    for name in names:
        calls = [("eth_call", [{"to": REGISTRY, "data": "0x" + calldata("getPrescription(bytes32)", rid).hex()},
                               "latest"]) for rid in rx_ids]
        for i, answer in enumerate(batch(client, net.node(name).rpc, calls)):
            assert "error" not in answer, answer
            fields = abi_decode(RECORD_TYPES, bytes.fromhex(answer["result"][2:]))
            fills_allowed, fills_used, quantity, status = fields[5], fields[6], fields[8], fields[11]
            assert (fills_allowed, fills_used, quantity, status) == (1, 1, QUANTITY, COMPLETED), (
                f"{name}: prescription {i} reads fillsAllowed {fills_allowed}, fillsUsed {fills_used}, "
                f"dispensed {quantity}, status {status}")
    client.close()

    spread = sorted(abs(sent_at[fill_a[i][1]] - sent_at[fill_b[i][1]]) for i in range(ROUNDS))
    record("double dispense: set-up (enrol + 100 issue + 100 review, pipelined)", f"{setup_seconds:.1f} s")
    record("double dispense: 100 races, sent and final on all nodes", f"{race_seconds:.1f} s")
    record("double dispense: races decided inside one block / across blocks",
           f"{same_block} / {ROUNDS - same_block}; pharmacist B won {wins_b} of {ROUNDS}")
    record("double dispense: send-time gap between the two fills of a round, median / max",
           f"{spread[ROUNDS // 2] * 1000:.2f} ms / {spread[-1] * 1000:.2f} ms")
    record("double dispense: whole test after the network was up", f"{time.monotonic() - started:.1f} s")
