"""Acceptance: web3.py 8 and ethers 6, unchanged, use the native PrescriptionRegistry.

Against a real `rxledger node start --dev` process (the `dev_node` fixture): the dev chain
serves the native chaincode at 0x…1001 from genesis with the development setup, and the
clients know it only by the Solidity artifact's ABI
(`rxledger.core.artifacts.load_artifact("PrescriptionRegistry")["abi"]`).

- web3.py: issue, review and dispense through contract functions (gas estimated by the
  node), `process_receipt` decodes Issued / StatusChanged / Dispensed with the right
  arguments, `get_logs` finds them by indexed argument, the view returns the record, and
  a refusal raises `ContractLogicError` with the contract's reason (from `call()`, from
  gas estimation, and replaying a reverted transaction).
- ethers 6 (tests/integration/js/native_registry.mjs, run with `node`; `scripts/setup`
  runs `npm ci` there): the same operations with `new ethers.Contract(address, abi,
  wallet)` over a `JsonRpcProvider` with a static network (chain id 2024), logs parsed
  with `contract.interface.parseLog`, and a revert's reason in `err.reason` /
  `err.shortMessage`. Skipped only when `node` is not on PATH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from devnode import CHAIN_ID, DevNode, account, sign_and_send
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from rxledger.core.artifacts import load_artifact

REGISTRY = to_checksum_address("0x0000000000000000000000000000000000001001")
JS_DIR = Path(__file__).resolve().parent / "js"
ZERO32 = b"\x00" * 32
HOSPITAL_A = keccak(text="hospital-a")
PHARMACY_A = keccak(text="pharmacy-a")
COMMITMENT = keccak(text="salt|MedicationRequest")
PATIENT = keccak(text="patient pseudonym")
DRAFT, ACTIVE, COMPLETED = 1, 2, 4

PRESCRIBER, REVIEWER, PHARMACIST = account(1), account(2), account(3)


def addr(index: int) -> str:
    return to_checksum_address(account(index).address)


@pytest.fixture(scope="module")
def abi() -> list[dict[str, Any]]:
    abi: list[dict[str, Any]] = load_artifact("PrescriptionRegistry")["abi"]
    return abi


@pytest.fixture(scope="module")
def registry(w3: Any, abi: list[dict[str, Any]]) -> Any:
    return w3.eth.contract(address=REGISTRY, abi=abi)


def transact(w3: Any, fn: Any, key: bytes) -> Any:
    """Build (the node estimates the gas), sign and send; returns the receipt."""
    sender = Account.from_key(key).address
    tx = fn.build_transaction({"from": sender, "nonce": w3.eth.get_transaction_count(sender, "pending"),
                               "chainId": CHAIN_ID})
    return sign_and_send(w3, tx, key)


def test_the_native_registry_is_served_from_genesis(w3: Any, registry: Any) -> None:
    assert len(w3.eth.get_code(REGISTRY)) > 0  # placeholder code, so EXTCODESIZE checks pass
    assert registry.functions.governance().call() == to_checksum_address(
        "0x0000000000000000000000000000000000001002")


def test_web3_issue_review_dispense_and_decode_events(w3: Any, registry: Any) -> None:
    rid = keccak(text="web3-native-1")
    now = int(time.time())
    valid_from, valid_until = now - 60, now + 30 * 86_400

    issue = transact(w3, registry.functions.issue(rid, COMMITMENT, PATIENT, 2, 2, 30, valid_from, valid_until),
                     PRESCRIBER.private_key)
    assert issue["status"] == 1
    assert issue["to"] == REGISTRY
    issued = registry.events.Issued().process_receipt(issue, errors=DISCARD)
    assert len(issued) == 1
    assert dict(issued[0]["args"]) == {"rxId": rid, "hospital": HOSPITAL_A, "prescriber": addr(1),
                                       "patient": PATIENT, "schedule": 2, "commitment": COMMITMENT}
    assert issued[0]["address"] == REGISTRY and issued[0]["event"] == "Issued"
    (draft,) = registry.events.StatusChanged().process_receipt(issue, errors=DISCARD)
    assert dict(draft["args"]) == {"rxId": rid, "from": 0, "to": DRAFT, "by": addr(1), "reason": ZERO32}
    assert draft["logIndex"] == 1 and issued[0]["logIndex"] == 0

    review = transact(w3, registry.functions.review(rid, True, ZERO32), REVIEWER.private_key)
    assert review["status"] == 1
    (active,) = registry.events.StatusChanged().process_receipt(review, errors=DISCARD)
    assert dict(active["args"]) == {"rxId": rid, "from": DRAFT, "to": ACTIVE, "by": addr(2), "reason": ZERO32}

    dispense_commitment = keccak(text="MedicationDispense 1")
    fill = registry.functions.dispense(rid, 30, dispense_commitment)
    assert fill.call({"from": addr(3)}) == 1  # the return value: the fill number
    dispense = transact(w3, fill, PHARMACIST.private_key)
    assert dispense["status"] == 1
    (dispensed,) = registry.events.Dispensed().process_receipt(dispense, errors=DISCARD)
    assert dict(dispensed["args"]) == {"rxId": rid, "pharmacy": PHARMACY_A, "pharmacist": addr(3),
                                       "fillNumber": 1, "quantity": 30,
                                       "dispenseCommitment": dispense_commitment}
    assert registry.events.StatusChanged().process_receipt(dispense, errors=DISCARD) == ()  # one fill of two

    record = registry.functions.getPrescription(rid).call()
    assert tuple(record) == (COMMITMENT, PATIENT, addr(1), HOSPITAL_A, 2, 2, 1, 30, 30, valid_from,
                             valid_until, ACTIVE, w3.eth.get_block(issue["blockNumber"])["timestamp"])

    # get_logs: by event and indexed argument, over the blocks of the three transactions
    changes = registry.events.StatusChanged.get_logs(from_block=issue["blockNumber"],
                                                     argument_filters={"rxId": rid})
    assert [(e["args"]["from"], e["args"]["to"]) for e in changes] == [(0, DRAFT), (DRAFT, ACTIVE)]
    assert [e["transactionHash"] for e in changes] == [issue["transactionHash"], review["transactionHash"]]
    fills = registry.events.Dispensed.get_logs(from_block=issue["blockNumber"],
                                               argument_filters={"pharmacist": addr(3)})
    assert [(e["args"]["rxId"], e["args"]["fillNumber"]) for e in fills] == [(rid, 1)]
    # and the raw eth_getLogs with the topics a client computes from the ABI
    raw = w3.eth.get_logs({"address": REGISTRY, "fromBlock": issue["blockNumber"],
                           "toBlock": dispense["blockNumber"], "topics": [None, "0x" + rid.hex()]})
    assert len(raw) == 4  # Issued, StatusChanged, StatusChanged, Dispensed


def test_web3_refusals_raise_contract_logic_error_with_the_reason(w3: Any, registry: Any) -> None:
    rid = keccak(text="web3-native-refusals")
    now = int(time.time())
    transact(w3, registry.functions.issue(rid, COMMITMENT, PATIENT, 0, 1, 10, now - 60, now + 86_400),
             PRESCRIBER.private_key)
    # call(): the prescriber may not review (not a hospital pharmacist)
    with pytest.raises(ContractLogicError) as exc:
        registry.functions.review(rid, True, ZERO32).call({"from": addr(1)})
    assert "Rx: not a hospital pharmacist" in str(exc.value)
    assert exc.value.message == "execution reverted: Rx: not a hospital pharmacist"
    # building a transaction estimates gas, which reverts the same way
    with pytest.raises(ContractLogicError, match="Rx: not reviewed yet"):
        registry.functions.dispense(rid, 10, ZERO32).build_transaction(
            {"from": addr(3), "chainId": CHAIN_ID})
    # a refused transaction sent anyway (explicit gas): status 0, and the reason by replaying it
    sender = addr(3)
    tx = registry.functions.dispense(rid, 10, ZERO32).build_transaction(
        {"from": sender, "gas": 200_000, "gasPrice": 0, "chainId": CHAIN_ID,
         "nonce": w3.eth.get_transaction_count(sender, "pending")})
    receipt = sign_and_send(w3, tx, PHARMACIST.private_key)
    assert receipt["status"] == 0 and receipt["logs"] == []
    with pytest.raises(ContractLogicError, match="Rx: not reviewed yet"):
        w3.eth.call({"from": sender, "to": REGISTRY, "data": tx["data"]}, receipt["blockNumber"])


# ----------------------------------------------------------------------------- ethers 6
def run_ethers(dev_node: DevNode, abi: list[dict[str, Any]], rid: bytes, dispense_commitment: bytes) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (Node.js) is not on PATH: the ethers 6 check needs it")
    if not (JS_DIR / "node_modules" / "ethers" / "package.json").exists():
        pytest.fail(f"ethers is not installed in {JS_DIR}: run scripts/setup (npm ci there)")
    payload = {
        "rpc": dev_node.url, "chainId": CHAIN_ID, "address": REGISTRY, "abi": abi,
        "rxId": "0x" + rid.hex(), "commitment": "0x" + COMMITMENT.hex(), "patient": "0x" + PATIENT.hex(),
        "dispenseCommitment": "0x" + dispense_commitment.hex(),
        "keys": {"prescriber": "0x" + PRESCRIBER.private_key.hex(),
                 "reviewer": "0x" + REVIEWER.private_key.hex(),
                 "pharmacist": "0x" + PHARMACIST.private_key.hex()},
    }
    done = subprocess.run([node, str(JS_DIR / "native_registry.mjs")], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=180, cwd=JS_DIR)
    assert done.returncode == 0, f"the ethers script failed ({done.returncode}):\n{done.stderr}\n{done.stdout}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def hexs(b: bytes) -> str:
    return "0x" + b.hex()


def test_ethers6_issue_review_dispense_parse_logs_and_reverts(dev_node: DevNode, w3: Any,
                                                              abi: list[dict[str, Any]]) -> None:
    rid = keccak(text="ethers-native-1")
    dispense_commitment = keccak(text="MedicationDispense ethers")
    out = run_ethers(dev_node, abi, rid, dispense_commitment)

    assert out["ethers"].startswith("6.")
    assert out["chainId"] == str(CHAIN_ID)
    assert out["latestBlock"]["extraDataBytes"] > 32  # QBFT extraData: ethers copes

    issue = out["issue"]
    assert issue["status"] == 1
    assert [e["name"] for e in issue["events"]] == ["Issued", "StatusChanged"]
    assert all(e["address"] == REGISTRY for e in issue["events"])
    assert issue["events"][0]["args"] == {
        "rxId": hexs(rid), "hospital": hexs(HOSPITAL_A), "prescriber": addr(1), "patient": hexs(PATIENT),
        "schedule": "2", "commitment": hexs(COMMITMENT)}
    assert issue["events"][1]["args"] == {"rxId": hexs(rid), "from": "0", "to": str(DRAFT), "by": addr(1),
                                          "reason": hexs(ZERO32)}
    review = out["review"]
    assert review["status"] == 1
    assert [(e["name"], e["args"]["from"], e["args"]["to"], e["args"]["by"]) for e in review["events"]] == [
        ("StatusChanged", str(DRAFT), str(ACTIVE), addr(2))]
    assert out["dispenseStaticCall"] == "1"
    dispense = out["dispense"]
    assert dispense["status"] == 1
    assert dispense["events"] == [{"address": REGISTRY, "name": "Dispensed", "args": {
        "rxId": hexs(rid), "pharmacy": hexs(PHARMACY_A), "pharmacist": addr(3), "fillNumber": "1",
        "quantity": "30", "dispenseCommitment": hexs(dispense_commitment)}}]

    record = out["prescription"]
    assert record["status"] == str(ACTIVE) and record["fillsUsed"] == "1" and record["fillsAllowed"] == "2"
    assert record["quantityDispensed"] == "30" and record["prescriber"] == addr(1)
    assert record["hospital"] == hexs(HOSPITAL_A)
    # what ethers read agrees with the chain as web3.py sees it
    seen = w3.eth.contract(address=REGISTRY, abi=abi).functions.getPrescription(rid).call()
    assert (seen[6], seen[8], seen[11]) == (1, 30, ACTIVE)

    assert [(e["args"]["from"], e["args"]["to"]) for e in out["statusChangedLogs"]] == [
        ("0", str(DRAFT)), (str(DRAFT), str(ACTIVE))]
    assert [e["blockNumber"] for e in out["statusChangedLogs"]] == [issue["blockNumber"], review["blockNumber"]]

    for refusal in (out["refusedStaticCall"], out["refusedTransaction"]):
        assert refusal is not None, "a refused call did not raise"
        assert refusal["code"] == "CALL_EXCEPTION", json.dumps(refusal)
    assert out["refusedStaticCall"]["reason"] == "Rx: not a hospital pharmacist"
    assert "Rx: not a hospital pharmacist" in out["refusedStaticCall"]["shortMessage"]
    # the reviewer reviews an active prescription: ethers estimates gas first, which reverts
    assert out["refusedTransaction"]["reason"] == "Rx: not a draft"
    assert "Rx: not a draft" in out["refusedTransaction"]["shortMessage"]
