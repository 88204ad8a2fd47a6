"""The native host: journal, block writes, the commitment and its place in the state root,
restarts on LevelDB, re-execution, and what a chain at genesis holds."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts"))
from solidity_harness import PROPOSER, Abi  # noqa: E402

from chaincode_py import NativeChaincodeHost, StaleChaincodeState, block_commitment  # noqa: E402
from chaincode_py.host import COMMITMENT_KEY  # noqa: E402
from node.chain import Chain  # noqa: E402
from node.execution.chaincode import PLACEHOLDER_CODE, BlockInfo, ChaincodeCall, NoChaincode  # noqa: E402
from node.execution.executor import CHAINCODE_ROOT_ADDRESS  # noqa: E402
from node.genesis import dev_accounts, dev_genesis, dev_validator_key  # noqa: E402
from node.storage import MemoryStore  # noqa: E402
from node.storage.chain_store import CHAINCODE  # noqa: E402
from node.storage.leveldb import LevelDBStore  # noqa: E402
from rxledger.core.addresses import ANCHOR_REGISTRY, GOVERNANCE, PRESCRIPTION_REGISTRY  # noqa: E402
from rxledger.core.artifacts import load_artifact  # noqa: E402
from rxledger.core.crypto import private_key_to_address  # noqa: E402
from rxledger.core.errors import InvalidBlock, NodeError, Reverted  # noqa: E402
from rxledger.core.types import decode_transaction  # noqa: E402

RX = Abi(load_artifact("PrescriptionRegistry")["abi"])
GOV = Abi(load_artifact("Governance")["abi"])
ACCOUNTS = dev_accounts()
ZERO32 = b"\x00" * 32
T0 = 1_700_000_000
# The coinbase of blocks another chain re-executes: a validator (node.validation's rule).
VALIDATOR = private_key_to_address(dev_validator_key())


def signed(index: int, nonce: int, to: bytes, data: bytes, gas: int = 500_000) -> Any:
    tx = dict(nonce=nonce, gasPrice=0, gas=gas, to=to_checksum_address(to), value=0, data=data, chainId=2024)
    raw = Account.from_key(ACCOUNTS[index].private_key).sign_transaction(tx).raw_transaction
    return decode_transaction(bytes(raw))


def issue_data(n: int | str, valid_until: int = 2**40) -> bytes:
    return RX.encode_call("issue", (keccak(text=f"rx-{n}"), keccak(text="c"), keccak(text="p"), 0, 1, 30, 0,
                                    valid_until))


def commit(chain: Chain, txs: list[Any], timestamp: int) -> Any:
    block, execution = chain.build_block(txs, timestamp=timestamp, proposer=VALIDATOR)
    chain.commit_block(block, execution)
    return block, execution


def get_record(chain: Chain, n: int | str) -> Any:
    env = chain.env_for(chain.head, chain.head.timestamp, PROPOSER)
    out = chain.executor.call(chain.head.state_root, env, sender=b"\x00" * 20, to=PRESCRIPTION_REGISTRY,
                              data=RX.encode_call("getPrescription", (keccak(text=f"rx-{n}"),))).output
    return RX.decode_output("getPrescription", out)


def block_info(number: int = 1) -> BlockInfo:
    return BlockInfo(number, T0, PROPOSER, 2024)


# ------------------------------------------------------------------------------------ journal
def test_journal_nested_snapshots_revert_and_commit() -> None:
    host = NativeChaincodeHost(MemoryStore())
    session = host.open_session(host.head_commitment(), block_info())
    a, b, c = (CHAINCODE + bytes([i]) * 21 for i in (1, 2, 3))
    outer = session.snapshot()
    session.write(a, b"1")
    inner = session.snapshot()
    session.write(a, b"2")
    session.write(b, b"x")
    session.revert(inner)
    assert (session.read(a), session.read(b)) == (b"1", b"")
    inner = session.snapshot()
    session.write(c, b"y")
    innermost = session.snapshot()
    session.write(c, b"z")
    session.commit(inner)  # closes innermost too: its write is kept
    assert session.read(c) == b"z"
    with pytest.raises(ValueError):
        session.revert(innermost)  # closed
    session.revert(outer)  # undoes everything, committed inner checkpoints included
    assert (session.read(a), session.read(b), session.read(c)) == (b"", b"", b"")
    assert session.net_writes() == {}
    writes, commitment = session.finish()
    # nothing to store but the commitment: the block read three (absent) keys
    assert writes == {COMMITMENT_KEY: commitment}
    assert commitment == block_commitment(host.head_commitment(), {a: b"", b: b"", c: b""}, {})


def test_a_write_back_to_the_original_value_is_no_net_write() -> None:
    store = MemoryStore()
    key = CHAINCODE + b"\x07" * 21
    store.put(key, b"old")
    host = NativeChaincodeHost(store)
    session = host.open_session(host.head_commitment(), block_info())
    session.write(key, b"new")
    session.write(key, b"old")
    other = CHAINCODE + b"\x08" * 21
    session.write(other, b"v")
    session.write(key + b"x", b"")  # deleting a missing key changes nothing
    writes, commitment = session.finish()
    assert writes == {other: b"v", COMMITMENT_KEY: commitment}
    reads = [[key[1:], b"old"], [(key + b"x")[1:], b""], [other[1:], b""]]
    assert commitment == keccak(ZERO32 + keccak(rlp.encode([sorted(reads), [[other[1:], b"v"]]])))
    with pytest.raises(RuntimeError):
        session.write(other, b"w")


def test_block_commitment_is_the_accumulator_over_sorted_reads_and_writes() -> None:
    parent = keccak(b"parent")
    k1, k2, k3 = (CHAINCODE + bytes([i]) * 21 for i in (1, 2, 3))
    reads = {k2: b"a", k1: b"x", k3: b""}  # values before the block; b"": absent
    writes = {k2: b"b", k1: b""}  # values after it; b"": deleted
    expected = keccak(parent + keccak(rlp.encode([
        [[k1[1:], b"x"], [k2[1:], b"a"], [k3[1:], b""]],
        [[k1[1:], b""], [k2[1:], b"b"]],
    ])))
    assert block_commitment(parent, reads, writes) == expected
    assert block_commitment(parent, {}, {}) == parent
    assert block_commitment(parent, {k3: b""}, {}) != parent  # a read alone is committed to


def test_the_commitments_rlp_is_pyrlps() -> None:
    from chaincode_py.host import _rlp_pairs

    sizes = (0, 1, 2, 55, 56, 57, 255, 256, 70_000)
    for i, size in enumerate(sizes):
        for first in (0x00, 0x7F, 0x80, 0xFF):
            values = {CHAINCODE + bytes([j]) * (j + 1): bytes([first]) * size for j in range(i + 1)}
            expected = rlp.encode([[k[1:], values[k]] for k in sorted(values)])
            assert _rlp_pairs(values) == expected, (size, first)
    assert _rlp_pairs({}) == rlp.encode([])


def test_a_reverted_call_leaves_no_chaincode_writes() -> None:
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    before = dict(chain.store.iterate(CHAINCODE))
    bad = signed(3, 0, PRESCRIPTION_REGISTRY, issue_data(1))  # a pharmacist cannot issue
    block, execution = chain.build_block([bad], timestamp=T0, proposer=PROPOSER)
    assert execution.receipts[0].status == 0 and execution.receipts[0].logs == ()
    # nothing but the commitment (which covers what the refused call read)
    assert [k for k in execution.writes if k.startswith(CHAINCODE)] == [COMMITMENT_KEY]
    chain.commit_block(block, execution)
    after = dict(chain.store.iterate(CHAINCODE))
    assert after.pop(COMMITMENT_KEY) != before.pop(COMMITMENT_KEY)
    assert after == before


def _push(value: int, size: int) -> bytes:
    return bytes([0x5F + size]) + value.to_bytes(size, "big")


def caller_contract(calls: list[tuple[bytes, int]], *, revert_at_end: bool) -> bytes:
    """Init code of a contract whose code CALLs 0x…1001 with each (calldata, gas) in turn,
    ignoring failures, then stops or reverts. Hand-assembled EVM."""
    code = b""
    for data, gas in calls:
        padded = data.ljust(-(-len(data) // 32) * 32, b"\x00")
        for i in range(0, len(padded), 32):
            code += b"\x7f" + padded[i:i + 32] + _push(i, 2) + b"\x52"  # PUSH32 chunk, PUSH2 i, MSTORE
        code += (_push(0, 1) + _push(0, 1) + _push(len(data), 2) + _push(0, 1) + _push(0, 1)
                 + _push(0x1001, 2) + _push(gas, 3) + b"\xf1\x50")  # CALL, POP
    code += (_push(0, 1) + _push(0, 1) + b"\xfd") if revert_at_end else b"\x00"
    n = len(code)
    init = _push(n, 2) + _push(15, 2) + _push(0, 1) + b"\x39" + _push(n, 2) + _push(0, 1) + b"\xf3"
    assert len(init) == 15
    return init + code


def deploy(chain: Chain, code: bytes, nonce: int, timestamp: int) -> bytes:
    tx = dict(nonce=nonce, gasPrice=0, gas=3_000_000, value=0, data=code, chainId=2024)
    raw = Account.from_key(ACCOUNTS[9].private_key).sign_transaction(tx).raw_transaction
    _block, execution = commit(chain, [decode_transaction(bytes(raw))], timestamp)
    assert execution.receipts[0].status == 1
    return keccak(rlp.encode([ACCOUNTS[9].address, nonce]))[12:]


def test_calls_from_a_contract_revert_with_the_evm_journal() -> None:
    """A contract calls the native registry: a sub-call that runs out of gas after writing
    loses its writes while the first sub-call's stay; a contract that reverts after a
    successful sub-call takes that sub-call's writes and logs with it."""
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    partial = deploy(chain, caller_contract([(issue_data("a"), 300_000), (issue_data("b"), 60_000)],
                                            revert_at_end=False), 0, T0)
    reverting = deploy(chain, caller_contract([(issue_data("c"), 300_000)], revert_at_end=True), 1, T0 + 1)
    # both contracts become prescribers of hospital-a (the admin enrols them)
    enrol = [signed(0, n, GOVERNANCE, GOV.encode_call("enroll", (to_checksum_address(a), 1)))
             for n, a in enumerate((partial, reverting))]
    _block, execution = commit(chain, enrol, T0 + 2)
    assert [r.status for r in execution.receipts] == [1, 1]
    tx_partial = signed(1, 0, partial, b"", gas=1_000_000)
    tx_reverting = signed(1, 1, reverting, b"", gas=1_000_000)
    _block, execution = commit(chain, [tx_partial, tx_reverting], T0 + 3)
    first, second = execution.receipts
    assert first.status == 1
    assert [log.address for log in first.logs] == [PRESCRIPTION_REGISTRY] * 2  # issue(a) only
    assert second.status == 0 and second.logs == ()
    assert get_record(chain, "a")[2] == to_checksum_address(partial) and get_record(chain, "a")[11] == 1
    assert get_record(chain, "b")[11] == 0  # out of gas after its write: undone
    assert get_record(chain, "c")[11] == 0  # the caller reverted: undone
    # what reached the store is exactly one new record and the commitment
    rx_writes = [k for k in execution.writes if k.startswith(CHAINCODE + PRESCRIPTION_REGISTRY)]
    assert rx_writes == [CHAINCODE + PRESCRIPTION_REGISTRY + b"p" + keccak(text="rx-a")]


