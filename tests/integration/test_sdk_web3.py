"""The SDK over a hospital's own web3.py connection, against a real dev node: the whole
prescription lifecycle and anchoring (receipts verified offline) through
`Web3(HTTPProvider(url))`; transactions signed by a Web3's signing middleware; the
ledger's contracts as web3 contract objects agreeing with the SDK; a Web3 of another
chain, an unreachable one and one without a signer refused with a clear error; the
asyncio twins (and anchoring) over `AsyncWeb3`."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest
from devnode import CHAIN_ID, DevNode
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3, HTTPProvider, Web3
from web3.middleware import SignAndSendRawMiddlewareBuilder
from web3.middleware.base import Web3Middleware

from client_sdk import (
    Anchorer,
    AnchorReceipt,
    AsyncAnchorer,
    AsyncHospital,
    AsyncPharmacy,
    ClientError,
    Contracts,
    Hospital,
    Pharmacy,
    Refused,
    Regulator,
    Rpc,
    TransportError,
    Trust,
    verify_receipt,
    verify_receipts,
)
from node.genesis import dev_accounts, dev_validator_key
from rxledger.core.crypto import private_key_to_address

ACCOUNTS = dev_accounts()
ADMIN, PRESCRIBER, REVIEWER, PHARMACIST, AUDITOR = ACCOUNTS[:5]
DEV_VALIDATOR = private_key_to_address(dev_validator_key())


def medication_request(quantity: int = 20) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": f"rx-web3-{time.time_ns()}-{os.urandom(4).hex()}",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361",
            "display": "Amlodipine 5 MG Oral Tablet"}]},
        "subject": {"identifier": {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "999911121"}},
        "authoredOn": "2026-11-22",
        "dispenseRequest": {"numberOfRepeatsAllowed": 1, "quantity": {"value": quantity, "unit": "TAB"}},
    }


class Recorder(Web3Middleware):
    """A hospital's own middleware: records every method that passes through the Web3."""

    seen: list[str] = []

    def request_processor(self, method: Any, params: Any) -> Any:
        Recorder.seen.append(str(method))
        return method, params


def plain_web3(url: str) -> Web3:
    """web3.py as a hospital would make it: default middleware, no PoA middleware."""
    return Web3(HTTPProvider(url))


def signing_web3(url: str, key: bytes) -> Web3:
    """A Web3 whose middleware holds the key and whose default account is that key's."""
    w3 = Web3(HTTPProvider(url))
    account = Account.from_key(key)
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
    w3.middleware_onion.add(Recorder, name="recorder")
    w3.eth.default_account = account.address
    return w3


def test_the_whole_lifecycle_runs_over_a_web3_http_provider(dev_node: DevNode) -> None:
    w3 = plain_web3(dev_node.url)
    onion_before = list(w3.middleware_onion.middleware)
    hospital = Hospital(w3, PRESCRIBER.private_key)
    reviewer = Hospital(w3, REVIEWER.private_key)
    pharmacy = Pharmacy(w3, PHARMACIST.private_key)
    regulator = Regulator(w3)

    issued = hospital.issue(medication_request(quantity=20))
    assert hospital.get(issued.rx_id).status == "draft"
    reviewer.review(issued.rx_id, approve=True)
    check = pharmacy.verify(issued.token)
    assert check.dispensable, check.reasons
    result = pharmacy.dispense(issued.token, quantity=20)
    assert result.fill_number == 1
    history = regulator.history(issued.rx_id)
    assert history == Regulator(dev_node.url).history(issued.rx_id)  # as over the SDK's client
    assert [e.event for e in history][0] == "Issued" and [e.event for e in history][-1] == "Dispensed"
    assert history[0].actor == "0x" + PRESCRIBER.address.hex()
    assert history[-1].actor == "0x" + PHARMACIST.address.hex()
    # A refusal by the contract keeps its reason over web3 too.
    own = hospital.issue(medication_request())
    with pytest.raises(Refused) as refused:
        hospital.review(own.rx_id, approve=True)  # the prescriber reviewing their own
    assert refused.value.reason.startswith("Rx:")
    # The SDK left the hospital's Web3 as it was (no middleware injected).
    assert list(w3.middleware_onion.middleware) == onion_before


def test_a_web3_signing_middleware_signs_what_the_sdk_sends(dev_node: DevNode) -> None:
    Recorder.seen.clear()
    prescriber_w3 = signing_web3(dev_node.url, PRESCRIBER.private_key)
    reviewer_w3 = signing_web3(dev_node.url, REVIEWER.private_key)
    hospital = Hospital(prescriber_w3)  # no key: the Web3 signs
    reviewer = Hospital(reviewer_w3)
    issued = hospital.issue(medication_request())
    reviewer.review(issued.rx_id, approve=True)
    assert hospital.get(issued.rx_id).status == "active"
    assert hospital.get(issued.rx_id).prescriber.lower() == "0x" + PRESCRIBER.address.hex()
    # The sends went through the hospital's Web3 as eth_sendTransaction (its middleware
    # signed them); the SDK signed nothing itself.
    assert Recorder.seen.count("eth_sendTransaction") == 2
    assert "eth_sendRawTransaction" not in Recorder.seen

    # Anchoring too: the receipt's anchoring account is the Web3's default account.
    with Anchorer(prescriber_w3) as anchorer:
        (receipt,) = anchorer.submit([b"signed by the hospital's web3 " + os.urandom(8)])
    assert receipt.anchor.anchored_by == PRESCRIBER.address
    verify_receipt(receipt, Trust.from_validators([DEV_VALIDATOR], chain_id=CHAIN_ID))
    assert Recorder.seen.count("eth_sendTransaction") == 3


