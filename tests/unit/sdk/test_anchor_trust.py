"""client_sdk Trust across validator changes: a real sealed chain (in memory) whose set
grows from 4 to 5 at block 4 and shrinks to 4 at block 8. A trust walked from genesis
knows each height's set; a trust that has not followed a change fails closed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chaincode_py import NativeChaincodeHost
from client_sdk._anchor import AnchorProof, Trust, _check_seals
from client_sdk._errors import VerificationFailed
from node.chain import Chain
from node.genesis import GenesisConfig, derive_dev_key, dev_genesis
from node.storage import MemoryStore
from rxledger.core.crypto import encode_signature, private_key_to_address, sign_hash
from rxledger.core.types.headers import (
    Header,
    Vote,
    block_hash,
    decode_extra,
    encode_extra,
    encode_header,
    seal_hash,
)

KEYS = {private_key_to_address(k): k for k in (derive_dev_key(i) for i in range(300, 305))}
ADDRS = sorted(KEYS)
INITIAL = ADDRS[:4]
JOINER = ADDRS[4]
LEAVER = INITIAL[3]
CHAIN_ID = 2024


@pytest.fixture(scope="module")
def headers() -> list[Header]:
    genesis = GenesisConfig(chain_id=CHAIN_ID, validators=tuple(INITIAL),
                            enrolments=dev_genesis().enrolments, timestamp=1_700_000_000)
    chain = Chain(MemoryStore(), genesis, NativeChaincodeHost)
    plan: list[tuple[int, Vote | None]] = [
        (0, Vote(JOINER, True)), (1, Vote(JOINER, True)), (2, Vote(JOINER, True)), (3, None),
        (0, Vote(LEAVER, False)), (1, Vote(LEAVER, False)), (4, Vote(LEAVER, False)),
        (0, None), (1, None), (2, None),
    ]
    for n, (proposer, vote) in enumerate(plan, start=1):
        block, execution = chain.build_block([], timestamp=1_700_000_000 + n, proposer=ADDRS[proposer],
                                             vote=vote)
        digest = seal_hash(block.header)
        seals = [encode_signature(*sign_hash(digest, KEYS[a])) for a in chain.validators_at(n)]
        chain.commit_block(chain.seal(block, seals), execution)
    out = [chain.header_by_number(n) for n in range(chain.head.number + 1)]
    assert all(h is not None for h in out)
    return [h for h in out if h is not None]


def _anchor(header: Header) -> AnchorProof:
    """An anchoring in `header`'s block (only the header matters to the seal check)."""
    return AnchorProof(b"\x01" * 32, 1, b"\x00" * 32, CHAIN_ID, b"\x00" * 20, b"\x00" * 20,
                       b"\x00" * 32, 0, header.number, block_hash(header), encode_header(header), (), ())


def _check(header: Header, trust: Trust) -> None:
    _check_seals(_anchor(header), header, trust)


def test_walked_from_genesis_every_height_has_its_set(headers: list[Header]) -> None:
    trust = Trust.from_headers(headers[0], headers[1:], chain_id=CHAIN_ID)
    assert trust.height == 10
    for header in headers[1:]:
        assert trust.validators_at(header.number) == decode_extra(header.extra_data).validators
        _check(header, trust)
    assert trust.validators_at(4) == tuple(ADDRS)
    assert trust.validators_at(11) == trust.validators_at(500) == tuple(a for a in ADDRS if a != LEAVER)


def test_a_trust_that_missed_a_change_fails_closed(headers: list[Header]) -> None:
    genesis_only = Trust.from_validators(INITIAL, chain_id=CHAIN_ID)
    _check(headers[3], genesis_only)
    with pytest.raises(VerificationFailed, match="lists 5 validators other than the 4"):
        _check(headers[5], genesis_only)
    # Walked to block 3, whose own vote names block 4's set: the new set is known.
    to_3 = Trust.from_headers(headers[0], headers[1:4])
    _check(headers[6], to_3)
    with pytest.raises(VerificationFailed, match="lists 4 validators other than the 5"):
        _check(headers[9], to_3)
    to_3.extend(headers[4:])
    _check(headers[9], to_3)


def test_a_walked_height_must_be_the_walked_block(headers: list[Header]) -> None:
    trust = Trust.from_headers(headers[0], headers[1:])
    other = replace(headers[5], timestamp=headers[5].timestamp + 1)
    digest = seal_hash(other)
    signers = decode_extra(other.extra_data).validators
    extra = replace(decode_extra(other.extra_data),
                    seals=tuple(encode_signature(*sign_hash(digest, KEYS[a])) for a in signers))
    forged = replace(other, extra_data=encode_extra(extra))
    # Sealed by the right validators, but not the block the walk saw at height 5.
    _check(forged, Trust.from_validators(signers, from_height=5))
    with pytest.raises(VerificationFailed, match="not the block the trusted headers have"):
        _check(forged, trust)


def test_bad_trusts_are_refused(headers: list[Header]) -> None:
    with pytest.raises(VerificationFailed, match="genesis hash"):
        Trust.from_headers(headers[0], genesis_hash=b"\x00" * 32)
    with pytest.raises(VerificationFailed, match="expected block 2"):
        Trust.from_headers(headers[0], [headers[1], headers[3]])
    with pytest.raises(VerificationFailed, match="duplicates"):
        Trust.from_validators([INITIAL[0], INITIAL[0]])
    with pytest.raises(VerificationFailed, match="20-byte"):
        Trust.from_validators([b"\x01" * 19])
    with pytest.raises(VerificationFailed, match="only a trust built from headers"):
        Trust.from_validators(INITIAL).extend(headers[1:2])
    with pytest.raises(VerificationFailed, match="from block 3 on"):
        Trust.from_validators(INITIAL, from_height=3).validators_at(2)
    assert Trust.from_validators(["0x" + a.hex() for a in INITIAL]).validators_at(1) == tuple(INITIAL)
