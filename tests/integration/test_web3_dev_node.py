"""Acceptance: web3.py 8, unchanged, against a real `rxledger node start --dev` process.

Deploys the example Counter with signed transactions from the deployer (dev account 9),
calls and transacts it, reads its events, sees reverts and custom errors as web3.py's
exceptions, checks that unknown senders are refused at the door, that legacy and
EIP-1559 transactions both work, that receipts agree with block contents, that the
pending nonce counts waiting transactions, and that the QBFT extraData and commit seal
of the head are what INTERFACES.md ("Block header") promises.
"""

from __future__ import annotations

import time

import pytest
import rlp
from devnode import (
    CHAIN_ID,
    DEPLOYER,
    account,
    deploy_counter,
    rpc,
    rpc_result,
    sign_and_send,
    wait_for_receipt,
)
from eth_account import Account
from eth_keys import keys
from eth_utils import keccak, to_checksum_address
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from rxledger.core.types.headers import (
    Header,
    block_hash,
    decode_header,
    encode_header,
    recover_seal_signers,
)

DEPLOYER_KEY = account(DEPLOYER).private_key
DEPLOYER_ADDR = to_checksum_address(account(DEPLOYER).address)
PRESCRIBER = account(1)
PRESCRIBER_ADDR = to_checksum_address(PRESCRIBER.address)


@pytest.fixture(scope="module")
def counter(w3):
    contract, receipt = deploy_counter(w3, 5)
    return contract, receipt


def transact(w3, fn, key=DEPLOYER_KEY, **overrides):
    """Build (estimating gas), sign and send a contract call; returns the receipt."""
    sender = Account.from_key(key).address
    tx = fn.build_transaction({"from": sender, "nonce": w3.eth.get_transaction_count(sender, "pending"),
                               "chainId": CHAIN_ID, **overrides})
    return sign_and_send(w3, tx, key)


def test_connected_to_the_dev_chain(w3):
    assert w3.is_connected()
    assert w3.eth.chain_id == CHAIN_ID
    assert w3.net.version == str(CHAIN_ID)
    assert w3.eth.gas_price == 0
    assert w3.eth.syncing is False
    assert "RxLedger" in w3.client_version


def test_deploy_counter_and_call(w3, counter):
    contract, receipt = counter
    assert receipt["status"] == 1
    assert receipt["to"] is None
    assert receipt["contractAddress"] == contract.address
    assert receipt["from"] == DEPLOYER_ADDR
    assert len(w3.eth.get_code(contract.address)) > 0
    assert contract.functions.count().call() == 5
    assert contract.functions.owner().call() == DEPLOYER_ADDR


def test_increment_and_set_with_events(w3, counter):
    contract, deploy_receipt = counter
    start = contract.functions.count().call()
    # increment() returns the new value: eth_call shows it before transacting
    assert contract.functions.increment().call({"from": DEPLOYER_ADDR}) == start + 1

    inc = transact(w3, contract.functions.increment())
    assert inc["status"] == 1
    assert contract.functions.count().call() == start + 1
    (event,) = contract.events.Incremented().process_receipt(inc)
    assert event["event"] == "Incremented"
    assert event["args"]["by"] == DEPLOYER_ADDR
    assert event["args"]["newCount"] == start + 1
    assert event["transactionHash"] == inc["transactionHash"]
    assert event["blockNumber"] == inc["blockNumber"]
    assert event["address"] == contract.address

    # a second enrolled account: `by` is its address
    inc2 = transact(w3, contract.functions.increment(), key=PRESCRIBER.private_key)
    assert inc2["status"] == 1
    (event2,) = contract.events.Incremented().process_receipt(inc2)
    assert event2["args"]["by"] == PRESCRIBER_ADDR
    assert event2["args"]["newCount"] == start + 2

    set_receipt = transact(w3, contract.functions.set(42))
    assert set_receipt["status"] == 1
    assert contract.functions.count().call() == 42
    (cs_event,) = contract.events.CountSet().process_receipt(set_receipt)
    assert cs_event["args"]["by"] == DEPLOYER_ADDR
    assert cs_event["args"]["oldCount"] == start + 2
    assert cs_event["args"]["newCount"] == 42

    from_block = deploy_receipt["blockNumber"]
    incremented = contract.events.Incremented().get_logs(from_block=from_block)
    assert [(e["args"]["by"], e["args"]["newCount"]) for e in incremented][-2:] == [
        (DEPLOYER_ADDR, start + 1), (PRESCRIBER_ADDR, start + 2)]
    assert [e["transactionHash"] for e in incremented][-2:] == [inc["transactionHash"],
                                                                 inc2["transactionHash"]]
    count_set = contract.events.CountSet().get_logs(from_block=from_block)
    assert [(e["args"]["by"], e["args"]["oldCount"], e["args"]["newCount"]) for e in count_set] == [
        (DEPLOYER_ADDR, start + 2, 42)]
    assert count_set[0]["blockHash"] == set_receipt["blockHash"]
    # filtering on the indexed `by` argument
    by_prescriber = contract.events.Incremented().get_logs(
        from_block=from_block, argument_filters={"by": PRESCRIBER_ADDR})
    assert [e["transactionHash"] for e in by_prescriber] == [inc2["transactionHash"]]
    # a range after the last event has none
    assert contract.events.CountSet().get_logs(from_block=set_receipt["blockNumber"] + 1) == []


