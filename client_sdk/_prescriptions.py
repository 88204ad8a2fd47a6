"""Hospitals, pharmacies and regulators: the prescription lifecycle from FHIR documents.

Each operation is a flow (see `_rpc`), so `Hospital` and `AsyncHospital` (and the
pharmacy and regulator pairs) run the same logic, blocking or under asyncio.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from client_sdk._commitment import (
    DEV_CONSORTIUM_KEY,
    canonical_bytes,
    commitment,
    new_salt,
    patient_pseudonym,
    prescription_id,
)
from client_sdk._errors import ClientError, CommitmentMismatch, InvalidFhir, NotFound, Refused
from client_sdk._fhir import ScheduleTable, dispense_terms, load_resource, prescription_terms
from client_sdk._ledger import (
    GOVERNANCE,
    PRESCRIPTION_REGISTRY,
    Contract,
    DecodedEvent,
    Signer,
    block_flow,
    call_flow,
    logs_flow,
    send_flow,
)
from client_sdk._rpc import DEFAULT_URL, AsyncRpc, Flow, Rpc
from client_sdk._token import PrescriptionToken, decode_token
from client_sdk._web3 import Contracts, connect, connect_async, signer_for, web3_of

if TYPE_CHECKING:
    from web3 import AsyncWeb3, Web3

__all__ = [
    "STATUS_NAMES",
    "AsyncHospital",
    "AsyncPharmacy",
    "AsyncRegulator",
    "DispenseResult",
    "HistoryEntry",
    "Hospital",
    "IssuedPrescription",
    "PatientActivity",
    "Pharmacy",
    "PrescriptionRecord",
    "Regulator",
    "TokenCheck",
]

STATUS_NAMES = ("none", "draft", "active", "on-hold", "completed", "cancelled", "stopped",
                "entered-in-error")
ROLE_PRESCRIBER = 1
ROLE_PHARMACIST = 3

RxId = bytes | str


def _rx_bytes(rx_id: RxId) -> bytes:
    if isinstance(rx_id, bytes):
        if len(rx_id) != 32:
            raise ClientError("a prescription id is 32 bytes")
        return rx_id
    text = rx_id[2:] if rx_id.startswith("0x") else rx_id
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ClientError(f"a prescription id is 0x and 64 hex digits, not {rx_id!r}")
    return raw


def _address_topic(address: str | bytes) -> str:
    """An address as a 32-byte log topic (accepts 0x-hex text or 20 raw bytes)."""
    raw = address if isinstance(address, bytes) else bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ClientError(f"an address is 20 bytes, not {address!r}")
    return "0x" + raw.rjust(32, b"\0").hex()


def _reason(text: str) -> bytes:
    """A bytes32 reason: UTF-8, right-padded, at most 32 bytes."""
    raw = text.encode()
    if len(raw) > 32:
        raise ClientError(f"a reason is at most 32 bytes of UTF-8 (the ledger's bytes32): {text!r}")
    return raw.ljust(32, b"\0")


def _reason_text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode(errors="replace")


def format_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class PrescriptionRecord:
    """A prescription as the ledger holds it (`getPrescription`)."""

    rx_id: str
    commitment: bytes
    patient: bytes
    prescriber: str
    hospital: bytes
    schedule: int
    fills_allowed: int
    fills_used: int
    quantity_per_fill: int
    quantity_dispensed: int
    valid_from: int
    valid_until: int
    status: str
    issued_at: int

    @property
    def fills_left(self) -> int:
        return self.fills_allowed - self.fills_used


@dataclass(frozen=True, slots=True)
class IssuedPrescription:
    token: PrescriptionToken
    rx_id: str
    tx_hash: str
    block_number: int
    fills_allowed: int
    quantity_per_fill: int
    valid_from: int
    valid_until: int
    schedule: int
    patient: bytes


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """A pharmacy's check of a presented token, in one answer.

    `dispensable` is True only when `problems` is empty; each problem is one sentence.
    """

    rx_id: str
    matches: bool
    dispensable: bool
    problems: tuple[str, ...]
    record: PrescriptionRecord | None
    prescriber_ok: bool
    checked_at: int

    @property
    def fills_left(self) -> int:
        return self.record.fills_left if self.record else 0


@dataclass(frozen=True, slots=True)
class DispenseResult:
    rx_id: str
    fill_number: int
    quantity: int
    tx_hash: str
    block_number: int
    dispense_commitment: bytes
    dispense_salt: bytes
    dispense_document: bytes | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One event of a prescription with where and when the ledger recorded it."""

    event: str
    block_number: int
    block_hash: str
    time: int
    tx_hash: str
    actor: str
    details: dict[str, Any]

    def describe(self) -> str:
        d = self.details
        if self.event == "Issued":
            what = f"issued (schedule {d['schedule']})"
        elif self.event == "StatusChanged":
            what = f"{d['from']} -> {d['to']}" + (f" ({d['reason']})" if d["reason"] else "")
        else:
            what = f"fill {d['fillNumber']}: {d['quantity']} dispensed"
        return f"block {self.block_number} {format_time(self.time)} {self.event}: {what} by {self.actor}"


