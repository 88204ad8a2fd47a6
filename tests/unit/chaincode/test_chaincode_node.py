"""The native chaincodes in the node: genesis from GenesisConfig, the txpool's sender check
driven by Governance, and the dev node serving the whole prescription lifecycle."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chaincode_py import NativeChaincodeHost

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts"))
from solidity_harness import PROPOSER, Abi  # noqa: E402

from chaincode_py.genesis import GenesisError  # noqa: E402
from node.chain import Chain  # noqa: E402
from node.genesis import (  # noqa: E402
    DEV_ORGS,
    Enrolment,
    GenesisConfig,
    derive_dev_key,
    dev_accounts,
    dev_genesis,
    dev_validator_key,
)
from node.storage import MemoryStore  # noqa: E402
from node.txpool import TxPool  # noqa: E402
from rxledger.core.addresses import (
    GOVERNANCE,
    PRESCRIPTION_REGISTRY,  # noqa: E402
)
from rxledger.core.artifacts import load_artifact  # noqa: E402
from rxledger.core.errors import TxPoolRefused  # noqa: E402
from rxledger.core.types import decode_transaction  # noqa: E402

RX = Abi(load_artifact("PrescriptionRegistry")["abi"])
GOV = Abi(load_artifact("Governance")["abi"])
ACCOUNTS = dev_accounts()
ZERO32 = b"\x00" * 32
T0 = 1_700_000_000


def signed(key: bytes, nonce: int, to: bytes, data: bytes, gas: int = 500_000) -> Any:
    tx = dict(nonce=nonce, gasPrice=0, gas=gas, to=to_checksum_address(to), value=0, data=data, chainId=2024)
    return decode_transaction(bytes(Account.from_key(key).sign_transaction(tx).raw_transaction))


def view(chain: Chain, abi: Abi, to: bytes, fn: str, *args: Any) -> Any:
    env = chain.env_for(chain.head, chain.head.timestamp, PROPOSER)
    out = chain.executor.call(chain.head.state_root, env, sender=b"\x00" * 20, to=to,
                              data=abi.encode_call(fn, args)).output
    return abi.decode_output(fn, out)


# ------------------------------------------------------------------------------- genesis
def test_dev_genesis_enrols_the_interfaces_accounts_in_native_governance() -> None:
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    expected = [(a.org, a.role) for a in ACCOUNTS]
    roles = {"prescriber": 1, "hospital pharmacist": 2, "pharmacist": 3, "auditor": 4, "org admin": 5}
    for account, (org, role) in zip(ACCOUNTS, expected, strict=True):
        member = view(chain, GOV, GOVERNANCE, "member", to_checksum_address(account.address))
        if role is None:
            assert member == (ZERO32, 0, 0, False, False)  # the deployer
        else:
            assert member[0] == keccak(text=org) and member[2] == roles[role]
    assert view(chain, GOV, GOVERNANCE, "orgs") == tuple(keccak(text=n) for n, _ in DEV_ORGS)
    validator = to_checksum_address(Account.from_key(dev_validator_key()).address)
    assert view(chain, GOV, GOVERNANCE, "validators") == (validator,)
    assert view(chain, RX, PRESCRIPTION_REGISTRY, "governance") == to_checksum_address(GOVERNANCE)


def test_genesis_orgs_are_derived_when_not_listed() -> None:
    genesis = GenesisConfig(chain_id=2024, validators=(b"\x01" * 20,), enrolments=dev_genesis().enrolments)
    assert genesis.organisations() == (("hospital-a", "hospital"), ("pharmacy-a", "pharmacy"),
                                       ("regulator", "regulator"), ("hospital-b", "hospital"))
    chain = Chain(MemoryStore(), genesis, NativeChaincodeHost)
    assert view(chain, GOV, GOVERNANCE, "orgs")[1] == keccak(text="pharmacy-a")
    admins_only = GenesisConfig(chain_id=1, validators=(), enrolments=(
        Enrolment(b"\x01" * 20, "hospital-x", "org admin"), Enrolment(b"\x02" * 20, "regulator", "org admin")))
    assert admins_only.organisations() == (("hospital-x", "hospital"), ("regulator", "regulator"))
    unknown = GenesisConfig(chain_id=1, validators=(), enrolments=(Enrolment(b"\x01" * 20, "st-mary", "org admin"),))
    with pytest.raises(ValueError, match="st-mary"):
        unknown.organisations()
    with pytest.raises(GenesisError, match="st-mary"):
        Chain(MemoryStore(), unknown, NativeChaincodeHost)
    # listed, the kinds are taken as given
    listed = replace(unknown, orgs=(("st-mary", "pharmacy"),))
    chain = Chain(MemoryStore(), listed, NativeChaincodeHost)
    assert view(chain, GOV, GOVERNANCE, "orgKind", keccak(text="st-mary")) == 2


def test_genesis_config_encoding_is_backward_compatible() -> None:
    old = GenesisConfig(chain_id=7, validators=(b"\x01" * 20,), enrolments=(Enrolment(b"\x02" * 20, "h", "org admin"),))
    assert "orgs" not in json.loads(old.encode())
    assert GenesisConfig.decode(old.encode()) == old
    new = dev_genesis()
    assert json.loads(new.encode())["orgs"] == [list(o) for o in DEV_ORGS]
    assert GenesisConfig.decode(new.encode()) == new


@pytest.mark.parametrize(("change", "reason"), [
    (dict(orgs=(("hospital-a", "hospital"), ("hospital-a", "hospital"))), "Gov: organisation exists"),
    (dict(orgs=(("hospital-a", "clinic"),)), "unknown kind"),
    (dict(orgs=(("hospital-a", "hospital"),)), "Gov: unknown organisation"),  # pharmacy-a not listed
    (dict(enrolments=(Enrolment(b"\x01" * 20, "hospital-a", "pharmacist"),)), "Gov: role does not fit"),
    (dict(enrolments=(Enrolment(b"\x01" * 20, "hospital-a", "prescriber"),) * 2), "Gov: already enrolled"),
    (dict(enrolments=(Enrolment(b"\x01" * 20, "hospital-a", "nurse"),)), "unknown role"),
    (dict(enrolments=(Enrolment(b"\x00" * 20, "hospital-a", "prescriber"),)), "Gov: zero address"),
    (dict(validators=(b"\x05" * 20, b"\x05" * 20)), "Gov: already a validator"),
])
def test_a_bad_genesis_is_refused_as_the_solidity_constructor_refuses_it(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(GenesisError, match=reason):
        Chain(MemoryStore(), replace(dev_genesis(), **change), NativeChaincodeHost)


def test_a_genesis_without_organisations_leaves_governance_empty() -> None:
    deployer = Enrolment(ACCOUNTS[9].address, None, None)
    chain = Chain(MemoryStore(), GenesisConfig(chain_id=2024, validators=(b"\x01" * 20,), enrolments=(deployer,)), NativeChaincodeHost)
    assert view(chain, GOV, GOVERNANCE, "orgs") == ()
    assert chain.is_enrolled(ACCOUNTS[9].address) and not chain.is_enrolled(ACCOUNTS[0].address)


# ------------------------------------------------------------------- sender permission
def make_pool(chain: Chain) -> TxPool:
    return TxPool(chain_id=2024, block_gas_limit=chain.head.gas_limit, state_nonce=chain.state_nonce,
                  is_enrolled=chain.is_enrolled)


def run(chain: Chain, txs: list[Any], timestamp: int) -> list[int]:
    block, execution = chain.build_block(txs, timestamp=timestamp, proposer=PROPOSER)
    chain.commit_block(block, execution)
    return [r.status for r in execution.receipts]


def test_governance_decides_who_may_send() -> None:
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    pool = make_pool(chain)
    newcomer = derive_dev_key(300)
    newcomer_address = Account.from_key(newcomer).address
    for account in ACCOUNTS:  # genesis roles, and the deployer without one
        assert chain.is_enrolled(account.address)
    with pytest.raises(TxPoolRefused, match=f"sender {newcomer_address.lower()} is not enrolled"):
        pool.add(signed(newcomer, 0, PRESCRIPTION_REGISTRY, b""))
    # enrolled on-chain by hospital-a's admin: may send from the next block on
    assert run(chain, [signed(ACCOUNTS[0].private_key, 0, GOVERNANCE,
                              GOV.encode_call("enroll", (newcomer_address, 1)))], T0) == [1]
    issue = RX.encode_call("issue", (keccak(text="rx-n"), keccak(text="c"), keccak(text="p"), 0, 1, 1, 0, 2**40))
    pool.add(signed(newcomer, 0, PRESCRIPTION_REGISTRY, issue))
    assert run(chain, pool.pending(), T0 + 1) == [1]
    pool.remove(list(chain.block_by_number(2).transactions))  # type: ignore[union-attr]
    # revoked: refused at the door, with the message saying so
    assert run(chain, [signed(ACCOUNTS[0].private_key, 1, GOVERNANCE,
                              GOV.encode_call("revoke", (newcomer_address,)))], T0 + 2) == [1]
    with pytest.raises(TxPoolRefused, match="not enrolled on this permissioned chain; an organisation admin"):
        pool.add(signed(newcomer, 1, PRESCRIPTION_REGISTRY, issue))
    # suspension does not stop sending (the contracts refuse, and the refusal is on record)
    assert run(chain, [signed(ACCOUNTS[4].private_key, 0, GOVERNANCE,
                              GOV.encode_call("suspend", (to_checksum_address(ACCOUNTS[1].address), ZERO32)))],
               T0 + 3) == [1]
    assert chain.is_enrolled(ACCOUNTS[1].address)
    # removing an organisation un-enrols its accounts at once
    for n, voter in enumerate((0, 7, 8)):
        nonce = chain.state_nonce(ACCOUNTS[voter].address)
        assert run(chain, [signed(ACCOUNTS[voter].private_key, nonce, GOVERNANCE,
                                  GOV.encode_call("voteRemoveOrg", (keccak(text="hospital-b"),)))], T0 + 4 + n) == [1]
    assert view(chain, GOV, GOVERNANCE, "orgKind", keccak(text="hospital-b")) == 0
    assert not chain.is_enrolled(ACCOUNTS[5].address) and not chain.is_enrolled(ACCOUNTS[6].address)
    assert chain.is_enrolled(ACCOUNTS[9].address)  # the deployer stays


def test_a_revoked_senders_waiting_transactions_leave_the_pool(tmp_path: Path) -> None:
    from node.config import NodeConfig
    from node.service import NodeService

    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(), store=MemoryStore(), chaincode=NativeChaincodeHost)
    try:
        chain = service.chain
        newcomer = derive_dev_key(302)
        address = Account.from_key(newcomer).address
        assert run(chain, [signed(ACCOUNTS[0].private_key, 0, GOVERNANCE, GOV.encode_call("enroll", (address, 1)))],
                   T0) == [1]
        waiting = [service.submit_raw_transaction(signed(newcomer, n, PRESCRIPTION_REGISTRY, b"").raw)
                   for n in range(2)]
        other = service.submit_raw_transaction(signed(ACCOUNTS[1].private_key, 0, PRESCRIPTION_REGISTRY, b"").raw)
        assert len(service.pool) == 3
        assert run(chain, [signed(ACCOUNTS[0].private_key, 1, GOVERNANCE, GOV.encode_call("revoke", (address,)))],
                   T0 + 1) == [1]
        assert all(h not in service.pool for h in waiting) and other in service.pool
    finally:
        service.close()


def test_sender_check_is_cached_per_head() -> None:
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    host = chain.chaincode
    calls: list[bytes] = []
    original = host.is_enrolled  # type: ignore[attr-defined]

    def counting(address: bytes) -> bool:
        calls.append(address)
        return bool(original(address))

    host.is_enrolled = counting  # type: ignore[attr-defined]
    for _ in range(3):
        assert chain.is_enrolled(ACCOUNTS[1].address)
    assert calls == [ACCOUNTS[1].address]
    run(chain, [], T0)
    assert chain.is_enrolled(ACCOUNTS[1].address)
    assert len(calls) == 2


# ------------------------------------------------------------------------------ dev node
def test_the_dev_node_serves_the_prescription_lifecycle(tmp_path: Path) -> None:
    from node.config import NodeConfig
    from node.consensus.qbft import QbftConfig
    from node.service import NodeService

    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(),
                          validator_key=dev_validator_key(), store=MemoryStore(), chaincode=NativeChaincodeHost)
    service.start_consensus(QbftConfig(block_period=0, empty_block_period=None))
    try:
        rid = keccak(text="rx-dev")
        steps = [
            (1, PRESCRIPTION_REGISTRY, RX.encode_call("issue", (rid, keccak(text="c"), keccak(text="p"), 2, 1, 30,
                                                                0, 2**40))),
            (2, PRESCRIPTION_REGISTRY, RX.encode_call("review", (rid, True, ZERO32))),
            (3, PRESCRIPTION_REGISTRY, RX.encode_call("dispense", (rid, 30, keccak(text="d")))),
        ]
        for sender, to, data in steps:
            nonce = service.pending_nonce(ACCOUNTS[sender].address)
            stx = signed(ACCOUNTS[sender].private_key, nonce, to, data)
            head = service.chain.head.number
            service.submit_raw_transaction(stx.raw)
            assert service.wait_for_block(head, timeout=20)
            location = service.chain.locate_transaction(stx.hash)
            assert location is not None and location.receipt.status == 1
        record = view(service.chain, RX, PRESCRIPTION_REGISTRY, "getPrescription", rid)
        assert record[11] == 4 and record[6] == 1  # completed after its one fill
        # a stranger is refused at the door
        with pytest.raises(TxPoolRefused, match="not enrolled"):
            service.submit_raw_transaction(signed(derive_dev_key(301), 0, PRESCRIPTION_REGISTRY, b"").raw)
    finally:
        service.close()
