"""PrescriptionRegistry, natively, at 0x…1001: every e-prescription from issue through
pharmacist review to dispensing, with no patient data.

The behaviour is docs/CONTRACTS.md's, check for check, in the order it gives, with the
same revert strings, events, return data and views as
`contracts/src/PrescriptionRegistry.sol`. The caller's membership comes from the native
Governance at 0x…1002 (`governance.member`, the view the Solidity contract calls).

State (keys within the chaincode's namespace):

    p ‖ rxId (32)   the record, one packed value (see `RECORD`; absent = all zeros)
"""

from __future__ import annotations

from typing import Any

from chaincode_py import governance
from chaincode_py.api import ZERO32, Chaincode, Context, Layout, abi
from rxledger.core.addresses import GOVERNANCE, PRESCRIPTION_REGISTRY

NONE, DRAFT, ACTIVE, ON_HOLD, COMPLETED, CANCELLED, STOPPED, ENTERED_IN_ERROR = range(8)

# Role bits (1 << role) for the caller checks.
PRESCRIBER = 1 << governance.PRESCRIBER
HOSPITAL_PHARMACIST = 1 << governance.HOSPITAL_PHARMACIST
PHARMACIST = 1 << governance.PHARMACIST
ORG_ADMIN = 1 << governance.ORG_ADMIN

EXPIRED = b"expired".ljust(32, b"\x00")

RECORD = Layout(
    ("commitment", "bytes32"), ("patient", "bytes32"), ("prescriber", "address"),
    ("hospital", "bytes32"), ("schedule", "uint8"), ("fillsAllowed", "uint16"),
    ("fillsUsed", "uint16"), ("quantityPerFill", "uint32"), ("quantityDispensed", "uint64"),
    ("validFrom", "uint64"), ("validUntil", "uint64"), ("status", "uint8"), ("issuedAt", "uint64"),
)
(COMMITMENT, PATIENT, PRESCRIBER_ADDRESS, HOSPITAL, SCHEDULE, FILLS_ALLOWED, FILLS_USED,
 QUANTITY_PER_FILL, QUANTITY_DISPENSED, VALID_FROM, VALID_UNTIL, STATUS, ISSUED_AT) = range(13)

_NOT_ACTIVE = {
    DRAFT: "Rx: not reviewed yet",
    ON_HOLD: "Rx: on hold",
    CANCELLED: "Rx: cancelled",
    STOPPED: "Rx: stopped",
    ENTERED_IN_ERROR: "Rx: entered in error",
}


def _key(rx_id: bytes) -> bytes:
    return b"p" + rx_id


def _is_open(status: int) -> bool:
    return status in (DRAFT, ACTIVE, ON_HOLD)


