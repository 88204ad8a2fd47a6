"""`GET /health` tells the truth (issue 11, item 9): HTTP 200 with `"status": "ok"` only
when the node is sound; 503 with the reason in `status` when consensus has stopped,
when storage failed, and when the node is syncing far behind its peers.

It answered HTTP 200 while it said "consensus stopped": a load balancer's or an
orchestrator's probe could not tell. The ok case runs a real dev node process; the failed
states run a real NodeService (real LevelDB where storage fails, real consensus runtime,
real P2PTransport over the in-memory peer network) behind the real ASGI application.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from starlette.testclient import TestClient

from chaincode_py import NativeChaincodeHost
from node.config import NodeConfig
from node.consensus.qbft import QbftConfig
from node.genesis import dev_accounts, dev_genesis, dev_validator_key
from node.p2p import Kind, MemoryNetwork, MemoryTransport, P2PTransport
from node.rpc.app import create_app
from node.runtime import NoPeers
from node.service import NodeService
from rxledger.core.crypto import private_key_to_address

DEV_CONSENSUS = QbftConfig(block_period=0.0, empty_block_period=None, round_timeout=1.0, max_round_timeout=10.0)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def transfer(nonce: int) -> bytes:
    sender = dev_accounts()[9]
    tx = {"nonce": nonce, "gasPrice": 0, "gas": 21_000, "value": 0, "chainId": 2024,
          "to": Account.from_key(dev_accounts()[1].private_key).address}
    return bytes(Account.sign_transaction(tx, sender.private_key).raw_transaction)


@pytest.fixture
def services() -> Iterator[list[NodeService]]:
    made: list[NodeService] = []
    yield made
    for service in made:
        try:
            service.close()
        except Exception:  # a store the test closed already
            pass


def health(service: NodeService) -> httpx.Response:
    return TestClient(create_app(service)).get("/health")


def test_a_sound_node_answers_200_ok(dev_node):
    response = httpx.get(dev_node.url + "health", timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    for key in ("node", "chainId", "genesisHash", "head", "headHash", "headTimestamp", "txpool",
                "validator", "validators", "height", "round", "peers"):
        assert key in body, key


def test_consensus_stopped_is_503_with_the_reason(services):
    service = NodeService(NodeConfig(data_dir=None, dev=True), dev_genesis(), validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
    services.append(service)

    def broken_listener(block, receipts) -> None:  # a bug in a part that follows the chain
        raise RuntimeError(f"listener bug at block {block.number}")

    service.chain.add_listener(broken_listener)
    runtime = service.start_consensus(DEV_CONSENSUS)
    assert health(service).status_code == 200
    service.submit_raw_transaction(transfer(0))
    wait_until(lambda: runtime.failed is not None, "the consensus runtime to stop")
    response = health(service)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "consensus stopped: RuntimeError: listener bug at block 1"
    assert body["head"] == 1 and body["chainId"] == 2024  # the other fields are still there


def test_storage_failed_is_503_with_the_reason(services, tmp_path: Path):
    service = NodeService(NodeConfig(data_dir=tmp_path, dev=True), dev_genesis(), validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
    services.append(service)
    runtime = service.start_consensus(
        QbftConfig(block_period=0.0, empty_block_period=0.05, round_timeout=1.0, max_round_timeout=10.0))
    wait_until(lambda: service.chain.head.number >= 2, "two empty blocks")
    assert health(service).status_code == 200
    service.store.close()  # the real LevelDB store: every later read or write is a StorageError
    wait_until(lambda: runtime.failed is not None, "the consensus runtime to stop")
    response = health(service)
    assert response.status_code == 503
    status = response.json()["status"]
    assert status.startswith("storage failed: "), status
    assert str(tmp_path / "chaindata") in status and "closed" in status, status


def test_syncing_far_behind_is_503_until_caught_up(services):
    """A node whose peers announce a head far ahead of its own is 'syncing: N blocks
    behind' (503) until block sync brings it within `health_max_blocks_behind`."""
    blocks_reach_behind = [False]
    # Neither blocks nor consensus messages reach it until released (an observer follows
    # the validator's COMMITs too, and would otherwise keep up without block sync).
    net = MemoryNetwork(drop=lambda sender, receiver, kind: kind in (Kind.BLOCKS, Kind.CONSENSUS)
                        and not blocks_reach_behind[0])
    net.start()
    endpoints: list[MemoryTransport] = []
    try:
        ahead = NodeService(NodeConfig(data_dir=None), dev_genesis(), validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
        behind = NodeService(NodeConfig(data_dir=None, health_max_blocks_behind=5), dev_genesis(), chaincode=NativeChaincodeHost)
        services.extend([ahead, behind])
        for service, name, key in ((ahead, "ahead", dev_validator_key()), (behind, "behind", bytes([7]) * 32)):
            transport = P2PTransport(service.chain, submit_transaction=service.submit_raw_transaction,
                                     request_retry=0.1)
            chain = service.chain
            endpoint = MemoryTransport(net, private_key_to_address(key), name=name, chain_id=chain.chain_id,
                                       genesis_hash=chain.genesis_hash,
                                       head=lambda chain=chain: (chain.head.number, chain.head.hash),
                                       **transport.handlers())  # type: ignore[arg-type]
            transport.attach(endpoint)
            period = 0.1 if service is ahead else None
            runtime = service.start_consensus(QbftConfig(block_period=0.0, empty_block_period=period,
                                                         round_timeout=1.0, max_round_timeout=10.0), transport)
            transport.bind_runtime(runtime)
            # Peers learn our head from STATUS, as `rxledger node start --config` announces it.
            chain.add_listener(lambda block, receipts, endpoint=endpoint: endpoint.announce_status())
            endpoints.append(endpoint)
        for endpoint in endpoints:
            endpoint.start()

        wait_until(lambda: ahead.chain.head.number >= 12, "the validator to make 12 blocks")
        wait_until(lambda: health(behind).status_code == 503, "the node behind to report syncing")
        body = health(behind).json()
        assert behind.chain.head.number == 0
        assert body["status"].startswith("syncing: ") and body["status"].endswith(" blocks behind"), body
        assert int(body["status"].split()[1]) > 5
        assert health(ahead).status_code == 200

        blocks_reach_behind[0] = True  # the node behind can sync now
        wait_until(lambda: health(behind).status_code == 200, "the node behind to catch up")
        assert health(behind).json()["status"] == "ok"
        assert behind.chain.head.number >= 12
    finally:
        for endpoint in endpoints:
            endpoint.stop()
        net.stop()


class _Announced(NoPeers):
    """Peers as the p2p layer reports them (address and announced STATUS head); reaches
    nobody. Stands in for connected peers whose STATUS frames say `heads`."""

    def __init__(self, heads: dict[bytes, int]) -> None:
        self.heads = heads

    def peers(self) -> list[dict[str, object]]:
        return [{"address": "0x" + a.hex(), "head": h} for a, h in self.heads.items()]


def test_only_validators_announced_heads_can_make_a_node_report_syncing(services):
    """Observers are not trusted for the network's head: two observers announcing a head
    far ahead used to make every validator of a four-node network answer 503 "syncing"
    (an orchestrator would then restart healthy validators). A validator's announcement
    counts."""
    service = NodeService(NodeConfig(data_dir=None, health_max_blocks_behind=5), dev_genesis(),
                          validator_key=dev_validator_key(), chaincode=NativeChaincodeHost)
    services.append(service)
    observers = {bytes([1]) * 20: 10_000, bytes([2]) * 20: 10_000}
    transport = _Announced(observers)
    service.start_consensus(QbftConfig(block_period=0.0, empty_block_period=None), transport)
    response = health(service)
    assert response.status_code == 200 and response.json()["status"] == "ok", response.json()
    transport.heads[private_key_to_address(dev_validator_key())] = 10_000  # a validator's own STATUS
    response = health(service)
    assert response.status_code == 503
    assert response.json()["status"] == "syncing: 10000 blocks behind"
