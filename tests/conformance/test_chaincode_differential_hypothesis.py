"""Hypothesis differential test: the native chaincode against the Solidity contracts.

Every example is one short sequence (3-12 calls) of transactions from the development
accounts (and one extra key that governance may enrol), grouped into blocks of 1-6 calls
with random block times: mostly a second apart, sometimes the same second, minutes, a
day, a month, or exactly to (and one either side of) the validFrom / validUntil of a
prescription. Each call is a random function of PrescriptionRegistry, Governance or
AnchorRegistry (views too, sent as transactions) with arguments biased to be meaningful:
rxIds that exist, in the status the function wants; senders with the role it wants;
quantities, fill counts and validity bounds at and around their limits; and, one call in
five, anything.

Each block holds every call twice: to the Solidity contracts (deployed on the chain with
the development setup, as `contracts/deploy.py` does) and to the native chaincode at
0x…1001-1003, in the same block (the dual-engine harness of
tests/unit/chaincode/chaincode_twin.py). For every call the two engines must give the same
receipt status, the same return data or revert data (each transaction's computation
output, recorded as the block is built) and the same logs. After the sequence the views
must agree too: `getPrescription` of every rxId the sequence used, `roleOf`, `orgOf` and
`isSuspended` of every account, `anchoredAt` of every root, `orgs()` and `validators()`.

Every example starts from the same chain: the twins deployed, and prescriptions in every
status issued on both (drafts of both hospitals, active ones with one and with several
fills left, on hold, not valid yet, about to expire, completed, cancelled). It is built
once; each example opens a fresh `Chain` over a copy of its store, so the examples are
independent and a failure shrinks to a minimal sequence.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth.exceptions import Revert
from eth.vm.forks.prague.transactions import PragueUnsignedLegacyTransaction
from eth.vm.spoof import SpoofTransaction
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaincode_py import NativeChaincodeHost

_TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_TESTS / "unit" / "chaincode"))
sys.path.insert(0, str(_TESTS / "unit"))

import test_contracts_solidity as sol  # noqa: E402
from chaincode_twin import Mismatch, Outcome, TwinContract, TwinHarness  # noqa: E402
from solidity_harness import PROPOSER  # noqa: E402

from node.chain import Chain  # noqa: E402
from node.execution.executor import decode_revert_reason  # noqa: E402
from node.genesis import derive_dev_key  # noqa: E402
from node.storage import MemoryStore  # noqa: E402

ZERO32 = b"\x00" * 32
ZERO20 = b"\x00" * 20
DAY = 86_400
U32, U64 = 2**32 - 1, 2**64 - 1
MAX_CALLS_PER_BLOCK = 6  # 2 x 6 transactions of 2M gas in a 30M block
EXAMPLES = 500

# Development accounts (INTERFACES.md) and the extra key (index 10, enrolled by nobody).
HA_ADMIN, HA_PRESCRIBER, HA_REVIEWER, PA_PHARMACIST, AUDITOR = 0, 1, 2, 3, 4
HB_PRESCRIBER, HB_REVIEWER, PA_ADMIN, REG_ADMIN, DEPLOYER, EXTRA = 5, 6, 7, 8, 9, 10
ACCOUNTS = tuple(range(11))

NONE, DRAFT, ACTIVE, ON_HOLD, COMPLETED, CANCELLED, STOPPED, ENTERED_IN_ERROR = range(8)
SEEDS = ("draft-a", "draft-b", "active-last-fill", "active-refills", "on-hold", "not-valid-yet",
         "expiring", "completed", "cancelled")
SEED_IDS = {name: keccak(text=f"hypothesis-rx-{name}") for name in SEEDS}
FRESH_IDS = tuple(keccak(text=f"hypothesis-rx-fresh-{i}") for i in range(3))
RX_IDS = (*SEED_IDS.values(), *FRESH_IDS)
ROOTS = tuple(keccak(text=f"hypothesis-root-{i}") for i in range(3))
PHARMACY_B = keccak(text="pharmacy-b")
ORGS = (sol.HOSPITAL_A, sol.HOSPITAL_B, sol.PHARMACY_A, sol.REGULATOR_ORG, PHARMACY_B, ZERO32)
REASONS = (ZERO32, sol.b32("interaction"), b"\xff" * 32)


# ----------------------------------------------------------------------------- the model
@dataclass
class Rx:
    status: int = NONE
    quantity_per_fill: int = 0
    valid_from: int = 0
    valid_until: int = 0


@dataclass
class Model:
    """What the chain holds, as far as the draws care (kept from the receipts): only used
    to bias the draws, never to judge the engines."""

    rx: dict[bytes, Rx] = field(default_factory=lambda: {i: Rx() for i in RX_IDS})
    suspended: list[int] = field(default_factory=list)
    suspended_orgs: list[bytes] = field(default_factory=list)

    def ids(self, *statuses: int) -> list[bytes]:
        return [i for i, r in self.rx.items() if r.status in statuses]

    def copy(self) -> Model:
        return Model({i: replace(r) for i, r in self.rx.items()}, list(self.suspended),
                     list(self.suspended_orgs))


# ----------------------------------------------------------------------------- the chain
@dataclass
class Base:
    """The twins deployed and seeded once; each example opens a Chain over a copy."""

    h: TwinHarness
    rx: TwinContract
    gov: TwinContract
    anchors: TwinContract
    snapshot: list[tuple[bytes, bytes]]
    start_time: int
    model: Model
    checksum: dict[str, int]  # checksummed address -> account index


def _seed(h: TwinHarness, rx: TwinContract) -> None:
    """Prescriptions in every status, issued and moved on both engines."""
    t = h.now + 1

    def issue(name: str, sender: int, fills: int, qty: int, valid_from: int, valid_until: int) -> Any:
        return (rx, "issue", (SEED_IDS[name], sol.COMMITMENT, sol.PATIENT, 2, fills, qty,
                              valid_from, valid_until), sender)

    def review(name: str, approve: bool = True, sender: int = HA_REVIEWER) -> Any:
        return (rx, "review", (SEED_IDS[name], approve, ZERO32), sender)

    def dispense(name: str, qty: int) -> Any:
        return (rx, "dispense", (SEED_IDS[name], qty, keccak(text=name)), PA_PHARMACIST)

    blocks = [
        [issue("draft-a", 1, 2, 30, t - 60, t + 3600), issue("draft-b", 5, 1, 10, t - 60, t + 600),
         issue("active-last-fill", 1, 1, 30, t - 60, t + 7200), issue("active-refills", 1, 3, 20, t - 60, t + 7200),
         issue("on-hold", 1, 2, 30, t - 60, t + 3600)],
        [issue("not-valid-yet", 1, 2, 30, t + 1000, t + 5000), issue("expiring", 5, 2, 30, t - 60, t + 120),
         issue("completed", 1, 1, 30, t - 60, t + 3600), issue("cancelled", 1, 1, 30, t - 60, t + 3600)],
        [review("active-last-fill"), review("active-refills"), review("on-hold"), review("not-valid-yet"),
         review("expiring", sender=HB_REVIEWER), review("completed"), review("cancelled", approve=False)],
        [dispense("active-refills", 20), dispense("completed", 30),
         (rx, "hold", (SEED_IDS["on-hold"], sol.b32("allergy")), HA_PRESCRIBER)],
    ]
    for i, calls in enumerate(blocks):
        results = h.block(calls, timestamp=t + i)
        assert all(r.status == 1 for r in results), [(c[1], r.status) for c, r in zip(calls, results, strict=True)]


@lru_cache(maxsize=1)
def base() -> Base:
    h = TwinHarness()
    setup = sol.deploy.dev_setup([sol.VALIDATOR])
    gov = h.twin(h.deploy("Governance", *setup.constructor_args()))
    rx = h.twin(h.deploy("PrescriptionRegistry", gov.address))
    anchors = h.twin(h.deploy("AnchorRegistry", gov.address))
    assert h.add_signer(derive_dev_key(200)) == EXTRA
    _seed(h, rx)
    model = Model()
    for rid in RX_IDS:
        record_ = h.call(rx, "getPrescription", rid)  # compared on both engines, too
        model.rx[rid] = Rx(record_[11], record_[7], record_[9], record_[10])
    assert {model.rx[SEED_IDS[n]].status for n in SEEDS} == {DRAFT, ACTIVE, ON_HOLD, COMPLETED, CANCELLED}
    checksum = {h.address(i): i for i in ACCOUNTS}
    return Base(h, rx, gov, anchors, list(h.chain.store.iterate()), h.now, model, checksum)


class Capture:
    """What each transaction's computation returned (its output, or its revert data).

    A receipt carries no return data; `BlockExecution.outputs` does (the same from the
    native fast path and from py-evm), so the chain's executor is wrapped to record it
    for every block built."""

    def __init__(self) -> None:
        self.outputs: list[tuple[bool, bytes]] = []

    def wrap(self, executor: Any) -> None:
        execute_block = executor.execute_block

        def recording(*args: Any, **kwargs: Any) -> Any:
            execution = execute_block(*args, **kwargs)
            self.outputs += [(receipt.status == 0, output)
                             for receipt, output in zip(execution.receipts, execution.outputs, strict=True)]
            return execution

        executor.execute_block = recording


def fresh_chain(b: Base, capture: Capture) -> None:
    """Point the shared harness at a new chain over a copy of the seeded state."""
    store = MemoryStore()
    with store.batch(sync=False) as batch:
        for key, value in b.snapshot:
            batch.put(key, value)
    chain = Chain(store, b.h.chain.genesis, NativeChaincodeHost)
    capture.wrap(chain.executor)
    b.h.chain = chain
    b.h.now = b.start_time
    b.h._pending.clear()


class Views:
    """Many eth_calls on the head, the steps of `Executor.call` (the head's state and a
    chaincode session opened with its commitment, a spoofed legacy message from the zero
    address with the block's gas), with the state opened once and every call undone by a
    snapshot revert: about twice as fast as one `Executor.call` per view. Each example
    also checks one view against `Executor.call` itself (`TwinHarness.compare_call`)."""

    def __init__(self, h: TwinHarness) -> None:
        chain = h.chain
        executor: Any = chain.executor
        env = chain.env_for(chain.head, h.now, PROPOSER)
        self.gas = env.gas_limit
        self.state, _pending = executor.open_state(chain.head.state_root, env)
        self.state.chaincode_session = executor.chaincode.open_session(
            executor._chaincode_root(self.state), self.state.block_info)

    def call(self, to: bytes, data: bytes) -> Outcome:
        snapshot = self.state.snapshot()
        try:
            message = PragueUnsignedLegacyTransaction(
                nonce=self.state.get_nonce(ZERO20), gas_price=0, gas=self.gas, to=to, value=0, data=data)
            computation = self.state.apply_transaction(SpoofTransaction(message, from_=ZERO20))
        finally:
            self.state.revert(snapshot)
        if computation.is_error and not isinstance(computation.error, Revert):
            return Outcome(True, f"halt: {type(computation.error).__name__}".encode())
        return Outcome(bool(computation.is_error), bytes(computation.output))


Call = tuple[TwinContract, str, tuple[Any, ...], int]


class Draw:
    """Draws calls and block times from hypothesis data, biased by the model."""

    def __init__(self, data: st.DataObject, b: Base, model: Model) -> None:
        self.data, self.b, self.model = data, b, model

    def __call__(self, strategy: st.SearchStrategy[Any], label: str | None = None) -> Any:
        return self.data.draw(strategy, label=label)

    def pick(self, *values: Any) -> Any:
        return self(st.sampled_from(values))

    def wild(self) -> bool:
        """One call in five takes its arguments from the whole range (shrinks to sane)."""
        return bool(self(st.integers(0, 4)) == 4)

    def often(self, good: Any, *rare: Any) -> Any:
        return self.pick(*rare) if self.wild() else good

    def sender(self, *likely: int) -> int:
        """Mostly an account with the role the function wants; else anyone."""
        return int(self.pick(*likely) if self(st.integers(0, 5)) else self.pick(*ACCOUNTS))

    def rx_id(self, *statuses: int) -> bytes:
        wanted = self.model.ids(*statuses)
        kind = self(st.integers(0, 9))
        if wanted and kind < 8:
            return bytes(self.pick(*wanted))
        return bytes(self.pick(*RX_IDS) if kind < 9 else ZERO32)

    def reason(self) -> bytes:
        return bytes(self.pick(*REASONS))

    def account(self) -> str:
        return str(self.b.h.address(int(self.pick(EXTRA, *ACCOUNTS))))

    def org(self, prefer: list[bytes]) -> bytes:
        if prefer and self(st.booleans()):
            return bytes(self.pick(*prefer))
        return bytes(self.pick(*ORGS))

    # -- block times ----------------------------------------------------------------------
    def timestamp(self, now: int) -> int:
        """The next block's time: mostly now + 1; sometimes the same second, a jump, or a
        prescription's validity bound (exactly, or one second either side)."""
        kind = self.pick("tick", "tick", "same", "seconds", "bound", "bound", "bound", "day", "month")
        if kind == "tick":
            return now + 1
        if kind == "same":
            return now
        if kind == "seconds":
            return now + int(self(st.integers(2, 600)))
        if kind == "day":
            return now + DAY
        if kind == "month":
            return now + 31 * DAY
        bounds = sorted({t + d for r in self.model.rx.values() if r.status != NONE
                         for t in (r.valid_from, r.valid_until) for d in (-1, 0, 1)
                         if now < t + d < 2**40})
        return int(self.pick(*bounds)) if bounds else now + 1

    # -- calls ----------------------------------------------------------------------------
    def call(self, now: int) -> Call:
        b = self.b
        fn = self.pick(
            "dispense", "issue", "review", "dispense", "issue", "review", "dispense",
            "hold", "resume", "cancel", "stop", "markEnteredInError", "expire", "expire", "anchor",
            "anchor", "enroll", "revoke", "suspend", "reinstate", "suspendOrg", "reinstateOrg",
            "voteAddOrg", "voteRemoveOrg", "voteAddValidator", "voteRemoveValidator",
            "getPrescription", "view",
        )
        if fn == "issue":
            return b.rx, fn, self.issue_args(now), self.sender(HA_PRESCRIBER, HB_PRESCRIBER)
        if fn == "dispense":
            rid = self.rx_id(ACTIVE)
            qpf = self.model.rx[rid].quantity_per_fill if rid in self.model.rx else 0
            qpf = qpf or 30
            quantity = self.pick(qpf + 1, 0, U32, qpf - 1) if self.wild() else self.pick(qpf, 1, max(qpf - 1, 1))
            commitment = bytes(self.pick(keccak(text="dispense"), ZERO32))
            return b.rx, fn, (rid, min(quantity, U32), commitment), \
                self.sender(*(PA_PHARMACIST,) * 5, EXTRA)
        if fn == "review":
            return b.rx, fn, (self.rx_id(DRAFT), self.often(True, False), self.reason()), \
                self.sender(HA_REVIEWER, HA_REVIEWER, HB_REVIEWER, HA_PRESCRIBER)
        if fn == "hold":
            return b.rx, fn, (self.rx_id(ACTIVE), self.reason()), \
                self.sender(HA_PRESCRIBER, HA_REVIEWER, HB_REVIEWER, HA_ADMIN)
        if fn == "resume":
            return b.rx, fn, (self.rx_id(ON_HOLD),), self.sender(HA_PRESCRIBER, HA_REVIEWER, HB_PRESCRIBER)
        if fn in ("cancel", "stop"):
            return b.rx, fn, (self.rx_id(DRAFT, ACTIVE, ON_HOLD), self.reason()), \
                self.sender(HA_PRESCRIBER, HA_REVIEWER, HA_ADMIN, HB_PRESCRIBER, PA_ADMIN)
        if fn == "markEnteredInError":
            return b.rx, fn, (self.rx_id(DRAFT, ACTIVE, ON_HOLD, COMPLETED, CANCELLED, STOPPED), self.reason()), \
                self.sender(HA_ADMIN, HA_ADMIN, HA_PRESCRIBER, PA_ADMIN)
        if fn == "expire":
            return b.rx, fn, (self.rx_id(DRAFT, ACTIVE, ON_HOLD),), self.sender(DEPLOYER, AUDITOR, EXTRA)
        if fn == "getPrescription":
            return b.rx, fn, (self.rx_id(*range(1, 8)),), self.sender(DEPLOYER)
        if fn == "anchor":
            root = bytes(self.pick(*ROOTS, ZERO32))
            size = self.pick(1, 1024, 0, U64)
            return b.anchors, fn, (root, size, self.reason()), int(self.pick(*ACCOUNTS))
        if fn == "enroll":
            target = self.b.h.address(self.often(EXTRA, *ACCOUNTS))
            return b.gov, fn, (target, self.pick(3, 1, 2, 4, 5, 0, 6)), self.sender(PA_ADMIN, HA_ADMIN, REG_ADMIN)
        if fn == "revoke":
            return b.gov, fn, (self.account(),), self.sender(HA_ADMIN, PA_ADMIN, REG_ADMIN)
        if fn == "suspend":
            return b.gov, fn, (self.account(), self.reason()), self.sender(AUDITOR, REG_ADMIN)
        if fn == "reinstate":
            target = (self.b.h.address(self.pick(*self.model.suspended))
                      if self.model.suspended and self(st.booleans()) else self.account())
            return b.gov, fn, (target,), self.sender(AUDITOR, REG_ADMIN)
        if fn == "suspendOrg":
            return b.gov, fn, (self.org([]), self.reason()), self.sender(AUDITOR, REG_ADMIN)
        if fn == "reinstateOrg":
            return b.gov, fn, (self.org(self.model.suspended_orgs),), self.sender(AUDITOR, REG_ADMIN)
        if fn == "voteAddOrg":
            args = (self.org([PHARMACY_B]), self.pick(2, 1, 3, 0, 4), self.b.h.address(self.often(EXTRA, *ACCOUNTS)))
            return b.gov, fn, args, self.sender(HA_ADMIN, PA_ADMIN, REG_ADMIN, EXTRA)
        if fn == "voteRemoveOrg":
            return b.gov, fn, (self.org([]),), self.sender(HA_ADMIN, PA_ADMIN, REG_ADMIN)
        if fn in ("voteAddValidator", "voteRemoveValidator"):
            validator = self.pick(sol.VALIDATOR, self.b.h.address(EXTRA), sol.ZERO_ADDRESS)
            return b.gov, fn, (validator,), self.sender(HA_ADMIN, PA_ADMIN, REG_ADMIN)
        view = self.pick("member", "roleOf", "isSuspended", "orgs", "proposalId", "governance")
        if view == "orgs":
            return b.gov, view, (), DEPLOYER
        if view == "governance":
            return self.pick(b.rx, b.anchors), view, (), DEPLOYER
        if view == "proposalId":
            return b.gov, view, (1, sol.PHARMACY_A, 2, self.account()), DEPLOYER
        return b.gov, view, (self.account(),), DEPLOYER

    def issue_args(self, now: int) -> tuple[Any, ...]:
        rid = self.rx_id(NONE) if self(st.integers(0, 9)) else self.rx_id(DRAFT, ACTIVE)
        if not self.wild():
            valid_from = self.pick(now - 60, now, now + 1, now + 30)
            valid_until = max(valid_from + 1, self.pick(now + DAY, now + 60, now + 2, now + 1))
            return (rid, sol.COMMITMENT, sol.PATIENT, self.pick(0, 2, 5), self.pick(1, 2, 3),
                    self.pick(30, 1, 10), valid_from, valid_until)
        valid_from = self.pick(now - 60, now, now + 1, 0, now - DAY, U64)
        valid_until = self.pick(now + DAY, min(valid_from + 1, U64), 2**63, now, now - 1, valid_from, 0, U64)
        return (rid, self.often(sol.COMMITMENT, ZERO32), self.often(sol.PATIENT, ZERO32),
                self.pick(0, 255), self.pick(1, 0, 65535), self.pick(30, 0, U32), valid_from, valid_until)


def record(b: Base, model: Model, call: Call, status: int, events: list[Any]) -> None:
    """Update the model from one call's (native) receipt."""
    _contract, fn, args, _sender = call
    if status != 1:
        return
    if fn == "issue":
        rid, _c, _p, _s, _fills, qpf, valid_from, valid_until = args
        model.rx[rid] = Rx(DRAFT, qpf, valid_from, valid_until)
    elif fn == "suspend":
        model.suspended.append(b.checksum[to_checksum_address(args[0])])
    elif fn == "suspendOrg":
        model.suspended_orgs.append(args[0])
    for event in events:
        if event.name == "StatusChanged" and event.args["rxId"] in model.rx:
            model.rx[event.args["rxId"]].status = event.args["to"]


# ------------------------------------------------------------------------------- running
STATS = {"examples": 0, "calls": 0, "succeeded": 0, "blocks": 0, "time_jumps": 0, "views": 0}
OUTCOMES: Counter[str] = Counter()  # "Contract.fn: ok | revert reason", over all examples


class Runner:
    def __init__(self, b: Base) -> None:
        self.b = b
        self.capture = Capture()
        fresh_chain(b, self.capture)
        self.calls = 0

    def block(self, calls: list[Call], timestamp: int) -> list[tuple[int, list[Any]]]:
        """One block with every call to both engines, everything compared. Returns, per
        call, the status and the decoded events."""
        h = self.b.h
        h.now = timestamp
        self.capture.outputs.clear()
        results = h._twin_block([(c, c.abi.encode_call(fn, args), s) for c, fn, args, s in calls], timestamp)
        n, outputs = len(calls), self.capture.outputs
        assert len(outputs) == 2 * n, "a transaction of the block was not recorded"
        out = []
        for i, ((contract, fn, args, sender), (sol_receipt, nat_receipt, _block)) in enumerate(
                zip(calls, results, strict=True)):
            label = f"block at {timestamp}: {contract.name}.{fn}{args} from account {sender}"
            h._compare_receipts(label, sol_receipt, nat_receipt)
            (sol_error, sol_out), (nat_error, nat_out) = outputs[i], outputs[n + i]
            if (sol_error, h._map_data(sol_out)) != (nat_error, nat_out):
                raise Mismatch(f"{label}: output differs\nSolidity error={sol_error} 0x{sol_out.hex()}"
                               f"\nnative   error={nat_error} 0x{nat_out.hex()}")
            outcome = "ok" if nat_receipt.status else (decode_revert_reason(nat_out) or "malformed")
            OUTCOMES[f"{contract.name}.{fn}: {outcome}"] += 1
            out.append((nat_receipt.status, h._decode_events(nat_receipt.logs)))
        self.calls += n
        return out

    def compare_views(self, used_ids: set[bytes], check: tuple[TwinContract, bytes]) -> int:
        """The views on both engines at the head; returns how many were compared."""
        b, h = self.b, self.b.h
        views = Views(h)
        calls: list[tuple[TwinContract, bytes]] = []
        calls += [(b.rx, b.rx.abi.encode_call("getPrescription", (rid,))) for rid in sorted(used_ids)]
        calls += [(b.gov, b.gov.abi.encode_call(view, (h.address(i),)))
                  for i in ACCOUNTS for view in ("roleOf", "orgOf", "isSuspended")]
        calls += [(b.anchors, b.anchors.abi.encode_call("anchoredAt", (root,))) for root in ROOTS]
        calls += [(b.gov, b.gov.abi.encode_call("orgs", ())), (b.gov, b.gov.abi.encode_call("validators", ()))]
        for contract, data in calls:
            assert contract.native is not None
            sol_out, nat_out = views.call(contract.address, data), views.call(contract.native.address, data)
            if Outcome(sol_out.reverted, h._map_data(sol_out.data)) != nat_out or sol_out.reverted:
                raise Mismatch(f"view {contract.name} 0x{data.hex()}: Solidity {sol_out}, native {nat_out}")
        # One view through Executor.call itself (what eth_call runs), against the above.
        contract, data = check
        assert contract.native is not None
        assert h.compare_call(contract, data, sender=ZERO20) == views.call(contract.address, data)
        return len(calls)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_call_sequences_agree_on_both_engines(data: st.DataObject) -> None:
    b = base()
    runner = Runner(b)
    model = b.model.copy()
    draw = Draw(data, b, model)
    used_ids: set[bytes] = set()
    length = draw(st.integers(3, 12), label="calls")
    while runner.calls < length:
        timestamp = draw.timestamp(b.h.now)
        STATS["time_jumps"] += timestamp - b.h.now > 60
        size = draw(st.integers(1, min(MAX_CALLS_PER_BLOCK, length - runner.calls)), label="block size")
        calls = [draw.call(timestamp) for _ in range(size)]
        for call, (status, events) in zip(calls, runner.block(calls, timestamp), strict=True):
            record(b, model, call, status, events)
            STATS["succeeded"] += status
            if call[0] is b.rx and call[2] and isinstance(call[2][0], bytes):
                used_ids.add(call[2][0])
        STATS["blocks"] += 1
    check = draw.pick(*[(b.rx, b.rx.abi.encode_call("getPrescription", (rid,))) for rid in RX_IDS],
                      (b.gov, b.gov.abi.encode_call("member", (b.h.address(PA_PHARMACIST),))))
    STATS["views"] += runner.compare_views(used_ids, check)
    STATS["examples"] += 1
    STATS["calls"] += runner.calls


def test_the_sequences_exercised_the_contracts() -> None:
    """Runs after the property (file order): many examples, and not only refusals.
    Prints what the calls gave (with -s)."""
    if STATS["examples"] == 0:  # the property was not run (-k): nothing to check
        return
    print("\n".join(f"{n:6d}  {what}" for what, n in sorted(OUTCOMES.items())))
    print(STATS)
    assert STATS["examples"] >= EXAMPLES
    assert STATS["succeeded"] > STATS["calls"] // 4, STATS
    assert STATS["time_jumps"] > EXAMPLES // 10, STATS
    for fn in ("issue", "review", "dispense", "hold", "resume", "cancel", "stop", "markEnteredInError",
               "expire"):
        assert OUTCOMES[f"PrescriptionRegistry.{fn}: ok"] > 0, fn
    for reason in ("Rx: no fills left", "Rx: expired", "Rx: not valid yet",
                   "Rx: quantity above the per-fill limit"):
        assert OUTCOMES[f"PrescriptionRegistry.dispense: {reason}"] > 0, reason
