"""The Solidity reference contracts (PrescriptionRegistry, Governance, AnchorRegistry) on the
node's own execution engine, with no node process: every function allowed and refused,
with the exact revert reasons, events and views of docs/CONTRACTS.md; and
contracts/deploy.py against an in-process dev node.

Development accounts (INTERFACES.md): 0 hospital-a admin, 1 hospital-a prescriber,
2 hospital-a hospital pharmacist, 3 pharmacy-a pharmacist, 4 regulator auditor,
5 hospital-b prescriber, 6 hospital-b hospital pharmacist, 7 pharmacy-a admin,
8 regulator admin, 9 deployer without a role.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chaincode_py import NativeChaincodeHost
from node.genesis import derive_dev_key, dev_validator_key
from rxledger.core.crypto import private_key_to_address
from rxledger.core.errors import Reverted

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent / "contracts"))
from solidity_harness import Contract, EvmHarness, TxResult  # noqa: E402


def _load_deploy_module() -> Any:
    spec = importlib.util.spec_from_file_location("rxledger_contracts_deploy", REPO_ROOT / "contracts" / "deploy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


deploy = _load_deploy_module()

# Status codes
NONE, DRAFT, ACTIVE, ON_HOLD, COMPLETED, CANCELLED, STOPPED, ENTERED_IN_ERROR = range(8)
# Org kinds and roles
HOSPITAL, PHARMACY, REGULATOR = 1, 2, 3
PRESCRIBER, HOSPITAL_PHARMACIST, PHARMACIST, AUDITOR, ORG_ADMIN = 1, 2, 3, 4, 5

HOSPITAL_A = keccak(text="hospital-a")
HOSPITAL_B = keccak(text="hospital-b")
PHARMACY_A = keccak(text="pharmacy-a")
REGULATOR_ORG = keccak(text="regulator")
VALIDATOR = to_checksum_address(private_key_to_address(dev_validator_key()))
ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20
DAY = 86_400


def b32(text: str) -> bytes:
    """bytes32 of a short string, right-padded with zeros (Solidity's bytes32("...") )."""
    return text.encode().ljust(32, b"\x00")


def rx_id(n: int | str) -> bytes:
    return keccak(text=f"rx-{n}")


COMMITMENT = keccak(text="salt|MedicationRequest")
PATIENT = keccak(text="patient pseudonym")


class Env:
    """A chain with the three contracts deployed with the development setup."""

    def __init__(self) -> None:
        self.h = EvmHarness()
        setup = deploy.dev_setup([VALIDATOR])
        self.gov = self.h.deploy("Governance", *setup.constructor_args())
        self.genesis_events = self.h.last_deploy_events
        self.rx = self.h.deploy("PrescriptionRegistry", self.gov.address)
        self.anchors = self.h.deploy("AnchorRegistry", self.gov.address)

    # -- shorthands ------------------------------------------------------------------------
    def tx(self, contract: Contract, fn: str, *args: Any, sender: int, at: int | None = None) -> TxResult:
        return self.h.transact(contract, fn, *args, sender=sender, timestamp=at)

    def rxtx(self, fn: str, *args: Any, sender: int, at: int | None = None) -> TxResult:
        return self.tx(self.rx, fn, *args, sender=sender, at=at)

    def govtx(self, fn: str, *args: Any, sender: int) -> TxResult:
        return self.tx(self.gov, fn, *args, sender=sender)

    def gov_view(self, fn: str, *args: Any) -> Any:
        return self.h.call(self.gov, fn, *args)

    def get(self, rid: bytes) -> tuple[Any, ...]:
        return tuple(self.h.call(self.rx, "getPrescription", rid))

    def status(self, rid: bytes) -> int:
        return int(self.get(rid)[11])

    def issue(self, rid: bytes, *, sender: int = 1, fills: int = 2, qty: int = 30, schedule: int = 0,
              valid_from: int | None = None, valid_until: int | None = None,
              commitment: bytes = COMMITMENT, patient: bytes = PATIENT) -> TxResult:
        now = self.h.now + 1
        vf = now - 60 if valid_from is None else valid_from
        vu = now + 30 * DAY if valid_until is None else valid_until
        return self.rxtx("issue", rid, commitment, patient, schedule, fills, qty, vf, vu, sender=sender)

    def active(self, rid: bytes, **kw: Any) -> None:
        """Issue (by 1) and approve (by 2)."""
        ok(self.issue(rid, **kw))
        ok(self.rxtx("review", rid, True, ZERO32, sender=2))

    def dispense(self, rid: bytes, qty: int = 30, *, sender: int = 3, at: int | None = None) -> TxResult:
        return self.rxtx("dispense", rid, qty, keccak(text=f"dispense {rid.hex()} {self.h.now}"),
                         sender=sender, at=at)


def ok(res: TxResult) -> TxResult:
    assert res.status == 1, f"reverted: {res.reason}"
    return res


def refused(res: TxResult, reason: str) -> None:
    assert res.status == 0, f"expected a revert with {reason!r}, the transaction succeeded"
    assert res.reason == reason
    assert res.logs == ()


def status_changed(env: Env, rid: bytes, frm: int, to: int, by: int, reason: bytes = ZERO32) -> dict[str, Any]:
    return {"rxId": rid, "from": frm, "to": to, "by": env.h.address(by), "reason": reason}


@pytest.fixture(scope="module")
def base_env() -> Env:
    return Env()


@pytest.fixture
def env() -> Env:
    # Each test gets a fresh chain: deployment is cheap enough (three blocks).
    return Env()


# ===================================================================== PrescriptionRegistry


def test_unknown_prescription_reads_as_zeros(env: Env) -> None:
    assert env.get(rx_id("nope")) == (ZERO32, ZERO32, ZERO_ADDRESS, ZERO32, 0, 0, 0, 0, 0, 0, 0, NONE, 0)
    assert env.h.call(env.rx, "governance") == env.gov.checksum
    assert env.h.call(env.anchors, "governance") == env.gov.checksum


def test_issue_records_a_draft_with_issued_and_status_changed(env: Env) -> None:
    rid = rx_id(1)
    issued_at = env.h.now + 1
    res = ok(env.issue(rid, fills=3, qty=28, schedule=2, valid_from=issued_at - 5,
                       valid_until=issued_at + 10 * DAY))
    assert res.output is None
    assert res.event_names() == ["Issued", "StatusChanged"]
    assert res.events[0].args == {
        "rxId": rid, "hospital": HOSPITAL_A, "prescriber": env.h.address(1),
        "patient": PATIENT, "schedule": 2, "commitment": COMMITMENT,
    }
    assert res.events[1].args == status_changed(env, rid, NONE, DRAFT, 1)
    assert all(e.address == env.rx.address for e in res.events)
    assert env.get(rid) == (COMMITMENT, PATIENT, env.h.address(1), HOSPITAL_A, 2, 3, 0, 28, 0,
                            issued_at - 5, issued_at + 10 * DAY, DRAFT, issued_at)
    # The indexed topics are what clients filter on.
    issued = res.logs[0]
    assert issued.topics[1] == rid and issued.topics[2] == HOSPITAL_A
    assert issued.topics[3] == b"\x00" * 12 + bytes.fromhex(env.h.address(1)[2:])
    # hospital-b's prescriber issues for hospital-b
    res = ok(env.issue(rx_id(2), sender=5))
    assert res.events[0].args["hospital"] == HOSPITAL_B


@pytest.mark.parametrize("sender", [0, 2, 3, 4, 6, 7, 8, 9])
def test_issue_by_anyone_but_a_prescriber_is_refused(env: Env, sender: int) -> None:
    # Even with bad arguments the caller check comes first.
    refused(env.issue(ZERO32, sender=sender, fills=0), "Rx: not a prescriber")


def test_issue_argument_refusals_in_order(env: Env) -> None:
    now = env.h.now + 1
    ok(env.issue(rx_id("used")))
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(rid=ZERO32, fills=0), "Rx: zero id"),
        (dict(rid=rx_id("used"), commitment=ZERO32), "Rx: id already used"),
        (dict(commitment=ZERO32, patient=ZERO32), "Rx: zero commitment"),
        (dict(patient=ZERO32, fills=0), "Rx: zero patient"),
        (dict(fills=0, qty=0), "Rx: fillsAllowed is 0"),
        (dict(qty=0, valid_from=10, valid_until=5), "Rx: quantityPerFill is 0"),
        (dict(valid_from=now + 100, valid_until=now + 100), "Rx: validUntil not after validFrom"),
        (dict(valid_from=now + 100, valid_until=now + 50), "Rx: validUntil not after validFrom"),
        (dict(valid_from=0, valid_until=100), "Rx: validUntil not in the future"),
    ]
    for kwargs, reason in cases:
        rid = kwargs.pop("rid", rx_id(reason))
        refused(env.issue(rid, **kwargs), reason)
    # validUntil equal to the block's time is not in the future either
    at = env.h.now + 1
    refused(env.rxtx("issue", rx_id("eq"), COMMITMENT, PATIENT, 0, 1, 1, at - 10, at, sender=1, at=at),
            "Rx: validUntil not in the future")
    ok(env.rxtx("issue", rx_id("eq"), COMMITMENT, PATIENT, 0, 1, 1, at - 10, at + 2, sender=1, at=at + 1))


