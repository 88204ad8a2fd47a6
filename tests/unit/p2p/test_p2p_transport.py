"""node.p2p.transport: P2PTransport between the consensus runtime and a peer network.

First against a fake chain and runtime (chunked sync, pushes, status-triggered sync,
consensus and transaction delivery), then a real four-validator consortium of
NodeServices whose runtimes talk through P2PTransport over a MemoryNetwork: blocks are
decided together, and a validator started late catches up by block sync.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from eth_account import Account
from eth_utils import to_checksum_address

from chaincode_py import NativeChaincodeHost
from node.config import NodeConfig
from node.consensus.qbft import QbftConfig
from node.consensus.validators import validators_commitment
from node.genesis import GenesisConfig, derive_dev_key, dev_accounts, dev_genesis
from node.p2p import Kind, MemoryNetwork, MemoryTransport, P2PTransport
from node.p2p.frames import encode_blocks
from node.service import NodeService
from rxledger.core.crypto import private_key_to_address
from rxledger.core.errors import TxPoolRefused
from rxledger.core.types.blocks import Block, encode_block
from rxledger.core.types.headers import (
    EMPTY_OMMERS_HASH,
    EMPTY_REQUESTS_HASH,
    EMPTY_TRIE_ROOT,
    ZERO_HASH,
    Header,
    QbftExtra,
    block_hash,
    encode_extra,
)

A, B = bytes([1]) * 20, bytes([2]) * 20
GENESIS_HEADER = Header(
    parent_hash=ZERO_HASH, ommers_hash=EMPTY_OMMERS_HASH, coinbase=b"\x00" * 20,
    state_root=EMPTY_TRIE_ROOT, transactions_root=EMPTY_TRIE_ROOT, receipts_root=EMPTY_TRIE_ROOT,
    logs_bloom=b"\x00" * 256, difficulty=1, number=0, gas_limit=30_000_000, gas_used=0,
    timestamp=0, extra_data=encode_extra(QbftExtra(validators_commitment((A,)), (A,), None, 0, ())), mix_hash=ZERO_HASH, nonce=b"\x00" * 8, base_fee_per_gas=0,
    withdrawals_root=EMPTY_TRIE_ROOT, blob_gas_used=0, excess_blob_gas=0,
    parent_beacon_block_root=ZERO_HASH, requests_hash=EMPTY_REQUESTS_HASH,
)


def make_chain(length: int) -> list[Block]:
    blocks = [Block(GENESIS_HEADER, ())]
    for n in range(1, length):
        parent = blocks[-1].header
        blocks.append(Block(replace(parent, number=n, parent_hash=block_hash(parent), timestamp=n), ()))
    return blocks


@dataclass
class FakeChain:
    blocks: list[Block]

    @property
    def head(self) -> Header:
        return self.blocks[-1].header

    def block_by_number(self, number: int) -> Block | None:
        return self.blocks[number] if 0 <= number < len(self.blocks) else None


@dataclass
class FakeRuntime:
    """Commits a synced block that extends the chain, as ConsensusRuntime would."""

    chain: FakeChain
    messages: list[bytes] = field(default_factory=list)
    offered: list[int] = field(default_factory=list)
    connected: list[bytes] = field(default_factory=list)

    def deliver(self, data: bytes, peer: bytes | None = None) -> None:
        self.messages.append(data)

    def peer_connected(self, peer: bytes) -> None:
        self.connected.append(peer)

    def deliver_block(self, block: Block) -> None:
        self.offered.append(block.number)
        if block.header.parent_hash == self.chain.blocks[-1].hash:
            self.chain.blocks.append(block)


@dataclass
class Side:
    chain: FakeChain
    runtime: FakeRuntime
    transport: P2PTransport
    endpoint: MemoryTransport
    submitted: list[bytes]


def side(net: MemoryNetwork, address: bytes, blocks: list[Block], *, chunk: int = 4,
         submit: Callable[[bytes], object] | None = None) -> Side:
    chain = FakeChain(list(blocks))
    submitted: list[bytes] = []
    transport = P2PTransport(chain, chunk=chunk, import_timeout=0.2,
                             submit_transaction=submit or submitted.append)
    endpoint = MemoryTransport(net, address, name=address[:1].hex(), chain_id=1, genesis_hash=blocks[0].hash,
                               head=lambda: (chain.head.number, block_hash(chain.head)),
                               max_blocks_per_frame=chunk, **transport.handlers())  # type: ignore[arg-type]
    transport.attach(endpoint)
    runtime = FakeRuntime(chain)
    transport.bind_runtime(runtime)
    return Side(chain, runtime, transport, endpoint, submitted)


def test_a_node_behind_catches_up_chunk_by_chunk_from_status() -> None:
    full = make_chain(11)  # heads 0..10
    net = MemoryNetwork()
    ahead = side(net, A, full)
    behind = side(net, B, full[:2])
    ahead.endpoint.start()
    behind.endpoint.start()  # STATUS: A is at 10, we are at 1 → GET_BLOCKS(2, 4) …
    net.flush()
    assert behind.chain.head.number == 10
    assert behind.runtime.offered == list(range(2, 11))
    assert ahead.runtime.offered == []


def test_request_blocks_continues_while_chunks_come_back_full() -> None:
    full = make_chain(10)
    net = MemoryNetwork()
    ahead = side(net, A, full, chunk=3)
    behind = side(net, B, full[:1], chunk=3)
    ahead.endpoint.start()
    behind.endpoint.start()
    net.flush()
    assert behind.chain.head.number == 9
    behind.transport.request_blocks(A, 10)  # nothing more: an empty answer ends it
    net.flush()
    assert behind.chain.head.number == 9


def test_push_blocks_sends_our_blocks_to_a_peer_behind() -> None:
    full = make_chain(6)
    net = MemoryNetwork()
    ahead = side(net, A, full, chunk=16)
    behind = side(net, B, full[:3], chunk=16)
    behind.transport.request_retry = 1e9  # no status-triggered sync: only the push
    ahead.endpoint.start()
    behind.endpoint.start()
    net.flush()
    ahead.transport.push_blocks(B, 3)
    net.flush()
    assert behind.chain.head.number == 5
    assert [p["address"] for p in ahead.transport.peers()] == ["0x" + B.hex()]


def test_unimportable_blocks_stop_the_batch() -> None:
    full = make_chain(6)
    fork = make_chain(3)
    fork[1] = Block(replace(fork[1].header, timestamp=999), ())  # another block 1
    net = MemoryNetwork()
    side(net, A, full).endpoint.start()
    behind = side(net, B, full[:1])  # not started: no STATUS, no sync of its own
    behind.transport.on_blocks(A, [encode_block(fork[1]), encode_block(full[2]), b"\xc0"])
    assert behind.chain.head.number == 1 and behind.chain.blocks[1] == fork[1]
    assert behind.runtime.offered == [1, 2]  # the undecodable one ended the batch
    behind.transport.on_blocks(A, [b"not rlp"])  # logged, nothing delivered
    assert behind.chain.head.number == 1


def test_blocks_handed_over_but_never_imported_are_asked_for_again() -> None:
    full = make_chain(8)
    net = MemoryNetwork()
    ahead = side(net, A, full)
    behind = side(net, B, full[:1])
    refused = [2]  # the runtime rejects the first copy of block 2 it is offered
    deliver = behind.runtime.deliver_block

    def picky(block: Block) -> None:
        if block.number in refused:
            refused.remove(block.number)
            behind.runtime.offered.append(block.number)
            return
        deliver(block)

    behind.runtime.deliver_block = picky  # type: ignore[method-assign]
    ahead.endpoint.start()
    behind.endpoint.start()
    net.flush()  # blocks 1-4 handed over, 1 imported; 5-7 wait for the head, which stands still
    assert behind.chain.head.number == 1
    behind.transport.request_retry = 0.0  # the next STATUS asks again, from the head
    behind.transport.on_status(A, ahead.endpoint.status())
    net.flush()
    assert behind.chain.head.number == 7


class QueuedRuntime:
    """Imports synced blocks in its own thread, slowly, as the consensus runtime does."""

    def __init__(self, chain: FakeChain, per_block: float) -> None:
        self.chain = chain
        self.per_block = per_block
        self.inbox: list[Block] = []
        self.most_waiting = 0
        self.cond = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def deliver(self, data: bytes, peer: bytes | None = None) -> None:
        pass

    def peer_connected(self, peer: bytes) -> None:
        pass

    def deliver_block(self, block: Block) -> None:
        with self.cond:
            self.inbox.append(block)
            self.most_waiting = max(self.most_waiting, len(self.inbox))
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.inbox and not self.stopped:
                    self.cond.wait()
                if self.stopped:
                    return
                block = self.inbox.pop(0)
            time.sleep(self.per_block)
            if block.header.parent_hash == self.chain.blocks[-1].hash:
                self.chain.blocks.append(block)

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()


def test_sync_asks_for_the_next_chunk_while_this_one_imports_and_holds_at_most_two() -> None:
    chunk = 4
    full = make_chain(41)
    net = MemoryNetwork()
    ahead = side(net, A, full, chunk=chunk)
    behind = side(net, B, full[:1], chunk=chunk)
    runtime = QueuedRuntime(behind.chain, per_block=0.01)
    behind.transport.bind_runtime(runtime)
    behind.transport.import_timeout = 5.0
    asked: list[tuple[int, int]] = []  # (from height, our head then)
    request = behind.transport.request_blocks

    def recording(peer: bytes, from_height: int) -> None:
        asked.append((from_height, behind.chain.head.number))
        request(peer, from_height)

    behind.transport.request_blocks = recording  # type: ignore[method-assign]
    try:
        ahead.endpoint.start()
        behind.endpoint.start()
        deadline = time.monotonic() + 10
        while behind.chain.head.number < 40:
            assert time.monotonic() < deadline, "sync did not finish"
            net.flush()
            time.sleep(0.005)
    finally:
        runtime.stop()
    assert behind.chain.blocks == full
    froms = [f for f, _ in asked]
    assert froms == list(range(1, 41, chunk)) + [41][: len(froms) - 10]
    # Pipelined: most chunks were asked for before the one before them was imported...
    assert sum(1 for f, head in asked[1:] if head < f - 1) >= 5
    # ...and never more than two chunks waited in the runtime.
    assert runtime.most_waiting <= 2 * chunk


def test_consensus_messages_and_transactions_reach_the_runtime_and_the_pool() -> None:
    full = make_chain(2)
    net = MemoryNetwork()

    def refuse(raw: bytes) -> None:
        raise TxPoolRefused("already known")

    a = side(net, A, full)
    b = side(net, B, full, submit=refuse)
    a.endpoint.start()
    b.endpoint.start()
    net.flush()
    a.transport.broadcast(b"qbft-1")
    a.transport.send(B, b"qbft-2")
    b.transport.send(A, b"qbft-3")
    b.transport.gossip_transaction(b"\x02tx")
    a.transport.gossip_transaction(b"\x02refused")  # refused by the pool: logged at debug only
    net.flush()
    assert b.runtime.messages == [b"qbft-1", b"qbft-2"] and a.runtime.messages == [b"qbft-3"]
    assert a.submitted == [b"\x02tx"]
    # Each side's runtime learnt of the connection (it re-sends its current round's messages).
    assert a.runtime.connected == [B] and b.runtime.connected == [A]


def test_an_unattached_transport_is_a_quiet_no_peers() -> None:
    transport = P2PTransport(FakeChain(make_chain(1)))
    transport.broadcast(b"x")
    transport.send(A, b"x")
    transport.request_blocks(A, 1)
    transport.push_blocks(A, 0)
    transport.on_consensus(A, b"x")
    transport.on_blocks(A, [b"x"])
    assert transport.peers() == []
    assert encode_blocks([]) == b"\xc0" and Kind.BLOCKS == 5


# -- a real consortium over the memory network ----------------------------------------------
KEYS = sorted((derive_dev_key(500 + i) for i in range(4)), key=private_key_to_address)
SENDER = Account.from_key(dev_accounts()[9].private_key)


def four_validator_genesis() -> GenesisConfig:
    """The four KEYS as validators, with the dev chain's enrolments."""
    return GenesisConfig(chain_id=2024, validators=tuple(private_key_to_address(k) for k in KEYS),
                         enrolments=dev_genesis().enrolments)


