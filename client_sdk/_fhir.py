"""FHIR MedicationRequest / MedicationDispense → what the ledger records.

A MedicationRequest is validated with `fhir.resources` (R4 documents with its R4B models,
which share R4's MedicationRequest and MedicationDispense; R5 with its default models),
then mapped to the ledger's terms. What the ledger cannot represent is refused with
`InvalidFhir` naming the field:

| ledger term | from | refused when |
|---|---|---|
| fills allowed | 1 + `dispenseRequest.numberOfRepeatsAllowed` (FHIR counts repeats after the first fill) | > 65,535 |
| quantity per fill | `dispenseRequest.quantity.value` | missing, not a whole number, ≤ 0 or > 2³²−1 |
| valid from / until | `dispenseRequest.validityPeriod` (a date starts at 00:00:00 UTC, an end date ends at 23:59:59 UTC) | end not after start, end in the past |
| (default window) | no validityPeriod: from the time of issue to the end of the day of issue plus 3 days (UTC), as China's prescription rules set | |
| schedule | the medication's codings looked up in a `ScheduleTable` (default: not controlled, 0) | > 255 |
| patient | `subject.identifier` (system‖value), else `subject.reference` | no subject |
| status | `status` must be `active` or `draft`; `intent` must be an order | otherwise |
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from client_sdk._errors import InvalidFhir

__all__ = [
    "DispenseTerms",
    "PrescriptionTerms",
    "ScheduleTable",
    "load_resource",
    "prescription_terms",
    "dispense_terms",
]

DEFAULT_VALID_DAYS = 3
_ORDER_INTENTS = {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
_DISPENSE_STATUSES = {"preparation", "in-progress", "completed"}
UINT16_MAX = 2**16 - 1
UINT32_MAX = 2**32 - 1

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


class ScheduleTable:
    """Controlled-substance schedule (0 = not controlled … 255) by medication coding.

    Keys are (code system, code). The default table is empty; a deployment loads its
    formulary's table (`from_json`: ``[{"system": …, "code": …, "schedule": 2}, …]``).
    """

    def __init__(self, entries: Mapping[tuple[str, str], int] | None = None) -> None:
        self._entries: dict[tuple[str, str], int] = {}
        for (system, code), schedule in (entries or {}).items():
            if not 0 <= int(schedule) <= 255:
                raise ValueError(f"schedule for {system}|{code} must be 0-255, got {schedule}")
            self._entries[(system, code)] = int(schedule)

    @classmethod
    def from_json(cls, text: str) -> ScheduleTable:
        rows = json.loads(text)
        return cls({(str(r["system"]), str(r["code"])): int(r["schedule"]) for r in rows})

    def schedule_of(self, codings: Iterable[tuple[str, str]]) -> int:
        """The highest schedule among the codings (a product may carry several codes)."""
        return max((self._entries.get(c, 0) for c in codings), default=0)


@dataclass(frozen=True, slots=True)
class PrescriptionTerms:
    """What `issue` puts on the ledger for one MedicationRequest (besides commitments)."""

    fills_allowed: int
    quantity_per_fill: int
    valid_from: int
    valid_until: int
    schedule: int
    patient_key: str
    request_id: str | None
    identifier: str | None
    fhir_version: str


@dataclass(frozen=True, slots=True)
class DispenseTerms:
    quantity: int
    authorizing: tuple[str, ...]
    fhir_version: str


def load_resource(document: Mapping[str, Any] | str | bytes, expected: str) -> dict[str, Any]:
    """A FHIR resource as a JSON object (a dict, or JSON text/bytes)."""
    if isinstance(document, str | bytes):
        try:
            parsed = json.loads(document)
        except ValueError as exc:
            raise InvalidFhir("(document)", f"not JSON: {exc}") from exc
    else:
        parsed = dict(document)
    if not isinstance(parsed, dict):
        raise InvalidFhir("(document)", "a FHIR resource is a JSON object")
    kind = parsed.get("resourceType")
    if kind != expected:
        raise InvalidFhir("resourceType", f"expected {expected}, got {kind!r}")
    return parsed


def _detect_version(resource: dict[str, Any], requested: str) -> str:
    if requested in ("R4", "R5"):
        return requested
    if requested != "auto":
        raise ValueError(f"fhir_version must be 'auto', 'R4' or 'R5', not {requested!r}")
    # R5 replaced medication[x] (and MedicationDispense's medication[x]) by `medication`.
    return "R5" if "medication" in resource else "R4"


def _validate(resource: dict[str, Any], version: str) -> Any:
    kind = resource["resourceType"]
    try:
        if version == "R4":
            if kind == "MedicationRequest":
                from fhir.resources.R4B.medicationrequest import MedicationRequest as R4Request
                return R4Request.model_validate(resource)
            from fhir.resources.R4B.medicationdispense import MedicationDispense as R4Dispense
            return R4Dispense.model_validate(resource)
        if kind == "MedicationRequest":
            from fhir.resources.medicationrequest import MedicationRequest as R5Request
            return R5Request.model_validate(resource)
        from fhir.resources.medicationdispense import MedicationDispense as R5Dispense
        return R5Dispense.model_validate(resource)
    except Exception as exc:  # pydantic.ValidationError, or fhir.resources' own errors
        errors = getattr(exc, "errors", None)
        if callable(errors):
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__") or "(resource)"
            raise InvalidFhir(where, f"invalid FHIR {version} {kind}: {first.get('msg')}") from exc
        raise InvalidFhir("(resource)", f"invalid FHIR {version} {kind}: {exc}") from exc


def _instant(value: Any, field: str, *, end: bool) -> int:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    if isinstance(value, date):
        day = datetime(value.year, value.month, value.day, tzinfo=UTC)
        return int((day + timedelta(days=1)).timestamp()) - 1 if end else int(day.timestamp())
    raise InvalidFhir(field, f"expected a date or dateTime, got {value!r}")


def _whole(value: Any, field: str, maximum: int) -> int:
    if value is None:
        raise InvalidFhir(field, "is required: the ledger records a quantity per fill")
    number = Decimal(str(value))
    if number != number.to_integral_value():
        raise InvalidFhir(field, f"{value} is not a whole number of units; the ledger counts whole units")
    if not 0 < number <= maximum:
        raise InvalidFhir(field, f"{value} must be between 1 and {maximum}")
    return int(number)


def _codings(concept: Any) -> list[tuple[str, str]]:
    if concept is None:
        return []
    return [(c.system or "", c.code or "") for c in (concept.coding or [])]


def _medication_codings(model: Any, version: str) -> list[tuple[str, str]]:
    if version == "R5":
        medication = getattr(model, "medication", None)
        codings = _codings(getattr(medication, "concept", None))
        reference = getattr(getattr(medication, "reference", None), "reference", None)
    else:
        codings = _codings(getattr(model, "medicationCodeableConcept", None))
        reference = getattr(getattr(model, "medicationReference", None), "reference", None)
    if isinstance(reference, str) and reference.startswith("#"):
        for contained in model.contained or []:
            if getattr(contained, "id", None) == reference[1:]:
                codings += _codings(getattr(contained, "code", None))
    return codings


def _patient_key(model: Any) -> str:
    subject = model.subject
    if subject is None:
        raise InvalidFhir("subject", "is required: the ledger records a patient pseudonym")
    identifier = subject.identifier
    if identifier is not None and identifier.value:
        return f"identifier|{identifier.system or ''}|{identifier.value}"
    if subject.reference:
        return f"reference|{subject.reference}"
    raise InvalidFhir("subject", "needs an identifier or a reference to pseudonymise the patient")


def _request_identifier(model: Any) -> str | None:
    identifiers = list(model.identifier or [])
    identifiers.sort(key=lambda i: 0 if i.use == "official" else 1)
    for ident in identifiers:
        if ident.value:
            return f"{ident.system or ''}|{ident.value}"
    return None


def prescription_terms(
    resource: dict[str, Any],
    *,
    now: int,
    schedules: ScheduleTable | None = None,
    fhir_version: str = "auto",
) -> PrescriptionTerms:
    """Validate a MedicationRequest and map it to the ledger's terms (see the table above).

    `now` is the issue time (Unix seconds) used for the default validity window and the
    "in the past" check.
    """
    load_resource(resource, "MedicationRequest")
    version = _detect_version(resource, fhir_version)
    model = _validate(resource, version)
    if model.status not in ("active", "draft"):
        raise InvalidFhir(
            "status", f"is {model.status!r}; only an active or draft request can be issued"
        )
    if model.intent not in _ORDER_INTENTS:
        raise InvalidFhir("intent", f"is {model.intent!r}; only an order can be issued as a prescription")
    request = model.dispenseRequest
    if request is None:
        raise InvalidFhir("dispenseRequest", "is required: it carries the quantity per fill")
    quantity = _whole(
        request.quantity.value if request.quantity is not None else None,
        "dispenseRequest.quantity", UINT32_MAX,
    )
    repeats = request.numberOfRepeatsAllowed or 0
    if repeats + 1 > UINT16_MAX:
        raise InvalidFhir(
            "dispenseRequest.numberOfRepeatsAllowed", f"{repeats} is more than {UINT16_MAX - 1} repeats"
        )
    period = request.validityPeriod
    if period is not None and (period.start is not None or period.end is not None):
        valid_from = (
            _instant(period.start, "dispenseRequest.validityPeriod.start", end=False)
            if period.start is not None else now
        )
        if period.end is None:
            raise InvalidFhir(
                "dispenseRequest.validityPeriod.end", "is required when a validity period is given"
            )
        valid_until = _instant(period.end, "dispenseRequest.validityPeriod.end", end=True)
        if valid_until <= valid_from:
            raise InvalidFhir("dispenseRequest.validityPeriod", "end is not after start")
        if valid_until <= now:
            ended = datetime.fromtimestamp(valid_until, UTC).isoformat()
            raise InvalidFhir(
                "dispenseRequest.validityPeriod.end",
                f"{ended} is in the past; an expired prescription cannot be issued",
            )
    else:
        valid_from = now
        issue_day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        valid_until = int((issue_day + timedelta(days=DEFAULT_VALID_DAYS + 1)).timestamp()) - 1
    schedule = (schedules or ScheduleTable()).schedule_of(_medication_codings(model, version))
    return PrescriptionTerms(
        fills_allowed=repeats + 1,
        quantity_per_fill=quantity,
        valid_from=valid_from,
        valid_until=valid_until,
        schedule=schedule,
        patient_key=_patient_key(model),
        request_id=model.id,
        identifier=_request_identifier(model),
        fhir_version=version,
    )


def dispense_terms(resource: dict[str, Any], *, fhir_version: str = "auto") -> DispenseTerms:
    """Validate a MedicationDispense: a whole quantity and the prescriptions it fills."""
    load_resource(resource, "MedicationDispense")
    version = _detect_version(resource, fhir_version)
    model = _validate(resource, version)
    if model.status not in _DISPENSE_STATUSES:
        raise InvalidFhir(
            "status", f"is {model.status!r}; a fill is recorded for a preparation, in-progress or completed dispense"
        )
    quantity = _whole(
        model.quantity.value if model.quantity is not None else None, "quantity", UINT32_MAX
    )
    authorizing = tuple(
        ref.reference for ref in (model.authorizingPrescription or []) if ref.reference
    )
    return DispenseTerms(quantity, authorizing, version)
