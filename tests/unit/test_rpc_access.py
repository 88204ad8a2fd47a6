"""Administrative JSON-RPC methods are served only where node.toml enables them (issue 11,
INTERFACES.md "Access control"): elsewhere they answer -32601 saying how to enable them.

`qbft_proposeValidatorVote` was served to anyone who reached the RPC port. These run a
real NodeService behind the real ASGI application, in-process.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from chaincode_py import NativeChaincodeHost
from node.config import NodeConfig
from node.genesis import dev_genesis
from node.rpc.app import create_app
from node.rpc.methods import ADMIN, METHOD_GROUPS, METHODS, READ, TX
from node.service import NodeService

CANDIDATE = "0x" + "ab" * 20


def client(admin: bool) -> tuple[TestClient, NodeService]:
    service = NodeService(NodeConfig(data_dir=None, rpc_admin=admin), dev_genesis(), chaincode=NativeChaincodeHost)
    return TestClient(create_app(service)), service


def call(http: TestClient, method: str, params: list[Any], id_: int = 1) -> dict[str, Any]:
    answer: dict[str, Any] = http.post("/", json={"jsonrpc": "2.0", "id": id_, "method": method,
                                                  "params": params}).json()
    return answer


def test_every_method_has_one_group_and_votes_are_admin() -> None:
    assert set(METHOD_GROUPS) == set(METHODS)
    assert set(METHOD_GROUPS.values()) <= {READ, TX, ADMIN}
    assert METHOD_GROUPS["qbft_proposeValidatorVote"] == ADMIN
    assert METHOD_GROUPS["eth_sendRawTransaction"] == TX
    assert METHOD_GROUPS["qbft_getPendingVotes"] == READ  # a read (INTERFACES.md scopes)


def test_admin_methods_are_refused_where_node_toml_does_not_enable_them() -> None:
    http, service = client(admin=False)
    answer = call(http, "qbft_proposeValidatorVote", [CANDIDATE, True], 7)
    assert answer["id"] == 7 and "result" not in answer, answer
    assert answer["error"]["code"] == -32601
    message = answer["error"]["message"]
    assert "qbft_proposeValidatorVote" in message and "administrative" in message
    assert "admin = true" in message and "[rpc]" in message and "node.toml" in message
    assert service.pending_votes == {}  # nothing was done
    # In a batch, each call is judged alone.
    batch = http.post("/", json=[
        {"jsonrpc": "2.0", "id": 1, "method": "qbft_proposeValidatorVote", "params": [CANDIDATE, True]},
        {"jsonrpc": "2.0", "id": 2, "method": "qbft_getPendingVotes", "params": []},
    ]).json()
    by_id = {a["id"]: a for a in batch}
    assert by_id[1]["error"]["code"] == -32601
    assert by_id[2]["result"] == {}


def test_admin_methods_are_served_where_node_toml_enables_them() -> None:
    http, service = client(admin=True)
    assert call(http, "qbft_proposeValidatorVote", [CANDIDATE, True]) == {"jsonrpc": "2.0", "id": 1, "result": True}
    assert service.pending_votes == {bytes.fromhex("ab" * 20): True}
    assert call(http, "qbft_getPendingVotes", [])["result"] == {CANDIDATE: True}


@pytest.mark.parametrize("admin", [False, True])
def test_reads_and_sends_do_not_need_admin(admin: bool) -> None:
    http, _ = client(admin)
    assert call(http, "eth_blockNumber", [])["result"] == "0x0"
    assert call(http, "eth_sendRawTransaction", ["0x00"])["error"]["code"] == -32000  # judged, not gated


def test_the_dev_chain_enables_admin_methods() -> None:
    from rxledger.cli import build_parser

    args = build_parser().parse_args(["node", "start", "--dev"])
    assert args.rpc_gas_cap == 50_000_000 and args.rpc_evm_timeout == 5.0
    # node_start builds the dev NodeConfig with rpc_admin=True; checked on a real dev node by
    # tests/integration/test_qbft_rpc.py, which proposes votes over JSON-RPC.