def raw_tx(nonce: int) -> bytes:
    tx = dict(nonce=nonce, gasPrice=0, gas=21_000, to=to_checksum_address(dev_accounts()[1].address),
              value=0, chainId=2024)
    return bytes(SENDER.sign_transaction(tx).raw_transaction)


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Validator:
    def __init__(self, net: MemoryNetwork, key: bytes, genesis: GenesisConfig, *,
                 round_timeout: float = 1.0) -> None:
        self.node = NodeService(NodeConfig(data_dir=None), genesis, validator_key=key, chaincode=NativeChaincodeHost)
        self.transport = P2PTransport(self.node.chain, submit_transaction=self.node.submit_raw_transaction,
                                      request_retry=0.2)
        chain = self.node.chain
        self.endpoint = MemoryTransport(
            net, private_key_to_address(key), name=private_key_to_address(key).hex()[:6],
            chain_id=chain.chain_id, genesis_hash=chain.genesis_hash,
            head=lambda: (chain.head.number, chain.head.hash), **self.transport.handlers(),  # type: ignore[arg-type]
        )
        self.transport.attach(self.endpoint)
        config = QbftConfig(block_period=0, empty_block_period=None, round_timeout=round_timeout,
                            sync_retry=0.2)
        runtime = self.node.start_consensus(config, self.transport)
        self.transport.bind_runtime(runtime)
        self.endpoint.start()

    def submit(self, raw: bytes) -> None:
        self.node.submit_raw_transaction(raw)
        self.transport.gossip_transaction(raw)

    def close(self) -> None:
        self.endpoint.stop()
        self.node.close()