def test_issue_by_a_suspended_prescriber_or_hospital_is_refused(env: Env) -> None:
    ok(env.govtx("suspend", env.h.address(1), b32("licence"), sender=4))
    refused(env.issue(rx_id(1)), "Rx: account suspended")
    ok(env.govtx("reinstate", env.h.address(1), sender=4))
    ok(env.govtx("suspendOrg", HOSPITAL_A, b32("audit"), sender=8))
    refused(env.issue(rx_id(1)), "Rx: organisation suspended")
    ok(env.issue(rx_id(2), sender=5))  # hospital-b is not suspended
    ok(env.govtx("reinstateOrg", HOSPITAL_A, sender=4))
    ok(env.issue(rx_id(1)))


def test_issue_review_dispense_partial_and_refills_to_completed(env: Env) -> None:
    rid = rx_id("life")
    ok(env.issue(rid, fills=3, qty=30))
    res = ok(env.rxtx("review", rid, True, b32("ok"), sender=2))
    assert res.event_names() == ["StatusChanged"]
    assert res.events[0].args == status_changed(env, rid, DRAFT, ACTIVE, 2, b32("ok"))

    # a partial first fill: a fill is used whatever the quantity
    d1 = keccak(text="MedicationDispense 1")
    res = ok(env.rxtx("dispense", rid, 10, d1, sender=3))
    assert res.output == 1
    assert res.event_names() == ["Dispensed"]
    assert res.events[0].args == {
        "rxId": rid, "pharmacy": PHARMACY_A, "pharmacist": env.h.address(3),
        "fillNumber": 1, "quantity": 10, "dispenseCommitment": d1,
    }
    assert env.get(rid)[6:9] == (1, 30, 10)
    assert env.status(rid) == ACTIVE

    # a refill: another pharmacist of the pharmacy, enrolled by its admin
    other = env.h.add_signer(derive_dev_key(20))
    ok(env.govtx("enroll", env.h.address(other), PHARMACIST, sender=7))
    res = ok(env.rxtx("dispense", rid, 30, ZERO32, sender=other))
    assert res.output == 2
    assert res.events[0].args["pharmacist"] == env.h.address(other)
    assert res.events[0].args["dispenseCommitment"] == ZERO32

    # the last fill completes it: Dispensed then StatusChanged(active -> completed)
    res = ok(env.dispense(rid, 30))
    assert res.output == 3
    assert res.event_names() == ["Dispensed", "StatusChanged"]
    assert res.events[0].args["fillNumber"] == 3
    assert res.events[1].args == status_changed(env, rid, ACTIVE, COMPLETED, 3)
    record = env.get(rid)
    assert record[5:9] == (3, 3, 30, 70)
    assert record[11] == COMPLETED

    # and a fourth attempt says there are no fills left
    refused(env.dispense(rid, 1), "Rx: no fills left")
    refused(env.dispense(rid, 1, sender=other), "Rx: no fills left")


def test_double_dispense_of_the_last_fill_in_one_block(env: Env) -> None:
    """Two pharmacies present the same one-fill prescription at once: one gets it, the
    other a revert saying the prescription has no fills left."""
    rid = rx_id("double")
    env.active(rid, fills=1)
    # a second pharmacy with its own pharmacist, added by vote (3 of 4 organisations)
    pharmacy_b = keccak(text="pharmacy-b")
    admin_b = env.h.add_signer(derive_dev_key(21))
    for voter in (0, 7, 8):
        ok(env.govtx("voteAddOrg", pharmacy_b, PHARMACY, env.h.address(admin_b), sender=voter))
    pharmacist_b = env.h.add_signer(derive_dev_key(22))
    ok(env.govtx("enroll", env.h.address(pharmacist_b), PHARMACIST, sender=admin_b))

    first, second = env.h.block([
        (env.rx, "dispense", (rid, 30, keccak(text="a")), 3),
        (env.rx, "dispense", (rid, 30, keccak(text="b")), pharmacist_b),
    ])
    assert first.status == 1 and first.event_names() == ["Dispensed", "StatusChanged"]
    assert second.status == 0 and second.logs == ()
    with pytest.raises(Reverted) as exc:
        env.h.call(env.rx, "dispense", rid, 30, keccak(text="b"), sender=pharmacist_b)
    assert exc.value.reason == "Rx: no fills left"
    assert env.get(rid)[6] == 1 and env.status(rid) == COMPLETED


def test_review_reject_cancels(env: Env) -> None:
    rid = rx_id("reject")
    ok(env.issue(rid))
    res = ok(env.rxtx("review", rid, False, b32("interaction"), sender=2))
    assert res.events[0].args == status_changed(env, rid, DRAFT, CANCELLED, 2, b32("interaction"))
    assert env.status(rid) == CANCELLED
    refused(env.dispense(rid), "Rx: cancelled")
    refused(env.rxtx("review", rid, True, ZERO32, sender=2), "Rx: not a draft")


