"""node.runtime: the QBFT runtime on real LevelDB files: persist → send → apply, the WAL,
and a validator restarted mid-height re-sending exactly what it signed, nothing else."""

from __future__ import annotations

import logging
import threading
import time

from eth_account import Account
from eth_utils import to_checksum_address

from chaincode_py import NativeChaincodeHost
from node.config import NodeConfig
from node.consensus.messages import (
    COMMIT,
    PREPARE,
    PROPOSAL,
    CommitMsg,
    PrepareMsg,
    ProposalMsg,
    decode_message,
    encode_message,
    sign_payload,
)
from node.consensus.qbft import QbftConfig, QbftNode
from node.genesis import GenesisConfig, derive_dev_key, dev_accounts, dev_genesis, dev_validator_key
from node.runtime import ConsensusRuntime, Gathering, load_wal
from node.service import NodeService
from node.storage.wal import WAL_PREFIX
from rxledger.core.crypto import encode_signature, private_key_to_address, sign_hash
from rxledger.core.types import recover_seal_signers
from rxledger.core.types.headers import seal_hash

DEPLOYER = Account.from_key(dev_accounts()[9].private_key)


def raw_tx(nonce: int) -> bytes:
    tx = dict(nonce=nonce, gasPrice=0, gas=21_000, to=to_checksum_address(dev_accounts()[1].address),
              value=0, chainId=2024)
    return bytes(DEPLOYER.sign_transaction(tx).raw_transaction)