def test_require_reason_is_a_contract_logic_error(w3, counter):
    contract, _ = counter
    with pytest.raises(ContractLogicError, match="Counter: value too large"):
        contract.functions.set(1_000_001).call({"from": DEPLOYER_ADDR})
    contract.functions.set(1_000_000).call({"from": DEPLOYER_ADDR})  # the limit itself is fine


def test_fail_raises_contract_logic_error_on_call_and_estimate(w3, counter):
    contract, _ = counter
    with pytest.raises(ContractLogicError) as call_error:
        contract.functions.fail().call({"from": DEPLOYER_ADDR})
    assert "Counter: always fails" in str(call_error.value)
    with pytest.raises(ContractLogicError) as estimate_error:
        contract.functions.fail().estimate_gas({"from": DEPLOYER_ADDR})
    assert "Counter: always fails" in str(estimate_error.value)
    # build_transaction estimates gas, so it refuses the same way
    with pytest.raises(ContractLogicError, match="Counter: always fails"):
        contract.functions.fail().build_transaction({"from": DEPLOYER_ADDR, "chainId": CHAIN_ID})


def test_reset_by_non_owner_raises_custom_error(w3, counter):
    contract, _ = counter
    selector = keccak(text="NotOwner(address)")[:4]
    with pytest.raises(ContractCustomError) as err:
        contract.functions.reset().call({"from": PRESCRIBER_ADDR})
    data = err.value.data
    data = data if isinstance(data, str) else "0x" + bytes(data).hex()
    assert data.lower().startswith("0x" + selector.hex())
    # NotOwner(caller) carries the caller's address
    assert data.lower().endswith(PRESCRIBER.address.hex())
    with pytest.raises(ContractCustomError):
        contract.functions.reset().estimate_gas({"from": PRESCRIBER_ADDR})
    # the owner may reset (as a call: the state is kept for the other tests)
    contract.functions.reset().call({"from": DEPLOYER_ADDR})


def test_unknown_sender_is_refused(w3, counter):
    contract, _ = counter
    stranger = Account.create()
    tx = contract.functions.increment().build_transaction({
        "from": stranger.address, "nonce": 0, "chainId": CHAIN_ID, "gas": 100_000,
        "maxFeePerGas": 0, "maxPriorityFeePerGas": 0,
    })
    signed = stranger.sign_transaction(tx)
    with pytest.raises(Web3RPCError) as err:
        w3.eth.send_raw_transaction(signed.raw_transaction)
    message = str(err.value)
    assert "not enrolled" in message
    assert stranger.address.lower() in message.lower()
    assert rpc_result(w3.provider.endpoint_uri, "eth_getTransactionByHash",
                      ["0x" + bytes(signed.hash).hex()]) is None
    # a plain value transfer is refused the same way
    transfer = stranger.sign_transaction({"to": DEPLOYER_ADDR, "value": 0, "gas": 21_000,
                                          "gasPrice": 0, "nonce": 0, "chainId": CHAIN_ID})
    with pytest.raises(Web3RPCError, match="not enrolled"):
        w3.eth.send_raw_transaction(transfer.raw_transaction)