def test_out_of_gas_fails_the_call_and_consumes_all_gas() -> None:
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    data = issue_data("gas")
    env = chain.env_for(chain.head, T0, PROPOSER)
    needed = chain.executor.estimate_gas(chain.head.state_root, env, sender=ACCOUNTS[1].address,
                                         to=PRESCRIPTION_REGISTRY, data=data)
    assert 100_000 < needed < 200_000  # EVM-like: a new record and two logs
    short = signed(1, 0, PRESCRIPTION_REGISTRY, data, gas=needed - 1)
    _block, execution = commit(chain, [short], T0)
    assert execution.receipts[0].status == 0 and execution.gas_used == needed - 1
    assert get_record(chain, "gas")[11] == 0
    _block, execution = commit(chain, [signed(1, 1, PRESCRIPTION_REGISTRY, data, gas=needed)], T0 + 1)
    assert execution.receipts[0].status == 1


def test_static_calls_cannot_write() -> None:
    host = NativeChaincodeHost(MemoryStore())
    host.store.put(COMMITMENT_KEY, b"\x00" * 32)
    session = host.open_session(ZERO32, block_info())
    call = ChaincodeCall(GOVERNANCE, ACCOUNTS[0].address, ACCOUNTS[0].address, 0,
                         GOV.encode_call("roleOf", (to_checksum_address(ACCOUNTS[1].address),)),
                         100_000, True, block_info())
    assert session.call(call).reverted is False
    genesis_chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    host = genesis_chain.chaincode
    assert isinstance(host, NativeChaincodeHost)
    session = host.open_session(host.head_commitment(), block_info())
    enroll = GOV.encode_call("enroll", (to_checksum_address(b"\x55" * 20), 1))
    static = replace(call, data=enroll, is_static=True)
    result = session.call(static)
    assert result.reverted and result.output == b"" and result.gas_used == static.gas
    assert session.net_writes() == {}
    # the same call, not static, enrols
    assert session.call(replace(static, is_static=False)).reverted is False
    # a static call that reverts before writing reverts with its reason, as in Solidity
    refused = session.call(replace(static, sender=ACCOUNTS[1].address))
    assert refused.reverted and b"Gov: not an org admin" in refused.output