def test_review_refusals(env: Env) -> None:
    rid = rx_id("review")
    ok(env.issue(rid))
    for sender in (0, 1, 3, 4, 5, 7, 8, 9):
        refused(env.rxtx("review", rid, True, ZERO32, sender=sender), "Rx: not a hospital pharmacist")
    refused(env.rxtx("review", rx_id("unknown"), True, ZERO32, sender=2), "Rx: unknown prescription")
    # a hospital pharmacist of another hospital
    refused(env.rxtx("review", rid, True, ZERO32, sender=6), "Rx: not of the issuing hospital")
    # suspended reviewer, then suspended hospital
    ok(env.govtx("suspend", env.h.address(2), b32("x"), sender=4))
    refused(env.rxtx("review", rid, True, ZERO32, sender=2), "Rx: account suspended")
    ok(env.govtx("reinstate", env.h.address(2), sender=4))
    ok(env.govtx("suspendOrg", HOSPITAL_A, b32("x"), sender=4))
    refused(env.rxtx("review", rid, True, ZERO32, sender=2), "Rx: organisation suspended")
    ok(env.govtx("reinstateOrg", HOSPITAL_A, sender=4))
    ok(env.rxtx("review", rid, True, ZERO32, sender=2))
    refused(env.rxtx("review", rid, True, ZERO32, sender=2), "Rx: not a draft")


def test_a_reviewer_who_is_the_prescriber_is_refused(env: Env) -> None:
    """Possible when the prescriber's account later becomes a hospital pharmacist."""
    rid = rx_id("own")
    ok(env.issue(rid, sender=1))
    ok(env.govtx("revoke", env.h.address(1), sender=0))
    ok(env.govtx("enroll", env.h.address(1), HOSPITAL_PHARMACIST, sender=0))
    refused(env.rxtx("review", rid, True, ZERO32, sender=1), "Rx: cannot review own prescription")
    ok(env.rxtx("review", rid, True, ZERO32, sender=2))


def test_hold_and_resume(env: Env) -> None:
    rid = rx_id("hold")
    env.active(rid, fills=2)
    res = ok(env.rxtx("hold", rid, b32("lab results"), sender=1))
    assert res.events[0].args == status_changed(env, rid, ACTIVE, ON_HOLD, 1, b32("lab results"))
    refused(env.dispense(rid), "Rx: on hold")
    refused(env.rxtx("hold", rid, ZERO32, sender=2), "Rx: not active")
    res = ok(env.rxtx("resume", rid, sender=2))  # the reviewer may resume what the prescriber held
    assert res.events[0].args == status_changed(env, rid, ON_HOLD, ACTIVE, 2)
    refused(env.rxtx("resume", rid, sender=1), "Rx: not on hold")
    ok(env.dispense(rid))
    ok(env.rxtx("hold", rid, ZERO32, sender=2))
    ok(env.rxtx("resume", rid, sender=1))
    # refusals
    for sender in (0, 3, 4, 7, 8, 9):
        refused(env.rxtx("hold", rid, ZERO32, sender=sender), "Rx: not a prescriber or hospital pharmacist")
        refused(env.rxtx("resume", rid, sender=sender), "Rx: not a prescriber or hospital pharmacist")
    for sender in (5, 6):
        refused(env.rxtx("hold", rid, ZERO32, sender=sender), "Rx: not of the issuing hospital")
    refused(env.rxtx("hold", rx_id("unknown"), ZERO32, sender=1), "Rx: unknown prescription")
    draft = rx_id("hold-draft")
    ok(env.issue(draft))
    refused(env.rxtx("hold", draft, ZERO32, sender=1), "Rx: not active")
    refused(env.rxtx("resume", draft, sender=1), "Rx: not on hold")


def test_cancel_before_any_fill(env: Env) -> None:
    # draft, by the prescriber
    a = rx_id("cancel-draft")
    ok(env.issue(a))
    res = ok(env.rxtx("cancel", a, b32("wrong drug"), sender=1))
    assert res.events[0].args == status_changed(env, a, DRAFT, CANCELLED, 1, b32("wrong drug"))
    # active, by the org admin
    b = rx_id("cancel-active")
    env.active(b)
    res = ok(env.rxtx("cancel", b, ZERO32, sender=0))
    assert res.events[0].args == status_changed(env, b, ACTIVE, CANCELLED, 0)
    # on-hold, by the reviewer
    c = rx_id("cancel-hold")
    env.active(c)
    ok(env.rxtx("hold", c, ZERO32, sender=1))
    res = ok(env.rxtx("cancel", c, ZERO32, sender=2))
    assert res.events[0].args == status_changed(env, c, ON_HOLD, CANCELLED, 2)
    refused(env.dispense(c), "Rx: cancelled")
    # refusals
    refused(env.rxtx("cancel", a, ZERO32, sender=1), "Rx: prescription closed")
    d = rx_id("cancel-filled")
    env.active(d)
    ok(env.dispense(d))
    refused(env.rxtx("cancel", d, ZERO32, sender=1), "Rx: already dispensed")
    for sender in (3, 4, 9):
        refused(env.rxtx("cancel", d, ZERO32, sender=sender), "Rx: not hospital staff")
    for sender in (5, 6, 7, 8):  # hospital-b staff; admins of the pharmacy and the regulator
        refused(env.rxtx("cancel", d, ZERO32, sender=sender), "Rx: not of the issuing hospital")
    refused(env.rxtx("cancel", rx_id("unknown"), ZERO32, sender=0), "Rx: unknown prescription")


def test_stop_after_a_fill(env: Env) -> None:
    a = rx_id("stop")
    env.active(a, fills=3)
    refused(env.rxtx("stop", a, ZERO32, sender=1), "Rx: nothing dispensed")
    ok(env.dispense(a))
    res = ok(env.rxtx("stop", a, b32("adverse reaction"), sender=1))
    assert res.events[0].args == status_changed(env, a, ACTIVE, STOPPED, 1, b32("adverse reaction"))
    refused(env.dispense(a), "Rx: stopped")
    refused(env.rxtx("stop", a, ZERO32, sender=1), "Rx: prescription closed")
    # on-hold with a fill, by the admin
    b = rx_id("stop-hold")
    env.active(b, fills=3)
    ok(env.dispense(b))
    ok(env.rxtx("hold", b, ZERO32, sender=2))
    res = ok(env.rxtx("stop", b, ZERO32, sender=0))
    assert res.events[0].args == status_changed(env, b, ON_HOLD, STOPPED, 0)
    # a draft has no fill; a completed one is closed
    c = rx_id("stop-draft")
    ok(env.issue(c))
    refused(env.rxtx("stop", c, ZERO32, sender=2), "Rx: nothing dispensed")
    d = rx_id("stop-done")
    env.active(d, fills=1)
    ok(env.dispense(d))
    refused(env.rxtx("stop", d, ZERO32, sender=2), "Rx: prescription closed")
    refused(env.rxtx("stop", d, ZERO32, sender=3), "Rx: not hospital staff")
    refused(env.rxtx("stop", d, ZERO32, sender=5), "Rx: not of the issuing hospital")