def test_eip1559_and_legacy_transactions(w3, counter):
    contract, _ = counter
    before = contract.functions.count().call()
    dynamic = transact(w3, contract.functions.increment(), maxFeePerGas=0, maxPriorityFeePerGas=0)
    legacy = transact(w3, contract.functions.increment(), gasPrice=0)
    assert dynamic["status"] == 1 and legacy["status"] == 1
    assert dynamic["type"] == 2 and legacy["type"] == 0
    assert dynamic["effectiveGasPrice"] == 0 and legacy["effectiveGasPrice"] == 0
    assert contract.functions.count().call() == before + 2

    tx2 = w3.eth.get_transaction(dynamic["transactionHash"])
    assert tx2["type"] == 2
    assert tx2["maxFeePerGas"] == 0 and tx2["maxPriorityFeePerGas"] == 0
    assert tx2["chainId"] == CHAIN_ID
    assert tx2["yParity"] in (0, 1)
    tx0 = w3.eth.get_transaction(legacy["transactionHash"])
    assert tx0["type"] == 0
    assert tx0["gasPrice"] == 0
    assert tx0["v"] in (35 + 2 * CHAIN_ID, 36 + 2 * CHAIN_ID)  # EIP-155
    for tx, receipt in ((tx2, dynamic), (tx0, legacy)):
        assert tx["from"] == DEPLOYER_ADDR
        assert tx["blockHash"] == receipt["blockHash"]
        assert tx["blockNumber"] == receipt["blockNumber"]
        assert tx["transactionIndex"] == receipt["transactionIndex"]

    # a plain legacy value transfer with web3's default fields
    transfer = sign_and_send(w3, {"to": PRESCRIBER_ADDR, "value": 0, "gas": 21_000, "gasPrice": 0},
                             DEPLOYER_KEY)
    assert transfer["status"] == 1 and transfer["gasUsed"] == 21_000


def test_receipt_matches_block_contents(w3, counter):
    contract, _ = counter
    receipt = transact(w3, contract.functions.increment())
    url = w3.provider.endpoint_uri
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
    raw_receipt = rpc_result(url, "eth_getTransactionReceipt", [tx_hash])
    number = raw_receipt["blockNumber"]
    block = rpc_result(url, "eth_getBlockByNumber", [number, True])
    assert block["hash"] == raw_receipt["blockHash"]
    assert block["number"] == number
    index = int(raw_receipt["transactionIndex"], 16)
    tx = block["transactions"][index]
    assert tx["hash"] == tx_hash
    assert tx["blockHash"] == block["hash"]
    assert tx["blockNumber"] == number
    assert tx["blockTimestamp"] == block["timestamp"]
    assert tx["transactionIndex"] == raw_receipt["transactionIndex"]
    assert tx["from"] == raw_receipt["from"]
    assert tx["to"] == raw_receipt["to"] == contract.address.lower()
    # the same transaction by hash
    assert rpc_result(url, "eth_getTransactionByHash", [tx_hash]) == tx
    # hashes-only block lists it at the same index
    thin = rpc_result(url, "eth_getBlockByNumber", [number, False])
    assert thin["transactions"][index] == tx_hash
    assert rpc_result(url, "eth_getBlockByHash", [block["hash"], True]) == block
    # receipts of the whole block: gas adds up to the header's gasUsed
    receipts = [rpc_result(url, "eth_getTransactionReceipt", [t["hash"]]) for t in block["transactions"]]
    assert receipts[index] == raw_receipt
    assert receipts[-1]["cumulativeGasUsed"] == block["gasUsed"]
    assert sum(int(r["gasUsed"], 16) for r in receipts) == int(block["gasUsed"], 16)
    for log in raw_receipt["logs"]:
        assert log["blockHash"] == block["hash"]
        assert log["blockNumber"] == number
        assert log["transactionHash"] == tx_hash
        assert log["blockTimestamp"] == block["timestamp"]
    block_receipts = rpc_result(url, "eth_getBlockReceipts", [number])
    assert block_receipts == receipts
    assert rpc_result(url, "eth_getBlockTransactionCountByNumber", [number]) == hex(len(receipts))


