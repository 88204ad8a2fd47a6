"""The p2p allowlist follows governance, on four real validators over real TLS.

Four NodeServices (chain, txpool, QBFT runtime) of four organisations, each with a
certificate from its own organisation's CA, wired as `rxledger node start --config` wires
them (`ConsortiumAllowlist` + `follow_governance`), talk over TLS 1.3 on loopback:

- a validator removed by (header) vote has its connections closed within one block of
  the vote taking effect, and is refused afterwards;
- an organisation removed by Governance vote (`voteRemoveOrg`, three of four org admins)
  has its node's connections closed, and blocks go on with the other three;
- a regulator's suspension of an organisation and of an account disconnects nobody.

Every wait polls with a timeout; what is asserted is recorded by a chain listener at
each commit (which block, who was connected), not timed.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from chaincode_py import NativeChaincodeHost
from network.genesis import make_genesis
from network.pki import issue_node_cert, make_org_ca
from node.config import NodeConfig
from node.consensus.qbft import QbftConfig
from node.genesis import DEV_ORGS, derive_dev_key, dev_accounts
from node.p2p import P2PConfig, P2PService, P2PTransport, PeerInfo, TlsIdentity
from node.p2p.allowlist import AllowedPeer, ConsortiumAllowlist, follow_governance
from node.service import NodeService
from rxledger.core.addresses import GOVERNANCE
from rxledger.core.crypto import keccak256, private_key_to_address

CHAIN_ID = 2024
LOG = "rxledger.p2p"
KEYS = sorted((derive_dev_key(700 + i) for i in range(4)), key=private_key_to_address)
ADDRESSES = [private_key_to_address(k) for k in KEYS]
ORGS = [name for name, _ in DEV_ORGS]  # hospital-a, hospital-b, pharmacy-a, regulator
ORG_OF = dict(zip(ADDRESSES, ORGS, strict=True))
NAMES = {a: f"v{i}-{ORG_OF[a]}" for i, a in enumerate(ADDRESSES)}
ADMINS = {"hospital-a": 0, "pharmacy-a": 7, "regulator": 8}  # dev account index of each org admin


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def org_id(name: str) -> bytes:
    return keccak256(name.encode())


@dataclass
class Node:
    address: bytes
    service: NodeService
    transport: P2PTransport
    p2p: P2PService
    # (block number, peers connected at its commit): recorded by a chain listener.
    seen: list[tuple[int, frozenset[bytes]]] = field(default_factory=list)

    @property
    def head(self) -> int:
        return self.service.chain.head.number

    def peers(self) -> frozenset[bytes]:
        return frozenset(p.address for p in self.p2p.connected_peers())

    def peers_at(self, number: int) -> frozenset[bytes]:
        return next(peers for n, peers in self.seen if n == number)


class Consortium:
    def __init__(self) -> None:
        self.genesis = make_genesis(CHAIN_ID, ADDRESSES, dev_keys=True, timestamp=0, orgs=DEV_ORGS,
                                    validator_orgs=ORG_OF)
        cas = {org: make_org_ca(org) for org in ORGS}
        bundle = tuple(ca.cert_pem for ca in cas.values())
        self.identities = {}
        for address in ADDRESSES:
            issued = issue_node_cert(cas[ORG_OF[address]], org=ORG_OF[address], node_name=NAMES[address],
                                     address=address)
            self.identities[address] = TlsIdentity(issued.cert_pem, issued.key_pem, bundle)
        self.ports = {a: free_port() for a in ADDRESSES}
        self.nodes: dict[bytes, Node] = {}
        self.nonces: dict[int, int] = {}

    def start(self, key: bytes) -> Node:
        address = private_key_to_address(key)
        service = NodeService(NodeConfig(data_dir=None), self.genesis, validator_key=key, chaincode=NativeChaincodeHost)
        chain = service.chain
        transport = P2PTransport(chain, submit_transaction=lambda raw: service.submit_raw_transaction(raw, gossip=False),
                                 request_retry=0.2)
        others = [a for a in ADDRESSES if a != address]
        config = P2PConfig(host="127.0.0.1", port=self.ports[address], address=address, chain_id=CHAIN_ID,
                           genesis_hash=chain.genesis_hash, handshake_timeout=3.0, status_interval=0.5,
                           backoff_max=1.0,
                           peers=tuple(PeerInfo(NAMES[a], a, "127.0.0.1", self.ports[a]) for a in others))
        allowlist = ConsortiumAllowlist(chain, [AllowedPeer(NAMES[a], a, ORG_OF[a], "validator") for a in others])
        p2p = P2PService(config, self.identities[address], allow=allowlist,
                         head=lambda: (chain.head.number, chain.head.hash), **transport.handlers())  # type: ignore[arg-type]
        transport.attach(p2p)
        service.gossip = transport.gossip_transaction
        node = Node(address, service, transport, p2p)
        follow_governance(chain, allowlist, p2p)
        chain.add_listener(lambda block, receipts: node.seen.append((block.number, node.peers())))
        runtime = service.start_consensus(QbftConfig(block_period=0, empty_block_period=0.3, round_timeout=1.0,
                                                     max_round_timeout=4.0, sync_retry=0.2), transport)
        transport.bind_runtime(runtime)
        p2p.start()
        self.nodes[address] = node
        return node

    def stop_all(self) -> None:
        for node in self.nodes.values():
            node.p2p.stop()
            node.service.close()

    def mesh(self) -> None:
        wait_until(lambda: all(n.peers() == set(ADDRESSES) - {a} for a, n in self.nodes.items()),
                   what="the full mesh")

    def send_governance(self, account_index: int, data: bytes) -> bytes:
        """Sign a Governance call with a development account, submit it to v0; its hash."""
        account = Account.from_key(dev_accounts()[account_index].private_key)
        nonce = self.nonces.get(account_index, 0)
        self.nonces[account_index] = nonce + 1
        tx = dict(nonce=nonce, gasPrice=0, gas=1_000_000, to=to_checksum_address(GOVERNANCE), value=0,
                  data=data, chainId=CHAIN_ID)
        raw = bytes(account.sign_transaction(tx).raw_transaction)
        return self.nodes[ADDRESSES[0]].service.submit_raw_transaction(raw)

    def final(self, tx_hash: bytes) -> int:
        """Wait until `tx_hash` is final on v0 and succeeded; its block number."""
        chain = self.nodes[ADDRESSES[0]].service.chain
        wait_until(lambda: chain.locate_transaction(tx_hash) is not None, what=f"0x{tx_hash.hex()[:8]} final")
        location = chain.locate_transaction(tx_hash)
        assert location is not None and location.receipt.status == 1, location
        return location.block.number


@pytest.fixture
def consortium() -> Iterator[Consortium]:
    c = Consortium()
    try:
        for key in KEYS:
            c.start(key)
        c.mesh()
        yield c
    finally:
        c.stop_all()


def logged(caplog: pytest.LogCaptureFixture, *parts: str) -> Callable[[], bool]:
    return lambda: any(all(p in r.getMessage() for p in parts) for r in list(caplog.records))


def test_a_validator_removed_by_vote_is_disconnected_within_one_block_and_refused_after(
        consortium: Consortium, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    removed = ADDRESSES[3]
    stayers = [consortium.nodes[a] for a in ADDRESSES[:3]]
    watcher = stayers[0]
    for node in stayers:
        node.service.propose_vote(removed, False)
    chain = watcher.service.chain
    wait_until(lambda: removed not in chain.validators_at(chain.head.number), what="a block without it")
    # The vote took effect with block `effect`, the first that `removed` does not seal; its
    # connections close when block effect - 1 is committed (the set of the next block changed).
    effect = min(number for number in range(1, chain.head.number + 1) if removed not in chain.validators_at(number))
    wait_until(lambda: watcher.head >= effect + 4, what="four more blocks")
    for node in stayers:
        wait_until(lambda node=node: any(num >= effect + 4 for num, _ in node.seen), what="the blocks")
        if any(num == effect - 2 for num, _ in node.seen):
            assert removed in node.peers_at(effect - 2), "connected before the vote took effect"
        assert all(removed not in peers for num, peers in node.seen if num >= effect + 1), \
            f"still connected one block after the removal took effect at block {effect}: {node.seen}"
    assert logged(caplog, "dropping peer", NAMES[removed], "is no longer a validator")()
    # It keeps dialling (it is the highest address: it dials everyone) and is refused.
    wait_until(logged(caplog, "refused 127.0.0.1:", NAMES[removed], "is no longer a validator"),
               what="a refused redial")
    assert consortium.nodes[removed].peers() == frozenset()
    # The three remaining validators keep finalising blocks together.
    assert len({n.service.chain.block_by_number(effect + 3).hash for n in stayers}) == 1  # type: ignore[union-attr]


def test_an_organisation_removed_by_governance_vote_has_its_node_disconnected(
        consortium: Consortium, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    removed_org = "hospital-b"
    removed = next(a for a, org in ORG_OF.items() if org == removed_org)
    stayers = [n for a, n in consortium.nodes.items() if a != removed]
    data = selector("voteRemoveOrg(bytes32)") + org_id(removed_org)
    hashes = [consortium.send_governance(index, data) for index in ADMINS.values()]
    blocks = [consortium.final(h) for h in hashes]
    removed_at = max(blocks)  # the third vote passes: OrgRemoved in that block
    watcher = stayers[0]
    wait_until(lambda: watcher.head >= removed_at + 3, what="three more blocks")
    for node in stayers:
        wait_until(lambda node=node: any(num >= removed_at + 1 for num, _ in node.seen), what="the next block")
        assert all(removed not in peers for num, peers in node.seen if num >= removed_at + 1), node.seen
    assert logged(caplog, "dropping peer", NAMES[removed], "belongs to organisation hospital-b, which was removed "
                  "by governance vote")()
    wait_until(logged(caplog, "refused 127.0.0.1:", NAMES[removed], "removed by governance vote"),
               what="a refused redial")
    # The other three stay connected and keep finalising.
    for node in stayers:
        assert node.peers() == {s.address for s in stayers} - {node.address}


def test_a_regulator_suspension_disconnects_no_validator(
        consortium: Consortium, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    regulator_admin = ADMINS["regulator"]
    reason = b"audit".ljust(32, b"\x00")
    prescriber_b = dev_accounts()[5].address  # hospital-b's prescriber
    hashes = [
        consortium.send_governance(regulator_admin, selector("suspendOrg(bytes32,bytes32)")
                                   + org_id("hospital-b") + reason),
        consortium.send_governance(regulator_admin, selector("suspend(address,bytes32)")
                                   + prescriber_b.rjust(32, b"\x00") + reason),
    ]
    last = max(consortium.final(h) for h in hashes)
    watcher = consortium.nodes[ADDRESSES[0]]
    wait_until(lambda: watcher.head >= last + 3, what="three more blocks")
    for address, node in consortium.nodes.items():
        wait_until(lambda node=node: any(num >= last + 3 for num, _ in node.seen), what="the blocks")
        everyone_else = set(ADDRESSES) - {address}
        assert all(peers == everyone_else for num, peers in node.seen if last - 1 <= num <= last + 3), node.seen
    assert not logged(caplog, "dropping peer")()

