"""One seal-quorum rule (`rxledger.core.light_client.seal_quorum_problem`): the light client
and the node's consensus judge a final block's commit seals alike, and name what is wrong.

A block 1 is built on a real chain (MemoryStore) of 4 validators and sealed with chosen
keys; each sealing is judged by the light client (`verify_final_header`) and offered to a
real `QbftNode` catching up (`import_block`, the block-sync path), whose rejection event
must carry the same reason.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from chaincode_py import NativeChaincodeHost
from node.chain import Chain
from node.consensus.qbft import QbftConfig, QbftNode
from node.genesis import GenesisConfig, derive_dev_key, dev_genesis
from node.storage import MemoryStore
from rxledger.core.crypto import encode_signature, private_key_to_address, sign_hash
from rxledger.core.light_client import LightClientError, seal_quorum_problem, verify_final_header
from rxledger.core.types.blocks import Block
from rxledger.core.types.headers import encode_extra, seal_hash

KEYS = tuple(sorted((derive_dev_key(900 + i) for i in range(4)), key=private_key_to_address))
ADDRESSES = tuple(private_key_to_address(k) for k in KEYS)
OUTSIDER = derive_dev_key(999)


def genesis() -> GenesisConfig:
    return replace(dev_genesis(), validators=ADDRESSES)


def unsealed() -> tuple[Chain, Block]:
    chain = Chain(MemoryStore(), genesis(), NativeChaincodeHost)
    block, _ = chain.build_block([], timestamp=chain.head.timestamp + 1, proposer=ADDRESSES[0], round=0)
    return chain, block


def sealed_with(block: Block, seals: list[bytes]) -> Block:
    extra = replace(block.header.extra, seals=tuple(seals))
    return Block(replace(block.header, extra_data=encode_extra(extra)), block.transactions)


def seal(block: Block, key: bytes) -> bytes:
    return encode_signature(*sign_hash(seal_hash(block.header), key))


def sync_verdict(chain: Chain, block: Block) -> list[str]:
    """The events of a QBFT node at height 1 offered `block` by block sync."""
    node = QbftNode(QbftConfig(block_period=0, empty_block_period=None), KEYS[3], chain.head,
                    chain.tally_after(chain.head), lambda b: None, now=float(chain.head.timestamp))
    node.ready()
    node.import_block(block)
    return node.ready().events


def cases() -> dict[str, tuple[list[int | str], str | None]]:
    # seal list: an index into KEYS, "outsider", or "garbage" (65 bytes with r = 0: no signature)
    return {
        "quorum": ([0, 1, 2], None),
        "all": ([0, 1, 2, 3], None),
        "too few": ([0, 1], "2 valid seals, 3 required (quorum of 4)"),
        "duplicate": ([0, 1, 1, 2], "duplicate seal from 0x" + ADDRESSES[1].hex()),
        "outsider": ([0, 1, 2, "outsider"],
                     f"seal 3 is signed by 0x{private_key_to_address(OUTSIDER).hex()} which is not a validator"),
        "garbage": ([0, "garbage", 1, 2], "seal 1 is malformed: "),
    }


@pytest.mark.parametrize("case", list(cases()))
def test_the_light_client_and_consensus_judge_commit_seals_by_the_one_rule(case: str) -> None:
    chain, block = unsealed()
    who, expected = cases()[case]
    seals = [seal(block, KEYS[w]) if isinstance(w, int)
             else seal(block, OUTSIDER) if w == "outsider" else b"\x00" * 32 + b"\x01" * 32 + b"\x00" for w in who]
    final = sealed_with(block, seals)
    problem = seal_quorum_problem(final.header, ADDRESSES)
    events = sync_verdict(chain, final)
    if expected is None:
        assert problem is None
        verify_final_header(ADDRESSES, final.header)  # raises if not final
        assert any("imported final block 1 by sync" in e for e in events), events
        return
    assert problem is not None and problem.startswith(expected), problem
    with pytest.raises(LightClientError) as info:
        verify_final_header(ADDRESSES, final.header)
    assert info.value.reason == f"block 1: {problem}"
    rejected = [e for e in events if "rejected synced block 1" in e]
    assert rejected and rejected[0].endswith(f"rejected synced block 1: {problem}"), events


def test_an_empty_validator_set_finalises_nothing() -> None:
    _, block = unsealed()
    final = sealed_with(block, [seal(block, k) for k in KEYS])
    assert seal_quorum_problem(final.header, ()) == "the validator set is empty"
