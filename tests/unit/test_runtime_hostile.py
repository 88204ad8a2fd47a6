"""node.runtime against hostile consensus messages, on the real runtime and LevelDB:
a malformed message is dropped, its sender reported to the transport (`bad_message`),
and the node keeps finalising; an unexpected error while handling one message is dropped
and logged (defence in depth); a failure while applying a decided block still stops
consensus loudly (a broken invariant)."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from fuzzing import deep_lists

from chaincode_py import NativeChaincodeHost
from node.config import NodeConfig
from node.consensus.qbft import QbftConfig
from node.genesis import dev_accounts, dev_genesis, dev_validator_key
from node.runtime import NoPeers
from node.service import NodeService
from rxledger.core.errors import StorageError

SENDER = Account.from_key(dev_accounts()[9].private_key)
PEER = b"\x42" * 20


def raw_tx(nonce: int) -> bytes:
    tx = dict(nonce=nonce, gasPrice=0, gas=21_000, to=to_checksum_address(dev_accounts()[1].address),
              value=0, chainId=2024)
    return bytes(SENDER.sign_transaction(tx).raw_transaction)


class Reporting(NoPeers):
    """A transport that reaches nobody and records whom the runtime reported."""

    def __init__(self) -> None:
        self.bad: list[tuple[bytes, str]] = []
        self.lock = threading.Lock()

    def bad_message(self, peer: bytes, reason: str) -> None:
        with self.lock:
            self.bad.append((peer, reason))


def wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def service(tmp_path):
    node = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(), validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
    yield node
    node.close()


def _final(service: NodeService, nonce: int) -> None:
    tx_hash = service.submit_raw_transaction(raw_tx(nonce))
    wait_for(lambda: service.chain.locate_transaction(tx_hash) is not None)


def test_malformed_messages_are_dropped_reported_and_consensus_goes_on(service, caplog) -> None:
    transport = Reporting()
    runtime = service.start_consensus(QbftConfig(block_period=0, empty_block_period=None), transport=transport)
    _final(service, 0)
    hostile = [deep_lists(150_000), b"\xc0", b"\xff" * 100, b"\xf8\x05\x14\xc0"]
    with caplog.at_level(logging.WARNING, logger="rxledger.consensus"):
        for data in hostile:
            runtime.deliver(data, PEER)
        runtime.deliver(b"\xc0")  # no peer known: dropped, nobody to report
        wait_for(lambda: runtime.dropped_messages == len(hostile) + 1)
    assert runtime.failed is None
    assert [peer for peer, _ in transport.bad] == [PEER] * len(hostile)
    assert "nested more than" in transport.bad[0][1]
    assert any("dropped a consensus message from 0x4242" in r.getMessage() for r in caplog.records)
    _final(service, 1)
    assert service.status()["status"] == "ok"


def test_an_unexpected_error_handling_one_message_is_dropped_and_logged(service, caplog) -> None:
    transport = Reporting()
    runtime = service.start_consensus(QbftConfig(block_period=0, empty_block_period=None), transport=transport)
    step = runtime.node.step

    def buggy_step(data: bytes, now: float | None = None) -> str | None:  # fault injection: a bug
        if data == b"bug":
            raise KeyError("a bug in handling one message")
        return step(data, now)

    runtime.node.step = buggy_step  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="rxledger.consensus"):
        runtime.deliver(b"bug", PEER)
        wait_for(lambda: runtime.dropped_messages == 1)
    assert runtime.failed is None
    assert transport.bad == [(PEER, "message raised KeyError")]
    assert any("raised KeyError" in r.getMessage() for r in caplog.records)
    _final(service, 0)


def test_a_failure_applying_a_decided_block_still_stops_consensus(service, caplog) -> None:
    runtime = service.start_consensus(QbftConfig(block_period=0, empty_block_period=None))

    def disk_gone(*args: object, **kwargs: object) -> None:  # fault injection: storage fails
        raise StorageError("write failed: no space left on device")

    service.chain.commit_block = disk_gone  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="rxledger.consensus"):
        service.submit_raw_transaction(raw_tx(0))
        wait_for(lambda: runtime.failed is not None)
    assert isinstance(runtime.failed, StorageError)
    assert service.status()["status"].startswith("storage failed: ")
    assert any("consensus stopped" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", ["prepared", "signed"])
def test_a_corrupt_wal_record_is_refused_at_start_naming_it(service, kind) -> None:
    from node.consensus.messages import InvalidMessage
    from node.consensus.qbft import WalRecord
    from node.storage.wal import WalEntry, save_wal

    record = WalRecord(kind, 1, 0, 1, b"\xf8\x05\x01")
    save_wal(service.store, [WalEntry(record.kind, record.height, record.round, record.step, record.data)])
    with pytest.raises(InvalidMessage, match=f"WAL record \\({kind}, h1 r0\\) is corrupt"):
        service.start_consensus(QbftConfig(block_period=0, empty_block_period=None))


def test_the_transport_passes_the_sender_in_and_its_misbehaviour_out(service) -> None:
    from node.p2p.transport import P2PTransport

    class Scoring:  # stands for P2PService's `bad_message` (scoring belongs to the p2p layer)
        def __init__(self) -> None:
            self.bad: list[tuple[bytes, str]] = []

        def bad_message(self, peer: bytes, reason: str) -> None:
            self.bad.append((peer, reason))

    transport = P2PTransport(service.chain)
    network = Scoring()
    transport.attach(network)  # type: ignore[arg-type]
    runtime = service.start_consensus(QbftConfig(block_period=0, empty_block_period=None), transport=transport)
    transport.bind_runtime(runtime)
    transport.on_consensus(PEER, b"\xc1\xc0")  # a message whose code is a list
    wait_for(lambda: network.bad == [(PEER, network.bad[0][1])] if network.bad else False)
    assert "unknown message code" in network.bad[0][1] or "malformed" in network.bad[0][1]
    transport.on_blocks(PEER, [b"\xc0"])  # an undecodable block in a sync answer
    assert network.bad[-1][0] == PEER and "undecodable block" in network.bad[-1][1]
    assert runtime.failed is None


def test_a_malformed_gossiped_transaction_scores_its_sender_but_a_routine_refusal_does_not(service) -> None:
    """An honest peer gossips only transactions it admitted, so bytes that do not decode
    as a signed transaction are the sender's misbehaviour; "already known" or "nonce too
    low" are routine with gossip and cost the peer nothing."""

    class Scoring:
        def __init__(self) -> None:
            self.bad: list[tuple[bytes, str]] = []

        def bad_message(self, peer: bytes, reason: str) -> None:
            self.bad.append((peer, reason))

    from node.p2p.transport import P2PTransport

    transport = P2PTransport(service.chain, submit_transaction=service.submit_raw_transaction)
    network = Scoring()
    transport.attach(network)  # type: ignore[arg-type]
    transport.on_transaction(PEER, b"\xc3\x01\x02\x03")  # an RLP list, not a transaction
    assert network.bad and network.bad[0][0] == PEER and "malformed transaction" in network.bad[0][1]
    raw = raw_tx(0)
    transport.on_transaction(PEER, raw)
    transport.on_transaction(PEER, raw)  # already known: routine
    assert len(network.bad) == 1, network.bad
