"""The native chaincodes against the Solidity reference, transaction by transaction.

The scenario functions of tests/unit/test_contracts_solidity.py (every function of
PrescriptionRegistry, Governance and AnchorRegistry, allowed and refused) run here with a
`TwinEnv`: each transaction goes to the Solidity contract and to the native chaincode in
the same block, each view to both, and the harness (chaincode_twin.py) requires identical
status, return data, revert data and logs at every step, while the scenario's own
assertions check the behaviour docs/CONTRACTS.md specifies.

Then: malformed calls (every kind of ABI decoding failure, value sent, static calls) and
a seeded random walk of several hundred calls from all accounts, compared the same way.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import test_contracts_solidity as sol  # noqa: E402
from chaincode_twin import TwinContract, TwinHarness  # noqa: E402
from test_contracts_solidity import (  # noqa: E402, F401  (collected here with the twin env)
    test_a_pharmacist_of_a_suspended_pharmacy_is_refused,
    test_a_reviewer_who_is_the_prescriber_is_refused,
    test_anchor,
    test_cancel_before_any_fill,
    test_dispense_refusals,
    test_dispense_uses_the_block_time_for_the_validity_window,
    test_double_dispense_of_the_last_fill_in_one_block,
    test_enroll,
    test_entered_in_error_from_any_status,
    test_expire_after_valid_until,
    test_governance_genesis_reproduces_the_development_setup,
    test_hold_and_resume,
    test_issue_argument_refusals_in_order,
    test_issue_by_a_suspended_prescriber_or_hospital_is_refused,
    test_issue_by_anyone_but_a_prescriber_is_refused,
    test_issue_records_a_draft_with_issued_and_status_changed,
    test_issue_review_dispense_partial_and_refills_to_completed,
    test_review_refusals,
    test_review_reject_cancels,
    test_revoke,
    test_stop_after_a_fill,
    test_suspend_and_reinstate_accounts,
    test_suspend_and_reinstate_organisations,
    test_unknown_prescription_reads_as_zeros,
    test_vote_add_org,
    test_vote_remove_org_unenrols_its_accounts,
    test_vote_validators,
    test_votes_count_current_organisations_only,
)

from node.genesis import GenesisConfig, derive_dev_key  # noqa: E402

ZERO32 = b"\x00" * 32


class TwinEnv(sol.Env):
    """sol.Env whose contracts are twins: Solidity deployed as there, native at genesis."""

    def __init__(self, genesis: GenesisConfig | None = None) -> None:
        self.h = TwinHarness(genesis)
        setup = sol.deploy.dev_setup([sol.VALIDATOR])
        gov = self.h.deploy("Governance", *setup.constructor_args())
        self.genesis_events = self.h.last_deploy_events
        rx = self.h.deploy("PrescriptionRegistry", gov.address)
        anchors = self.h.deploy("AnchorRegistry", gov.address)
        self.gov = self.h.twin(gov)
        self.rx = self.h.twin(rx)
        self.anchors = self.h.twin(anchors)


@pytest.fixture
def env() -> TwinEnv:
    return TwinEnv()


def test_every_scenario_step_was_compared(env: TwinEnv) -> None:
    """The harness really compares: a scenario run counts its steps, and a mismatch fails."""
    sol.test_issue_review_dispense_partial_and_refills_to_completed(env)
    assert env.h.steps > 15
    # A twin whose native side is another contract (Governance for the registry) differs.
    wrong = TwinContract("PrescriptionRegistry", env.rx.address, env.rx.abi, env.anchors.native)
    with pytest.raises(AssertionError):
        env.h.call(wrong, "getPrescription", sol.rx_id("x"))


# ------------------------------------------------------------------------- malformed calls
def _variants(env: TwinEnv) -> list[tuple[TwinContract, bytes]]:
    h = env.h
    enroll = env.gov.abi.encode_call("enroll", (h.address(9), 1))
    review = env.rx.abi.encode_call("review", (sol.rx_id("x"), True, ZERO32))
    issue = env.rx.abi.encode_call("issue", (sol.rx_id("x"), ZERO32, ZERO32, 300 % 256, 1, 1, 0, 1))
    dispense = env.rx.abi.encode_call("dispense", (sol.rx_id("x"), 1, ZERO32))
    anchor = env.anchors.abi.encode_call("anchor", (keccak(text="r"), 1, ZERO32))
    role_of = env.gov.abi.encode_call("roleOf", (h.address(1),))
    word = (1 << 255).to_bytes(32, "big")
    out: list[tuple[TwinContract, bytes]] = []
    for contract in (env.rx, env.gov, env.anchors):
        out += [(contract, b""), (contract, b"\x12"), (contract, b"\x12\x34\x56"),
                (contract, b"\xde\xad\xbe\xef"), (contract, b"\xde\xad\xbe\xef" + b"\x00" * 64)]
    out += [
        (env.gov, enroll[:-1]),  # short
        (env.gov, enroll[:4]),  # selector only
        (env.gov, enroll[:-32] + (256).to_bytes(32, "big")),  # uint8 256
        (env.gov, enroll[:-32] + word),
        (env.gov, enroll[:4] + b"\x01" + enroll[5:]),  # dirty address
        (env.gov, enroll[:4] + b"\x00" * 11 + b"\x01" + enroll[16:]),
        (env.gov, enroll + b"\x00" * 7),  # trailing bytes are ignored
        (env.gov, role_of + b"\xff" * 40),
        (env.rx, review[:-64] + (2).to_bytes(32, "big") + ZERO32),  # bool 2
        (env.rx, review[:-64] + word + ZERO32),
        (env.rx, issue[:4 + 96] + (256).to_bytes(32, "big") + issue[4 + 128:]),  # uint8
        (env.rx, issue[:4 + 128] + (1 << 16).to_bytes(32, "big") + issue[4 + 160:]),  # uint16
        (env.rx, issue[:4 + 160] + (1 << 32).to_bytes(32, "big") + issue[4 + 192:]),  # uint32
        (env.rx, issue[:4 + 192] + (1 << 64).to_bytes(32, "big") + issue[4 + 224:]),  # uint64
        (env.rx, issue[:-1]),
        (env.rx, dispense[:4 + 32] + (1 << 32).to_bytes(32, "big") + dispense[4 + 64:]),
        (env.anchors, anchor[:4 + 32] + (1 << 64).to_bytes(32, "big") + anchor[4 + 64:]),
        (env.anchors, anchor[:-31]),
        (env.gov, env.gov.abi.encode_call("proposalId", (1, ZERO32, 1, h.address(1)))[:-32]
         + b"\x00" * 11 + b"\x01" + b"\x00" * 20),
    ]
    # views without arguments take extra bytes
    out += [(env.gov, env.gov.abi.encode_call("orgs", ()) + b"\x01"),
            (env.rx, env.rx.abi.encode_call("governance", ()) + b"\x00" * 33)]
    return out


def test_malformed_calls_fail_as_solidity_does(env: TwinEnv) -> None:
    variants = _variants(env)
    malformed = 0
    for contract, data in variants:
        for sender in (0, 1, 9):
            outcome = env.h.compare_call(contract, data, sender=env.h.addresses[sender])
            if outcome.reverted and outcome.data == b"":
                malformed += 1
    assert malformed >= 3 * (len(variants) - 4)
    # and as transactions: same receipts (status 0, no logs) on both engines
    for contract, data in variants[:12]:
        env.h.now += 1
        (sol_receipt, nat_receipt, _block), = env.h._twin_block([(contract, data, 0)], env.h.now)
        env.h._compare_receipts(f"0x{data.hex()}", sol_receipt, nat_receipt)


def test_mutated_calldata_agrees_on_both_engines(env: TwinEnv) -> None:
    """Random corruptions of well-formed calls: same outcome, byte for byte."""
    rng = random.Random(20240601)
    h = env.h
    calls = [
        (env.gov, env.gov.abi.encode_call("enroll", (h.address(9), 1))),
        (env.gov, env.gov.abi.encode_call("voteAddOrg", (keccak(text="x"), 2, h.address(9)))),
        (env.gov, env.gov.abi.encode_call("member", (h.address(3),))),
        (env.rx, env.rx.abi.encode_call("issue", (sol.rx_id(1), keccak(text="c"), keccak(text="p"),
                                                  2, 3, 30, 0, 2**40))),
        (env.rx, env.rx.abi.encode_call("review", (sol.rx_id(1), True, ZERO32))),
        (env.rx, env.rx.abi.encode_call("dispense", (sol.rx_id(1), 3, ZERO32))),
        (env.anchors, env.anchors.abi.encode_call("anchor", (keccak(text="r"), 1, ZERO32))),
    ]
    for _ in range(400):
        contract, data = rng.choice(calls)
        data = bytearray(data)
        kind = rng.randrange(4)
        if kind == 0:  # flip a byte
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256)
        elif kind == 1:  # truncate
            del data[rng.randrange(len(data)):]
        elif kind == 2:  # extend
            data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        else:  # high byte of an argument word
            if len(data) > 4:
                data[4 + 32 * rng.randrange((len(data) - 4) // 32 or 1)] = rng.randrange(1, 256)
        env.h.compare_call(contract, bytes(data), sender=h.addresses[rng.choice((0, 1, 2, 3, 4, 7, 8, 9))])


def test_value_is_refused_by_every_function() -> None:
    """No function is payable: a call with value reverts with empty data on both engines
    (needs a funded sender; the dev genesis has no balances)."""
    from dataclasses import replace

    from node.genesis import dev_genesis

    genesis = replace(dev_genesis(), balances=tuple((a, 10**18) for a in _dev_addresses()))
    env = TwinEnv(genesis)
    h = env.h
    for contract, fn, args in [
        (env.gov, "roleOf", (h.address(1),)), (env.gov, "enroll", (h.address(9), 1)),
        (env.rx, "getPrescription", (sol.rx_id(1),)),
        (env.rx, "issue", (sol.rx_id(1), keccak(text="c"), keccak(text="p"), 0, 1, 1, 0, 2**40)),
        (env.anchors, "anchor", (keccak(text="r"), 1, ZERO32)),
    ]:
        data = contract.abi.encode_call(fn, args)
        assert h.compare_call(contract, data, sender=h.addresses[1], value=1).data == b""
        assert h.compare_call(contract, data, sender=h.addresses[1], value=0).reverted is False or fn == "enroll"


def _dev_addresses() -> list[bytes]:
    from node.genesis import dev_accounts

    return [a.address for a in dev_accounts()]


# ----------------------------------------------------------------------------- random walk
class Walk:
    """A seeded random walk: calls mostly from a sender with the right role and with
    sensible arguments (so that most succeed and the state moves on), sometimes from anyone
    with anything; suspensions are mostly lifted again, organisations rarely removed."""

    def __init__(self, env: TwinEnv, seed: int) -> None:
        self.env = env
        self.h = env.h
        self.rng = random.Random(seed)
        self.extra = [self.h.add_signer(derive_dev_key(200 + i)) for i in range(3)]
        self.senders = list(range(10)) + self.extra
        self.ids = [sol.rx_id(f"walk-{seed}-{i}") for i in range(12)]
        self.orgs = [sol.HOSPITAL_A, sol.HOSPITAL_B, sol.PHARMACY_A, sol.REGULATOR_ORG,
                     keccak(text="new-org"), ZERO32]
        self.suspended: list[bytes] = []
        self.suspended_orgs: list[bytes] = []
        self.issued: list[bytes] = []
        self.active: list[bytes] = []

    def pick(self, *likely: int) -> int:
        return self.rng.choice(likely) if self.rng.random() < 0.85 else self.rng.choice(self.senders)

    def often(self, good: Any, *bad: Any) -> Any:
        return good if self.rng.random() < 0.9 else self.rng.choice(bad)

    def an_id(self, likely: list[bytes]) -> bytes:
        if likely and self.rng.random() < 0.8:
            return self.rng.choice(likely)
        return self.often(self.rng.choice(self.ids), ZERO32)

    def step(self) -> tuple[TwinContract, str, tuple[Any, ...], int]:
        env, rng, h = self.env, self.rng, self.h
        someone = h.address(rng.choice(self.senders))
        rid = self.an_id(self.active)
        reason = rng.choice((ZERO32, sol.b32("r")))
        now = h.now
        choice = rng.randrange(40)
        if choice < 8:
            return env.rx, "issue", (
                self.an_id([i for i in self.ids if i not in self.issued]), self.often(keccak(text="c"), ZERO32), self.often(keccak(text="p"), ZERO32),
                rng.randrange(6), self.often(rng.choice((1, 2, 3)), 0), self.often(rng.choice((10, 30)), 0),
                self.often(0, now + 30, 2**64 - 1), self.often(now + rng.choice((60, 600, 10**6)), now, 0),
            ), self.pick(1, 5)
        if choice < 14:
            draft = self.an_id([i for i in self.issued if i not in self.active])
            return env.rx, "review", (draft, rng.random() < 0.85, reason), self.pick(2, 6)
        if choice < 22:
            return env.rx, "dispense", (rid, self.often(rng.choice((5, 10, 30)), 0, 31, 2**32 - 1),
                                        keccak(text=str(rng.random()))), self.pick(3)
        if choice < 24:
            fn = rng.choice(("hold", "cancel", "stop", "markEnteredInError"))
            return env.rx, fn, (rid, reason), self.pick(0, 1, 2, 5, 6)
        if choice < 26:
            return env.rx, rng.choice(("resume", "expire")), (rid,), self.pick(1, 2, 9)
        if choice == 26:
            return env.gov, "enroll", (someone, self.often(rng.choice((1, 2, 3, 4, 5)), 0, 6)), self.pick(0, 7, 8)
        if choice == 27:
            return env.gov, "revoke", (someone,), self.pick(0, 7, 8)
        if choice == 28:
            return env.gov, "suspend", (someone, reason), self.pick(4, 8)
        if choice < 31:
            target = rng.choice(self.suspended) if self.suspended and rng.random() < 0.8 else someone
            return env.gov, "reinstate", (target,), self.pick(4, 8)
        if choice == 31:
            return env.gov, "suspendOrg", (rng.choice(self.orgs), reason), self.pick(4, 8)
        if choice < 34:
            org = (rng.choice(self.suspended_orgs) if self.suspended_orgs and rng.random() < 0.8
                   else rng.choice(self.orgs))
            return env.gov, "reinstateOrg", (org,), self.pick(4, 8)
        if choice == 34:
            return env.gov, "voteAddOrg", (rng.choice(self.orgs), self.often(rng.choice((1, 2, 3)), 0, 4),
                                           someone), self.pick(0, 7, 8, *self.extra)
        if choice == 35 and rng.random() < 0.3:
            return env.gov, "voteRemoveOrg", (rng.choice(self.orgs),), self.pick(0, 7, 8, *self.extra)
        if choice in (35, 36):
            fn = rng.choice(("voteAddValidator", "voteRemoveValidator"))
            return env.gov, fn, (rng.choice((someone, sol.VALIDATOR)),), self.pick(0, 7, 8, *self.extra)
        return env.anchors, "anchor", (self.often(keccak(text=str(rng.randrange(30))), ZERO32),
                                       self.often(rng.choice((1, 8)), 0), reason), rng.choice(self.senders)

    def record(self, call: tuple[TwinContract, str, tuple[Any, ...], int], status: int) -> None:
        _contract, fn, args, _sender = call
        if status == 1 and fn == "issue":
            self.issued.append(args[0])
        elif status == 1 and fn == "review" and args[1]:
            self.active.append(args[0])
        elif status == 1 and fn == "suspend":
            self.suspended.append(args[0])
        elif status == 1 and fn == "suspendOrg":
            self.suspended_orgs.append(args[0])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_walk_agrees_on_both_engines(env: TwinEnv, seed: int) -> None:
    walk = Walk(env, seed)
    h = env.h
    succeeded = 0
    for step in range(150):
        if walk.rng.random() < 0.25:  # several transactions in one block
            calls = [walk.step() for _ in range(walk.rng.randrange(2, 5))]
            results = h.block(calls, timestamp=h.now + walk.rng.choice((1, 7, 40)))
        else:
            calls = [walk.step()]
            contract, fn, args, sender = calls[0]
            results = [h.transact(contract, fn, *args, sender=sender,
                                  timestamp=h.now + walk.rng.choice((1, 7, 40)))]
        for call, result in zip(calls, results, strict=True):
            walk.record(call, result.status)
            succeeded += result.status
        if step % 10 == 0:
            for rid in walk.ids:
                h.call(env.rx, "getPrescription", rid)
            h.call(env.gov, "orgs")
            h.call(env.gov, "validators")
            for i in walk.senders:
                h.call(env.gov, "member", h.address(i))
            for org in walk.orgs:
                h.call(env.gov, "adminCount", org)
                h.call(env.gov, "isOrgSuspended", org)
    assert h.steps > 400
    assert succeeded > 25  # the walk moves the state, it does not only collect refusals