class PrescriptionRegistry(Chaincode):
    artifact = "PrescriptionRegistry"
    address = PRESCRIPTION_REGISTRY

    # -- internal ------------------------------------------------------------------------
    @staticmethod
    def _caller(ctx: Context, roles: int, not_role: str) -> bytes:
        """Caller checks in order (role, account, organisation); returns the caller's org."""
        org, _kind, role, account_suspended, org_suspended = governance.member(
            ctx.view_of(GOVERNANCE), ctx.sender)
        ctx.require(role != 0 and (roles >> role) & 1 == 1, not_role)
        ctx.require(not account_suspended, "Rx: account suspended")
        ctx.require(not org_suspended, "Rx: organisation suspended")
        return org

    @staticmethod
    def _existing(ctx: Context, rx_id: bytes) -> list[Any]:
        record = list(ctx.get_record(_key(rx_id), RECORD))
        ctx.require(record[STATUS] != NONE, "Rx: unknown prescription")
        return record

    def _set_status(self, ctx: Context, rx_id: bytes, record: list[Any], to: int, reason: bytes) -> None:
        ctx.emit(self.events["StatusChanged"], rx_id, record[STATUS], to, ctx.sender, reason)
        record[STATUS] = to
        ctx.put_record(_key(rx_id), RECORD, record)

    # -- transactions --------------------------------------------------------------------
    @abi("issue")
    def issue(self, ctx: Context, rx_id: bytes, commitment: bytes, patient: bytes, schedule: int,
              fills_allowed: int, quantity_per_fill: int, valid_from: int, valid_until: int) -> None:
        hospital = self._caller(ctx, PRESCRIBER, "Rx: not a prescriber")
        ctx.require(rx_id != ZERO32, "Rx: zero id")
        ctx.require(ctx.get_record(_key(rx_id), RECORD)[STATUS] == NONE, "Rx: id already used")
        ctx.require(commitment != ZERO32, "Rx: zero commitment")
        ctx.require(patient != ZERO32, "Rx: zero patient")
        ctx.require(fills_allowed != 0, "Rx: fillsAllowed is 0")
        ctx.require(quantity_per_fill != 0, "Rx: quantityPerFill is 0")
        ctx.require(valid_until > valid_from, "Rx: validUntil not after validFrom")
        ctx.require(valid_until > ctx.timestamp, "Rx: validUntil not in the future")
        ctx.put_record(_key(rx_id), RECORD, (
            commitment, patient, ctx.sender, hospital, schedule, fills_allowed, 0,
            quantity_per_fill, 0, valid_from, valid_until, DRAFT, ctx.timestamp % (1 << 64),
        ))
        ctx.emit(self.events["Issued"], rx_id, hospital, ctx.sender, patient, schedule, commitment)
        ctx.emit(self.events["StatusChanged"], rx_id, NONE, DRAFT, ctx.sender, ZERO32)

    @abi("review")
    def review(self, ctx: Context, rx_id: bytes, approve: bool, reason: bytes) -> None:
        org = self._caller(ctx, HOSPITAL_PHARMACIST, "Rx: not a hospital pharmacist")
        record = self._existing(ctx, rx_id)
        ctx.require(org == record[HOSPITAL], "Rx: not of the issuing hospital")
        ctx.require(ctx.sender != record[PRESCRIBER_ADDRESS], "Rx: cannot review own prescription")
        ctx.require(record[STATUS] == DRAFT, "Rx: not a draft")
        self._set_status(ctx, rx_id, record, ACTIVE if approve else CANCELLED, reason)

    @abi("hold")
    def hold(self, ctx: Context, rx_id: bytes, reason: bytes) -> None:
        org = self._caller(ctx, PRESCRIBER | HOSPITAL_PHARMACIST,
                           "Rx: not a prescriber or hospital pharmacist")
        record = self._existing(ctx, rx_id)
        ctx.require(org == record[HOSPITAL], "Rx: not of the issuing hospital")
        ctx.require(record[STATUS] == ACTIVE, "Rx: not active")
        self._set_status(ctx, rx_id, record, ON_HOLD, reason)

    @abi("resume")
    def resume(self, ctx: Context, rx_id: bytes) -> None:
        org = self._caller(ctx, PRESCRIBER | HOSPITAL_PHARMACIST,
                           "Rx: not a prescriber or hospital pharmacist")
        record = self._existing(ctx, rx_id)
        ctx.require(org == record[HOSPITAL], "Rx: not of the issuing hospital")
        ctx.require(record[STATUS] == ON_HOLD, "Rx: not on hold")
        self._set_status(ctx, rx_id, record, ACTIVE, ZERO32)

    @abi("cancel")
    def cancel(self, ctx: Context, rx_id: bytes, reason: bytes) -> None:
        org = self._caller(ctx, PRESCRIBER | HOSPITAL_PHARMACIST | ORG_ADMIN, "Rx: not hospital staff")
        record = self._existing(ctx, rx_id)
        ctx.require(org == record[HOSPITAL], "Rx: not of the issuing hospital")
        ctx.require(_is_open(record[STATUS]), "Rx: prescription closed")
        ctx.require(record[FILLS_USED] == 0, "Rx: already dispensed")
        self._set_status(ctx, rx_id, record, CANCELLED, reason)

    @abi("stop")
    def stop(self, ctx: Context, rx_id: bytes, reason: bytes) -> None:
        org = self._caller(ctx, PRESCRIBER | HOSPITAL_PHARMACIST | ORG_ADMIN, "Rx: not hospital staff")
        record = self._existing(ctx, rx_id)
        ctx.require(org == record[HOSPITAL], "Rx: not of the issuing hospital")
        ctx.require(_is_open(record[STATUS]), "Rx: prescription closed")
        ctx.require(record[FILLS_USED] != 0, "Rx: nothing dispensed")
        self._set_status(ctx, rx_id, record, STOPPED, reason)

    @abi("markEnteredInError")
    def mark_entered_in_error(self, ctx: Context, rx_id: bytes, reason: bytes) -> None:
        org = self._caller(ctx, ORG_ADMIN, "Rx: not an org admin")
        record = self._existing(ctx, rx_id)
        ctx.require(org == record[HOSPITAL], "Rx: not of the issuing hospital")
        ctx.require(record[STATUS] != ENTERED_IN_ERROR, "Rx: already entered in error")
        self._set_status(ctx, rx_id, record, ENTERED_IN_ERROR, reason)

    @abi("dispense")
    def dispense(self, ctx: Context, rx_id: bytes, quantity: int, dispense_commitment: bytes) -> int:
        pharmacy = self._caller(ctx, PHARMACIST, "Rx: not a pharmacist")
        record = self._existing(ctx, rx_id)
        # Fills left first: a second attempt on the last fill (completed) says so.
        ctx.require(record[FILLS_USED] < record[FILLS_ALLOWED], "Rx: no fills left")
        status = record[STATUS]
        if status != ACTIVE:
            ctx.revert(_NOT_ACTIVE.get(status, "Rx: not active"))
        ctx.require(ctx.timestamp >= record[VALID_FROM], "Rx: not valid yet")
        ctx.require(ctx.timestamp <= record[VALID_UNTIL], "Rx: expired")
        ctx.require(quantity != 0, "Rx: quantity is 0")
        ctx.require(quantity <= record[QUANTITY_PER_FILL], "Rx: quantity above the per-fill limit")
        fill_number: int = record[FILLS_USED] + 1
        record[FILLS_USED] = fill_number
        record[QUANTITY_DISPENSED] += quantity
        ctx.emit(self.events["Dispensed"], rx_id, pharmacy, ctx.sender, fill_number, quantity,
                 dispense_commitment)
        if fill_number == record[FILLS_ALLOWED]:
            self._set_status(ctx, rx_id, record, COMPLETED, ZERO32)  # writes the record
        else:
            ctx.put_record(_key(rx_id), RECORD, record)
        return fill_number

    @abi("expire")
    def expire(self, ctx: Context, rx_id: bytes) -> None:
        record = self._existing(ctx, rx_id)
        ctx.require(_is_open(record[STATUS]), "Rx: prescription closed")
        ctx.require(ctx.timestamp > record[VALID_UNTIL], "Rx: not expired yet")
        self._set_status(ctx, rx_id, record, STOPPED, EXPIRED)

    # -- views ---------------------------------------------------------------------------
    @abi("getPrescription")
    def get_prescription(self, ctx: Context, rx_id: bytes) -> tuple[Any, ...]:
        return ctx.get_record(_key(rx_id), RECORD)

    @abi("governance")
    def governance(self, ctx: Context) -> bytes:
        return GOVERNANCE
