"""MedicationRequest/MedicationDispense → ledger terms, and the commitment helpers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from client_sdk import DEV_CONSORTIUM_KEY, InvalidFhir, ScheduleTable, canonical_bytes, commitment
from client_sdk._commitment import patient_pseudonym, prescription_id
from client_sdk._fhir import dispense_terms, prescription_terms

NOW = int(datetime(2026, 11, 22, 15, 30, tzinfo=UTC).timestamp())
OXY = ("http://www.nlm.nih.gov/research/umls/rxnorm", "1049621")


def r4(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": OXY[0], "code": OXY[1]}]},
        "subject": {"reference": "Patient/p1"},
        "dispenseRequest": {"numberOfRepeatsAllowed": 2, "quantity": {"value": 30, "unit": "TAB"}},
    }
    doc.update(changes)
    return doc


def test_terms_of_a_plain_request_and_the_default_window():
    terms = prescription_terms(r4(), now=NOW)
    assert (terms.fills_allowed, terms.quantity_per_fill, terms.schedule) == (3, 30, 0)
    assert terms.valid_from == NOW
    # the day of issue plus 3 days, to its last second (UTC)
    assert terms.valid_until == int(datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC).timestamp())
    assert terms.patient_key == "reference|Patient/p1" and terms.fhir_version == "R4"


def test_validity_dates_cover_whole_days_and_datetimes_are_exact():
    dates = prescription_terms(r4(dispenseRequest={
        "quantity": {"value": 1}, "validityPeriod": {"start": "2026-11-20", "end": "2026-12-01"}}), now=NOW)
    assert dates.valid_from == int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())
    assert dates.valid_until == int(datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC).timestamp())
    exact = prescription_terms(r4(dispenseRequest={
        "quantity": {"value": 1},
        "validityPeriod": {"start": "2026-11-22T10:00:00+01:00", "end": "2026-11-23T10:00:00Z"}}), now=NOW)
    assert exact.valid_from == int(datetime(2026, 11, 22, 9, tzinfo=UTC).timestamp())
    assert exact.valid_until == int(datetime(2026, 11, 23, 10, tzinfo=UTC).timestamp())


def test_the_schedule_comes_from_the_code_table_including_contained_medications():
    table = ScheduleTable({OXY: 2})
    assert prescription_terms(r4(), now=NOW, schedules=table).schedule == 2
    contained = r4(medicationCodeableConcept=None, medicationReference={"reference": "#med"},
                   contained=[{"resourceType": "Medication", "id": "med",
                               "code": {"coding": [{"system": OXY[0], "code": OXY[1]}]}}])
    del contained["medicationCodeableConcept"]
    assert prescription_terms(contained, now=NOW, schedules=table).schedule == 2
    assert ScheduleTable.from_json('[{"system": "s", "code": "c", "schedule": 4}]').schedule_of([("s", "c")]) == 4


@pytest.mark.parametrize(("changes", "field"), [
    ({"status": "completed"}, "status"),
    ({"status": "on-hold"}, "status"),
    ({"intent": "plan"}, "intent"),
    ({"dispenseRequest": None}, "dispenseRequest"),
    ({"dispenseRequest": {"numberOfRepeatsAllowed": 1}}, "dispenseRequest.quantity"),
    ({"dispenseRequest": {"quantity": {"value": 2.5, "unit": "mL"}}}, "dispenseRequest.quantity"),
    ({"dispenseRequest": {"quantity": {"value": 0}}}, "dispenseRequest.quantity"),
    ({"dispenseRequest": {"quantity": {"value": 2**32}}}, "dispenseRequest.quantity"),
    ({"dispenseRequest": {"quantity": {"value": 1}, "numberOfRepeatsAllowed": 70000}},
     "dispenseRequest.numberOfRepeatsAllowed"),
    ({"dispenseRequest": {"quantity": {"value": 1},
                          "validityPeriod": {"start": "2026-12-01", "end": "2026-11-30"}}},
     "dispenseRequest.validityPeriod"),
    ({"dispenseRequest": {"quantity": {"value": 1},
                          "validityPeriod": {"start": "2025-01-01", "end": "2025-02-01"}}},
     "dispenseRequest.validityPeriod.end"),
    ({"subject": None}, "subject"),
    ({"resourceType": "MedicationDispense"}, "resourceType"),
])
def test_what_the_ledger_cannot_represent_is_refused_naming_the_field(changes, field):
    doc = r4()
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    with pytest.raises(InvalidFhir) as refused:
        prescription_terms(doc, now=NOW)
    assert refused.value.field == field, str(refused.value)


def test_invalid_fhir_is_refused_with_the_path_of_the_bad_element():
    with pytest.raises(InvalidFhir) as bad:
        prescription_terms(r4(dispenseRequest={"quantity": {"value": "many"}}), now=NOW)
    assert "dispenseRequest" in bad.value.field and "quantity" in bad.value.field


def test_an_r5_request_maps_the_same_way():
    r5 = r4()
    del r5["medicationCodeableConcept"]
    r5["medication"] = {"concept": {"coding": [{"system": OXY[0], "code": OXY[1]}]}}
    terms = prescription_terms(r5, now=NOW, schedules=ScheduleTable({OXY: 2}))
    assert (terms.fhir_version, terms.fills_allowed, terms.quantity_per_fill, terms.schedule) == ("R5", 3, 30, 2)


def test_dispense_terms():
    doc = {"resourceType": "MedicationDispense", "status": "completed",
           "medicationCodeableConcept": {"text": "x"}, "quantity": {"value": 10},
           "authorizingPrescription": [{"reference": "MedicationRequest/m1"}]}
    terms = dispense_terms(doc)
    assert (terms.quantity, terms.authorizing) == (10, ("MedicationRequest/m1",))
    with pytest.raises(InvalidFhir) as refused:
        dispense_terms(dict(doc, status="declined"))
    assert refused.value.field == "status"
    with pytest.raises(InvalidFhir) as no_quantity:
        dispense_terms({k: v for k, v in doc.items() if k != "quantity"})
    assert no_quantity.value.field == "quantity"


def test_canonical_form_normalises_numbers_and_key_order():
    a = canonical_bytes({"b": 6.0, "a": [1, {"y": 1, "x": 2}]})
    b = canonical_bytes({"a": [1, {"x": 2, "y": 1}], "b": 6})
    assert a == b == b'{"a":[1,{"x":2,"y":1}],"b":6}'


def test_commitments_depend_on_salt_and_document():
    doc = canonical_bytes(r4())
    assert commitment(b"\1" * 32, doc) == hashlib.sha256(b"\1" * 32 + doc).digest()
    assert commitment(b"\1" * 32, doc) != commitment(b"\2" * 32, doc)
    assert commitment(b"\1" * 32, doc) != commitment(b"\1" * 32, doc + b" ")


def test_patient_pseudonyms_are_keyed_not_plain_hashes():
    key = "identifier|urn:oid:2.16.840.1.113883.2.4.6.3|999911120"
    p1 = patient_pseudonym(DEV_CONSORTIUM_KEY, key)
    assert p1 == patient_pseudonym(DEV_CONSORTIUM_KEY, key)
    assert p1 != patient_pseudonym(b"another consortium key", key)
    assert p1 not in (hashlib.sha256(key.encode()).digest(), hashlib.sha256(b"999911120").digest())
    with pytest.raises(ValueError):
        patient_pseudonym(b"short", key)


def test_prescription_ids_are_deterministic_per_document():
    doc = canonical_bytes(r4())
    assert prescription_id(DEV_CONSORTIUM_KEY, doc) == prescription_id(DEV_CONSORTIUM_KEY, doc)
    assert prescription_id(DEV_CONSORTIUM_KEY, doc) != prescription_id(DEV_CONSORTIUM_KEY, canonical_bytes(r4(id="m2")))
