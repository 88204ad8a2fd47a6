"""node.chain and node.execution: genesis, building, verifying and committing blocks on
real LevelDB files, the chaincode hook, and validator votes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from chaincode_py import NativeChaincodeHost
from node.chain import Chain
from node.consensus.validators import apply_votes, quorum, validators_commitment
from node.execution.chaincode import BlockInfo, ChaincodeCall, ChaincodeResult
from node.genesis import dev_accounts, dev_genesis, dev_validator_key
from node.storage import LevelDBStore, MemoryStore
from rxledger.core.addresses import PRESCRIPTION_REGISTRY
from rxledger.core.artifacts import load_artifact
from rxledger.core.crypto import private_key_to_address
from rxledger.core.errors import ExecutionError, InvalidBlock, NodeError, Reverted
from rxledger.core.types import Log, Vote, decode_extra, decode_transaction

ACCOUNTS = dev_accounts()
DEPLOYER = Account.from_key(ACCOUNTS[9].private_key)
VALIDATOR = private_key_to_address(dev_validator_key())
COUNTER = load_artifact("Counter")


def selector(sig: str) -> bytes:
    return keccak(text=sig)[:4]


def signed(nonce: int, *, to: bytes | None = None, data: bytes = b"", gas: int = 200_000, account=DEPLOYER):
    tx = dict(nonce=nonce, gasPrice=0, gas=gas, value=0, data=data, chainId=2024)
    if to is not None:
        tx["to"] = to_checksum_address(to)
    return decode_transaction(bytes(account.sign_transaction(tx).raw_transaction))


def deploy_counter(chain: Chain) -> bytes:
    code = bytes.fromhex(COUNTER["bytecode"][2:]) + abi_encode(["uint256"], [5])
    block, ex = chain.build_block([signed(0, data=code, gas=1_000_000)], timestamp=int(time.time()),
                                  proposer=VALIDATOR)
    assert ex.receipts[0].status == 1
    chain.commit_block(block, ex)
    import rlp
    return keccak(rlp.encode([DEPLOYER.address and bytes.fromhex(DEPLOYER.address[2:]), 0]))[12:]


def test_genesis_is_deterministic_and_reopens(tmp_path):
    a = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    b = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    assert a.genesis_hash == b.genesis_hash == a.head.hash
    extra = decode_extra(a.head.extra_data)
    assert extra.validators == (VALIDATOR,)
    assert extra.vanity == validators_commitment([VALIDATOR])
    store = LevelDBStore(tmp_path / "db")
    Chain(store, dev_genesis(), NativeChaincodeHost)
    store.close()
    store = LevelDBStore(tmp_path / "db")
    assert Chain(store, dev_genesis(), NativeChaincodeHost).genesis_hash == a.genesis_hash
    with pytest.raises(NodeError, match="holds a different chain"):
        Chain(store, dev_genesis(chain_id=7), NativeChaincodeHost)
    store.close()


def test_blocks_survive_reopen_with_receipts_and_state(tmp_path):
    store = LevelDBStore(tmp_path / "db")
    chain = Chain(store, dev_genesis(), NativeChaincodeHost)
    counter = deploy_counter(chain)
    txs = [signed(n, to=counter, data=selector("increment()")) for n in range(1, 6)]
    block, ex = chain.build_block(txs, timestamp=int(time.time()), proposer=VALIDATOR)
    chain.commit_block(block, ex)
    head, state_root = chain.head, chain.head.state_root
    store.close()

    store = LevelDBStore(tmp_path / "db")
    chain = Chain(store, dev_genesis(), NativeChaincodeHost)
    assert chain.head == head and chain.head.number == 2
    receipts = chain.receipts(head.hash)
    assert [r.status for r in receipts] == [1] * 5
    assert receipts[-1].logs[0].topics[0] == keccak(text="Incremented(address,uint256)")
    loc = chain.locate_transaction(txs[3].hash)
    assert loc.block.number == 2 and loc.index == 3 and loc.log_index_before == 3
    env = chain.env_for(chain.head, chain.head.timestamp, VALIDATOR)
    out = chain.executor.call(state_root, env, sender=b"\x00" * 20, to=counter, data=selector("count()"))
    assert int.from_bytes(out.output, "big") == 10
    assert chain.state_nonce(DEPLOYER.address and bytes.fromhex(DEPLOYER.address[2:])) == 6
    store.close()


def test_block_building_skips_stale_nonces_and_defers_over_gas():
    chain = Chain(MemoryStore(), dev_genesis(gas_limit=100_000), NativeChaincodeHost)
    stale = signed(5, to=VALIDATOR, gas=21_000)
    first, second = signed(0, to=VALIDATOR, gas=60_000), signed(1, to=VALIDATOR, gas=90_000)
    block, ex = chain.build_block([stale, first, second], timestamp=1, proposer=VALIDATOR)
    assert [t.hash for t in block.transactions] == [first.hash]
    assert ex.skipped[0][0] is stale and "nonce" in ex.skipped[0][1].lower()
    assert ex.deferred == [second]


def test_verify_execution_accepts_built_block_and_rejects_tampering():
    builder = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    verifier = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    block, ex = builder.build_block([signed(0), signed(1)], timestamp=int(time.time()), proposer=VALIDATOR)
    verifier.verify_execution(block)
    for name, change in [("state root", dict(state_root=b"\x01" * 32)),
                         ("receipts root", dict(receipts_root=b"\x01" * 32)),
                         ("gas used", dict(gas_used=1))]:
        bad = replace(block, header=replace(block.header, **change))
        with pytest.raises(InvalidBlock, match=name):
            verifier.verify_execution(bad)
    with pytest.raises(InvalidBlock, match="does not extend"):
        verifier.verify_execution(replace(block, header=replace(block.header, parent_hash=b"\x00" * 32)))


def test_commit_refuses_a_block_not_on_the_head():
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    block, ex = chain.build_block([signed(0)], timestamp=1, proposer=VALIDATOR)
    chain.commit_block(block, ex)
    with pytest.raises(InvalidBlock, match="does not extend the head"):
        chain.commit_block(block, ex)


def test_revert_reason_and_custom_error_from_calls():
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    counter = deploy_counter(chain)
    env = chain.env_for(chain.head, chain.head.timestamp, VALIDATOR)
    with pytest.raises(Reverted) as info:
        chain.executor.call(chain.head.state_root, env, sender=b"\x00" * 20, to=counter, data=selector("fail()"))
    assert info.value.reason == "Counter: always fails"
    assert str(info.value) == "execution reverted: Counter: always fails"
    with pytest.raises(Reverted) as info:
        chain.executor.call(chain.head.state_root, env, sender=b"\x01" * 20, to=counter, data=selector("reset()"))
    assert info.value.reason is None and info.value.data[:4] == selector("NotOwner(address)")
    gas = chain.executor.estimate_gas(chain.head.state_root, env, sender=b"\x00" * 20, to=counter,
                                      data=selector("increment()"))
    chain.executor.call(chain.head.state_root, env, sender=b"\x00" * 20, to=counter,
                        data=selector("increment()"), gas=gas)
    with pytest.raises(ExecutionError, match="OutOfGas"):
        chain.executor.call(chain.head.state_root, env, sender=b"\x00" * 20, to=counter,
                            data=selector("increment()"), gas=gas - 1)


# -- the chaincode hook ----------------------------------------------------------------------
TOPIC = keccak(text="Noted(bytes)")


@dataclass
class NoteSession:
    """A tiny journaled chaincode: stores the last note; data 0xff… reverts."""

    notes: list[bytes]
    journal: list[int] = field(default_factory=list)
    calls: list[ChaincodeCall] = field(default_factory=list)

    def call(self, call: ChaincodeCall) -> ChaincodeResult:
        self.calls.append(call)
        if call.data[:1] == b"\xff":
            return ChaincodeResult(output=b"\x08\xc3\x79\xa0" + abi_encode(["string"], ["no"]), gas_used=500,
                                   reverted=True)
        self.notes.append(call.data)
        return ChaincodeResult(output=call.sender.rjust(32, b"\x00"), gas_used=1000,
                               logs=[Log(call.address, (TOPIC,), call.data)])

    def snapshot(self) -> int:
        self.journal.append(len(self.notes))
        return len(self.journal) - 1

    def revert(self, checkpoint: int) -> None:
        del self.notes[self.journal[checkpoint]:]
        del self.journal[checkpoint:]

    def commit(self, checkpoint: int) -> None:
        del self.journal[checkpoint:]

    def finish(self) -> tuple[Mapping[bytes, bytes | None], bytes]:
        return {b"c" + b"notes": b"|".join(self.notes)}, keccak(b"|".join(self.notes))


class NoteHost:
    def __init__(self) -> None:
        self.sessions: list[NoteSession] = []

    def addresses(self) -> tuple[bytes, ...]:
        return (PRESCRIPTION_REGISTRY,)

    def open_session(self, parent_commitment: bytes, block: BlockInfo) -> NoteSession:
        session = NoteSession([])
        self.sessions.append(session)
        return session


def test_reserved_address_calls_run_chaincode_and_produce_receipts():
    host = NoteHost()
    store = MemoryStore()
    chain = Chain(store, dev_genesis(), chaincode=host)
    ok = signed(0, to=PRESCRIPTION_REGISTRY, data=b"hello")
    bad = signed(1, to=PRESCRIPTION_REGISTRY, data=b"\xff")
    plain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    block, ex = chain.build_block([ok, bad], timestamp=1234, proposer=VALIDATOR)
    assert [r.status for r in ex.receipts] == [1, 0]
    assert ex.receipts[0].logs == (Log(PRESCRIPTION_REGISTRY, (TOPIC,), b"hello"),)
    assert ex.receipts[1].logs == ()
    session = host.sessions[0]
    assert session.notes == [b"hello"]  # the reverted call left nothing
    call = session.calls[0]
    assert call.sender == bytes.fromhex(DEPLOYER.address[2:]) and call.block.timestamp == 1234
    assert ex.writes[b"cnotes"] == b"hello"
    # The chaincode commitment is part of the state root.
    plain_block, _ = plain.build_block([ok, bad], timestamp=1234, proposer=VALIDATOR)
    assert block.header.state_root != plain_block.header.state_root
    chain.commit_block(block, ex)
    assert store.get(b"cnotes") == b"hello"
    env = chain.env_for(chain.head, 1235, VALIDATOR)
    with pytest.raises(Reverted, match="execution reverted: no"):
        chain.executor.call(chain.head.state_root, env, sender=b"\x02" * 20, to=PRESCRIPTION_REGISTRY, data=b"\xff")
    out = chain.executor.call(chain.head.state_root, env, sender=b"\x02" * 20, to=PRESCRIPTION_REGISTRY, data=b"x")
    assert out.output == (b"\x02" * 20).rjust(32, b"\x00")


# -- validator votes -------------------------------------------------------------------------
def test_votes_take_effect_with_more_than_half():
    a, b, c, d, e = (bytes([i]) * 20 for i in range(1, 6))
    vals = (a, b, c, d)
    assert apply_votes(vals, [(a, Vote(e, True)), (b, Vote(e, True))]) == vals  # 2 of 4 is not a majority
    assert apply_votes(vals, [(a, Vote(e, True)), (b, Vote(e, True)), (c, Vote(e, True))]) == tuple(sorted(vals + (e,)))
    assert apply_votes(vals, [(a, Vote(e, True)), (a, Vote(e, True)), (a, Vote(e, True))]) == vals  # one voter
    assert apply_votes(vals, [(e, Vote(d, False))] * 3) == vals  # non-validators cannot vote
    assert apply_votes(vals, [(a, Vote(d, False)), (b, Vote(d, False)), (c, Vote(d, False))]) == (a, b, c)
    assert [quorum(n) for n in (1, 3, 4, 5, 7)] == [1, 2, 3, 4, 5]


def test_chain_applies_header_votes_to_next_validators():
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    other = b"\x77" * 20
    block, ex = chain.build_block([], timestamp=1, proposer=VALIDATOR, vote=Vote(other, True))
    assert decode_extra(block.header.extra_data).vanity == validators_commitment([VALIDATOR, other])
    chain.commit_block(block, ex)
    assert chain.next_validators(chain.head) == tuple(sorted((VALIDATOR, other)))
    assert chain.validators_at(1) == (VALIDATOR,)


def test_execution_never_recovers_a_sender_again(monkeypatch):
    """Senders are recovered once, by decode_transaction; py-evm reuses them."""
    import eth._utils.transactions as evm_tx_utils
    import eth.vm.forks.berlin.transactions as berlin
    import eth.vm.forks.frontier.transactions as frontier
    import eth.vm.forks.prague.transactions as prague

    recoveries: list[str] = []
    original = evm_tx_utils.extract_transaction_sender

    def spy(tx):
        recoveries.append("recover")
        return original(tx)

    for module in (frontier, berlin, prague):
        monkeypatch.setattr(module, "extract_transaction_sender", spy)
    monkeypatch.setattr(evm_tx_utils, "validate_transaction_signature", lambda tx: recoveries.append("check"))
    txs = [signed(n, to=VALIDATOR, gas=30_000) for n in range(3)]
    raw_1559 = DEPLOYER.sign_transaction(dict(nonce=3, maxFeePerGas=0, maxPriorityFeePerGas=0, gas=30_000,
                                              to=to_checksum_address(VALIDATOR), value=0, chainId=2024, type=2))
    txs.append(decode_transaction(bytes(raw_1559.raw_transaction)))
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    block, ex = chain.build_block(txs, timestamp=1, proposer=VALIDATOR)
    assert len(block.transactions) == 4 and not ex.skipped
    assert recoveries == []
    # Control: py-evm's own objects do recover through the spied functions.
    from eth.vm.forks.prague.transactions import PragueTransactionBuilder

    assert PragueTransactionBuilder.decode(txs[0].raw).sender == txs[0].sender
    assert recoveries == ["recover"]


def test_empty_block_fast_path_matches_full_execution(monkeypatch):
    """An empty block keeps the parent's state root: the same root full execution gives."""
    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    fast, fast_ex = chain.build_block([], timestamp=1, proposer=VALIDATOR)
    # Full execution of an empty block, bypassing the fast path with a no-op transaction list
    # that is not empty to Python's truth test but yields nothing.
    class Nothing(list):
        def __bool__(self) -> bool:
            return True

    slow, slow_ex = chain.build_block(Nothing(), timestamp=1, proposer=VALIDATOR)
    assert fast.header == slow.header
    assert fast_ex.state_root == slow_ex.state_root == chain.head.state_root
    assert fast_ex.writes == slow_ex.writes == {}


