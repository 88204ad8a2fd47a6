"""The QBFT JSON-RPC methods on a real dev node process, and the headers it writes:
one validator, one commit seal per block, a next-validator commitment in the vanity,
and the light client accepting every header from genesis."""

from __future__ import annotations

from devnode import rpc, rpc_result, sign_and_send

from node.genesis import dev_accounts, dev_validator_key
from rxledger.core.crypto import private_key_to_address
from rxledger.core.light_client import TrustedState, verify_header
from rxledger.core.types import decode_header, encode_header
from rxledger.core.types.headers import Header
from rxledger.core.wire import header_from_rpc

VALIDATOR = "0x" + private_key_to_address(dev_validator_key()).hex()


def header_of(block: dict) -> Header:
    header = header_from_rpc(block)
    assert decode_header(encode_header(header)) == header
    return header


def test_validators_by_block_number_and_votes(dev_node, w3):
    sign_and_send(w3, {"to": w3.eth.account.from_key(dev_accounts()[1].private_key).address, "value": 0,
                       "gas": 21_000, "gasPrice": 0}, dev_accounts()[9].private_key)
    assert rpc_result(dev_node.url, "qbft_getValidatorsByBlockNumber", ["latest"]) == [VALIDATOR]
    assert rpc_result(dev_node.url, "qbft_getValidatorsByBlockNumber", ["0x0"]) == [VALIDATOR]
    assert rpc_result(dev_node.url, "qbft_getPendingVotes", []) == {}
    # Adding a validator the dev chain does not run would stop it: refused with the reason.
    answer = rpc(dev_node.url, "qbft_proposeValidatorVote", ["0x" + "77" * 20, True])
    assert answer["error"]["code"] == -32000 and "cannot seal" in answer["error"]["message"]
    answer = rpc(dev_node.url, "qbft_proposeValidatorVote", [VALIDATOR, False])
    assert answer["error"]["code"] == -32000 and "only validator" in answer["error"]["message"]
    # Removing a non-member is accepted and changes nothing.
    assert rpc_result(dev_node.url, "qbft_proposeValidatorVote", ["0x" + "66" * 20, False]) is True
    assert rpc_result(dev_node.url, "qbft_getPendingVotes", []) == {"0x" + "66" * 20: False}
    answer = rpc(dev_node.url, "qbft_proposeValidatorVote", ["0x12", True])
    assert answer["error"]["code"] == -32602 and "validatorAddress" in answer["error"]["message"]
    answer = rpc(dev_node.url, "qbft_getValidatorsByBlockNumber", ["0xffffff"])
    assert answer["error"]["code"] == -32000 and "beyond the head" in answer["error"]["message"]


def test_light_client_accepts_every_dev_header_from_genesis(dev_node, w3):
    for _ in range(3):
        sign_and_send(w3, {"to": w3.eth.account.from_key(dev_accounts()[1].private_key).address, "value": 0,
                           "gas": 21_000, "gasPrice": 0}, dev_accounts()[9].private_key)
    head = int(rpc_result(dev_node.url, "eth_blockNumber"), 16)
    headers = [header_of(rpc_result(dev_node.url, "eth_getBlockByNumber", [hex(n), False])) for n in range(head + 1)]
    trusted = TrustedState.from_genesis(headers[0])
    for header in headers[1:]:
        trusted = verify_header(trusted, header)
        extra = header.extra
        assert extra.round == 0 and len(extra.seals) == 1
    assert trusted.height == head