def test_pending_nonce_counts_waiting_transactions(w3, dev_node):
    sender = PRESCRIBER
    addr = PRESCRIBER_ADDR
    latest = w3.eth.get_transaction_count(addr, "latest")
    assert w3.eth.get_transaction_count(addr, "pending") == latest

    def transfer(nonce):
        return Account.sign_transaction(
            {"to": DEPLOYER_ADDR, "value": 0, "gas": 21_000, "gasPrice": 0, "nonce": nonce,
             "chainId": CHAIN_ID}, sender.private_key)

    # a transaction one nonce ahead waits (it cannot be mined) and does not count: the
    # pending nonce is the next one in a gapless run
    ahead = transfer(latest + 1)
    ahead_hash = w3.eth.send_raw_transaction(ahead.raw_transaction)
    time.sleep(0.3)
    assert w3.eth.get_transaction_count(addr, "latest") == latest
    assert w3.eth.get_transaction_count(addr, "pending") == latest
    waiting = rpc_result(dev_node.url, "eth_getTransactionByHash", ["0x" + bytes(ahead_hash).hex()])
    assert waiting is not None and waiting["blockHash"] is None and waiting["blockNumber"] is None
    assert rpc_result(dev_node.url, "eth_getTransactionReceipt", ["0x" + bytes(ahead_hash).hex()]) is None

    # filling the gap: in one batch, the pending count right after the send covers both,
    # whether they still wait or are already mined
    fill = transfer(latest)
    answers = httpx_batch(dev_node.url, [
        ("eth_sendRawTransaction", ["0x" + bytes(fill.raw_transaction).hex()]),
        ("eth_getTransactionCount", [addr, "pending"]),
    ])
    assert "error" not in answers[0], answers[0]
    assert answers[1]["result"] == hex(latest + 2)
    for h in (ahead_hash, fill.hash):
        wait_for_receipt(dev_node.url, "0x" + bytes(h).hex())
    assert w3.eth.get_transaction_count(addr, "latest") == latest + 2
    assert w3.eth.get_transaction_count(addr, "pending") == latest + 2

    # while transactions stream in, pending is never behind latest
    base = latest + 2
    hashes = []
    for i in range(10):
        hashes.append(w3.eth.send_raw_transaction(transfer(base + i).raw_transaction))
        pending = w3.eth.get_transaction_count(addr, "pending")
        assert pending == base + i + 1, f"pending nonce {pending} after sending nonce {base + i}"
    for h in hashes:
        wait_for_receipt(dev_node.url, "0x" + bytes(h).hex())
    assert w3.eth.get_transaction_count(addr, "latest") == base + 10
    assert w3.eth.get_transaction_count(addr, "pending") == base + 10


def test_pending_nonce_is_right_while_a_block_commits(w3, dev_node):
    """One batch: send a transaction, then ask for the pending nonce 80 times. The answers
    are spread over the moment the block with the transaction is made and committed; each
    must count the transaction (waiting or mined), i.e. be nonce + 1, never fall back."""
    sender = account(6)
    addr = to_checksum_address(sender.address)
    start = w3.eth.get_transaction_count(addr, "pending")
    wrong = {}
    for nonce in range(start, start + 10):
        raw = Account.sign_transaction(
            {"to": DEPLOYER_ADDR, "value": 0, "gas": 21_000, "gasPrice": 0, "nonce": nonce,
             "chainId": CHAIN_ID}, sender.private_key).raw_transaction
        answers = httpx_batch(dev_node.url, [("eth_sendRawTransaction", ["0x" + bytes(raw).hex()])]
                              + [("eth_getTransactionCount", [addr, "pending"])] * 80)
        assert "error" not in answers[0], answers[0]
        bad = sorted({a["result"] for a in answers[1:] if a["result"] != hex(nonce + 1)})
        if bad:
            wrong[nonce] = bad
    assert not wrong, (
        "eth_getTransactionCount(pending) answered the old nonce while the block was being "
        f"committed (sent nonce: wrong answers): {wrong}")


def httpx_batch(url, calls):
    import httpx

    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    answers = httpx.post(url, json=body, timeout=30).json()
    return sorted(answers, key=lambda a: a["id"])