def test_reads_never_run_ahead_of_the_head_while_a_block_is_written(tmp_path):
    """A block's batch is in LevelDB a moment (its fsync) before the block is the head.
    Held at exactly that moment, the block, its number and its transaction are not
    answered yet; once the head moves they are."""
    import threading

    class HeldAfterWrite(LevelDBStore):
        def __init__(self, path):
            super().__init__(path)
            self.hold = False
            self.written = threading.Event()
            self.release = threading.Event()

        def batch(self, *, sync=True):
            outer = super().batch(sync=sync)
            store = self

            class Held:
                def __enter__(self):
                    return outer.__enter__()

                def __exit__(self, *exc):
                    result = outer.__exit__(*exc)
                    if store.hold:
                        store.written.set()
                        assert store.release.wait(10)
                    return result
            return Held()

    store = HeldAfterWrite(tmp_path / "db")
    chain = Chain(store, dev_genesis(), NativeChaincodeHost)
    stx = signed(0, to=ACCOUNTS[1].address, gas=21_000)
    block, ex = chain.build_block([stx], timestamp=int(time.time()), proposer=VALIDATOR)
    store.hold = True
    committer = threading.Thread(target=chain.commit_block, args=(block, ex))
    committer.start()
    try:
        assert store.written.wait(10)
        seen: list[object] = []
        # In a thread: a read that waited for the held commit would hang, not fail.
        reader = threading.Thread(target=lambda: seen.extend([
            chain.head.number, chain.canonical_hash(1), chain.block_by_number(1),
            chain.block_by_hash(block.hash), chain.locate_transaction(stx.hash)]))
        reader.start()
        reader.join(timeout=5)
        assert not reader.is_alive(), "a read waited for the commit"
        assert seen == [0, None, None, None, None]
    finally:
        store.release.set()
        committer.join()
    assert chain.head.number == 1
    assert chain.block_by_hash(block.hash) is not None
    location = chain.locate_transaction(stx.hash)
    assert location is not None and location.block.number == 1
    store.close()


def test_stored_receipts_and_transaction_index_are_pyrlps_encodings():
    """save_block writes the receipt list and each transaction's (block hash, index) with
    the written-out RLP; both must be the bytes pyrlp makes (older data dirs hold those)."""
    import rlp

    from node.storage import chain_store as cs
    from rxledger.core.types.receipts import encode_receipt

    chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
    txs = [signed(n, to=ACCOUNTS[1].address, gas=21_000) for n in range(130)]  # index 128 needs two bytes
    block, ex = chain.build_block(txs, timestamp=int(time.time()), proposer=VALIDATOR)
    assert len(ex.receipts) == 130
    chain.commit_block(block, ex)
    assert chain.store.get(cs.RECEIPTS + block.hash) == rlp.encode([encode_receipt(r) for r in ex.receipts])
    for index, stx in enumerate(txs):
        assert chain.store.get(cs.TX_INDEX + stx.hash) == rlp.encode([block.hash, index])
    assert chain.receipts(block.hash) == ex.receipts