@dataclass(frozen=True, slots=True)
class PatientActivity:
    """A regulator's view of one patient pseudonym: who prescribes and who dispenses.

    Many prescribers or pharmacies for one patient, above all for controlled schedules,
    is the pattern regulators watch for (doctor and pharmacy shopping).
    """

    patient: bytes
    prescriptions: tuple[HistoryEntry, ...]
    fills: tuple[HistoryEntry, ...]
    prescribers: frozenset[str]
    hospitals: frozenset[str]
    pharmacies: frozenset[str]
    controlled: int

    @property
    def quantity_dispensed(self) -> int:
        return sum(int(f.details["quantity"]) for f in self.fills)


def _record(rx_id: bytes, raw: tuple[Any, ...]) -> PrescriptionRecord:
    (c, patient, prescriber, hospital, schedule, allowed, used, qty, dispensed, vf, vu, status,
     issued) = raw[0]
    return PrescriptionRecord(
        "0x" + rx_id.hex(), c, patient, prescriber, hospital, schedule, allowed, used, qty,
        dispensed, vf, vu, STATUS_NAMES[status] if status < len(STATUS_NAMES) else str(status),
        issued,
    )


class _Flows:
    """The shared logic of every role: contracts, signer and the operations as flows."""

    def __init__(
        self,
        signer: Signer | None,
        *,
        consortium_key: bytes,
        schedules: ScheduleTable | None,
        registry: str,
        governance: str,
        timeout: float,
    ) -> None:
        self.signer = signer
        self.consortium_key = consortium_key
        self.schedules = schedules
        self.registry = Contract("PrescriptionRegistry", registry)
        self.governance = Contract("Governance", governance)
        self.timeout = timeout

    def _signer(self) -> Signer:
        if self.signer is None:
            raise ClientError("this operation sends a transaction: give the account's key "
                              "(or a web3.Web3 whose default account has a signing middleware)")
        return self.signer

    def send(self, function: str, *args: Any) -> Flow[dict[str, Any]]:
        return send_flow(self._signer(), self.registry, function, *args, timeout=self.timeout)

    def get(self, rx_id: RxId) -> Flow[PrescriptionRecord]:
        raw_id = _rx_bytes(rx_id)
        record = _record(raw_id, (yield from call_flow(self.registry, "getPrescription", raw_id)))
        if record.status == "none":
            raise NotFound(f"no prescription {record.rx_id} on the ledger")
        return record

    # -- hospital

    def issue(
        self, medication_request: Mapping[str, Any] | str | bytes, pharmacy_key: bytes | None,
        fhir_version: str, now: int | None,
    ) -> Flow[IssuedPrescription]:
        resource = load_resource(medication_request, "MedicationRequest")
        terms = prescription_terms(
            resource, now=int(time.time()) if now is None else now, schedules=self.schedules,
            fhir_version=fhir_version,
        )
        canonical = canonical_bytes(resource)
        salt = new_salt()
        rx_id = prescription_id(self.consortium_key, canonical)
        patient = patient_pseudonym(self.consortium_key, terms.patient_key)
        receipt = yield from self.send(
            "issue", rx_id, commitment(salt, canonical), patient, terms.schedule,
            terms.fills_allowed, terms.quantity_per_fill, terms.valid_from, terms.valid_until,
        )
        token = PrescriptionToken(rx_id, salt, canonical)
        if pharmacy_key is not None:
            token = token.seal_to(pharmacy_key)
        return IssuedPrescription(
            token, "0x" + rx_id.hex(), receipt["transactionHash"], int(receipt["blockNumber"], 16),
            terms.fills_allowed, terms.quantity_per_fill, terms.valid_from, terms.valid_until,
            terms.schedule, patient,
        )

    def transition(self, function: str, rx_id: RxId, *args: Any) -> Flow[str]:
        receipt = yield from self.send(function, _rx_bytes(rx_id), *args)
        return str(receipt["transactionHash"])

    # -- pharmacy

    def check(self, token: Any, pharmacy_private_key: bytes | None) -> Flow[TokenCheck]:
        tok = decode_token(token)
        if tok.is_sealed:
            if pharmacy_private_key is None:
                raise ClientError("the token is encrypted to a pharmacy: give the pharmacy's key")
            tok = tok.open_with(pharmacy_private_key)
        assert tok.document is not None
        rx_hex = tok.rx_id_hex
        raw = yield from call_flow(self.registry, "getPrescription", tok.rx_id)
        record = _record(tok.rx_id, raw)
        head = yield from block_flow("latest")
        now = int(head["timestamp"], 16)
        if record.status == "none":
            return TokenCheck(rx_hex, False, False, (f"no prescription {rx_hex} on the ledger",),
                              None, False, now)
        problems: list[str] = []
        matches = commitment(tok.salt, tok.document) == record.commitment
        if not matches:
            problems.append(
                "commitment mismatch: the document and salt do not match the ledger's commitment"
            )
        if record.status != "active":
            problems.append(f"status is {record.status}; only an active prescription is dispensed")
        if record.fills_left <= 0:
            problems.append(f"no fills left ({record.fills_used} of {record.fills_allowed} used)")
        if now > record.valid_until:
            problems.append(f"expired: valid until {format_time(record.valid_until)}")
        elif now < record.valid_from:
            problems.append(f"not yet valid: valid from {format_time(record.valid_from)}")
        _org, _kind, role, suspended, org_suspended = yield from call_flow(
            self.governance, "member", record.prescriber
        )
        prescriber_ok = True
        if role != ROLE_PRESCRIBER:
            prescriber_ok = False
            problems.append(f"prescriber {record.prescriber} is no longer enrolled as a prescriber")
        if suspended or org_suspended:
            prescriber_ok = False
            whose = "prescriber" if suspended else "prescriber's hospital"
            problems.append(f"the {whose} is suspended ({record.prescriber})")
        return TokenCheck(rx_hex, matches, not problems, tuple(problems), record, prescriber_ok, now)

    def dispense(
        self, token: Any, medication_dispense: Mapping[str, Any] | str | bytes | None,
        quantity: int | None, pharmacy_private_key: bytes | None, fhir_version: str,
    ) -> Flow[DispenseResult]:
        if (medication_dispense is None) == (quantity is None):
            raise ClientError("give either a MedicationDispense or a quantity")
        tok = decode_token(token)
        if tok.is_sealed and pharmacy_private_key is not None:
            tok = tok.open_with(pharmacy_private_key)
        check = yield from self.check(tok, pharmacy_private_key)
        if check.record is None:
            raise NotFound(check.problems[0])
        if not check.matches:
            raise CommitmentMismatch(
                f"{check.rx_id}: the token's document and salt do not match the ledger's commitment"
            )
        if not check.dispensable:
            raise Refused("; ".join(check.problems))
        record = check.record
        canonical: bytes | None = None
        if medication_dispense is not None:
            resource = load_resource(medication_dispense, "MedicationDispense")
            terms = dispense_terms(resource, fhir_version=fhir_version)
            request_id = decode_token(tok).document_json().get("id")
            wanted = f"MedicationRequest/{request_id}"
            if request_id and wanted not in terms.authorizing:
                raise InvalidFhir(
                    "authorizingPrescription",
                    f"must reference {wanted}, the prescription presented"
                    + (f" (it references {', '.join(terms.authorizing)})" if terms.authorizing else ""),
                )
            qty = terms.quantity
            if qty > record.quantity_per_fill:
                raise InvalidFhir(
                    "quantity", f"{qty} is more than the {record.quantity_per_fill} allowed per fill"
                )
            canonical = canonical_bytes(resource)
        else:
            assert quantity is not None
            qty = quantity
        salt = new_salt()
        dispense_commitment = commitment(salt, canonical if canonical is not None else b"")
        receipt = yield from self.send("dispense", tok.rx_id, qty, dispense_commitment)
        fill = 0
        for log in receipt["logs"]:
            event = self.registry.decode_log(log)
            if event is not None and event.name == "Dispensed":
                fill = int(event.args["fillNumber"])
        return DispenseResult(
            check.rx_id, fill, qty, receipt["transactionHash"], int(receipt["blockNumber"], 16),
            dispense_commitment, salt, canonical,
        )

    # -- regulator

    def _entries(self, events: list[DecodedEvent]) -> Flow[list[HistoryEntry]]:
        events.sort(key=lambda e: (e.block_number, e.log_index))
        times: dict[int, int] = {}
        out = []
        for e in events:
            if e.block_number not in times:
                block = yield from block_flow(e.block_number)
                times[e.block_number] = int(block["timestamp"], 16)
            a = dict(e.args)
            if e.name == "Issued":
                actor = a["prescriber"]
                details = {"hospital": "0x" + a["hospital"].hex(), "patient": "0x" + a["patient"].hex(),
                           "schedule": a["schedule"], "commitment": "0x" + a["commitment"].hex()}
            elif e.name == "StatusChanged":
                actor = a["by"]
                details = {"from": STATUS_NAMES[a["from"]], "to": STATUS_NAMES[a["to"]],
                           "reason": _reason_text(a["reason"])}
            else:
                actor = a["pharmacist"]
                details = {"pharmacy": "0x" + a["pharmacy"].hex(), "fillNumber": a["fillNumber"],
                           "quantity": a["quantity"],
                           "dispenseCommitment": "0x" + a["dispenseCommitment"].hex()}
            details["rxId"] = "0x" + a["rxId"].hex()
            out.append(HistoryEntry(e.name, e.block_number, e.block_hash, times[e.block_number],
                                    e.transaction_hash, actor, details))
        return out

    def history(self, rx_id: RxId) -> Flow[list[HistoryEntry]]:
        topic = "0x" + _rx_bytes(rx_id).hex()
        events: list[DecodedEvent] = []
        for name in ("Issued", "StatusChanged", "Dispensed"):
            events += yield from logs_flow(self.registry, name, [topic])
        if not events:
            raise NotFound(f"no prescription {topic} on the ledger")
        return (yield from self._entries(events))

    def issued(
        self, *, prescriber: str | bytes | None = None, patient: bytes | None = None,
        schedule: int | None = None, hospital: bytes | None = None, from_block: int = 0,
    ) -> Flow[list[HistoryEntry]]:
        """Issued events filtered by prescriber, hospital (indexed), patient pseudonym or
        schedule (in the event's data, so filtered here)."""
        topics: list[str | None] = [
            None,
            "0x" + hospital.hex() if hospital is not None else None,
            _address_topic(prescriber) if prescriber is not None else None,
        ]
        events = yield from logs_flow(self.registry, "Issued", topics, from_block)
        events = [
            e for e in events
            if (patient is None or e.args["patient"] == patient)
            and (schedule is None or e.args["schedule"] == schedule)
        ]
        return (yield from self._entries(events))

    def dispensed(
        self, *, pharmacy: bytes | None = None, pharmacist: str | bytes | None = None, from_block: int = 0,
    ) -> Flow[list[HistoryEntry]]:
        topics: list[str | None] = [
            None,
            "0x" + pharmacy.hex() if pharmacy is not None else None,
            _address_topic(pharmacist) if pharmacist is not None else None,
        ]
        events = yield from logs_flow(self.registry, "Dispensed", topics, from_block)
        return (yield from self._entries(events))


    def patient_activity(self, patient: bytes, from_block: int = 0) -> Flow[PatientActivity]:
        issued = yield from self.issued(patient=patient, from_block=from_block)
        fills: list[HistoryEntry] = []
        rx_topics = sorted({e.details["rxId"] for e in issued})
        for start in range(0, len(rx_topics), 100):  # an OR-list of topics per request
            events = yield from logs_flow(
                self.registry, "Dispensed", [rx_topics[start:start + 100]], from_block)
            fills += yield from self._entries(events)
        return PatientActivity(
            patient, tuple(issued), tuple(fills),
            frozenset(e.actor for e in issued),
            frozenset(e.details["hospital"] for e in issued),
            frozenset(f.details["pharmacy"] for f in fills),
            sum(1 for e in issued if e.details["schedule"] > 0),
        )


