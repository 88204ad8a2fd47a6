"""Prescription tokens (JSON, compact, sealed) and the JSON-RPC transport's error mapping.

The transport failures a real node never produces (HTTP 500, non-JSON, a dead port) go
through httpx's transport seam; refusals from a real node are in tests/integration."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from eth_abi.abi import encode as abi_encode

from client_sdk import (
    AsyncRpc,
    ClientError,
    NotFinal,
    PrescriptionToken,
    Refused,
    Rpc,
    RpcError,
    TransportError,
    VerificationFailed,
    decode_token,
    generate_pharmacy_key,
)
from client_sdk._ledger import wait_receipt_flow
from client_sdk._rpc import decode_revert

TOKEN = PrescriptionToken(b"\x11" * 32, b"\x22" * 32, b'{"resourceType":"MedicationRequest"}')


def test_token_json_and_compact_round_trip():
    assert decode_token(TOKEN.to_json()) == TOKEN
    assert decode_token(json.dumps(TOKEN.to_json())) == TOKEN
    assert decode_token(TOKEN.to_compact()) == TOKEN
    assert TOKEN.to_compact().startswith("RXL1.")


@pytest.mark.parametrize(("change", "reason"), [
    ({"v": 2}, "version"),
    ({"rxId": "0x1234"}, "rxId"),
    ({"salt": "AAAA"}, "salt"),
    ({"salt": 5}, "salt"),
    ({"doc": 7}, "doc"),
])
def test_malformed_tokens_are_refused_naming_the_field(change, reason):
    with pytest.raises(VerificationFailed) as bad:
        decode_token(dict(TOKEN.to_json(), **change))
    assert reason in str(bad.value)
    with pytest.raises(VerificationFailed):
        decode_token("RXL1.not-zlib")
    with pytest.raises(VerificationFailed):
        decode_token("{")


def test_sealed_tokens_open_only_with_the_right_key_and_rx_id():
    private, public = generate_pharmacy_key()
    other, _ = generate_pharmacy_key()
    sealed = TOKEN.seal_to(public)
    assert sealed.is_sealed and "doc" not in sealed.to_json()
    assert decode_token(sealed.to_compact()).open_with(private) == TOKEN
    with pytest.raises(VerificationFailed):
        sealed.open_with(other)
    tampered = dict(sealed.to_json())
    tampered["enc"] = dict(tampered["enc"], ct=tampered["enc"]["ct"][:-2] + ("A" if tampered["enc"]["ct"][-2] != "A" else "B") + tampered["enc"]["ct"][-1])
    with pytest.raises(VerificationFailed):
        decode_token(tampered).open_with(private)
    with pytest.raises(ClientError):
        sealed.document_json()
    with pytest.raises(ClientError):
        sealed.seal_to(public)


def _answer(body, status=200):
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body) if not isinstance(body, bytes)
                               else httpx.Response(status, content=body))


def revert_data(reason: str) -> str:
    return "0x08c379a0" + abi_encode(["string"], [reason]).hex()


def test_revert_and_txpool_refusals_become_refused_with_the_reason():
    rpc = Rpc("http://node", transport=_answer(
        {"jsonrpc": "2.0", "id": 1, "error": {"code": 3, "message": "execution reverted: Rx: x",
                                               "data": revert_data("Rx: no fills left")}}))
    with pytest.raises(Refused) as refused:
        rpc.request("eth_call", {}, "latest")
    assert refused.value.reason == "Rx: no fills left"
    pool = Rpc("http://node", transport=_answer(
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "nonce too low"}}))
    with pytest.raises(Refused, match="nonce too low"):
        pool.request("eth_sendRawTransaction", "0x00")
    with pytest.raises(RpcError) as other:
        pool.request("eth_getBalance", "0x00", "latest")
    assert other.value.code == -32000
    assert decode_revert(revert_data("why")) == "why" and decode_revert("0x1234") is None


@pytest.mark.parametrize(("transport", "text"), [
    (_answer({"oops": True}, 500), "HTTP 500"),
    (_answer(b"<html>", 200), "not JSON"),
    (_answer([1, 2], 200), "not a JSON-RPC response"),
    (_answer({"jsonrpc": "2.0", "id": 1}, 200), "neither result nor error"),
])
def test_a_broken_answer_is_a_transport_error(transport, text):
    with pytest.raises(TransportError, match=text):
        Rpc("http://node", transport=transport).request("eth_blockNumber")


def test_an_unreachable_node_is_a_transport_error_naming_the_url():
    with pytest.raises(TransportError, match="cannot reach the node at http://127.0.0.1:9"):
        Rpc("http://127.0.0.1:9", timeout=2).request("eth_blockNumber")


def test_waiting_for_a_receipt_that_never_comes_is_not_final_sync_and_async():
    none = {"jsonrpc": "2.0", "id": 1, "result": None}
    with pytest.raises(NotFinal) as sync_wait:
        Rpc("http://node", transport=_answer(none)).run(wait_receipt_flow("0xab", timeout=0.05, poll=0.01))
    assert sync_wait.value.tx_hash == "0xab"

    async def wait() -> None:
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json=none))
        await AsyncRpc("http://node", transport=transport).run(wait_receipt_flow("0xcd", timeout=0.05, poll=0.01))

    with pytest.raises(NotFinal):
        asyncio.run(wait())