# ---------------------------------------------------------------------- genesis and roots
def test_genesis_state_is_in_the_first_block_and_its_state_root() -> None:
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    host = chain.chaincode
    assert isinstance(host, NativeChaincodeHost)
    commitment = host.head_commitment()
    assert commitment != ZERO32
    slot = chain.executor.get_storage(chain.head.state_root, CHAINCODE_ROOT_ADDRESS, 0)
    assert slot.to_bytes(32, "big") == commitment
    # the reserved addresses look like contracts (EXTCODESIZE > 0 for Solidity callers)
    for address in (PRESCRIPTION_REGISTRY, GOVERNANCE, ANCHOR_REGISTRY):
        assert chain.executor.get_code(chain.head.state_root, address) == PLACEHOLDER_CODE
    bare = Chain(MemoryStore(), dev_genesis(), chaincode=NoChaincode())
    assert bare.head.state_root != chain.head.state_root
    assert bare.genesis_hash != chain.genesis_hash
    # every dev chain has the same genesis
    assert Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost).genesis_hash == chain.genesis_hash


def test_different_chaincode_writes_give_different_state_roots() -> None:
    a, b = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost), Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    block_a, _ = commit(a, [signed(1, 0, PRESCRIPTION_REGISTRY, issue_data("x"))], T0)
    block_b, _ = commit(b, [signed(1, 0, PRESCRIPTION_REGISTRY, issue_data("y"))], T0)
    assert block_a.header.state_root != block_b.header.state_root
    # The same transaction on another chain gives the same block: validators agree.
    c = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    c.verify_execution(block_a)