class _Role:
    def __init__(
        self, rpc: str | Rpc | Web3 = DEFAULT_URL, key: str | bytes | None = None, *,
        consortium_key: bytes = DEV_CONSORTIUM_KEY, schedules: ScheduleTable | None = None,
        registry: str = PRESCRIPTION_REGISTRY, governance: str = GOVERNANCE, timeout: float = 60.0,
        chain_id: int | None = None,
    ) -> None:
        self.rpc = connect(rpc, chain_id=chain_id)
        self._flows = _Flows(signer_for(key, self.rpc), consortium_key=consortium_key,
                             schedules=schedules, registry=registry, governance=governance,
                             timeout=timeout)
        self._contracts: Contracts | None = None

    @property
    def contracts(self) -> Contracts:
        """The ledger's contracts as web3 contract objects, over this role's Web3 (or a
        web3 `HTTPProvider` of its URL)."""
        if self._contracts is None:
            self._contracts = Contracts.of(web3_of(self.rpc), prescriptions=self._flows.registry.address,
                                           governance=self._flows.governance.address)
        return self._contracts

    def close(self) -> None:
        self.rpc.close()

    def get(self, rx_id: RxId) -> PrescriptionRecord:
        return self.rpc.run(self._flows.get(rx_id))


class _AsyncRole:
    def __init__(
        self, rpc: str | AsyncRpc | AsyncWeb3[Any] = DEFAULT_URL, key: str | bytes | None = None, *,
        consortium_key: bytes = DEV_CONSORTIUM_KEY, schedules: ScheduleTable | None = None,
        registry: str = PRESCRIPTION_REGISTRY, governance: str = GOVERNANCE, timeout: float = 60.0,
        chain_id: int | None = None,
    ) -> None:
        self.rpc = connect_async(rpc, chain_id=chain_id)
        self._flows = _Flows(signer_for(key, self.rpc), consortium_key=consortium_key,
                             schedules=schedules, registry=registry, governance=governance,
                             timeout=timeout)

    async def aclose(self) -> None:
        await self.rpc.aclose()

    async def get(self, rx_id: RxId) -> PrescriptionRecord:
        return await self.rpc.run(self._flows.get(rx_id))