def test_entered_in_error_from_any_status(env: Env) -> None:
    done = rx_id("eie-done")
    env.active(done, fills=1)
    ok(env.dispense(done))
    res = ok(env.rxtx("markEnteredInError", done, b32("wrong patient"), sender=0))
    assert res.events[0].args == status_changed(env, done, COMPLETED, ENTERED_IN_ERROR, 0, b32("wrong patient"))
    refused(env.rxtx("markEnteredInError", done, ZERO32, sender=0), "Rx: already entered in error")
    # with fills left, dispensing names the status
    part = rx_id("eie-part")
    env.active(part, fills=2)
    ok(env.dispense(part))
    ok(env.rxtx("markEnteredInError", part, ZERO32, sender=0))
    refused(env.dispense(part), "Rx: entered in error")
    # a completed-then-entered-in-error one has no fills left (fills are checked first)
    refused(env.dispense(done), "Rx: no fills left")
    draft = rx_id("eie-draft")
    ok(env.issue(draft))
    for sender in (1, 2, 3, 4):
        refused(env.rxtx("markEnteredInError", draft, ZERO32, sender=sender), "Rx: not an org admin")
    for sender in (7, 8):
        refused(env.rxtx("markEnteredInError", draft, ZERO32, sender=sender), "Rx: not of the issuing hospital")
    refused(env.rxtx("markEnteredInError", rx_id("unknown"), ZERO32, sender=0), "Rx: unknown prescription")
    res = ok(env.rxtx("markEnteredInError", draft, ZERO32, sender=0))
    assert res.events[0].args == status_changed(env, draft, DRAFT, ENTERED_IN_ERROR, 0)
    cancelled = rx_id("eie-cancelled")
    ok(env.issue(cancelled))
    ok(env.rxtx("cancel", cancelled, ZERO32, sender=1))
    ok(env.rxtx("markEnteredInError", cancelled, ZERO32, sender=0))
    # the record stays readable and its id used
    assert env.status(cancelled) == ENTERED_IN_ERROR
    refused(env.issue(cancelled), "Rx: id already used")


def test_dispense_refusals(env: Env) -> None:
    rid = rx_id("disp")
    ok(env.issue(rid, fills=2, qty=30))
    for sender in (0, 1, 2, 4, 5, 6, 7, 8, 9):
        refused(env.dispense(rid, sender=sender), "Rx: not a pharmacist")
    refused(env.dispense(rx_id("unknown")), "Rx: unknown prescription")
    refused(env.dispense(rid), "Rx: not reviewed yet")
    ok(env.rxtx("review", rid, True, ZERO32, sender=2))
    refused(env.dispense(rid, 0), "Rx: quantity is 0")
    refused(env.dispense(rid, 31), "Rx: quantity above the per-fill limit")
    ok(env.dispense(rid, 30))
    assert env.get(rid)[6:9] == (1, 30, 30)


def test_a_pharmacist_of_a_suspended_pharmacy_is_refused(env: Env) -> None:
    rid = rx_id("susp")
    env.active(rid, fills=2)
    ok(env.govtx("suspendOrg", PHARMACY_A, b32("inspection"), sender=4))
    refused(env.dispense(rid), "Rx: organisation suspended")
    ok(env.govtx("reinstateOrg", PHARMACY_A, sender=8))
    ok(env.govtx("suspend", env.h.address(3), b32("licence"), sender=8))
    refused(env.dispense(rid), "Rx: account suspended")
    ok(env.govtx("reinstate", env.h.address(3), sender=8))
    assert ok(env.dispense(rid)).output == 1


def test_dispense_uses_the_block_time_for_the_validity_window(env: Env) -> None:
    now = env.h.now
    rid = rx_id("window")
    env.active(rid, fills=3, valid_from=now + 100, valid_until=now + 1000)
    refused(env.dispense(rid, at=now + 99), "Rx: not valid yet")
    ok(env.dispense(rid, at=now + 100))
    ok(env.dispense(rid, at=now + 1000))
    # an eth_call against the head still passes, the transaction in a later block does not
    env.h.call(env.rx, "dispense", rid, 1, ZERO32, sender=3, timestamp=now + 1000)
    refused(env.dispense(rid, at=now + 1001), "Rx: expired")


def test_expire_after_valid_until(env: Env) -> None:
    now = env.h.now
    until = now + 50
    draft, active, held, done = (rx_id(f"exp-{n}") for n in ("draft", "active", "held", "done"))
    ok(env.issue(draft, valid_until=until))
    env.active(active, valid_until=until)
    env.active(held, valid_until=until)
    ok(env.rxtx("hold", held, ZERO32, sender=1))
    env.active(done, fills=1, valid_until=until)
    ok(env.dispense(done))
    refused(env.rxtx("expire", active, sender=9, at=until), "Rx: not expired yet")
    refused(env.rxtx("expire", rx_id("unknown"), sender=9), "Rx: unknown prescription")
    for rid, frm in ((draft, DRAFT), (active, ACTIVE), (held, ON_HOLD)):
        res = ok(env.rxtx("expire", rid, sender=9))  # anyone, enrolled or not
        assert res.events[0].args == status_changed(env, rid, frm, STOPPED, 9, b32("expired"))
        assert env.status(rid) == STOPPED
    refused(env.rxtx("expire", active, sender=9), "Rx: prescription closed")
    refused(env.rxtx("expire", done, sender=9), "Rx: prescription closed")
    refused(env.dispense(active), "Rx: stopped")


def test_refusals_are_error_strings_and_malformed_calls_revert_without_data(env: Env) -> None:
    """What the native chaincode must reproduce byte for byte."""
    from eth_abi.abi import encode as abi_encode

    with pytest.raises(Reverted) as exc:
        env.h.call(env.rx, "dispense", rx_id("x"), 1, ZERO32, sender=1)
    assert exc.value.data == bytes.fromhex("08c379a0") + abi_encode(["string"], ["Rx: not a pharmacist"])

    def raw_call(contract: Contract, data: bytes) -> bytes:
        with pytest.raises(Reverted) as exc:
            env.h.chain.executor.call(env.h.chain.head.state_root,
                                      env.h.chain.env_for(env.h.chain.head, env.h.now, b"\x01" * 20),
                                      sender=env.h.addresses[0], to=contract.address, data=data)
        return exc.value.data

    enroll = env.gov.abi.encode_call("enroll", (env.h.address(9), 1))
    review = env.rx.abi.encode_call("review", (rx_id("x"), True, ZERO32))
    assert raw_call(env.gov, b"\xde\xad\xbe\xef") == b""  # unknown selector
    assert raw_call(env.gov, b"") == b""  # no selector at all
    assert raw_call(env.gov, enroll[:-1]) == b""  # calldata too short
    assert raw_call(env.gov, enroll[:-32] + (300).to_bytes(32, "big")) == b""  # uint8 out of range
    assert raw_call(env.rx, review[:-64] + (2).to_bytes(32, "big") + ZERO32) == b""  # bool 2
    dirty = enroll[:4] + b"\x01" + enroll[5:]  # address with a non-zero high byte
    assert raw_call(env.gov, dirty) == b""
    # bytes after the arguments are ignored
    assert env.h.chain.executor.call(
        env.h.chain.head.state_root, env.h.chain.env_for(env.h.chain.head, env.h.now, b"\x01" * 20),
        sender=env.h.addresses[0], to=env.gov.address,
        data=env.gov.abi.encode_call("roleOf", (env.h.address(1),)) + b"\x00" * 7).output == (1).to_bytes(32, "big")


# ================================================================================ Governance