def test_the_commitment_moves_with_every_block_that_touches_chaincode_state() -> None:
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    host = chain.chaincode
    assert isinstance(host, NativeChaincodeHost)
    before = host.head_commitment()
    plain = signed(1, 0, b"\x42" * 20, b"", gas=21_000)
    _block, execution = commit(chain, [plain], T0)
    assert host.head_commitment() == before and COMMITMENT_KEY not in execution.writes
    view = signed(1, 1, GOVERNANCE, GOV.encode_call("roleOf", (to_checksum_address(ACCOUNTS[1].address),)))
    _block, execution = commit(chain, [view], T0 + 1)
    assert execution.receipts[0].status == 1
    assert not [k for k in execution.writes if k.startswith(CHAINCODE + GOVERNANCE)]
    after_view = host.head_commitment()
    assert after_view == execution.writes[COMMITMENT_KEY] != before  # what it read is committed
    _block, execution = commit(chain, [signed(1, 2, PRESCRIPTION_REGISTRY, issue_data(1))], T0 + 2)
    assert host.head_commitment() == execution.writes[COMMITMENT_KEY] != after_view


def test_reexecution_matches_and_a_validator_with_other_chaincode_state_rejects() -> None:
    leader, follower, diverged = (Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost) for _ in range(3))
    txs = [signed(1, 0, PRESCRIPTION_REGISTRY, issue_data(1)),
           signed(2, 0, PRESCRIPTION_REGISTRY, RX.encode_call("review", (keccak(text="rx-1"), True, ZERO32))),
           signed(3, 0, PRESCRIPTION_REGISTRY, RX.encode_call("dispense", (keccak(text="rx-1"), 30, ZERO32)))]
    block, execution = leader.build_block(txs, timestamp=T0, proposer=VALIDATOR)
    assert [r.status for r in execution.receipts] == [1, 1, 1]
    again = follower.verify_execution(block)
    assert again.writes == execution.writes and again.state_root == execution.state_root
    # A validator whose chaincode state differs where the block reads it (here: a record
    # the block does not change, but reads: pharmacy-a's) computes another state root
    # and rejects the block, even though every transaction has the same outcome there.
    key = CHAINCODE + GOVERNANCE + b"o" + keccak(text="pharmacy-a")
    record = diverged.store.get(key)
    assert record is not None
    diverged.store.put(key, record[:2] + b"\x00\x00\x00\x07" + record[6:])  # admins 1 -> 7
    diverged_run = diverged.executor.execute_block(
        diverged.head.state_root, diverged.env_for(diverged.head, T0, VALIDATOR), txs, skip_invalid=False)
    assert [r.status for r in diverged_run.receipts] == [1, 1, 1]
    with pytest.raises(InvalidBlock, match="state root"):
        diverged.verify_execution(block)
    leader.commit_block(block, execution)
    assert get_record(leader, 1)[11] == 4  # completed


