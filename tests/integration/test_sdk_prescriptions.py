"""The SDK's prescription lifecycle on a real dev node: what a pharmacy's check reports for
tampered tokens and for prescriptions that are not dispensable, sealed tokens, the asyncio
twins, the regulator's queries and the `rxledger rx` commands."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chaincode_py.genesis import org_id
from client_sdk import (
    DEV_CONSORTIUM_KEY,
    AsyncHospital,
    AsyncPharmacy,
    ClientError,
    CommitmentMismatch,
    Hospital,
    Pharmacy,
    PrescriptionToken,
    Refused,
    Regulator,
    Rpc,
    ScheduleTable,
    VerificationFailed,
    decode_token,
    generate_pharmacy_key,
    patient_pseudonym,
)
from client_sdk._ledger import GOVERNANCE, Contract, Signer, send_flow
from node.genesis import dev_accounts

ACCOUNTS = dev_accounts()
ADMIN, PRESCRIBER, REVIEWER, PHARMACIST, AUDITOR = ACCOUNTS[:5]
_serial = iter(range(1, 1_000_000))


def medication_request(**dispense: Any) -> dict[str, Any]:
    """A small R4 MedicationRequest; each call is a different document (new identifier)."""
    request: dict[str, Any] = {"numberOfRepeatsAllowed": 1,
                               "quantity": {"value": 20, "unit": "TAB"}}
    request.update(dispense)
    return {
        "resourceType": "MedicationRequest",
        "id": f"rx-{next(_serial)}-{time.time_ns()}",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361",
            "display": "Amlodipine 5 MG Oral Tablet"}]},
        "subject": {"identifier": {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "999911120"}},
        "authoredOn": "2026-11-22",
        "dispenseRequest": request,
    }


@pytest.fixture(scope="module")
def roles(dev_node):
    url = dev_node.url
    return (Hospital(url, PRESCRIBER.private_key), Hospital(url, REVIEWER.private_key),
            Pharmacy(url, PHARMACIST.private_key))


def issued_active(roles, **dispense: Any):
    hospital, reviewer, _ = roles
    issued = hospital.issue(medication_request(**dispense))
    reviewer.review(issued.rx_id, approve=True)
    return issued


def _tamper(token: dict[str, Any], field: str) -> dict[str, Any]:
    out = dict(token)
    if field == "doc":
        out["doc"] = out["doc"].replace("20", "21", 1)
    elif field == "salt":
        salt = bytearray(base64.urlsafe_b64decode(out["salt"] + "="))
        salt[0] ^= 1
        out["salt"] = base64.urlsafe_b64encode(bytes(salt)).rstrip(b"=").decode()
    return out


@pytest.mark.parametrize("field", ["doc", "salt", "other-document"])
def test_a_changed_token_is_reported_as_a_mismatch_and_not_dispensed(roles, field):
    _, _, pharmacy = roles
    issued = issued_active(roles)
    token = issued.token.to_json()
    if field == "other-document":
        other = issued_active(roles).token.to_json()
        bad = dict(token, doc=other["doc"])
    else:
        bad = _tamper(token, field)
    check = pharmacy.verify(bad)
    assert not check.matches and not check.dispensable
    assert any("commitment mismatch" in p for p in check.problems)
    with pytest.raises(CommitmentMismatch):
        pharmacy.dispense(bad, quantity=1)
    assert pharmacy.get(issued.rx_id).fills_used == 0
    assert pharmacy.verify(token).dispensable  # the genuine token still is


def test_a_changed_rx_id_finds_no_prescription(roles):
    _, _, pharmacy = roles
    token = issued_active(roles).token.to_json()
    token["rxId"] = token["rxId"][:-1] + ("0" if token["rxId"][-1] != "0" else "1")
    check = pharmacy.verify(token)
    assert not check.dispensable and check.record is None
    assert "no prescription" in check.problems[0]


def test_cancelled_and_completed_prescriptions_are_not_dispensable(roles):
    hospital, _, pharmacy = roles
    cancelled = issued_active(roles)
    hospital.cancel(cancelled.rx_id, "patient allergy")
    check = pharmacy.verify(cancelled.token)
    assert check.matches and not check.dispensable
    assert check.problems == ("status is cancelled; only an active prescription is dispensed",)

    completed = issued_active(roles)
    assert pharmacy.dispense(completed.token, quantity=20).fill_number == 1
    assert pharmacy.dispense(completed.token, quantity=5).fill_number == 2
    check = pharmacy.verify(completed.token)
    assert "status is completed; only an active prescription is dispensed" in check.problems
    assert "no fills left (2 of 2 used)" in check.problems
    with pytest.raises(Refused) as refused:
        pharmacy.dispense(completed.token, quantity=1)
    assert "no fills left" in refused.value.reason


def test_an_expired_prescription_is_not_dispensable(roles, dev_node):
    _, _, pharmacy = roles
    now = datetime.now(UTC).replace(microsecond=0)
    # Long enough that issue and review land before the end on a busy CI machine.
    end = datetime.fromtimestamp(now.timestamp() + 8, UTC)
    issued = issued_active(roles, validityPeriod={"start": now.isoformat(), "end": end.isoformat()})
    assert pharmacy.verify(issued.token).dispensable
    time.sleep(max(0.0, end.timestamp() + 1.5 - time.time()))
    issued_active(roles)  # a later block: the ledger's clock is its blocks' time
    check = pharmacy.verify(issued.token)
    assert not check.dispensable
    assert any(p.startswith("expired: valid until") for p in check.problems), check.problems
    with pytest.raises(Refused):
        pharmacy.dispense(issued.token, quantity=1)


def test_a_suspended_prescribers_prescription_is_not_dispensable(roles, dev_node):
    _, _, pharmacy = roles
    issued = issued_active(roles)
    governance = Contract("Governance", GOVERNANCE)
    auditor = Signer.from_key(AUDITOR.private_key)
    with Rpc(dev_node.url) as rpc:
        rpc.run(send_flow(auditor, governance, "suspend", PRESCRIBER.address, b"licence review".ljust(32, b"\0")))
        try:
            check = pharmacy.verify(issued.token)
            assert not check.dispensable and not check.prescriber_ok
            assert any("prescriber is suspended" in p for p in check.problems), check.problems
        finally:
            rpc.run(send_flow(auditor, governance, "reinstate", PRESCRIBER.address))
    assert pharmacy.verify(issued.token).dispensable


def test_a_refusal_by_the_contract_carries_its_reason(roles):
    hospital, _, _ = roles
    issued = hospital.issue(medication_request())
    with pytest.raises(Refused) as own:
        hospital.review(issued.rx_id, approve=True)  # the prescriber reviewing their own
    assert own.value.reason.startswith("Rx:")
    with pytest.raises(Refused) as again:
        hospital.issue(json.loads(issued.token.document or b"{}"))  # the same document again
    assert "already used" in again.value.reason


def test_a_sealed_token_opens_only_with_the_pharmacys_key(roles, dev_node):
    hospital, reviewer, _ = roles
    private, public = generate_pharmacy_key()
    other_private, _ = generate_pharmacy_key()
    issued = hospital.issue(medication_request(), pharmacy_key=public)
    reviewer.review(issued.rx_id, approve=True)
    compact = issued.token.to_compact()
    assert issued.token.is_sealed and "doc" not in issued.token.to_json()
    with pytest.raises(ClientError):
        Pharmacy(dev_node.url, PHARMACIST.private_key).verify(compact)
    with pytest.raises(VerificationFailed):
        Pharmacy(dev_node.url, PHARMACIST.private_key, token_key=other_private).verify(compact)
    moved = dict(issued.token.to_json(), rxId="0x" + "ab" * 32)  # ciphertext bound to its rxId
    with pytest.raises(VerificationFailed):
        decode_token(moved).open_with(private)
    pharmacy = Pharmacy(dev_node.url, PHARMACIST.private_key, token_key=private)
    assert pharmacy.verify(compact).dispensable
    assert pharmacy.dispense(compact, quantity=3).fill_number == 1


def test_the_asyncio_twins_run_the_same_lifecycle(dev_node):
    async def lifecycle() -> tuple[int, str]:
        hospital = AsyncHospital(dev_node.url, PRESCRIBER.private_key)
        reviewer = AsyncHospital(dev_node.url, REVIEWER.private_key)
        pharmacy = AsyncPharmacy(dev_node.url, PHARMACIST.private_key)
        try:
            issued = await hospital.issue(medication_request())
            await reviewer.review(issued.rx_id, approve=True)
            assert (await pharmacy.verify(issued.token)).dispensable
            result = await pharmacy.dispense(issued.token, quantity=20)
            return result.fill_number, (await pharmacy.get(issued.rx_id)).status
        finally:
            for role in (hospital, reviewer, pharmacy):
                await role.aclose()

    assert asyncio.run(lifecycle()) == (1, "active")


def test_regulator_queries_by_prescriber_patient_schedule_and_pharmacy(roles, dev_node):
    _, _, pharmacy = roles
    issued = issued_active(roles)
    pharmacy.dispense(issued.token, quantity=2)
    regulator = Regulator(dev_node.url)
    pseudonym = patient_pseudonym(DEV_CONSORTIUM_KEY, "identifier|urn:oid:2.16.840.1.113883.2.4.6.3|999911120")
    assert issued.patient == pseudonym
    by_patient = regulator.issued(patient=pseudonym)
    assert issued.rx_id in {e.details["rxId"] for e in by_patient}
    by_prescriber = regulator.issued(prescriber=PRESCRIBER.address)
    assert {e.details["rxId"] for e in by_patient} <= {e.details["rxId"] for e in by_prescriber}
    assert regulator.issued(prescriber=REVIEWER.address) == []
    assert issued.rx_id in {e.details["rxId"] for e in regulator.issued(schedule=0)}
    assert regulator.issued(schedule=2) == []
    fills = regulator.dispensed(pharmacy=org_id("pharmacy-a"))
    assert any(e.details["rxId"] == issued.rx_id and e.actor == "0x" + PHARMACIST.address.hex() for e in fills)


def _rx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rxledger", "rx", *args],
                          capture_output=True, text=True, timeout=60)


def test_rx_commands_end_to_end(dev_node, tmp_path: Path):
    url = dev_node.url
    fhir = tmp_path / "medreq.json"
    fhir.write_text(json.dumps(medication_request(numberOfRepeatsAllowed=0)))
    token = tmp_path / "token.json"
    issued = _rx("issue", "--rpc", url, "--key", PRESCRIBER.private_key.hex(), "--fhir", str(fhir),
                 "--token-out", str(token), "--json")
    assert issued.returncode == 0, issued.stderr
    rx_id = json.loads(issued.stdout)["rxId"]
    assert decode_token(token.read_text()).rx_id_hex == rx_id

    draft = _rx("verify", "--rpc", url, "--token", str(token))
    assert draft.returncode == 1 and "NOT DISPENSABLE" in draft.stdout and "status is draft" in draft.stdout
    key_file = tmp_path / "reviewer.key"
    key_file.write_text(REVIEWER.private_key.hex())
    assert _rx("review", "--rpc", url, "--key-file", str(key_file), "--rx", rx_id, "--approve").returncode == 0
    ok = _rx("verify", "--rpc", url, "--token", str(token), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["dispensable"] is True

    too_much = _rx("dispense", "--rpc", url, "--key", PHARMACIST.private_key.hex(), "--token", str(token),
                   "--quantity", "21")
    assert too_much.returncode == 1 and "per-fill" in too_much.stderr
    done = _rx("dispense", "--rpc", url, "--key", PHARMACIST.private_key.hex(), "--token", str(token),
               "--quantity", "20", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    history = _rx("history", "--rpc", url, "--rx", rx_id)
    assert history.returncode == 0 and history.stdout.count("Dispensed") == 1

    bad = dict(json.loads(token.read_text()))
    bad["doc"] = bad["doc"].replace("20", "19", 1)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    mismatch = _rx("verify", "--rpc", url, "--token", str(tmp_path / "bad.json"))
    assert mismatch.returncode == 1 and "commitment mismatch" in mismatch.stdout

    unfit = dict(json.loads(fhir.read_text()), status="completed")
    (tmp_path / "completed.json").write_text(json.dumps(unfit))
    refused = _rx("issue", "--rpc", url, "--key", PRESCRIBER.private_key.hex(), "--fhir",
                  str(tmp_path / "completed.json"))
    assert refused.returncode == 1 and "status" in refused.stderr
    no_key = _rx("issue", "--rpc", url, "--fhir", str(fhir))
    assert no_key.returncode == 2 and len(no_key.stderr.strip().splitlines()) == 1
    no_file = _rx("verify", "--rpc", url, "--token", str(tmp_path / "missing.json"))
    assert no_file.returncode == 2 and "cannot read" in no_file.stderr
    down = _rx("verify", "--rpc", "http://127.0.0.1:9", "--token", str(token))
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_a_token_survives_the_compact_form(roles):
    issued = issued_active(roles)
    compact = issued.token.to_compact()
    assert compact.startswith("RXL1.") and len(compact) < 1200
    assert decode_token(compact) == issued.token
    assert isinstance(decode_token(json.dumps(issued.token.to_json())), PrescriptionToken)


def test_hold_resume_stop_and_entered_in_error_through_the_sdk(roles, dev_node):
    hospital, _, pharmacy = roles
    issued = issued_active(roles)
    hospital.hold(issued.rx_id, "awaiting lab result")
    assert pharmacy.get(issued.rx_id).status == "on-hold"
    assert "status is on-hold" in pharmacy.verify(issued.token).problems[0]
    hospital.resume(issued.rx_id)
    pharmacy.dispense(issued.token, quantity=20)
    with pytest.raises(Refused):
        hospital.cancel(issued.rx_id, "too late")  # a fill was made: cancel is refused, stop is not
    hospital.stop(issued.rx_id, "therapy changed")
    assert pharmacy.get(issued.rx_id).status == "stopped"
    admin = Hospital(dev_node.url, ADMIN.private_key)
    admin.mark_entered_in_error(issued.rx_id, "wrong patient")
    history = Regulator(dev_node.url).history(issued.rx_id)
    assert [e.details.get("to") for e in history if e.event == "StatusChanged"] == [
        "draft", "active", "on-hold", "active", "stopped", "entered-in-error"]
    assert history[-1].details["reason"] == "wrong patient"
    with pytest.raises(ClientError, match="at most 32 bytes"):
        hospital.hold(issued.rx_id, "x" * 33)


def test_patient_activity_shows_every_prescriber_hospital_and_pharmacy_of_a_pseudonym(dev_node):
    url = dev_node.url
    patient = {"identifier": {"system": "urn:example:mrn", "value": f"shopper-{time.time_ns()}"}}
    table = ScheduleTable({("http://www.nlm.nih.gov/research/umls/rxnorm", "197361"): 2})
    pharmacy = Pharmacy(url, PHARMACIST.private_key)
    for prescriber, reviewer in ((PRESCRIBER, REVIEWER), (ACCOUNTS[5], ACCOUNTS[6])):
        issued = Hospital(url, prescriber.private_key, schedules=table).issue(
            dict(medication_request(), subject=patient))
        assert issued.schedule == 2
        Hospital(url, reviewer.private_key).review(issued.rx_id, approve=True)
        pharmacy.dispense(issued.token, quantity=7)
    pseudonym = patient_pseudonym(DEV_CONSORTIUM_KEY, f"identifier|urn:example:mrn|{patient['identifier']['value']}")
    activity = Regulator(url).patient_activity(pseudonym)
    assert len(activity.prescriptions) == 2 and activity.controlled == 2
    assert activity.prescribers == {"0x" + PRESCRIBER.address.hex(), "0x" + ACCOUNTS[5].address.hex()}
    assert activity.hospitals == {"0x" + org_id("hospital-a").hex(), "0x" + org_id("hospital-b").hex()}
    assert activity.pharmacies == {"0x" + org_id("pharmacy-a").hex()}
    assert activity.quantity_dispensed == 14