def test_governance_genesis_reproduces_the_development_setup(env: Env) -> None:
    expected = {
        0: (HOSPITAL_A, ORG_ADMIN), 1: (HOSPITAL_A, PRESCRIBER), 2: (HOSPITAL_A, HOSPITAL_PHARMACIST),
        3: (PHARMACY_A, PHARMACIST), 4: (REGULATOR_ORG, AUDITOR), 5: (HOSPITAL_B, PRESCRIBER),
        6: (HOSPITAL_B, HOSPITAL_PHARMACIST), 7: (PHARMACY_A, ORG_ADMIN), 8: (REGULATOR_ORG, ORG_ADMIN),
    }
    for i, (org, role) in expected.items():
        address = env.h.address(i)
        assert env.gov_view("roleOf", address) == role
        assert env.gov_view("orgOf", address) == org
        assert env.gov_view("isEnrolled", address) is True
        assert env.gov_view("isSuspended", address) is False
    deployer = env.h.address(9)
    assert env.gov_view("roleOf", deployer) == 0
    assert env.gov_view("orgOf", deployer) == ZERO32
    assert env.gov_view("isEnrolled", deployer) is False
    assert env.gov_view("member", deployer) == (ZERO32, 0, 0, False, False)
    assert env.gov_view("member", env.h.address(3)) == (PHARMACY_A, PHARMACY, PHARMACIST, False, False)
    assert env.gov_view("orgs") == (HOSPITAL_A, HOSPITAL_B, PHARMACY_A, REGULATOR_ORG)
    assert [env.gov_view("orgKind", o) for o in (HOSPITAL_A, HOSPITAL_B, PHARMACY_A, REGULATOR_ORG)] == [
        HOSPITAL, HOSPITAL, PHARMACY, REGULATOR]
    assert env.gov_view("orgKind", keccak(text="nowhere")) == 0
    assert [env.gov_view("adminCount", o) for o in (HOSPITAL_A, HOSPITAL_B, PHARMACY_A, REGULATOR_ORG)] == [
        1, 0, 1, 1]
    assert env.gov_view("validators") == (VALIDATOR,)
    assert env.gov_view("isValidator", VALIDATOR) is True
    assert env.gov_view("isValidator", deployer) is False
    # the genesis is in the event log too
    names = [e.name for e in env.genesis_events]
    assert names == ["OrgAdded"] * 4 + ["AccountEnrolled"] * 9 + ["ValidatorAdded"]
    assert env.genesis_events[0].args == {"org": HOSPITAL_A, "kind": HOSPITAL, "admin": ZERO_ADDRESS}
    assert env.genesis_events[4].args == {"account": env.h.address(0), "org": HOSPITAL_A,
                                          "role": ORG_ADMIN, "by": deployer}
    assert env.genesis_events[13].args == {"validator": VALIDATOR}


def test_enroll(env: Env) -> None:
    new = env.h.add_signer(derive_dev_key(30))
    res = ok(env.govtx("enroll", env.h.address(new), PRESCRIBER, sender=0))
    assert res.event_names() == ["AccountEnrolled"]
    assert res.events[0].args == {"account": env.h.address(new), "org": HOSPITAL_A,
                                  "role": PRESCRIBER, "by": env.h.address(0)}
    assert env.gov_view("roleOf", env.h.address(new)) == PRESCRIBER
    ok(env.issue(rx_id("new"), sender=new))
    # refusals, in order
    other = env.h.address(env.h.add_signer(derive_dev_key(31)))
    for sender in (1, 2, 3, 4, 9):
        refused(env.govtx("enroll", other, PRESCRIBER, sender=sender), "Gov: not an org admin")
    refused(env.govtx("enroll", ZERO_ADDRESS, PRESCRIBER, sender=0), "Gov: zero address")
    refused(env.govtx("enroll", env.h.address(5), 9, sender=0), "Gov: already enrolled")  # enrolled elsewhere
    refused(env.govtx("enroll", env.h.address(new), PRESCRIBER, sender=0), "Gov: already enrolled")
    refused(env.govtx("enroll", other, 0, sender=0), "Gov: bad role")
    refused(env.govtx("enroll", other, 6, sender=0), "Gov: bad role")
    fit = "Gov: role does not fit the organisation"
    for sender, role in ((0, PHARMACIST), (0, AUDITOR), (7, PRESCRIBER), (7, HOSPITAL_PHARMACIST),
                         (7, AUDITOR), (8, PRESCRIBER), (8, PHARMACIST)):
        refused(env.govtx("enroll", other, role, sender=sender), fit)
    for sender, role in ((0, HOSPITAL_PHARMACIST), (7, ORG_ADMIN)):
        ok(env.govtx("enroll", env.h.address(env.h.add_signer(derive_dev_key(40 + role))), role, sender=sender))
    assert env.gov_view("adminCount", PHARMACY_A) == 2
    # a suspended admin, or an admin of a suspended organisation, enrols no one
    ok(env.govtx("suspend", env.h.address(0), b32("x"), sender=4))
    refused(env.govtx("enroll", other, PRESCRIBER, sender=0), "Gov: account suspended")
    ok(env.govtx("reinstate", env.h.address(0), sender=4))
    ok(env.govtx("suspendOrg", HOSPITAL_A, b32("x"), sender=4))
    refused(env.govtx("enroll", other, PRESCRIBER, sender=0), "Gov: organisation suspended")


def test_revoke(env: Env) -> None:
    res = ok(env.govtx("revoke", env.h.address(1), sender=0))
    assert res.events[0].name == "AccountRevoked"
    assert res.events[0].args == {"account": env.h.address(1), "org": HOSPITAL_A, "by": env.h.address(0)}
    assert env.gov_view("roleOf", env.h.address(1)) == 0
    assert env.gov_view("member", env.h.address(1)) == (ZERO32, 0, 0, False, False)
    refused(env.issue(rx_id("revoked")), "Rx: not a prescriber")
    refused(env.govtx("revoke", env.h.address(1), sender=0), "Gov: not enrolled")
    refused(env.govtx("revoke", env.h.address(3), sender=0), "Gov: not of your organisation")
    refused(env.govtx("revoke", env.h.address(2), sender=2), "Gov: not an org admin")
    # the org's last admin cannot revoke itself; with a second admin it can
    refused(env.govtx("revoke", env.h.address(0), sender=0), "Gov: last admin of the organisation")
    second = env.h.add_signer(derive_dev_key(32))
    ok(env.govtx("enroll", env.h.address(second), ORG_ADMIN, sender=0))
    assert env.gov_view("adminCount", HOSPITAL_A) == 2
    ok(env.govtx("revoke", env.h.address(0), sender=0))
    assert env.gov_view("adminCount", HOSPITAL_A) == 1
    refused(env.govtx("revoke", env.h.address(second), sender=second), "Gov: last admin of the organisation")
    # a revoked account may be enrolled again, in any organisation
    ok(env.govtx("enroll", env.h.address(1), PHARMACIST, sender=7))
    assert env.gov_view("orgOf", env.h.address(1)) == PHARMACY_A


