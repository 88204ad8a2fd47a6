"""State queries of native chaincode while blocks are being committed.

Native chaincode keeps the head's state only and refuses a call that saw the head move;
the node then answers from the new head instead of failing a client that asked for
"latest" (found by the anchoring SDK: its gas estimates failed under load)."""

from __future__ import annotations

import threading

from devnode import rpc

from client_sdk import Rpc
from client_sdk._ledger import ANCHOR_REGISTRY, Contract, Signer, send_flow
from node.genesis import dev_accounts


def test_latest_calls_and_estimates_never_fail_while_blocks_commit(dev_node):
    registry = Contract("AnchorRegistry", ANCHOR_REGISTRY)
    sender = dev_accounts()[1]
    call = {"from": "0x" + sender.address.hex(), "to": ANCHOR_REGISTRY,
            "data": registry.encode("anchor", b"\x42" * 32, 1, b"\0" * 32)}
    view = {"to": ANCHOR_REGISTRY, "data": registry.encode("anchoredAt", b"\x42" * 32)}
    errors: list[dict] = []
    stop = threading.Event()

    def query() -> None:
        while not stop.is_set():
            for method, params in (("eth_estimateGas", [call, "latest"]), ("eth_call", [view, "latest"])):
                answer = rpc(dev_node.url, method, params)
                if "error" in answer:
                    errors.append(answer["error"])

    threads = [threading.Thread(target=query) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        signer = Signer.from_key(sender.private_key)
        with Rpc(dev_node.url) as client:
            for i in range(40):
                client.run(send_flow(signer, registry, "anchor", (i + 1).to_bytes(32, "big"), 1, b"\0" * 32))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
