"""`rxledger up --detach` on a fresh four-validator consortium: transactions sent to any
node become final on all four, with identical receipts and block hashes."""

from __future__ import annotations

from netharness import DEPLOYER, Net


def test_up_detach_brings_up_four_nodes_all_at_one_final_head(net: Net) -> None:
    assert len(net.validator_names) == 4
    statuses = {name: net.health(name) for name in net.names}
    assert all(s is not None and s["status"] == "ok" for s in statuses.values()), statuses
    assert {s["genesisHash"] for s in statuses.values() if s} == {"0x" + net.info.genesis_hash.hex()}
    for name, status in statuses.items():
        assert status is not None
        assert len(status["validators"]) == 4
        assert {p["name"] for p in status["peers"]} == set(net.names) - {name}, (name, status["peers"])
    # `up` returned once all four agreed on a head ≥ 1: that block is the same everywhere.
    net.assert_same_chain(net.names, upto=1)


def test_transactions_sent_to_each_node_are_final_on_all_four_with_identical_blocks(net: Net) -> None:
    receipts = net.confirm_transactions(net.names, net.names)
    assert len(receipts) == 4
    assert all(r["status"] == "0x1" for r in receipts.values())
    # The whole chain up to the last of those blocks is one chain on every node.
    last = max(int(r["blockNumber"], 16) for r in receipts.values())
    net.wait_head(net.names, last)
    assert net.assert_same_chain(net.names) >= last
    # Several transactions from one sender, spread over the nodes, also land in nonce order.
    hashes = [net.send_tx(name, DEPLOYER) for name in net.names]
    blocks = []
    for tx_hash in hashes:
        per_node = net.wait_final_on(net.names, tx_hash)
        assert len({(r["blockHash"], r["transactionIndex"]) for r in per_node.values()}) == 1
        blocks.append((int(per_node[net.names[0]]["blockNumber"], 16),
                       int(per_node[net.names[0]]["transactionIndex"], 16)))
    assert blocks == sorted(blocks), f"nonce order broken: {blocks}"