def assert_agreement(validators: list[Validator]) -> None:
    """Every height that all of them reached has the same block everywhere."""
    common = min(v.node.chain.head.number for v in validators)
    for number in range(1, common + 1):
        hashes = set()
        for v in validators:
            block = v.node.chain.block_by_number(number)
            assert block is not None
            hashes.add(block.hash)
        assert len(hashes) == 1, f"validators disagree at height {number}"


def test_four_validators_decide_together_and_a_late_one_catches_up_by_sync() -> None:
    genesis = four_validator_genesis()
    net = MemoryNetwork()
    net.start()
    validators: list[Validator] = []
    try:
        validators = [Validator(net, key, genesis) for key in KEYS[:3]]  # a quorum of 4 is 3
        for nonce in range(3):
            validators[nonce % 3].submit(raw_tx(nonce))
            wait_for(lambda n=nonce: all(v.node.chain.head.number >= n + 1 for v in validators))
        assert_agreement(validators)
        assert all(v.node.runtime is not None and v.node.runtime.failed is None for v in validators)

        late = Validator(net, KEYS[3], genesis)  # STATUS shows it is behind: it asks for blocks
        validators.append(late)
        wait_for(lambda: late.node.chain.head.number >= 3)
        assert_agreement(validators)
        # And it takes part from then on.
        late.submit(raw_tx(3))
        wait_for(lambda: all(v.node.chain.head.number >= 4 for v in validators))
        assert_agreement(validators)
        assert len(late.transport.peers()) == 3
    finally:
        for v in validators:
            v.close()
        net.stop()
    assert threading.active_count() < 50


def test_a_proposal_sent_before_the_peers_connected_reaches_them_when_they_do() -> None:
    """The first proposal after a network starts is not lost (it was, before the round's
    own messages were re-sent to a peer on connect: round 0 then timed out)."""
    genesis = four_validator_genesis()
    net = MemoryNetwork()
    net.start()
    validators: list[Validator] = []
    try:
        # KEYS[0] (lowest address) proposes height 1 in round 0; it runs alone at first.
        first = Validator(net, KEYS[0], genesis, round_timeout=30.0)
        validators.append(first)
        first.submit(raw_tx(0))
        runtime = first.node.runtime
        assert runtime is not None
        wait_for(lambda: 0 in runtime.node.h.proposals)  # proposed, to nobody
        validators += [Validator(net, key, genesis, round_timeout=30.0) for key in KEYS[1:]]
        wait_for(lambda: all(v.node.chain.head.number >= 1 for v in validators), timeout=10.0)
        assert_agreement(validators)
        assert all(v.node.chain.head.extra.round == 0 for v in validators)
    finally:
        for v in validators:
            v.close()
        net.stop()