class Capture:
    """A transport that records what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.lock = threading.Lock()

    def broadcast(self, data: bytes) -> None:
        with self.lock:
            self.sent.append(data)

    def send(self, peer: bytes, data: bytes) -> None:
        self.broadcast(data)

    def request_blocks(self, peer: bytes, from_height: int) -> None:
        pass

    def push_blocks(self, peer: bytes, from_height: int) -> None:
        pass

    def peers(self) -> list[dict[str, object]]:
        return []


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_dev_runtime_decides_blocks_with_one_seal_and_prunes_the_wal(tmp_path):
    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(), validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
    service.start_consensus(QbftConfig(block_period=0, empty_block_period=None))
    try:
        hashes = [service.submit_raw_transaction(raw_tx(n)) for n in range(3)]
        wait_for(lambda: all(service.chain.locate_transaction(h) for h in hashes))
        head = service.chain.head
        assert head.number >= 1
        assert recover_seal_signers(head) == [private_key_to_address(dev_validator_key())]
        assert head.extra.round == 0
        wait_for(lambda: not list(service.store.iterate(WAL_PREFIX)))
        assert service.runtime is not None and service.runtime.failed is None
    finally:
        service.close()


def test_idle_dev_chain_makes_no_empty_blocks(tmp_path):
    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(), validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
    service.start_consensus(QbftConfig(block_period=0, empty_block_period=None))
    try:
        time.sleep(1.0)
        assert service.chain.head.number == 0
    finally:
        service.close()


def test_restarted_validator_resends_its_signed_messages_and_signs_nothing_new(tmp_path):
    keys = [derive_dev_key(400 + i) for i in range(4)]
    keys.sort(key=private_key_to_address)
    me = keys[0]  # lowest address: the proposer of round 0 at height 1
    genesis = GenesisConfig(chain_id=2024, validators=tuple(private_key_to_address(k) for k in keys),
                            enrolments=dev_genesis().enrolments)
    config = QbftConfig(block_period=0, empty_block_period=None, round_timeout=30.0)

    first = Capture()
    service = NodeService(NodeConfig(data_dir=tmp_path), genesis, validator_key=me, chaincode=NativeChaincodeHost)
    service.start_consensus(config, transport=first)
    service.submit_raw_transaction(raw_tx(0))
    # Alone among 4 validators: it proposes and prepares, but no quorum ever forms.
    wait_for(lambda: len(first.sent) >= 2)
    time.sleep(0.2)
    codes = [decode_message(m).signed.code for m in first.sent]
    assert codes == [PROPOSAL, PREPARE]
    records = load_wal(service.chain)
    assert [(r.height, r.round, r.step) for r in records] == [(1, 0, 1), (1, 0, 2)]
    service.close()  # as a crash would leave it: the WAL is on disk, the block is not decided

    second = Capture()
    service = NodeService(NodeConfig(data_dir=tmp_path), genesis, validator_key=me, chaincode=NativeChaincodeHost)
    service.start_consensus(config, transport=second)
    try:
        service.submit_raw_transaction(raw_tx(0))
        wait_for(lambda: len(second.sent) >= 2)
        time.sleep(0.5)
        # Byte-identical re-sends, and no second (conflicting) proposal or prepare.
        assert second.sent == first.sent
        assert service.chain.head.number == 0
    finally:
        service.close()


def _two_blocks(tmp_path, config: QbftConfig):
    """A 4-validator genesis and blocks 1 and 2 on it, each built by its round-0 proposer
    on a chain of its own: (genesis, key by address, block 1, block 2)."""
    keys = sorted((derive_dev_key(500 + i) for i in range(4)), key=private_key_to_address)
    addresses = tuple(private_key_to_address(k) for k in keys)
    genesis = GenesisConfig(chain_id=2024, validators=addresses, enrolments=dev_genesis().enrolments)
    builder = NodeService(NodeConfig(data_dir=tmp_path / "builder"), genesis, chaincode=NativeChaincodeHost)
    try:
        chain = builder.chain

        def build():
            proposer = QbftNode(config, None, chain.head, chain.tally_after(chain.head), lambda b: None,
                                now=0).proposer(0)
            return chain.build_block((), timestamp=int(time.time()), proposer=proposer)

        block1, execution1 = build()
        chain.commit_block(block1, execution1)
        block2, _ = build()
    finally:
        builder.close()
    return genesis, dict(zip(addresses, keys, strict=True)), block1, block2


def test_buffered_proposal_for_the_next_height_is_validated_after_the_decided_block_is_applied(tmp_path, caplog):
    """A PROPOSAL for h2 that arrives while the validator is still at h1 is buffered; when
    h1 is decided it is handled only once the runtime has applied block 1, so its execution
    check runs on block 1 and the validator PREPAREs for h2 in round 0 (it used to reject it:
    "block 2 does not extend the head 0", and the round timed out)."""
    caplog.set_level(logging.INFO, logger="rxledger.consensus")
    config = QbftConfig(block_period=0, empty_block_period=None, round_timeout=30.0)
    genesis, key_of, block1, block2 = _two_blocks(tmp_path, config)
    p1, p2 = block1.header.coinbase, block2.header.coinbase
    me = next(a for a in key_of if a not in (p1, p2))
    voters = [p1, p2]  # with `me`, a quorum of 3 of 4

    def signed(code: int, height: int, body: tuple[object, ...], author: bytes):
        return sign_payload(code, height, 0, body, key_of[author], author)

    d1, d2 = seal_hash(block1.header), seal_hash(block2.header)
    proposal2 = ProposalMsg(signed(PROPOSAL, 2, (d2,), p2), block2, (), ())
    proposal1 = ProposalMsg(signed(PROPOSAL, 1, (d1,), p1), block1, (), ())
    prepares1 = [PrepareMsg(signed(PREPARE, 1, (d1,), a)) for a in voters]
    commits1 = [CommitMsg(signed(COMMIT, 1, (d1, encode_signature(*sign_hash(d1, key_of[a]))), a))
                for a in voters]

    sent = Capture()
    service = NodeService(NodeConfig(data_dir=tmp_path / "me"), genesis, validator_key=key_of[me], chaincode=NativeChaincodeHost)
    runtime = service.start_consensus(config, transport=sent)
    try:
        # h2's proposal first (a future message at h1), then everything that decides h1.
        for msg in [proposal2, proposal1, *prepares1, *commits1]:
            runtime.deliver(encode_message(msg))

        def prepared_h2() -> bool:
            with sent.lock:
                msgs = [decode_message(m).signed for m in sent.sent]
            return any(s.code == PREPARE and s.height == 2 and s.round == 0 for s in msgs)

        wait_for(lambda: prepared_h2() or "rejected PROPOSAL" in caplog.text)
        assert service.chain.head.number == 1
        assert "rejected PROPOSAL" not in caplog.text, caplog.text
        assert prepared_h2()
        assert runtime.failed is None
    finally:
        service.close()


def test_synced_blocks_that_arrive_out_of_order_are_imported_on_the_applied_head(tmp_path, caplog):
    """Block sync delivers block 2 before block 1: block 2 waits, and is imported (its
    execution checked) once the runtime has applied block 1."""
    caplog.set_level(logging.INFO, logger="rxledger.consensus")
    config = QbftConfig(block_period=0, empty_block_period=None, round_timeout=30.0)
    genesis, key_of, block1, block2 = _two_blocks(tmp_path, config)

    def sealed(block):
        digest = seal_hash(block.header)
        return service.chain.seal(block, [encode_signature(*sign_hash(digest, k)) for k in list(key_of.values())[:3]])

    service = NodeService(NodeConfig(data_dir=tmp_path / "me"), genesis, validator_key=list(key_of.values())[3], chaincode=NativeChaincodeHost)
    runtime = service.start_consensus(config, transport=Capture())
    try:
        runtime.deliver_block(sealed(block2))
        runtime.deliver_block(sealed(block1))
        wait_for(lambda: service.chain.head.number == 2 or "rejected synced block" in caplog.text)
        assert "rejected synced block" not in caplog.text, caplog.text
        assert service.chain.head.hash == block2.hash
        assert runtime.failed is None
    finally:
        service.close()


# -- gathering: when waiting transactions are reported to consensus ------------------------
def test_gathering_policy_times():
    g = Gathering(gather=0.02, quiet=0.002, fill=10, min_interval=0.0)
    # idle: the last block is long past
    assert g.ready_at(1, last_block=float("-inf"), last_arrival=100.0) == float("-inf")
    assert g.ready_at(1, last_block=50.0, last_arrival=100.0) <= 100.0
    # soon after a block: when arrivals pause for `quiet`, at the latest `gather` after it
    assert g.ready_at(1, last_block=100.0, last_arrival=100.001) == 100.003
    assert g.ready_at(5, last_block=100.0, last_arrival=100.019) == 100.02
    # a full batch goes at once
    assert g.ready_at(10, last_block=100.0, last_arrival=100.0) == 100.0
    # never before min_interval after the last block, full or not
    spaced = Gathering(gather=0.02, quiet=0.002, fill=10, min_interval=0.5)
    assert spaced.ready_at(10, last_block=100.0, last_arrival=100.0) == 100.5
    assert spaced.ready_at(1, last_block=100.0, last_arrival=100.001) == 100.5
    # gather 0: at once (only min_interval)
    assert Gathering(gather=0.0).ready_at(1, last_block=100.0, last_arrival=100.0) == 100.0


def frozen_clock_dev_node(tmp_path, fill: int) -> tuple[list[float], NodeService, ConsensusRuntime]:
    """A dev node whose runtime reads `clock[0]` (moved only by the test), gathering with
    gather 20 ms, quiet 2 ms and `fill`."""
    clock = [time.time()]
    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(), validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
    service.runtime = runtime = ConsensusRuntime(
        service.chain, service.pool, QbftConfig(block_period=0, empty_block_period=None),
        dev_validator_key(), take_vote=service.take_vote, clock=lambda: clock[0],
        gathering=Gathering(gather=0.02, quiet=0.002, fill=fill),
    )
    runtime.start()
    return clock, service, runtime


def test_dev_runtime_gathers_transactions_that_arrive_soon_after_a_block(tmp_path):
    """On a frozen clock: a transaction reaching an idle node is in a block at once; one
    arriving right after that block waits (the clock does not move, so it waits for good)
    until the clock passes the quiet time; a full batch goes without the clock moving."""
    clock, service, runtime = frozen_clock_dev_node(tmp_path, fill=3)
    try:
        first = service.submit_raw_transaction(raw_tx(0))
        wait_for(lambda: service.chain.locate_transaction(first) is not None)
        assert service.chain.head.number == 1

        second = service.submit_raw_transaction(raw_tx(1))
        time.sleep(0.3)
        assert service.chain.locate_transaction(second) is None and service.chain.head.number == 1
        clock[0] += 0.0021  # quiet for 2.1 ms (the runtime looks again within 2 ms)
        wait_for(lambda: service.chain.locate_transaction(second) is not None)
        assert service.chain.head.number == 2

        batch = [service.submit_raw_transaction(raw_tx(n)) for n in (2, 3, 4)]
        wait_for(lambda: all(service.chain.locate_transaction(h) for h in batch))
        assert service.chain.head.number == 3
        assert len(service.chain.block_by_number(3).transactions) == 3
        assert runtime.failed is None
    finally:
        service.close()


def test_a_wall_clock_stepped_back_does_not_hold_transactions(tmp_path):
    """The last block was made 'in the future' of a clock that then stepped back 3 s
    (within the 5 s a proposal's timestamp may lead the clock): a transaction still goes
    into a block once arrivals pause, not when the clock has caught up (on this frozen
    clock: never)."""
    clock, service, runtime = frozen_clock_dev_node(tmp_path, fill=100)
    try:
        first = service.submit_raw_transaction(raw_tx(0))
        wait_for(lambda: service.chain.locate_transaction(first) is not None)
        clock[0] -= 3.0
        second = service.submit_raw_transaction(raw_tx(1))
        time.sleep(0.3)  # its arrival is seen at the stepped-back time
        clock[0] += 0.0021
        wait_for(lambda: service.chain.locate_transaction(second) is not None, timeout=5.0)
        assert runtime.failed is None
    finally:
        service.close()