class Hospital(_Role):
    """A hospital's prescriber or pharmacist: issue, review and manage prescriptions."""

    def issue(self, medication_request: Mapping[str, Any] | str | bytes, *,
              pharmacy_key: bytes | None = None, fhir_version: str = "auto",
              now: int | None = None) -> IssuedPrescription:
        """Validate, commit and issue a FHIR MedicationRequest; returns the token."""
        return self.rpc.run(self._flows.issue(medication_request, pharmacy_key, fhir_version, now))

    def review(self, rx_id: RxId, *, approve: bool = True, reason: str = "") -> str:
        return self.rpc.run(self._flows.transition("review", rx_id, approve, _reason(reason)))

    def hold(self, rx_id: RxId, reason: str = "") -> str:
        return self.rpc.run(self._flows.transition("hold", rx_id, _reason(reason)))

    def resume(self, rx_id: RxId) -> str:
        return self.rpc.run(self._flows.transition("resume", rx_id))

    def cancel(self, rx_id: RxId, reason: str = "") -> str:
        return self.rpc.run(self._flows.transition("cancel", rx_id, _reason(reason)))

    def stop(self, rx_id: RxId, reason: str = "") -> str:
        return self.rpc.run(self._flows.transition("stop", rx_id, _reason(reason)))

    def mark_entered_in_error(self, rx_id: RxId, reason: str = "") -> str:
        return self.rpc.run(self._flows.transition("markEnteredInError", rx_id, _reason(reason)))


