"""Governance, natively, at 0x…1002: organisations, accounts with one role each,
suspensions, the validator list, and the votes that change organisations and validators.

The behaviour is docs/CONTRACTS.md's, check for check, in the order it gives, with the
same revert strings, events and views as `contracts/src/Governance.sol`; the differential
tests (`tests/unit/chaincode/`) run the same transactions through both and compare.

State (keys within the chaincode's namespace):

    o ‖ org (32)            org record: kind u8, suspended bool, admins u32, epoch u64
    orgs                    the ordered organisation list (ids concatenated)
    epochs                  the organisation epoch counter
    a ‖ account (20)        account record: org bytes32, epoch u64, role u8
    s ‖ account (20)        account suspended (kept across revocation)
    validators              the ordered validator list (addresses concatenated)
    r ‖ proposal (32)       the proposal's round
    b ‖ ballot (32) ‖ org   the org's epoch when it voted in that ballot

Solidity keeps an index per organisation and validator for swap-and-pop; the lists here
are single values (a consortium has a handful of organisations), so a position is found
by scanning, with the same observable order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chaincode_py.api import ZERO32, ZERO_ADDRESS, Chaincode, Context, Layout, abi
from rxledger.core.addresses import GOVERNANCE

# Organisation kinds.
HOSPITAL, PHARMACY, REGULATOR = 1, 2, 3
# Roles.
PRESCRIBER, HOSPITAL_PHARMACIST, PHARMACIST, AUDITOR, ORG_ADMIN = 1, 2, 3, 4, 5
# Vote actions.
ADD_ORG, REMOVE_ORG, ADD_VALIDATOR, REMOVE_VALIDATOR = 1, 2, 3, 4

ORG = Layout(("kind", "uint8"), ("suspended", "bool"), ("admins", "uint32"), ("epoch", "uint64"))
ACCOUNT = Layout(("org", "bytes32"), ("epoch", "uint64"), ("role", "uint8"))
O_KIND, O_SUSPENDED, O_ADMINS, O_EPOCH = range(4)
A_ORG, A_EPOCH, A_ROLE = range(3)

ORG_LIST = b"orgs"
EPOCHS = b"epochs"
VALIDATORS = b"validators"


def _org_key(org: bytes) -> bytes:
    return b"o" + org


def _account_key(account: bytes) -> bytes:
    return b"a" + account


def _suspended_key(account: bytes) -> bytes:
    return b"s" + account


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# -------------------------------------------------------------------------- state helpers
def org_record(ctx: Context, org: bytes) -> list[Any]:
    return list(ctx.get_record(_org_key(org), ORG))


def account_record(ctx: Context, account: bytes) -> tuple[Any, ...]:
    return ctx.get_record(_account_key(account), ACCOUNT)


def org_list(ctx: Context) -> list[bytes]:
    return _split(ctx.get_bytes(ORG_LIST), 32)


def validator_list(ctx: Context) -> list[bytes]:
    return _split(ctx.get_bytes(VALIDATORS), 20)


def enrolment(ctx: Context, account: bytes) -> tuple[bool, tuple[Any, ...], list[Any] | None]:
    """(enrolled, account record, its org record or None when role is 0)."""
    acc = account_record(ctx, account)
    if acc[A_ROLE] == 0:
        return False, acc, None
    org = org_record(ctx, acc[A_ORG])
    return acc[A_EPOCH] == org[O_EPOCH], acc, org


def is_enrolled(ctx: Context, account: bytes) -> bool:
    return enrolment(ctx, account)[0]


def member(ctx: Context, account: bytes) -> tuple[bytes, int, int, bool, bool]:
    """What the registries ask: (org, kind, role, accountSuspended, orgSuspended)."""
    suspended = ctx.get_bool(_suspended_key(account))
    enrolled, acc, org = enrolment(ctx, account)
    if enrolled:
        assert org is not None
        return acc[A_ORG], org[O_KIND], acc[A_ROLE], suspended, org[O_SUSPENDED]
    return ZERO32, 0, 0, suspended, False


def _require_not_suspended(ctx: Context, account: bytes, org: list[Any] | None) -> None:
    ctx.require(not ctx.get_bool(_suspended_key(account)), "Gov: account suspended")
    ctx.require(not (org is not None and org[O_SUSPENDED]), "Gov: organisation suspended")


def _require_admin(ctx: Context) -> bytes:
    enrolled, acc, org = enrolment(ctx, ctx.sender)
    ctx.require(enrolled and acc[A_ROLE] == ORG_ADMIN, "Gov: not an org admin")
    _require_not_suspended(ctx, ctx.sender, org)
    org_id: bytes = acc[A_ORG]
    return org_id


def _require_regulator(ctx: Context) -> bytes:
    enrolled, acc, org = enrolment(ctx, ctx.sender)
    ctx.require(
        enrolled and org is not None and org[O_KIND] == REGULATOR
        and acc[A_ROLE] in (AUDITOR, ORG_ADMIN),
        "Gov: not a regulator",
    )
    _require_not_suspended(ctx, ctx.sender, org)
    org_id: bytes = acc[A_ORG]
    return org_id


def _check_new_org(ctx: Context, org: bytes, kind: int) -> None:
    ctx.require(org != ZERO32, "Gov: zero org id")
    ctx.require(org_record(ctx, org)[O_KIND] == 0, "Gov: organisation exists")
    ctx.require(HOSPITAL <= kind <= REGULATOR, "Gov: bad org kind")


def _check_new_account(ctx: Context, account: bytes) -> None:
    ctx.require(account != ZERO_ADDRESS, "Gov: zero address")
    ctx.require(not is_enrolled(ctx, account), "Gov: already enrolled")


def _role_fits(role: int, kind: int) -> bool:
    return (role == ORG_ADMIN
            or (kind == HOSPITAL and role in (PRESCRIBER, HOSPITAL_PHARMACIST))
            or (kind == PHARMACY and role == PHARMACIST)
            or (kind == REGULATOR and role == AUDITOR))


def _check_enrolment(ctx: Context, account: bytes, org: bytes, role: int) -> None:
    _check_new_account(ctx, account)
    ctx.require(PRESCRIBER <= role <= ORG_ADMIN, "Gov: bad role")
    ctx.require(_role_fits(role, org_record(ctx, org)[O_KIND]), "Gov: role does not fit the organisation")


def _check_new_validator(ctx: Context, validator: bytes) -> None:
    ctx.require(validator != ZERO_ADDRESS, "Gov: zero address")
    ctx.require(validator not in validator_list(ctx), "Gov: already a validator")


def _add_org(ctx: Context, gov: Governance, org: bytes, kind: int, admin: bytes) -> None:
    ctx.put_bytes(ORG_LIST, ctx.get_bytes(ORG_LIST) + org)
    epoch = ctx.get_uint(EPOCHS) + 1
    ctx.put_uint(EPOCHS, epoch)
    ctx.put_record(_org_key(org), ORG, (kind, False, 0, epoch))
    ctx.emit(gov.events["OrgAdded"], org, kind, admin)


def _enroll(ctx: Context, gov: Governance, account: bytes, org: bytes, role: int) -> None:
    record = org_record(ctx, org)
    ctx.put_record(_account_key(account), ACCOUNT, (org, record[O_EPOCH], role))
    if role == ORG_ADMIN:
        record[O_ADMINS] += 1
        ctx.put_record(_org_key(org), ORG, record)
    ctx.emit(gov.events["AccountEnrolled"], account, org, role, ctx.sender)


def _add_validator(ctx: Context, gov: Governance, validator: bytes) -> None:
    ctx.put_bytes(VALIDATORS, ctx.get_bytes(VALIDATORS) + validator)
    ctx.emit(gov.events["ValidatorAdded"], validator)


def _ballot(ctx: Context, proposal: bytes) -> bytes:
    rnd = ctx.get_uint(b"r" + proposal)
    return ctx.keccak(proposal + rnd.to_bytes(32, "big"))


def proposal_id(ctx: Context, action: int, org: bytes, kind: int, account: bytes) -> bytes:
    """keccak256(abi.encode(uint8 action, bytes32 org, uint8 kind, address account))."""
    return ctx.keccak(action.to_bytes(32, "big") + org + kind.to_bytes(32, "big")
                      + account.rjust(32, b"\x00"))


def _voted_in(ctx: Context, ballot: bytes, org: bytes, epoch: int) -> bool:
    return epoch != 0 and ctx.get_uint(b"b" + ballot + org) == epoch


def _count(ctx: Context, ballot: bytes) -> int:
    n = 0
    for org in org_list(ctx):
        if ctx.get_uint(b"b" + ballot + org) == org_record(ctx, org)[O_EPOCH]:
            n += 1
    return n


def _vote(ctx: Context, gov: Governance, action: int, org: bytes, kind: int, account: bytes) -> bool:
    """Record the caller's organisation's vote; true when the proposal passes (its round
    then ends, so later votes start afresh)."""
    voter_org: bytes = account_record(ctx, ctx.sender)[A_ORG]
    proposal = proposal_id(ctx, action, org, kind, account)
    ballot = _ballot(ctx, proposal)
    voter_epoch: int = org_record(ctx, voter_org)[O_EPOCH]
    ctx.require(not _voted_in(ctx, ballot, voter_org, voter_epoch), "Gov: already voted")
    ctx.put_uint(b"b" + ballot + voter_org, voter_epoch)
    n = _count(ctx, ballot)
    total = len(org_list(ctx))
    ctx.emit(gov.events["Voted"], proposal, voter_org, ctx.sender, action, org, kind, account, n, total)
    if n * 2 > total:
        ctx.put_uint(b"r" + proposal, ctx.get_uint(b"r" + proposal) + 1)
        return True
    return False


class Governance(Chaincode):
    artifact = "Governance"
    address = GOVERNANCE

    # -- genesis (the Solidity constructor) ----------------------------------------------
    def constructor(self, ctx: Context, org_ids: Sequence[bytes], kinds: Sequence[int],
                    accounts: Sequence[bytes], account_orgs: Sequence[bytes], roles: Sequence[int],
                    validators: Sequence[bytes]) -> None:
        """The consortium's genesis, with the constructor's checks (raises `Revert`)."""
        ctx.require(len(org_ids) == len(kinds), "Gov: length mismatch")
        ctx.require(len(accounts) == len(account_orgs) == len(roles), "Gov: length mismatch")
        ctx.require(len(org_ids) > 0, "Gov: no organisations")
        for org, kind in zip(org_ids, kinds, strict=True):
            _check_new_org(ctx, org, kind)
            _add_org(ctx, self, org, kind, ZERO_ADDRESS)
        for account, org, role in zip(accounts, account_orgs, roles, strict=True):
            ctx.require(org_record(ctx, org)[O_KIND] != 0, "Gov: unknown organisation")
            _check_enrolment(ctx, account, org, role)
            _enroll(ctx, self, account, org, role)
        for validator in validators:
            _check_new_validator(ctx, validator)
            _add_validator(ctx, self, validator)

    # -- accounts ------------------------------------------------------------------------
    @abi("enroll")
    def enroll(self, ctx: Context, account: bytes, role: int) -> None:
        org = _require_admin(ctx)
        _check_enrolment(ctx, account, org, role)
        _enroll(ctx, self, account, org, role)

    @abi("revoke")
    def revoke(self, ctx: Context, account: bytes) -> None:
        org = _require_admin(ctx)
        enrolled, acc, record = enrolment(ctx, account)
        ctx.require(enrolled, "Gov: not enrolled")
        ctx.require(acc[A_ORG] == org, "Gov: not of your organisation")
        if acc[A_ROLE] == ORG_ADMIN:
            assert record is not None
            ctx.require(record[O_ADMINS] > 1, "Gov: last admin of the organisation")
            record[O_ADMINS] -= 1
            ctx.put_record(_org_key(org), ORG, record)
        ctx.put_bytes(_account_key(account), b"")
        ctx.emit(self.events["AccountRevoked"], account, org, ctx.sender)

    # -- suspensions ---------------------------------------------------------------------
    @abi("suspend")
    def suspend(self, ctx: Context, account: bytes, reason: bytes) -> None:
        _require_regulator(ctx)
        ctx.require(is_enrolled(ctx, account), "Gov: not enrolled")
        ctx.require(account != ctx.sender, "Gov: cannot suspend yourself")
        ctx.require(not ctx.get_bool(_suspended_key(account)), "Gov: already suspended")
        ctx.put_bool(_suspended_key(account), True)
        ctx.emit(self.events["Suspended"], account, reason, ctx.sender)

    @abi("reinstate")
    def reinstate(self, ctx: Context, account: bytes) -> None:
        _require_regulator(ctx)
        ctx.require(ctx.get_bool(_suspended_key(account)), "Gov: not suspended")
        ctx.put_bool(_suspended_key(account), False)
        ctx.emit(self.events["Reinstated"], account, ctx.sender)

    @abi("suspendOrg")
    def suspend_org(self, ctx: Context, org: bytes, reason: bytes) -> None:
        own = _require_regulator(ctx)
        record = org_record(ctx, org)
        ctx.require(record[O_KIND] != 0, "Gov: unknown organisation")
        ctx.require(org != own, "Gov: cannot suspend own organisation")
        ctx.require(not record[O_SUSPENDED], "Gov: organisation already suspended")
        record[O_SUSPENDED] = True
        ctx.put_record(_org_key(org), ORG, record)
        ctx.emit(self.events["OrgSuspended"], org, reason, ctx.sender)

    @abi("reinstateOrg")
    def reinstate_org(self, ctx: Context, org: bytes) -> None:
        _require_regulator(ctx)
        record = org_record(ctx, org)
        ctx.require(record[O_KIND] != 0, "Gov: unknown organisation")
        ctx.require(record[O_SUSPENDED], "Gov: organisation not suspended")
        record[O_SUSPENDED] = False
        ctx.put_record(_org_key(org), ORG, record)
        ctx.emit(self.events["OrgReinstated"], org, ctx.sender)

    # -- votes ---------------------------------------------------------------------------
    @abi("voteAddOrg")
    def vote_add_org(self, ctx: Context, org: bytes, kind: int, admin: bytes) -> None:
        _require_admin(ctx)
        _check_new_org(ctx, org, kind)
        _check_new_account(ctx, admin)
        if _vote(ctx, self, ADD_ORG, org, kind, admin):
            _add_org(ctx, self, org, kind, admin)
            _enroll(ctx, self, admin, org, ORG_ADMIN)

    @abi("voteRemoveOrg")
    def vote_remove_org(self, ctx: Context, org: bytes) -> None:
        _require_admin(ctx)
        ctx.require(org_record(ctx, org)[O_KIND] != 0, "Gov: unknown organisation")
        ctx.require(len(org_list(ctx)) > 1, "Gov: last organisation")
        if _vote(ctx, self, REMOVE_ORG, org, 0, ZERO_ADDRESS):
            orgs = org_list(ctx)
            orgs[orgs.index(org)] = orgs[-1]  # swap-and-pop
            orgs.pop()
            ctx.put_bytes(ORG_LIST, b"".join(orgs))
            ctx.put_bytes(_org_key(org), b"")
            ctx.emit(self.events["OrgRemoved"], org)

    @abi("voteAddValidator")
    def vote_add_validator(self, ctx: Context, validator: bytes) -> None:
        _require_admin(ctx)
        _check_new_validator(ctx, validator)
        if _vote(ctx, self, ADD_VALIDATOR, ZERO32, 0, validator):
            _add_validator(ctx, self, validator)

    @abi("voteRemoveValidator")
    def vote_remove_validator(self, ctx: Context, validator: bytes) -> None:
        _require_admin(ctx)
        validators = validator_list(ctx)
        ctx.require(validator in validators, "Gov: not a validator")
        ctx.require(len(validators) > 1, "Gov: last validator")
        if _vote(ctx, self, REMOVE_VALIDATOR, ZERO32, 0, validator):
            validators = validator_list(ctx)
            validators[validators.index(validator)] = validators[-1]  # swap-and-pop
            validators.pop()
            ctx.put_bytes(VALIDATORS, b"".join(validators))
            ctx.emit(self.events["ValidatorRemoved"], validator)

    # -- views ---------------------------------------------------------------------------
    @abi("member")
    def member(self, ctx: Context, account: bytes) -> tuple[bytes, int, int, bool, bool]:
        return member(ctx, account)

    @abi("roleOf")
    def role_of(self, ctx: Context, account: bytes) -> int:
        enrolled, acc, _org = enrolment(ctx, account)
        return int(acc[A_ROLE]) if enrolled else 0

    @abi("orgOf")
    def org_of(self, ctx: Context, account: bytes) -> bytes:
        enrolled, acc, _org = enrolment(ctx, account)
        return bytes(acc[A_ORG]) if enrolled else ZERO32

    @abi("isEnrolled")
    def is_enrolled(self, ctx: Context, account: bytes) -> bool:
        return is_enrolled(ctx, account)

    @abi("isSuspended")
    def is_suspended(self, ctx: Context, account: bytes) -> bool:
        if ctx.get_bool(_suspended_key(account)):
            return True
        enrolled, _acc, org = enrolment(ctx, account)
        return enrolled and org is not None and bool(org[O_SUSPENDED])

    @abi("orgKind")
    def org_kind(self, ctx: Context, org: bytes) -> int:
        return int(org_record(ctx, org)[O_KIND])

    @abi("isOrgSuspended")
    def is_org_suspended(self, ctx: Context, org: bytes) -> bool:
        return bool(org_record(ctx, org)[O_SUSPENDED])

    @abi("adminCount")
    def admin_count(self, ctx: Context, org: bytes) -> int:
        return int(org_record(ctx, org)[O_ADMINS])

    @abi("orgs")
    def orgs(self, ctx: Context) -> list[bytes]:
        return org_list(ctx)

    @abi("validators")
    def validators(self, ctx: Context) -> list[bytes]:
        return validator_list(ctx)

    @abi("isValidator")
    def is_validator(self, ctx: Context, account: bytes) -> bool:
        return account in validator_list(ctx)

    @abi("proposalId")
    def proposal_id(self, ctx: Context, action: int, org: bytes, kind: int, account: bytes) -> bytes:
        return proposal_id(ctx, action, org, kind, account)

    @abi("votes")
    def votes(self, ctx: Context, proposal: bytes) -> int:
        return _count(ctx, _ballot(ctx, proposal))

    @abi("hasVoted")
    def has_voted(self, ctx: Context, proposal: bytes, org: bytes) -> bool:
        epoch: int = org_record(ctx, org)[O_EPOCH]
        return epoch != 0 and _voted_in(ctx, _ballot(ctx, proposal), org, epoch)