def test_suspend_and_reinstate_accounts(env: Env) -> None:
    target = env.h.address(3)
    res = ok(env.govtx("suspend", target, b32("licence revoked"), sender=4))
    assert res.events[0].name == "Suspended"
    assert res.events[0].args == {"account": target, "reason": b32("licence revoked"), "by": env.h.address(4)}
    assert env.gov_view("isSuspended", target) is True
    assert env.gov_view("member", target) == (PHARMACY_A, PHARMACY, PHARMACIST, True, False)
    refused(env.govtx("suspend", target, ZERO32, sender=8), "Gov: already suspended")
    for sender in (0, 1, 3, 7, 9):
        refused(env.govtx("suspend", env.h.address(1), ZERO32, sender=sender), "Gov: not a regulator")
        refused(env.govtx("reinstate", target, sender=sender), "Gov: not a regulator")
    refused(env.govtx("suspend", env.h.address(9), ZERO32, sender=4), "Gov: not enrolled")
    refused(env.govtx("suspend", env.h.address(4), ZERO32, sender=4), "Gov: cannot suspend yourself")
    # a suspension outlives revocation and re-enrolment
    ok(env.govtx("revoke", target, sender=7))
    assert env.gov_view("isSuspended", target) is True
    ok(env.govtx("enroll", target, PHARMACIST, sender=7))
    assert env.gov_view("isSuspended", target) is True
    res = ok(env.govtx("reinstate", target, sender=8))
    assert res.events[0].args == {"account": target, "by": env.h.address(8)}
    assert env.gov_view("isSuspended", target) is False
    refused(env.govtx("reinstate", target, sender=8), "Gov: not suspended")
    # a suspended auditor suspends no one
    ok(env.govtx("suspend", env.h.address(4), ZERO32, sender=8))
    refused(env.govtx("suspend", env.h.address(1), ZERO32, sender=4), "Gov: account suspended")


def test_suspend_and_reinstate_organisations(env: Env) -> None:
    res = ok(env.govtx("suspendOrg", PHARMACY_A, b32("inspection"), sender=4))
    assert res.events[0].name == "OrgSuspended"
    assert res.events[0].args == {"org": PHARMACY_A, "reason": b32("inspection"), "by": env.h.address(4)}
    assert env.gov_view("isOrgSuspended", PHARMACY_A) is True
    for i in (3, 7):
        assert env.gov_view("isSuspended", env.h.address(i)) is True
    assert env.gov_view("member", env.h.address(7)) == (PHARMACY_A, PHARMACY, ORG_ADMIN, False, True)
    assert env.gov_view("isSuspended", env.h.address(1)) is False
    refused(env.govtx("suspendOrg", PHARMACY_A, ZERO32, sender=8), "Gov: organisation already suspended")
    refused(env.govtx("suspendOrg", keccak(text="nowhere"), ZERO32, sender=8), "Gov: unknown organisation")
    refused(env.govtx("suspendOrg", REGULATOR_ORG, ZERO32, sender=8), "Gov: cannot suspend own organisation")
    refused(env.govtx("suspendOrg", HOSPITAL_A, ZERO32, sender=0), "Gov: not a regulator")
    refused(env.govtx("reinstateOrg", PHARMACY_A, sender=7), "Gov: not a regulator")
    refused(env.govtx("reinstateOrg", HOSPITAL_A, sender=4), "Gov: organisation not suspended")
    refused(env.govtx("reinstateOrg", keccak(text="nowhere"), sender=4), "Gov: unknown organisation")
    # the suspended organisation's admin cannot vote or enrol
    refused(env.govtx("voteAddValidator", env.h.address(9), sender=7), "Gov: organisation suspended")
    res = ok(env.govtx("reinstateOrg", PHARMACY_A, sender=8))
    assert res.events[0].args == {"org": PHARMACY_A, "by": env.h.address(8)}
    assert env.gov_view("isSuspended", env.h.address(3)) is False


def test_vote_add_org(env: Env) -> None:
    pharmacy_b = keccak(text="pharmacy-b")
    admin = env.h.add_signer(derive_dev_key(50))
    admin_address = env.h.address(admin)
    proposal = env.gov_view("proposalId", 1, pharmacy_b, PHARMACY, admin_address)
    res = ok(env.govtx("voteAddOrg", pharmacy_b, PHARMACY, admin_address, sender=0))
    assert res.event_names() == ["Voted"]
    assert res.events[0].args == {
        "proposal": proposal, "org": HOSPITAL_A, "voter": env.h.address(0), "action": 1,
        "subjectOrg": pharmacy_b, "kind": PHARMACY, "account": admin_address, "votes": 1, "orgCount": 4,
    }
    assert env.gov_view("votes", proposal) == 1
    assert env.gov_view("hasVoted", proposal, HOSPITAL_A) is True
    assert env.gov_view("hasVoted", proposal, PHARMACY_A) is False
    refused(env.govtx("voteAddOrg", pharmacy_b, PHARMACY, admin_address, sender=0), "Gov: already voted")
    for sender in (1, 3, 4, 5, 9):
        refused(env.govtx("voteAddOrg", pharmacy_b, PHARMACY, admin_address, sender=sender), "Gov: not an org admin")
    res = ok(env.govtx("voteAddOrg", pharmacy_b, PHARMACY, admin_address, sender=7))
    assert res.events[0].args["votes"] == 2 and env.gov_view("orgKind", pharmacy_b) == 0  # 2 of 4 is not more than half
    res = ok(env.govtx("voteAddOrg", pharmacy_b, PHARMACY, admin_address, sender=8))
    assert res.event_names() == ["Voted", "OrgAdded", "AccountEnrolled"]
    assert res.events[0].args["votes"] == 3
    assert res.events[1].args == {"org": pharmacy_b, "kind": PHARMACY, "admin": admin_address}
    assert res.events[2].args == {"account": admin_address, "org": pharmacy_b, "role": ORG_ADMIN,
                                  "by": env.h.address(8)}
    assert env.gov_view("orgKind", pharmacy_b) == PHARMACY
    assert env.gov_view("orgs")[-1] == pharmacy_b
    assert env.gov_view("roleOf", admin_address) == ORG_ADMIN
    assert env.gov_view("adminCount", pharmacy_b) == 1
    assert env.gov_view("votes", proposal) == 0  # the round is over
    assert env.gov_view("hasVoted", proposal, HOSPITAL_A) is False
    # the new organisation's admin enrols and votes
    pharmacist = env.h.add_signer(derive_dev_key(51))
    ok(env.govtx("enroll", env.h.address(pharmacist), PHARMACIST, sender=admin))
    rid = rx_id("pb")
    env.active(rid)
    res = ok(env.dispense(rid, sender=pharmacist))
    assert res.events[0].args["pharmacy"] == pharmacy_b
    # refusals, in order
    other = env.h.address(env.h.add_signer(derive_dev_key(52)))
    refused(env.govtx("voteAddOrg", ZERO32, 9, ZERO_ADDRESS, sender=0), "Gov: zero org id")
    refused(env.govtx("voteAddOrg", pharmacy_b, 9, ZERO_ADDRESS, sender=0), "Gov: organisation exists")
    refused(env.govtx("voteAddOrg", keccak(text="x"), 0, ZERO_ADDRESS, sender=0), "Gov: bad org kind")
    refused(env.govtx("voteAddOrg", keccak(text="x"), 4, other, sender=0), "Gov: bad org kind")
    refused(env.govtx("voteAddOrg", keccak(text="x"), HOSPITAL, ZERO_ADDRESS, sender=0), "Gov: zero address")
    refused(env.govtx("voteAddOrg", keccak(text="x"), HOSPITAL, env.h.address(1), sender=0), "Gov: already enrolled")