class AsyncHospital(_AsyncRole):
    """`Hospital` under asyncio."""

    async def issue(self, medication_request: Mapping[str, Any] | str | bytes, *,
                    pharmacy_key: bytes | None = None, fhir_version: str = "auto",
                    now: int | None = None) -> IssuedPrescription:
        return await self.rpc.run(
            self._flows.issue(medication_request, pharmacy_key, fhir_version, now))

    async def review(self, rx_id: RxId, *, approve: bool = True, reason: str = "") -> str:
        return await self.rpc.run(self._flows.transition("review", rx_id, approve, _reason(reason)))

    async def hold(self, rx_id: RxId, reason: str = "") -> str:
        return await self.rpc.run(self._flows.transition("hold", rx_id, _reason(reason)))

    async def resume(self, rx_id: RxId) -> str:
        return await self.rpc.run(self._flows.transition("resume", rx_id))

    async def cancel(self, rx_id: RxId, reason: str = "") -> str:
        return await self.rpc.run(self._flows.transition("cancel", rx_id, _reason(reason)))

    async def stop(self, rx_id: RxId, reason: str = "") -> str:
        return await self.rpc.run(self._flows.transition("stop", rx_id, _reason(reason)))

    async def mark_entered_in_error(self, rx_id: RxId, reason: str = "") -> str:
        return await self.rpc.run(
            self._flows.transition("markEnteredInError", rx_id, _reason(reason)))