def test_anchoring_over_web3_gives_receipts_that_verify_offline(dev_node: DevNode) -> None:
    records = [b"web3 record " + os.urandom(8) + i.to_bytes(2, "big") for i in range(300)]
    with Anchorer(plain_web3(dev_node.url), PRESCRIBER.private_key, batch_size=128) as anchorer:
        receipts = anchorer.submit(records)
    assert len(receipts) == len(records)
    trust = Trust.from_validators([DEV_VALIDATOR], chain_id=CHAIN_ID)
    stored = [AnchorReceipt.from_json(r.to_json()) for r in receipts]
    verify_receipts(stored, trust)
    verify_receipt(stored[7], Trust.from_validators([DEV_VALIDATOR], chain_id=CHAIN_ID),
                   record=records[7])


def test_web3_contract_objects_call_views_and_agree_with_the_sdk(dev_node: DevNode) -> None:
    w3 = plain_web3(dev_node.url)
    hospital = Hospital(w3, PRESCRIBER.private_key)
    issued = hospital.issue(medication_request(quantity=7))
    record = hospital.get(issued.rx_id)

    contracts = hospital.contracts
    assert contracts.prescriptions.w3 is w3
    raw = contracts.prescriptions.functions.getPrescription(bytes.fromhex(issued.rx_id[2:])).call()
    assert raw[0] == record.commitment and raw[1] == record.patient
    assert raw[2].lower() == record.prescriber.lower()
    assert raw[7] == record.quantity_per_fill == 7

    governance = Contracts.of(w3).governance
    assert governance.functions.isEnrolled(Web3.to_checksum_address(PRESCRIBER.address)).call() is True
    assert governance.functions.isValidator(Web3.to_checksum_address(DEV_VALIDATOR)).call() is True

    with Anchorer(w3, PRESCRIBER.private_key) as anchorer:
        (receipt,) = anchorer.submit([b"contract objects " + os.urandom(8)])
    anchors = Contracts.of(dev_node.url).anchors  # from a URL: web3's HTTPProvider
    assert anchors.functions.anchoredAt(receipt.root).call() == receipt.block_number


def test_a_web3_of_another_chain_is_refused_with_a_clear_error(dev_node: DevNode) -> None:
    w3 = plain_web3(dev_node.url)
    wrong = CHAIN_ID + 1
    hospital = Hospital(w3, PRESCRIBER.private_key, chain_id=wrong)
    with pytest.raises(ClientError, match=f"chain {CHAIN_ID}, not chain {wrong}"):
        hospital.issue(medication_request())
    with pytest.raises(ClientError, match=f"chain {CHAIN_ID}, not chain {wrong}"):
        Anchorer(w3, PRESCRIBER.private_key, chain_id=wrong).submit([b"never sent"])
    # The right chain id passes, over a Web3 and over a URL alike.
    assert Hospital(w3, chain_id=CHAIN_ID).contracts.prescriptions.address
    Regulator(dev_node.url, chain_id=CHAIN_ID).issued(prescriber=AUDITOR.address)
    with pytest.raises(ClientError, match=f"chain {CHAIN_ID}, not chain {wrong}"):
        Regulator(dev_node.url, chain_id=wrong).issued(prescriber=AUDITOR.address)
    # A caller's own Rpc is held to the chain id too: checked on its first request, or
    # refused at once when it was made for another chain.
    with pytest.raises(ClientError, match=f"chain {CHAIN_ID}, not chain {wrong}"):
        Regulator(Rpc(dev_node.url), chain_id=wrong).issued(prescriber=AUDITOR.address)
    with pytest.raises(ValueError, match=f"made for chain {CHAIN_ID}, not chain {wrong}"):
        Regulator(Rpc(dev_node.url, chain_id=CHAIN_ID), chain_id=wrong)


def test_a_web3_without_a_signer_or_a_node_is_refused_with_a_clear_error(dev_node: DevNode) -> None:
    w3 = plain_web3(dev_node.url)
    w3.eth.default_account = Web3.to_checksum_address(PRESCRIBER.address)  # no middleware holds its key
    with pytest.raises(ClientError, match="has no signer"):
        Hospital(w3).issue(medication_request())
    with pytest.raises(ClientError, match="give the account's key"):
        Hospital(plain_web3(dev_node.url)).issue(medication_request())
    unreachable = Web3(HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 5}))
    with pytest.raises(TransportError, match="cannot reach the node"):
        Regulator(unreachable).issued()
    with pytest.raises(TypeError, match="web3.Web3"):
        Hospital(object())  # type: ignore[arg-type]


def test_the_asyncio_twins_run_over_an_async_web3(dev_node: DevNode) -> None:
    async def lifecycle() -> tuple[int, str]:
        w3 = AsyncWeb3(AsyncHTTPProvider(dev_node.url))
        try:
            hospital = AsyncHospital(w3, PRESCRIBER.private_key)
            reviewer = AsyncHospital(w3, REVIEWER.private_key)
            pharmacy = AsyncPharmacy(w3, PHARMACIST.private_key)
            issued = await hospital.issue(medication_request())
            await reviewer.review(issued.rx_id, approve=True)
            assert (await pharmacy.verify(issued.token)).dispensable
            result = await pharmacy.dispense(issued.token, quantity=20)
            async with AsyncAnchorer(w3, PRESCRIBER.private_key, chain_id=CHAIN_ID) as anchorer:
                (receipt,) = await anchorer.submit([b"async web3 " + os.urandom(8)])
            verify_receipt(receipt, Trust.from_validators([DEV_VALIDATOR], chain_id=CHAIN_ID))
            return result.fill_number, (await pharmacy.get(issued.rx_id)).status
        finally:
            await w3.provider.disconnect()

    assert asyncio.run(lifecycle()) == (1, "active")
