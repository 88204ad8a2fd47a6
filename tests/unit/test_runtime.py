"""node.runtime: the QBFT runtime on real LevelDB files: persist → send → apply, the WAL,
and a validator restarted mid-height re-sending exactly what it signed, nothing else."""

from __future__ import annotations

import threading
import time

from eth_account import Account
from eth_utils import to_checksum_address

from node.config import NodeConfig
from node.consensus.messages import PREPARE, PROPOSAL, decode_message
from node.consensus.qbft import QbftConfig
from node.crypto import private_key_to_address
from node.genesis import GenesisConfig, derive_dev_key, dev_accounts, dev_genesis, dev_validator_key
from node.runtime import WAL_PREFIX, ConsensusRuntime, Gathering, load_wal
from node.service import NodeService
from node.types import recover_seal_signers

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
    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(), validator_key=dev_validator_key())
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
    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(), validator_key=dev_validator_key())
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
    service = NodeService(NodeConfig(data_dir=tmp_path), genesis, validator_key=me)
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
    service = NodeService(NodeConfig(data_dir=tmp_path), genesis, validator_key=me)
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
    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(), validator_key=dev_validator_key())
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