class Pharmacy(_Role):
    """A pharmacist: verify a presented token, then record the fill."""

    def __init__(self, rpc: str | Rpc | Web3 = DEFAULT_URL, key: str | bytes | None = None, *,
                 token_key: bytes | None = None, **kwargs: Any) -> None:
        super().__init__(rpc, key, **kwargs)
        self.token_key = token_key

    def verify(self, token: Any) -> TokenCheck:
        return self.rpc.run(self._flows.check(token, self.token_key))

    def dispense(self, token: Any, medication_dispense: Mapping[str, Any] | str | bytes | None = None,
                 *, quantity: int | None = None, fhir_version: str = "auto") -> DispenseResult:
        return self.rpc.run(self._flows.dispense(
            token, medication_dispense, quantity, self.token_key, fhir_version))


class AsyncPharmacy(_AsyncRole):
    """`Pharmacy` under asyncio."""

    def __init__(self, rpc: str | AsyncRpc | AsyncWeb3[Any] = DEFAULT_URL, key: str | bytes | None = None, *,
                 token_key: bytes | None = None, **kwargs: Any) -> None:
        super().__init__(rpc, key, **kwargs)
        self.token_key = token_key

    async def verify(self, token: Any) -> TokenCheck:
        return await self.rpc.run(self._flows.check(token, self.token_key))

    async def dispense(self, token: Any,
                       medication_dispense: Mapping[str, Any] | str | bytes | None = None, *,
                       quantity: int | None = None, fhir_version: str = "auto") -> DispenseResult:
        return await self.rpc.run(self._flows.dispense(
            token, medication_dispense, quantity, self.token_key, fhir_version))


class Regulator(_Role):
    """The regulator's read side: provenance of a prescription and audit queries."""

    def history(self, rx_id: RxId) -> list[HistoryEntry]:
        return self.rpc.run(self._flows.history(rx_id))

    def issued(self, **filters: Any) -> list[HistoryEntry]:
        """Issued events by `prescriber`, `hospital`, `patient` (pseudonym), `schedule`."""
        return self.rpc.run(self._flows.issued(**filters))

    def dispensed(self, **filters: Any) -> list[HistoryEntry]:
        """Dispensed events by `pharmacy` (org id) or `pharmacist`."""
        return self.rpc.run(self._flows.dispensed(**filters))

    def patient_activity(self, patient: bytes, from_block: int = 0) -> PatientActivity:
        """Every prescription and fill of one patient pseudonym, with the distinct
        prescribers, hospitals and pharmacies involved."""
        return self.rpc.run(self._flows.patient_activity(patient, from_block))


class AsyncRegulator(_AsyncRole):
    """`Regulator` under asyncio."""

    async def history(self, rx_id: RxId) -> list[HistoryEntry]:
        return await self.rpc.run(self._flows.history(rx_id))

    async def issued(self, **filters: Any) -> list[HistoryEntry]:
        return await self.rpc.run(self._flows.issued(**filters))

    async def dispensed(self, **filters: Any) -> list[HistoryEntry]:
        return await self.rpc.run(self._flows.dispensed(**filters))

    async def patient_activity(self, patient: bytes, from_block: int = 0) -> PatientActivity:
        return await self.rpc.run(self._flows.patient_activity(patient, from_block))
