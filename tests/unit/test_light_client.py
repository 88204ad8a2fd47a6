"""rxledger.core.light_client: a light client walks a real sealed chain from genesis
across a validator addition and a removal, and rejects each kind of bad header with a
reason that names it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaincode_py import NativeChaincodeHost
from node.chain import Chain
from node.consensus.validators import quorum, validators_commitment
from node.genesis import GenesisConfig, derive_dev_key, dev_genesis
from node.storage import MemoryStore
from rxledger.core.crypto import SECP256K1_N, encode_signature, private_key_to_address, sign_hash
from rxledger.core.errors import InvalidBlock
from rxledger.core.light_client import (
    LightClientError,
    TrustedState,
    verify_chain,
    verify_final_header,
    verify_header,
)
from rxledger.core.types.headers import (
    Header,
    Vote,
    block_hash,
    decode_extra,
    encode_extra,
    seal_hash,
)

KEYS = {private_key_to_address(k): k for k in (derive_dev_key(i) for i in range(200, 205))}
ADDRS = [private_key_to_address(derive_dev_key(i)) for i in range(200, 205)]
INITIAL = ADDRS[:4]
JOINER = ADDRS[4]
LEAVER = INITIAL[3]
OUTSIDER_KEY = derive_dev_key(250)
OUTSIDER = private_key_to_address(OUTSIDER_KEY)
KEYS[OUTSIDER] = OUTSIDER_KEY


def hx(a: bytes) -> str:
    return "0x" + a.hex()


def seal_of(header: Header, key: bytes) -> bytes:
    return encode_signature(*sign_hash(seal_hash(header), key))


def with_seals(header: Header, seals: list[bytes] | tuple[bytes, ...]) -> Header:
    extra = decode_extra(header.extra_data)
    return replace(header, extra_data=encode_extra(replace(extra, seals=tuple(seals))))


def resealed(header: Header, signers: list[bytes] | tuple[bytes, ...]) -> Header:
    """The header with its seals replaced by fresh seals of `signers` (addresses)."""
    bare = with_seals(header, [])
    return with_seals(bare, [seal_of(bare, KEYS[a]) for a in signers])


@dataclass
class Built:
    chain: Chain
    headers: list[Header]  # index = block number

    def validators(self, n: int) -> tuple[bytes, ...]:
        return decode_extra(self.headers[n].extra_data).validators


@pytest.fixture(scope="module")
def built() -> Built:
    """Genesis with 4 validators; JOINER added (votes in blocks 1-3, sealing from 4);
    LEAVER removed (votes in blocks 5-7 from > half of 5, gone from block 8); 10 blocks."""
    genesis = GenesisConfig(chain_id=2024, validators=tuple(INITIAL),
                            enrolments=dev_genesis().enrolments, timestamp=1_700_000_000)
    chain = Chain(MemoryStore(), genesis, NativeChaincodeHost)
    plan: list[tuple[int, Vote | None]] = [
        (0, Vote(JOINER, True)), (1, Vote(JOINER, True)), (2, Vote(JOINER, True)),
        (3, None),
        (0, Vote(LEAVER, False)), (1, Vote(LEAVER, False)), (4, Vote(LEAVER, False)),
        (0, None), (1, None), (2, None),
    ]
    for n, (proposer_index, vote) in enumerate(plan, start=1):
        sealers = chain.validators_at(n)
        proposer = ADDRS[proposer_index]
        assert proposer in sealers
        block, execution = chain.build_block([], timestamp=1_700_000_000 + n, proposer=proposer,
                                             vote=vote)
        assert decode_extra(block.header.extra_data).validators == sealers
        seals = [seal_of(block.header, KEYS[a]) for a in sealers]
        chain.commit_block(chain.seal(block, seals), execution)
    headers = [chain.header_by_number(n) for n in range(chain.head.number + 1)]
    assert all(h is not None for h in headers)
    return Built(chain, [h for h in headers if h is not None])


def genesis_state(b: Built) -> TrustedState:
    return TrustedState.from_genesis(b.headers[0], b.chain.genesis_hash)


def state_before(b: Built, n: int) -> TrustedState:
    return verify_chain(genesis_state(b), b.headers[1:n])


def rejected(trusted: TrustedState, header: Header) -> str:
    with pytest.raises(LightClientError) as info:
        verify_header(trusted, header)
    return info.value.reason


# -- the honest chain ------------------------------------------------------------------------


def test_the_chain_changes_validators_twice(built: Built):
    assert built.validators(1) == built.validators(3) == tuple(sorted(INITIAL))
    assert built.validators(4) == built.validators(7) == tuple(sorted(ADDRS))
    assert built.validators(8) == built.validators(10) == tuple(sorted(set(ADDRS) - {LEAVER}))
    assert decode_extra(built.headers[3].extra_data).vanity == validators_commitment(ADDRS)


def test_walks_every_header_from_genesis_across_both_changes(built: Built):
    trusted = genesis_state(built)
    assert trusted.height == 0 and trusted.next_validators == tuple(sorted(INITIAL))
    for header in built.headers[1:]:
        trusted = verify_header(trusted, header)
        assert trusted.height == header.number
        assert trusted.block_hash == block_hash(header)
        # Every header of this chain names the next set (unchanged, or its own vote).
        assert trusted.next_validators == built.chain.validators_at(header.number + 1)
        assert trusted.next_commitment == validators_commitment(trusted.next_validators)
    assert trusted.block_hash == built.chain.head.hash
    assert verify_chain(genesis_state(built), built.headers[1:]) == trusted


def test_next_set_learnt_from_the_next_header_when_the_vanity_cannot_be_named(built: Built):
    # A pinned point whose commitment alone is known: the next header reveals the set.
    trusted = TrustedState(3, block_hash(built.headers[3]), validators_commitment(ADDRS))
    after = verify_header(trusted, built.headers[4])
    assert after.height == 4 and after.next_validators == tuple(sorted(ADDRS))


def test_verify_final_header_against_a_given_set(built: Built):
    for n in range(1, len(built.headers)):
        verify_final_header(built.chain.validators_at(n), built.headers[n])
        verify_final_header(list(reversed(built.chain.validators_at(n))), built.headers[n])
    # Block 4 is sealed by all five; against the old four, JOINER's seal is foreign.
    with pytest.raises(LightClientError, match=f"block 4: seal .* is signed by {hx(JOINER)} which is not a validator"):
        verify_final_header(INITIAL, built.headers[4])
    with pytest.raises(LightClientError, match="block 2: the validator set is empty"):
        verify_final_header([], built.headers[2])


# -- anchors ---------------------------------------------------------------------------------


def test_from_genesis_checks_the_expected_hash_and_number(built: Built):
    genesis = built.headers[0]
    assert TrustedState.from_genesis(genesis).block_hash == built.chain.genesis_hash
    wrong = b"\x11" * 32
    with pytest.raises(LightClientError, match=f"genesis hash {hx(built.chain.genesis_hash)} does not match the expected {hx(wrong)}"):
        TrustedState.from_genesis(genesis, wrong)
    with pytest.raises(LightClientError, match="genesis header has number 0, got block 3"):
        TrustedState.from_genesis(built.headers[3])
    # A genesis with another validator set has another hash.
    other = replace(genesis, extra_data=encode_extra(replace(
        decode_extra(genesis.extra_data), validators=tuple(sorted([*INITIAL[:3], OUTSIDER])))))
    with pytest.raises(LightClientError, match="does not match the expected"):
        TrustedState.from_genesis(other, built.chain.genesis_hash)


def test_pinned_set_mode(built: Built):
    pinned = TrustedState.from_validators(5, block_hash(built.headers[5]),
                                          reversed(built.chain.validators_at(6)))
    assert pinned.next_validators == tuple(sorted(ADDRS))
    final = verify_chain(pinned, built.headers[6:])
    assert final.height == 10 and final.block_hash == built.chain.head.hash
    # Pinning the wrong set (the old one) rejects the next header.
    wrong = TrustedState.from_validators(5, block_hash(built.headers[5]), INITIAL)
    assert rejected(wrong, built.headers[6]) == "block 6: validator set does not match the trusted commitment"
    with pytest.raises(LightClientError, match="duplicates"):
        TrustedState.from_validators(5, block_hash(built.headers[5]), [ADDRS[0], ADDRS[0]])
    with pytest.raises(LightClientError, match="empty"):
        TrustedState.from_validators(5, block_hash(built.headers[5]), [])
    with pytest.raises(LightClientError, match="do not match the trusted commitment"):
        TrustedState(5, block_hash(built.headers[5]), b"\x00" * 32, tuple(sorted(INITIAL)))


# -- rejections ------------------------------------------------------------------------------


def test_forged_seal_by_a_non_validator(built: Built):
    header = built.headers[2]
    seals = list(decode_extra(header.extra_data).seals)
    seals[1] = seal_of(with_seals(header, []), OUTSIDER_KEY)
    reason = rejected(state_before(built, 2), with_seals(header, seals))
    assert reason == f"block 2: seal 1 is signed by {hx(OUTSIDER)} which is not a validator"


def test_seal_over_a_different_header(built: Built):
    trusted = state_before(built, 2)
    tampered = replace(built.headers[2], timestamp=built.headers[2].timestamp + 1)
    assert tampered.parent_hash == trusted.block_hash
    reason = rejected(trusted, tampered)
    assert reason.startswith("block 2: seal 0 is signed by 0x") and reason.endswith("which is not a validator")
    # The round is not in the block hash but is in what the seals sign.
    extra = decode_extra(built.headers[2].extra_data)
    other_round = replace(built.headers[2], extra_data=encode_extra(replace(extra, round=1)))
    assert block_hash(other_round) == block_hash(built.headers[2])
    assert "is not a validator" in rejected(trusted, other_round)
    # Seals copied from block 1 onto block 2.
    copied = with_seals(built.headers[2], decode_extra(built.headers[1].extra_data).seals)
    assert "is not a validator" in rejected(trusted, copied)


@pytest.mark.parametrize("n", [2, 4, 9])
def test_missing_seal(built: Built, n: int):
    sealers = built.validators(n)
    q = quorum(len(sealers))
    short = resealed(built.headers[n], sealers[: q - 1])
    assert rejected(state_before(built, n), short) == (
        f"block {n}: {q - 1} valid seals, {q} required (quorum of {len(sealers)})"
    )
    verify_header(state_before(built, n), resealed(built.headers[n], sealers[-q:]))


def test_no_seals(built: Built):
    assert rejected(state_before(built, 1), with_seals(built.headers[1], [])) == (
        "block 1: 0 valid seals, 3 required (quorum of 4)"
    )


def test_duplicate_signer(built: Built):
    header = built.headers[2]
    s = decode_extra(header.extra_data).seals
    signer = built.validators(2)[0]
    assert rejected(state_before(built, 2), with_seals(header, [s[0], s[1], s[0]])) == (
        f"block 2: duplicate seal from {hx(signer)}"
    )
    # The same signer's malleated (high-s) twin is other bytes but still a duplicate.
    r, sv, v = s[0][:32], int.from_bytes(s[0][32:64], "big"), s[0][64]
    twin = r + (SECP256K1_N - sv).to_bytes(32, "big") + bytes([v ^ 1])
    assert twin != s[0]
    assert rejected(state_before(built, 2), with_seals(header, [s[0], s[1], twin])) == (
        f"block 2: duplicate seal from {hx(signer)}"
    )


def test_wrong_validator_set_resealed_by_that_set(built: Built):
    header = built.headers[2]
    forged_set = tuple(sorted([*built.validators(2)[:3], OUTSIDER]))
    extra = decode_extra(header.extra_data)
    altered = replace(header, extra_data=encode_extra(replace(extra, validators=forged_set, seals=())))
    altered = resealed(altered, forged_set)
    verify_final_header(forged_set, altered)  # its seals are fine for the set it claims
    assert rejected(state_before(built, 2), altered) == (
        "block 2: validator set does not match the trusted commitment"
    )
    # Dropping the joiner from block 4 (sealed by the four old validators) is caught too.
    extra4 = decode_extra(built.headers[4].extra_data)
    old = tuple(sorted(INITIAL))
    dropped = resealed(replace(built.headers[4], extra_data=encode_extra(replace(extra4, validators=old))), old)
    assert rejected(state_before(built, 4), dropped) == (
        "block 4: validator set does not match the trusted commitment"
    )


def test_wrong_parent_hash(built: Built):
    header = replace(built.headers[2], parent_hash=b"\x22" * 32)
    header = resealed(header, built.validators(2))
    assert rejected(state_before(built, 2), header) == (
        "block 2: parent hash does not match the trusted block 1"
    )


def test_skipped_and_repeated_height(built: Built):
    trusted = genesis_state(built)
    assert rejected(trusted, built.headers[2]) == "expected block 1, got block 2"
    after1 = verify_header(trusted, built.headers[1])
    assert rejected(after1, built.headers[1]) == "expected block 2, got block 1"
    with pytest.raises(LightClientError, match="expected block 4, got block 5"):
        verify_chain(trusted, [built.headers[1], built.headers[2], built.headers[3], built.headers[5]])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:64] + b"\x1b",                        # v = 27, not a y parity
        lambda s: b"\x00" * 32 + s[32:],                   # r = 0
        lambda s: SECP256K1_N.to_bytes(32, "big") + s[32:],  # r = n, out of range
        lambda s: s[:32] + b"\xff" * 32 + s[64:],          # s > n
    ],
    ids=["bad-v", "zero-r", "r-is-n", "s-too-big"],
)
def test_malformed_seal_bytes(built: Built, mangle):
    header = built.headers[3]
    seals = list(decode_extra(header.extra_data).seals)
    seals[2] = mangle(seals[2])
    reason = rejected(state_before(built, 3), with_seals(header, seals))
    assert reason.startswith("block 3: seal 2 is malformed")


def test_malformed_extra_data(built: Built):
    header = replace(built.headers[2], extra_data=b"\x01\x02")
    assert rejected(state_before(built, 2), header).startswith("block 2: malformed QBFT extraData")


def test_errors_are_invalid_block(built: Built):
    with pytest.raises(InvalidBlock):
        verify_header(genesis_state(built), built.headers[2])


# -- property: accepted iff the distinct valid signers reach quorum ----------------------------


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_subsets_of_seals(built: Built, data):
    n = data.draw(st.sampled_from([2, 4, 8]))  # 4, 5 and 4 validators
    trusted = state_before(built, n)
    header = built.headers[n]
    valid = list(decode_extra(header.extra_data).seals)
    chosen = data.draw(st.lists(st.sampled_from(range(len(valid))), unique=True))
    header = with_seals(header, [valid[i] for i in chosen])
    if len(chosen) >= quorum(len(valid)):
        assert verify_header(trusted, header).block_hash == block_hash(header)
    else:
        assert rejected(trusted, header) == (
            f"block {n}: {len(chosen)} valid seals, {quorum(len(valid))} required "
            f"(quorum of {len(valid)})"
        )


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_mixtures_of_seals(built: Built, data):
    """Seals drawn with repeats from the validators' and an outsider's: accepted iff none is
    foreign, none repeats a signer, and the distinct signers reach quorum; otherwise the
    reason names the first fault."""
    n = data.draw(st.sampled_from([3, 4]))
    trusted = state_before(built, n)
    bare = with_seals(built.headers[n], [])
    pool = [*built.validators(n), OUTSIDER]
    signers = data.draw(st.lists(st.sampled_from(pool), max_size=8))
    header = with_seals(bare, [seal_of(bare, KEYS[a]) for a in signers])
    members = set(built.validators(n))
    expected: str | None = None  # the first fault in seal order, as the client reports it
    seen: set[bytes] = set()
    for i, a in enumerate(signers):
        if a not in members:
            expected = f"block {n}: seal {i} is signed by {hx(a)} which is not a validator"
        elif a in seen:
            expected = f"block {n}: duplicate seal from {hx(a)}"
        if expected:
            break
        seen.add(a)
    if expected is None and len(seen) < quorum(len(members)):
        expected = (f"block {n}: {len(seen)} valid seals, {quorum(len(members))} required "
                    f"(quorum of {len(members)})")
    if expected is None:
        verify_header(trusted, header)
    else:
        assert rejected(trusted, header) == expected
