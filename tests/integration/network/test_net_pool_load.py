"""A burst of pre-signed transactions sent round-robin over the four nodes is all admitted
and all final (issue 11, item 5).

The load: 2,000 transactions signed beforehand by 8 development accounts (transaction i
is account i mod 8's next nonce, so every batch holds 12 or 13 consecutive nonces of each
account), sent as 20 JSON-RPC batches of 100 `eth_sendRawTransaction`, batch b to node
b mod 4, one batch after the other, nothing retried. Each is an AnchorRegistry
`anchor(bytes32,uint64,bytes32)` call with its own root, which an enrolled account may
make: every one must end final with status 1.

A node receives nonces whose predecessors were sent to another node and have not reached
it yet (gossip is asynchronous). The pool once measured its nonce window (64) from the
head's nonce and refused them ("nonce too high: … more than 64 ahead of account … (at
0)"; 1,479 of 2,000 refused). It now keeps them queued (gapped, at most
`PoolLimits.account_queue` per account) and promotes them to pending as gossip fills the
gaps, as geth's legacypool does. The figures are asserted as counts; the time taken is
printed for the benchmark (bench/network_bench.py --mode burst).
"""

from __future__ import annotations

import os
import time

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from netharness import Net, hex_address, record, wait_until

from rxledger.core.crypto import keccak256

ANCHOR_REGISTRY = "0x" + "00" * 18 + "1003"
ANCHOR_SELECTOR = keccak256(b"anchor(bytes32,uint64,bytes32)")[:4]
TOTAL = 2_000
ACCOUNTS = 8
BATCH = 100
FINAL_TIMEOUT = 90.0  # 2,000 anchors on a loaded two-core machine


def anchor_call(root: bytes) -> str:
    return "0x" + (ANCHOR_SELECTOR + abi_encode(["bytes32", "uint64", "bytes32"], [root, 1, b"\x00" * 32])).hex()


def presign(net: Net, gas: int) -> list[tuple[str, str]]:
    """(raw hex, hash hex) of the load, in sending order."""
    salt = os.urandom(8)
    keys = [net.info.accounts[k].private_key for k in range(ACCOUNTS)]
    nonces = [int(net.call(net.validator_names[0], "eth_getTransactionCount",
                           [hex_address(net.info.accounts[k].address), "latest"]), 16) for k in range(ACCOUNTS)]
    out = []
    for i in range(TOTAL):
        k = i % ACCOUNTS
        key = keys[k]
        assert key is not None, "the network was initialised without development keys"
        signed = Account.sign_transaction(
            {"nonce": nonces[k] + i // ACCOUNTS, "gasPrice": 0, "gas": gas, "value": 0,
             "chainId": net.info.chain_id, "to": ANCHOR_REGISTRY,
             "data": anchor_call(keccak256(salt + i.to_bytes(4, "big")))},
            key,
        )
        out.append(("0x" + signed.raw_transaction.hex(), "0x" + signed.hash.hex()))
    return out


def send_batches(net: Net, txs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Send `txs` in batches round-robin over the validators: (accepted hashes, refusals)."""
    names = net.validator_names
    accepted: list[str] = []
    refused: list[str] = []
    for b in range(0, len(txs), BATCH):
        name = names[(b // BATCH) % len(names)]
        body = [{"jsonrpc": "2.0", "id": b + j, "method": "eth_sendRawTransaction", "params": [raw]}
                for j, (raw, _) in enumerate(txs[b:b + BATCH])]
        answers = net.client.post(net.node(name).rpc, json=body, timeout=60.0).json()
        assert isinstance(answers, list) and len(answers) == len(body), f"{name} answered {answers!r:.300}"
        for answer in sorted(answers, key=lambda a: a["id"]):
            expected = txs[answer["id"]][1]
            if "error" in answer:
                refused.append(f"{name}: tx {answer['id']}: {answer['error'].get('message')}")
            else:
                assert answer["result"] == expected, f"{name} answered hash {answer['result']} for {expected}"
                accepted.append(expected)
    return accepted, refused


def follow_blocks(net: Net, name: str, hashes: set[str], timeout: float) -> dict[str, int]:
    """Read `name`'s new blocks (hashes only) until every one of `hashes` is in one; tx
    hash -> block number. Cheap for the node: a receipt lookup reads its whole block."""
    where: dict[str, int] = {}
    number = 1

    def more() -> bool:
        nonlocal number
        while True:
            block = net.block(name, number)
            if block is None:
                return False
            for tx_hash in block["transactions"]:
                if tx_hash in hashes:
                    where[tx_hash] = number
            number += 1
            if len(where) == len(hashes):
                return True

    try:
        wait_until(more, timeout, f"all {len(hashes)} transactions in final blocks of {name}", interval=0.5)
    except AssertionError as exc:
        pools = {n: (net.health(n) or {}).get("txpool") for n in net.validator_names}
        raise AssertionError(f"{exc}: {len(where)} final; waiting in the pools: {pools}") from None
    return where


def test_two_thousand_presigned_transactions_round_robin_over_four_nodes_are_all_final(net: Net) -> None:
    names = net.validator_names
    assert len(names) == 4
    estimate = int(net.call(names[0], "eth_estimateGas", [{  # what one anchor costs
        "from": hex_address(net.info.accounts[0].address), "to": ANCHOR_REGISTRY,
        "data": anchor_call(keccak256(os.urandom(32)))}]), 16)
    txs = presign(net, estimate * 5 // 4)

    started = time.monotonic()
    accepted, refused = send_batches(net, txs)
    sent = time.monotonic()
    assert not refused, f"{len(refused)} of {TOTAL} refused, e.g. {refused[:3]}"
    assert len(accepted) == TOTAL

    where = follow_blocks(net, names[0], {h for _, h in txs}, FINAL_TIMEOUT)
    done = time.monotonic()
    blocks = sorted(set(where.values()))
    net.wait_head(names, blocks[-1])
    net.assert_same_chain(names, blocks[-1])
    for name in names:  # every node holds the same receipts, all with status 1
        statuses: dict[str, str] = {}
        for number in blocks:
            for receipt in net.call(name, "eth_getBlockReceipts", [hex(number)]):
                statuses[receipt["transactionHash"]] = receipt["status"]
        final = [h for h in where if h in statuses]
        failed = [h for h in final if statuses[h] != "0x1"]
        assert len(final) == TOTAL, f"{name}: {len(final)} of {TOTAL} have a receipt"
        assert not failed, f"{name}: {len(failed)} of {TOTAL} final with status 0, e.g. {failed[:3]}"
    record("pool burst: 2,000 anchors in batches of 100 round-robin over 4 nodes",
           f"{TOTAL}/{TOTAL} accepted in {sent - started:.2f} s, all final after {done - started:.2f} s "
           f"({TOTAL / (done - started):.0f} tx/s) in {len(blocks)} blocks")