def _header_from_json(block) -> Header:
    h = lambda key: bytes.fromhex(block[key][2:])  # noqa: E731
    n = lambda key: int(block[key], 16)  # noqa: E731
    return Header(
        parent_hash=h("parentHash"), ommers_hash=h("sha3Uncles"), coinbase=h("miner"),
        state_root=h("stateRoot"), transactions_root=h("transactionsRoot"),
        receipts_root=h("receiptsRoot"), logs_bloom=h("logsBloom"), difficulty=n("difficulty"),
        number=n("number"), gas_limit=n("gasLimit"), gas_used=n("gasUsed"),
        timestamp=n("timestamp"), extra_data=h("extraData"), mix_hash=h("mixHash"),
        nonce=h("nonce"), base_fee_per_gas=n("baseFeePerGas"), withdrawals_root=h("withdrawalsRoot"),
        blob_gas_used=n("blobGasUsed"), excess_blob_gas=n("excessBlobGas"),
        parent_beacon_block_root=h("parentBeaconBlockRoot"), requests_hash=h("requestsHash"),
    )


def _rlp_header(block, extra_data: bytes) -> bytes:
    """RLP of the header from its JSON fields (Prague order), independent of node code."""
    h = lambda key: bytes.fromhex(block[key][2:])  # noqa: E731
    n = lambda key: int(block[key], 16)  # noqa: E731
    return rlp.encode([
        h("parentHash"), h("sha3Uncles"), h("miner"), h("stateRoot"), h("transactionsRoot"),
        h("receiptsRoot"), h("logsBloom"), n("difficulty"), n("number"), n("gasLimit"),
        n("gasUsed"), n("timestamp"), extra_data, h("mixHash"), h("nonce"), n("baseFeePerGas"),
        h("withdrawalsRoot"), n("blobGasUsed"), n("excessBlobGas"), h("parentBeaconBlockRoot"),
        h("requestsHash"),
    ])


def test_extra_data_and_commit_seal(w3, counter, dev_node):
    contract, _ = counter
    transact(w3, contract.functions.increment())  # the head has transactions
    url = dev_node.url
    web3_block = w3.eth.get_block("latest")
    block = rpc_result(url, "eth_getBlockByNumber", [hex(web3_block["number"]), False])
    assert block["hash"] == "0x" + bytes(web3_block["hash"]).hex()
    extra = bytes.fromhex(block["extraData"][2:])
    # the PoA middleware moves extraData aside; it is the same bytes
    assert bytes(web3_block["proofOfAuthorityData"]) == extra

    vanity, validators, vote, round_, seals = rlp.decode(extra)
    assert isinstance(vanity, bytes) and len(vanity) == 32
    assert isinstance(validators, list) and len(validators) == 1 and len(validators[0]) == 20
    assert vote == []
    assert isinstance(round_, bytes) and int.from_bytes(round_, "big") >= 0
    assert isinstance(seals, list) and len(seals) == 1 and len(seals[0]) == 65

    validator = "0x" + validators[0].hex()
    assert block["miner"] == validator
    assert rpc_result(url, "qbft_getValidatorsByBlockNumber", ["latest"]) == [validator]
    assert rpc_result(url, "qbft_getValidatorsByBlockNumber", [block["number"]]) == [validator]
    assert rpc_result(url, "qbft_getValidatorsByBlockNumber", ["0x0"]) == [validator]

    # independently of node code: the seal signs keccak(RLP(header with seals = [])) ...
    unsealed = rlp.encode([vanity, validators, vote, round_, []])
    seal_digest = keccak(_rlp_header(block, unsealed))
    seal = seals[0]
    v = seal[64] - 27 if seal[64] >= 27 else seal[64]
    signer = keys.Signature(seal[:64] + bytes([v])).recover_public_key_from_msg_hash(seal_digest)
    assert signer.to_canonical_address() == validators[0]
    # ... and the block hash is computed with seals = [] and round = 0
    hash_extra = rlp.encode([vanity, validators, vote, 0, []])
    assert "0x" + keccak(_rlp_header(block, hash_extra)).hex() == block["hash"]

    # the node's own decoder agrees
    header = decode_header(encode_header(_header_from_json(block)))
    assert recover_seal_signers(header) == [validators[0]]
    assert "0x" + block_hash(header).hex() == block["hash"]

    # the parent link holds for the previous block too
    parent = rpc_result(url, "eth_getBlockByNumber", [hex(int(block["number"], 16) - 1), False])
    assert block["parentHash"] == parent["hash"]


def test_node_still_healthy(dev_node):
    assert dev_node.alive()
    health = dev_node.health()
    assert health["status"] == "ok" and health["chainId"] == CHAIN_ID
    assert rpc(dev_node.url, "eth_blockNumber")["result"] == hex(health["head"])