def test_vote_remove_org_unenrols_its_accounts(env: Env) -> None:
    rid = rx_id("b")
    ok(env.issue(rid, sender=5))
    proposal = env.gov_view("proposalId", 2, HOSPITAL_B, 0, ZERO_ADDRESS)
    for voter in (0, 7):
        assert ok(env.govtx("voteRemoveOrg", HOSPITAL_B, sender=voter)).event_names() == ["Voted"]
    res = ok(env.govtx("voteRemoveOrg", HOSPITAL_B, sender=8))
    assert res.event_names() == ["Voted", "OrgRemoved"]
    assert res.events[0].args["proposal"] == proposal
    assert res.events[1].args == {"org": HOSPITAL_B}
    # swap-and-pop: the last organisation takes the removed one's place
    assert env.gov_view("orgs") == (HOSPITAL_A, REGULATOR_ORG, PHARMACY_A)
    assert env.gov_view("orgKind", HOSPITAL_B) == 0
    for i in (5, 6):
        assert env.gov_view("roleOf", env.h.address(i)) == 0
        assert env.gov_view("isEnrolled", env.h.address(i)) is False
    refused(env.issue(rx_id("b2"), sender=5), "Rx: not a prescriber")
    assert env.status(rid) == DRAFT  # its prescriptions stay on the ledger
    refused(env.govtx("voteRemoveOrg", HOSPITAL_B, sender=0), "Gov: unknown organisation")
    # re-added under the same name, it starts empty: old accounts stay unenrolled
    admin = env.h.address(env.h.add_signer(derive_dev_key(60)))
    for voter in (0, 7):  # 2 of 3 organisations is a majority now
        ok(env.govtx("voteAddOrg", HOSPITAL_B, HOSPITAL, admin, sender=voter))
    assert env.gov_view("orgKind", HOSPITAL_B) == HOSPITAL
    assert env.gov_view("roleOf", env.h.address(5)) == 0
    assert env.gov_view("adminCount", HOSPITAL_B) == 1


def test_votes_count_current_organisations_only(env: Env) -> None:
    x = env.h.address(env.h.add_signer(derive_dev_key(70)))
    add_x = env.gov_view("proposalId", 3, ZERO32, 0, x)
    ok(env.govtx("voteAddValidator", x, sender=7))  # pharmacy-a votes, then is removed
    assert env.gov_view("votes", add_x) == 1
    for voter in (0, 7, 8):
        ok(env.govtx("voteRemoveOrg", PHARMACY_A, sender=voter))
    assert env.gov_view("votes", add_x) == 0
    assert env.gov_view("hasVoted", add_x, PHARMACY_A) is False
    # re-added, pharmacy-a's old vote does not come back
    admin = env.h.add_signer(derive_dev_key(71))
    for voter in (0, 8):
        ok(env.govtx("voteAddOrg", PHARMACY_A, PHARMACY, env.h.address(admin), sender=voter))
    assert env.gov_view("hasVoted", add_x, PHARMACY_A) is False
    assert env.gov_view("votes", add_x) == 0
    ok(env.govtx("voteAddValidator", x, sender=admin))
    res = ok(env.govtx("voteAddValidator", x, sender=0))
    assert res.events[0].args["votes"] == 2 and res.events[0].args["orgCount"] == 4
    res = ok(env.govtx("voteAddValidator", x, sender=8))
    assert res.event_names() == ["Voted", "ValidatorAdded"]


def test_vote_validators(env: Env) -> None:
    x = env.h.address(env.h.add_signer(derive_dev_key(80)))
    for voter in (0, 7):
        ok(env.govtx("voteAddValidator", x, sender=voter))
    res = ok(env.govtx("voteAddValidator", x, sender=8))
    assert res.event_names() == ["Voted", "ValidatorAdded"]
    assert res.events[0].args["action"] == 3 and res.events[0].args["account"] == x
    assert res.events[1].args == {"validator": x}
    assert env.gov_view("validators") == (VALIDATOR, x)
    assert env.gov_view("isValidator", x) is True
    refused(env.govtx("voteAddValidator", x, sender=0), "Gov: already a validator")
    refused(env.govtx("voteAddValidator", ZERO_ADDRESS, sender=0), "Gov: zero address")
    refused(env.govtx("voteAddValidator", env.h.address(9), sender=1), "Gov: not an org admin")
    # remove the first: the last one moves into its place
    for voter in (8, 0):
        ok(env.govtx("voteRemoveValidator", VALIDATOR, sender=voter))
    res = ok(env.govtx("voteRemoveValidator", VALIDATOR, sender=7))
    assert res.event_names() == ["Voted", "ValidatorRemoved"]
    assert res.events[0].args["action"] == 4
    assert res.events[1].args == {"validator": VALIDATOR}
    assert env.gov_view("validators") == (x,)
    refused(env.govtx("voteRemoveValidator", VALIDATOR, sender=0), "Gov: not a validator")
    refused(env.govtx("voteRemoveValidator", x, sender=0), "Gov: last validator")
    # add the first back and remove x: proposing x again starts a new round with no votes
    for voter in (0, 7, 8):
        ok(env.govtx("voteAddValidator", VALIDATOR, sender=voter))
    for voter in (0, 7, 8):
        ok(env.govtx("voteRemoveValidator", x, sender=voter))
    assert env.gov_view("validators") == (VALIDATOR,)
    res = ok(env.govtx("voteAddValidator", x, sender=0))
    assert res.events[0].args["votes"] == 1 and res.event_names() == ["Voted"]
    refused(env.govtx("voteAddValidator", x, sender=0), "Gov: already voted")


def test_single_organisation_governance(env: Env) -> None:
    h = env.h
    solo = keccak(text="solo")
    gov = h.deploy("Governance", [solo], [HOSPITAL], [h.address(0)], [solo], [ORG_ADMIN], [])
    assert h.call(gov, "validators") == ()
    res = h.transact(gov, "voteRemoveOrg", solo, sender=0)
    refused(res, "Gov: last organisation")
    res = ok(h.transact(gov, "voteAddValidator", h.address(9), sender=0))  # 1 of 1 passes
    assert res.event_names() == ["Voted", "ValidatorAdded"]


@pytest.mark.parametrize("args", [
    ([HOSPITAL_A], [HOSPITAL, HOSPITAL], [], [], [], []),  # length mismatch
    ([HOSPITAL_A], [HOSPITAL], [ZERO_ADDRESS], [], [], []),  # length mismatch
    ([], [], [], [], [], []),  # no organisations
    ([HOSPITAL_A, HOSPITAL_A], [HOSPITAL, HOSPITAL], [], [], [], []),  # duplicate org
    ([ZERO32], [HOSPITAL], [], [], [], []),  # zero id
    ([HOSPITAL_A], [4], [], [], [], []),  # bad kind
    ([HOSPITAL_A], [HOSPITAL], ["0x" + "11" * 20], [PHARMACY_A], [PRESCRIBER], []),  # unknown org
    ([HOSPITAL_A], [HOSPITAL], ["0x" + "11" * 20], [HOSPITAL_A], [PHARMACIST], []),  # role misfit
    ([HOSPITAL_A], [HOSPITAL], ["0x" + "11" * 20] * 2, [HOSPITAL_A] * 2, [PRESCRIBER] * 2, []),  # twice
    ([HOSPITAL_A], [HOSPITAL], [], [], [], ["0x" + "22" * 20] * 2),  # duplicate validator
    ([HOSPITAL_A], [HOSPITAL], [], [], [], [ZERO_ADDRESS]),  # zero validator
])
def test_governance_constructor_refuses_a_bad_genesis(base_env: Env, args: tuple[Any, ...]) -> None:
    assert base_env.h.deploy_status("Governance", *args) == 0


# ============================================================================ AnchorRegistry