def test_chaincode_state_survives_a_restart_on_leveldb(tmp_path: Path) -> None:
    store = LevelDBStore(str(tmp_path / "db"))
    chain = Chain(store, dev_genesis(), NativeChaincodeHost)
    commit(chain, [signed(1, 0, PRESCRIPTION_REGISTRY, issue_data(1))], T0)
    commit(chain, [signed(2, 0, PRESCRIPTION_REGISTRY, RX.encode_call("review", (keccak(text="rx-1"), True, ZERO32)))],
           T0 + 1)
    head = chain.head
    record = get_record(chain, 1)
    store.close()
    store = LevelDBStore(str(tmp_path / "db"))
    reopened = Chain(store, dev_genesis(), NativeChaincodeHost)
    assert reopened.head == head
    assert get_record(reopened, 1) == record and record[11] == 2
    # and carries on: a pharmacist dispenses in the next block, on top of the stored state
    _block, execution = commit(reopened, [signed(3, 0, PRESCRIPTION_REGISTRY, RX.encode_call(
        "dispense", (keccak(text="rx-1"), 30, ZERO32)))], T0 + 2)
    assert execution.receipts[0].status == 1
    store.close()


def test_a_data_dir_whose_genesis_block_differs_is_refused(tmp_path: Path) -> None:
    """A data dir made without the native chaincodes (an older version) has the same genesis
    config but another genesis block: refused rather than run without governance state."""
    store = MemoryStore()
    Chain(store, dev_genesis(), chaincode=NoChaincode())
    with pytest.raises(NodeError, match="genesis block"):
        Chain(store, dev_genesis(), NativeChaincodeHost)


def test_calls_into_chaincode_need_the_heads_state() -> None:
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    genesis_root = chain.head.state_root
    commit(chain, [signed(1, 0, PRESCRIPTION_REGISTRY, issue_data(1))], T0)
    env = chain.env_for(chain.head, T0 + 1, PROPOSER)
    data = RX.encode_call("getPrescription", (keccak(text="rx-1"),))
    with pytest.raises(StaleChaincodeState, match="head block only"):
        chain.executor.call(genesis_root, env, sender=b"\x00" * 20, to=PRESCRIPTION_REGISTRY, data=data)
    # an old state still answers calls that never reach chaincode
    assert chain.executor.call(genesis_root, env, sender=b"\x00" * 20, to=b"\x42" * 20, data=b"").output == b""
    with pytest.raises(Reverted):  # and the head answers
        chain.executor.call(chain.head.state_root, env, sender=b"\x00" * 20, to=PRESCRIPTION_REGISTRY, data=b"")


def test_a_call_during_which_the_head_moves_is_refused() -> None:
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    host = chain.chaincode
    assert isinstance(host, NativeChaincodeHost)
    session = host.open_session(host.head_commitment(), block_info())
    call = ChaincodeCall(PRESCRIPTION_REGISTRY, b"\x00" * 20, b"\x00" * 20, 0,
                         RX.encode_call("getPrescription", (ZERO32,)), 100_000, False, block_info())
    assert session.call(call).reverted is False
    commit(chain, [signed(1, 0, PRESCRIPTION_REGISTRY, issue_data(1))], T0)
    with pytest.raises(StaleChaincodeState):
        session.call(call)


def test_a_solidity_registry_can_use_the_native_governance() -> None:
    """Solidity contracts reach chaincode through the EVM: a PrescriptionRegistry deployed
    with governance = 0x…1002 asks the native Governance `member()` by STATICCALL."""
    from solidity_harness import EvmHarness

    h = EvmHarness()
    registry = h.deploy("PrescriptionRegistry", GOVERNANCE)
    rid = keccak(text="sol-on-native")
    res = h.transact(registry, "issue", rid, keccak(text="c"), keccak(text="p"), 0, 1, 30, 0, 2**40, sender=1)
    assert res.status == 1 and res.events[0].args["hospital"] == keccak(text="hospital-a")
    refused = h.transact(registry, "issue", keccak(text="x"), keccak(text="c"), keccak(text="p"), 0, 1, 30, 0,
                         2**40, sender=3)
    assert refused.reason == "Rx: not a prescriber"
    # governance changes made natively apply to it at once
    gov = h.attach("Governance", GOVERNANCE)
    assert h.transact(gov, "suspend", h.address(2), ZERO32, sender=4).status == 1
    assert h.transact(registry, "review", rid, True, ZERO32, sender=2).reason == "Rx: account suspended"