def test_anchor(env: Env) -> None:
    root = keccak(text="root 1")
    assert env.h.call(env.anchors, "anchoredAt", root) == 0
    res = ok(env.tx(env.anchors, "anchor", root, 16, b32("batch-1"), sender=6))
    assert res.event_names() == ["Anchored"]
    assert res.events[0].args == {"root": root, "by": env.h.address(6), "size": 16, "meta": b32("batch-1")}
    assert res.logs[0].topics[1] == root
    assert env.h.call(env.anchors, "anchoredAt", root) == res.block_number
    refused(env.tx(env.anchors, "anchor", root, 16, ZERO32, sender=1), "Anchor: root already anchored")
    for sender in range(9):  # every role may anchor
        ok(env.tx(env.anchors, "anchor", keccak(text=f"root by {sender}"), 1, ZERO32, sender=sender))
    refused(env.tx(env.anchors, "anchor", keccak(text="r"), 1, ZERO32, sender=9), "Anchor: not enrolled")
    refused(env.tx(env.anchors, "anchor", ZERO32, 0, ZERO32, sender=1), "Anchor: zero root")
    refused(env.tx(env.anchors, "anchor", keccak(text="r"), 0, ZERO32, sender=1), "Anchor: size is 0")
    ok(env.govtx("suspend", env.h.address(1), ZERO32, sender=4))
    refused(env.tx(env.anchors, "anchor", keccak(text="r"), 1, ZERO32, sender=1), "Anchor: account suspended")
    ok(env.govtx("suspendOrg", HOSPITAL_B, ZERO32, sender=4))
    refused(env.tx(env.anchors, "anchor", keccak(text="r"), 1, ZERO32, sender=5), "Anchor: organisation suspended")


# ================================================================================ deploy.py


INTERFACES_ACCOUNTS = [
    ("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "hospital-a", 5),
    ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "hospital-a", 1),
    ("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "hospital-a", 2),
    ("0x90F79bf6EB2c4f870365E785982E1f101E93b906", "pharmacy-a", 3),
    ("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65", "regulator", 4),
    ("0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc", "hospital-b", 1),
    ("0x976EA74026E726554dB657fA54763abd0C3a0aa9", "hospital-b", 2),
    ("0x14dC79964da2C08b23698B3D3cc7Ca32193d9955", "pharmacy-a", 5),
    ("0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f", "regulator", 5),
]


def test_dev_setup_is_the_interfaces_table() -> None:
    setup = deploy.dev_setup()
    assert setup.orgs == ((HOSPITAL_A, 1), (HOSPITAL_B, 1), (PHARMACY_A, 2), (REGULATOR_ORG, 3))
    assert list(setup.accounts) == [(a, keccak(text=o), r) for a, o, r in INTERFACES_ACCOUNTS]
    assert setup.validators == ()


def test_setup_from_network_json_and_from_explicit_lists() -> None:
    network = {
        "chainId": 2024,
        "nodes": [{"name": n, "org": n, "kind": k, "validator": "0x" + f"{i + 1:02x}" * 20}
                  for i, (n, k) in enumerate(deploy.DEV_ORGS)],
        "accounts": [{"org": o, "role": r, "address": a.lower()} for a, o, r in
                     [(a, o, {1: "prescriber", 2: "hospital pharmacist", 3: "pharmacist", 4: "auditor",
                              5: "org admin"}[r]) for a, o, r in INTERFACES_ACCOUNTS]]
        + [{"org": None, "role": None, "address": "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"}],
    }
    setup = deploy.setup_from_json(network)
    assert setup.orgs == deploy.dev_setup().orgs
    assert setup.accounts == deploy.dev_setup().accounts
    assert setup.validators == tuple(to_checksum_address("0x" + f"{i:02x}" * 20) for i in range(1, 5))
    explicit = deploy.setup_from_json({"orgs": [{"name": "h", "kind": 1}],
                                       "accounts": [{"address": "0x" + "11" * 20, "org": "h", "role": 5}],
                                       "validators": []})
    assert explicit.orgs == ((keccak(text="h"), 1),) and explicit.accounts[0][2] == 5
    with pytest.raises(deploy.DeployError, match="unknown role"):
        deploy.setup_from_json({"orgs": [{"name": "h", "kind": "hospital"}],
                                "accounts": [{"address": "0x" + "11" * 20, "org": "h", "role": "nurse"}]})
    with pytest.raises(deploy.DeployError, match="unknown organisation"):
        deploy.setup_from_json({"orgs": [{"name": "h", "kind": "hospital"}],
                                "accounts": [{"address": "0x" + "11" * 20, "org": "p", "role": 5}]})


def test_deploy_script_argument_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        deploy.main(["--key", "0x1234"])
    assert exc.value.code == 2
    assert "32 bytes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        deploy.main(["--dev-setup", "--setup", "x.json"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        deploy.main(["--no-dev-setup"])
    assert exc.value.code == 2
    assert deploy.main(["--rpc", "http://127.0.0.1:9", "--timeout", "1"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_deploy_all_on_an_in_process_dev_node(tmp_path: Path) -> None:
    from web3 import Web3
    from web3.middleware import ExtraDataToPOAMiddleware
    from web3.providers.base import JSONBaseProvider

    from node.config import NodeConfig
    from node.consensus.qbft import QbftConfig
    from node.genesis import dev_genesis
    from node.rpc.app import handle_payload
    from node.service import NodeService
    from node.storage import MemoryStore

    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(),
                          validator_key=dev_validator_key(), store=MemoryStore(), chaincode=NativeChaincodeHost)

    class InProcess(JSONBaseProvider):
        def make_request(self, method: Any, params: Any) -> Any:
            request = json.loads(self.encode_rpc_request(method, params))
            return self.decode_rpc_response(json.dumps(handle_payload(service, request)).encode())

    service.start_consensus(QbftConfig(block_period=0, empty_block_period=None))
    try:
        w3 = Web3(InProcess())
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        setup = deploy.dev_setup()
        setup = setup.with_validators(deploy.chain_validators(w3) or [])
        assert setup.validators == (VALIDATOR,)
        started = time.monotonic()
        result = deploy.deploy_all(w3, derive_dev_key(9), setup, timeout=30)
        assert time.monotonic() - started < 30
        assert result["chainId"] == 2024
        assert result["deployer"] == "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
        abi = {n: json.loads((REPO_ROOT / "contracts" / "artifacts" / f"{n}.json").read_text())["abi"]
               for n in ("Governance", "PrescriptionRegistry", "AnchorRegistry")}
        gov = w3.eth.contract(address=result["Governance"], abi=abi["Governance"])
        assert gov.functions.roleOf(INTERFACES_ACCOUNTS[3][0]).call() == PHARMACIST
        assert gov.functions.validators().call() == [VALIDATOR]
        registry = w3.eth.contract(address=result["PrescriptionRegistry"], abi=abi["PrescriptionRegistry"])
        assert registry.functions.governance().call() == result["Governance"]
        anchors = w3.eth.contract(address=result["AnchorRegistry"], abi=abi["AnchorRegistry"])
        assert anchors.functions.governance().call() == result["Governance"]
        # web3's ContractLogicError carries the contract's reason
        from web3.exceptions import ContractLogicError
        with pytest.raises(ContractLogicError, match="Rx: not a prescriber"):
            registry.functions.issue(rx_id(1), COMMITMENT, PATIENT, 0, 1, 1, 0, 2**40).call(
                {"from": INTERFACES_ACCOUNTS[3][0]})
    finally:
        service.close()
