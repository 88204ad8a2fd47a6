"""rxledger.core.types: transactions against eth-account's encoding, header hash rules, codecs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import rlp
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from node.genesis import dev_accounts
from rxledger.core.crypto import encode_signature, keccak256, private_key_to_address, sign_hash
from rxledger.core.errors import InvalidBlock, InvalidTransaction
from rxledger.core.types import (
    Block,
    Log,
    QbftExtra,
    Receipt,
    Vote,
    block_hash,
    decode_block,
    decode_extra,
    decode_header,
    decode_receipt,
    decode_transaction,
    encode_block,
    encode_extra,
    encode_header,
    encode_receipt,
    logs_bloom,
    recover_seal_signers,
    seal_hash,
    validate_transaction,
)
from rxledger.core.types.blocks import ordered_trie_root
from rxledger.core.types.headers import EMPTY_REQUESTS_HASH, EMPTY_TRIE_ROOT, QBFT_MIX_HASH, Header

KEY = dev_accounts()[9].private_key
SENDER = dev_accounts()[9].address
TO = dev_accounts()[1].address
TO_HEX = to_checksum_address(TO)


def sign(**tx: object) -> bytes:
    return bytes(Account.from_key(KEY).sign_transaction(tx).raw_transaction)


def legacy(**over: object) -> bytes:
    tx: dict[str, object] = dict(nonce=0, gasPrice=0, gas=21000, to=TO_HEX, value=0, data=b"", chainId=2024)
    tx.update(over)
    return sign(**tx)


def dynamic(**over: object) -> bytes:
    tx: dict[str, object] = dict(nonce=0, maxFeePerGas=0, maxPriorityFeePerGas=0, gas=21000,
                                 to=TO_HEX, value=0, data=b"", chainId=2024, type=2)
    tx.update(over)
    return sign(**tx)


@pytest.mark.parametrize("make", [legacy, dynamic], ids=["legacy", "eip1559"])
def test_decode_recovers_sender_and_hash_like_eth_account(make):
    raw = make(nonce=7, data=b"\x01\x00\x02")
    stx = decode_transaction(raw)
    assert stx.sender == SENDER
    assert stx.hash == keccak256(raw)
    assert stx.raw == raw and stx.tx.encode() == raw
    assert stx.nonce == 7 and stx.tx.chain_id == 2024
    assert stx.intrinsic_gas == 21000 + 2 * 16 + 4


def test_eip1559_access_list_roundtrip_and_intrinsic_gas():
    raw = dynamic(gas=60000, accessList=[{"address": TO_HEX, "storageKeys": ["0x" + "00" * 31 + "01"]}])
    stx = decode_transaction(raw)
    assert stx.tx.access_list == ((TO, (b"\x00" * 31 + b"\x01",)),)
    assert stx.intrinsic_gas == 21000 + 2400 + 1900


def test_contract_creation_has_empty_to_and_creation_gas():
    stx = decode_transaction(legacy(to=b"", gas=100000, data=b"\x60\x00"))
    assert stx.to == b""
    assert stx.intrinsic_gas == 21000 + 32000 + 2 + 16 + 4


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty"),
        (bytes.fromhex("f8ff00"), "malformed RLP"),
        (bytes.fromhex("02c0"), "malformed RLP"),
        (bytes.fromhex("01c0"), "access-list (0x01) is not supported"),
        (bytes.fromhex("03c0"), "blob (0x03) is not supported"),
        (bytes.fromhex("7f00"), "unknown transaction type 0x7f"),
    ],
)
def test_malformed_transactions_are_refused_with_reason(raw, message):
    with pytest.raises(InvalidTransaction, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_transaction(raw)


def test_unprotected_legacy_signature_is_refused():
    tx = dict(nonce=0, gasPrice=0, gas=21000, to=TO_HEX, value=0, data=b"")
    raw = bytes(Account.from_key(KEY).sign_transaction(tx).raw_transaction)
    with pytest.raises(InvalidTransaction, match="replay-protected"):
        decode_transaction(raw)


def test_high_s_signature_is_refused():
    stx = decode_transaction(legacy())
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    tx = stx.tx
    flipped = replace(tx, s=n - tx.s, v=tx.v ^ 1)
    with pytest.raises(InvalidTransaction, match="lower half"):
        decode_transaction(flipped.encode())


def test_non_canonical_encoding_is_refused():
    stx = decode_transaction(legacy())
    items = rlp.decode(stx.raw)
    items[0] = b"\x00"  # nonce 0 written with a leading zero byte
    with pytest.raises(InvalidTransaction):
        decode_transaction(rlp.encode(items))


def test_validate_transaction_checks_chain_id_and_gas():
    validate_transaction(decode_transaction(legacy()), chain_id=2024, block_gas_limit=30_000_000)
    with pytest.raises(InvalidTransaction, match="chain 1, this chain is 2024"):
        validate_transaction(decode_transaction(legacy(chainId=1)), chain_id=2024, block_gas_limit=30_000_000)
    with pytest.raises(InvalidTransaction, match="intrinsic gas too low"):
        validate_transaction(decode_transaction(legacy(gas=21000, data=b"\x01")), chain_id=2024,
                             block_gas_limit=30_000_000)
    with pytest.raises(InvalidTransaction, match="exceeds block gas limit"):
        validate_transaction(decode_transaction(legacy(gas=40_000_000)), chain_id=2024,
                             block_gas_limit=30_000_000)


def make_header(extra: QbftExtra, **over: object) -> Header:
    fields: dict[str, object] = dict(
        parent_hash=b"\x11" * 32, ommers_hash=b"\x22" * 32, coinbase=b"\x33" * 20, state_root=EMPTY_TRIE_ROOT,
        transactions_root=EMPTY_TRIE_ROOT, receipts_root=EMPTY_TRIE_ROOT, logs_bloom=b"\x00" * 256,
        difficulty=1, number=5, gas_limit=30_000_000, gas_used=0, timestamp=1_700_000_000,
        extra_data=encode_extra(extra), mix_hash=QBFT_MIX_HASH, nonce=b"\x00" * 8, base_fee_per_gas=0,
        withdrawals_root=EMPTY_TRIE_ROOT, blob_gas_used=0, excess_blob_gas=0,
        parent_beacon_block_root=b"\x00" * 32, requests_hash=EMPTY_REQUESTS_HASH,
    )
    fields.update(over)
    return Header(**fields)  # type: ignore[arg-type]


VALIDATOR_KEYS = [a.private_key for a in dev_accounts()[:4]]
VALIDATORS = tuple(sorted(private_key_to_address(k) for k in VALIDATOR_KEYS))


def test_extra_data_roundtrip_sorts_validators_and_keeps_vote():
    extra = QbftExtra(b"\x00" * 32, tuple(reversed(VALIDATORS)), Vote(b"\x44" * 20, False), 3, (b"\x01" * 65,))
    decoded = decode_extra(encode_extra(extra))
    assert decoded.validators == VALIDATORS
    assert decoded.vote == Vote(b"\x44" * 20, False)
    assert decoded.round == 3 and decoded.seals == (b"\x01" * 65,)
    assert decode_extra(encode_extra(replace(extra, vote=Vote(b"\x44" * 20, True)))).vote.add is True
    assert decode_extra(encode_extra(replace(extra, vote=None))).vote is None


def test_extra_data_layout_is_besu_qbft():
    extra = QbftExtra(b"\x00" * 32, VALIDATORS, None, 2, ())
    vanity, validators, vote, round_, seals = rlp.decode(encode_extra(extra))
    assert (vanity, validators, vote, round_, seals) == (b"\x00" * 32, list(VALIDATORS), [], b"\x02", [])


@pytest.mark.parametrize("data", [b"\x00", rlp.encode([b"\x00" * 32, [], [], 0]),
                                  rlp.encode([b"\x00" * 32, [b"\x02" * 20, b"\x01" * 20], [], 0, []])])
def test_malformed_extra_data_is_refused(data):
    with pytest.raises(InvalidBlock):
        decode_extra(data)


def test_block_hash_ignores_seals_and_round_but_seal_hash_keeps_round():
    base = QbftExtra(b"\x00" * 32, VALIDATORS, None, 0, ())
    h0 = make_header(base)
    h_round = make_header(replace(base, round=4))
    h_sealed = make_header(replace(base, round=4, seals=(b"\x05" * 65,)))
    assert block_hash(h0) == block_hash(h_round) == block_hash(h_sealed)
    assert block_hash(h0) == keccak256(encode_header(h0))
    assert seal_hash(h_round) == seal_hash(h_sealed) != seal_hash(h0)
    assert block_hash(make_header(base, number=6)) != block_hash(h0)


def test_commit_seals_recover_their_signers():
    header = make_header(QbftExtra(b"\x00" * 32, VALIDATORS, None, 1, ()))
    digest = seal_hash(header)
    seals = tuple(encode_signature(*sign_hash(digest, k)) for k in VALIDATOR_KEYS[:3])
    sealed = make_header(QbftExtra(b"\x00" * 32, VALIDATORS, None, 1, seals))
    assert recover_seal_signers(sealed) == [private_key_to_address(k) for k in VALIDATOR_KEYS[:3]]
    tampered = replace(sealed, timestamp=sealed.timestamp + 1)
    assert recover_seal_signers(tampered) != recover_seal_signers(sealed)
    bad = make_header(QbftExtra(b"\x00" * 32, VALIDATORS, None, 1, (b"\x00" * 64 + b"\x07",)))
    with pytest.raises(InvalidBlock, match="commit seal 0"):
        recover_seal_signers(bad)


def _fresh_block_hash(header: Header) -> bytes:
    """The block hash computed from scratch, as the rule says (no cache involved)."""
    extra = decode_extra(header.extra_data)
    return keccak256(encode_header(replace(header, extra_data=encode_extra(replace(extra, seals=(), round=0)))))


def _fresh_seal_hash(header: Header) -> bytes:
    extra = decode_extra(header.extra_data)
    return keccak256(encode_header(replace(header, extra_data=encode_extra(replace(extra, seals=())))))


def test_cached_hashes_equal_freshly_computed_ones():
    header = make_header(QbftExtra(b"\x07" * 32, VALIDATORS, Vote(b"\x44" * 20, True), 3, (b"\x05" * 65,)))
    first = block_hash(header)
    assert first == _fresh_block_hash(header) == block_hash(header) == header.hash
    assert seal_hash(header) == _fresh_seal_hash(header) == seal_hash(header)
    assert header.extra == decode_extra(header.extra_data)
    # A decoded copy (no cache yet) agrees, and the cache changes neither equality nor RLP.
    copy = decode_header(encode_header(header))
    assert copy == header and hash(copy) == hash(header)
    assert encode_header(copy) == encode_header(header)
    assert block_hash(copy) == first and seal_hash(copy) == seal_hash(header)
    assert "_block_hash" not in repr(header)


def test_a_replaced_header_has_its_own_hashes():
    header = make_header(QbftExtra(b"\x00" * 32, VALIDATORS, None, 1, ()))
    old_hash, old_seal = block_hash(header), seal_hash(header)
    assert header.extra.round == 1
    for changed in (replace(header, number=header.number + 1), replace(header, timestamp=1),
                    replace(header, extra_data=encode_extra(QbftExtra(b"\x01" * 32, VALIDATORS, None, 1, ())))):
        assert block_hash(changed) == _fresh_block_hash(changed) != old_hash
        assert seal_hash(changed) == _fresh_seal_hash(changed) != old_seal
        assert changed.extra == decode_extra(changed.extra_data)
    # Another round: the same block hash, its own seal hash and decoded extraData.
    reround = replace(header, extra_data=encode_extra(QbftExtra(b"\x00" * 32, VALIDATORS, None, 2, ())))
    assert block_hash(reround) == old_hash
    assert seal_hash(reround) == _fresh_seal_hash(reround) != old_seal
    assert reround.extra.round == 2 and header.extra.round == 1
    with pytest.raises(ValueError):
        replace(header, _block_hash=b"\x00" * 32)  # a cache is never a constructor argument


@settings(max_examples=50, deadline=None)
@given(number=st.integers(0, 2**63), ts=st.integers(0, 2**63), gas=st.integers(0, 2**63),
       round_=st.integers(0, 2**32), vanity=st.binary(min_size=32, max_size=32))
def test_header_roundtrip(number, ts, gas, round_, vanity):
    header = make_header(QbftExtra(vanity, VALIDATORS, None, round_, ()), number=number, timestamp=ts, gas_used=gas)
    assert decode_header(encode_header(header)) == header


def test_receipt_and_log_roundtrip_and_bloom():
    log = Log(b"\x10" * 20, (b"\x01" * 32, b"\x02" * 32), b"payload")
    for tx_type in (0, 2):
        receipt = Receipt(tx_type, 1, 12345, logs_bloom([log]), (log,))
        assert decode_receipt(encode_receipt(receipt)) == receipt
    assert encode_receipt(Receipt(2, 0, 1, b"\x00" * 256, ()))[0] == 2
    from eth_bloom.bloom import BloomFilter
    bloom = BloomFilter(int.from_bytes(logs_bloom([log]), "big"))
    assert b"\x10" * 20 in bloom and b"\x01" * 32 in bloom


def test_block_roundtrip_keeps_typed_and_legacy_transactions():
    txs = (decode_transaction(legacy(nonce=0)), decode_transaction(dynamic(nonce=1)))
    header = make_header(QbftExtra(b"\x00" * 32, VALIDATORS, None, 0, ()))
    block = Block(header, txs)
    decoded = decode_block(encode_block(block))
    assert decoded.header == header
    assert [t.raw for t in decoded.transactions] == [t.raw for t in txs]
    assert [t.sender for t in decoded.transactions] == [SENDER, SENDER]


def _pyrlp_block(block: Block) -> bytes:
    """The block encoding as pyrlp makes it from decoded items (the reference)."""
    items = [rlp.decode(t.raw) if t.raw[0] >= 0xC0 else t.raw for t in block.transactions]
    return rlp.encode([rlp.decode(encode_header(block.header)), items, [], []])


@pytest.mark.parametrize("kinds", ["", "L", "D", "LDLD", "DDDL" * 8])
def test_block_and_body_encodings_equal_pyrlps(kinds):
    from rxledger.core.types.blocks import encode_body

    makers = {"L": legacy, "D": dynamic}
    txs = tuple(decode_transaction(makers[k](nonce=i)) for i, k in enumerate(kinds))
    block = Block(make_header(QbftExtra(b"\x00" * 32, VALIDATORS, None, 3, ())), txs)
    assert encode_block(block) == _pyrlp_block(block)
    assert encode_block(block) is encode_block(block)  # made once per object
    items = [rlp.decode(t.raw) if t.raw[0] >= 0xC0 else t.raw for t in txs]
    assert encode_body(txs) == rlp.encode([items, [], []])
    other = replace(block, transactions=txs[:1])
    assert encode_block(other) == _pyrlp_block(other)  # a replaced block has its own encoding


# -- ordered trie root (transactions and receipts roots) ------------------------------------
def _hexary_trie_root(items: list[bytes]) -> bytes:
    """The reference: py-trie's HexaryTrie, one insert per item (the former implementation)."""
    from trie.hexary import HexaryTrie

    trie = HexaryTrie({})
    for index, item in enumerate(items):
        trie[rlp.encode(index)] = item
    return trie.root_hash


@pytest.mark.parametrize("count", [0, 1, 2, 16, 17, 127, 128, 129, 256, 1000])
@pytest.mark.parametrize("size", [1, 31, 32, 120, 300])
def test_ordered_trie_root_matches_hexary_trie(count: int, size: int) -> None:
    items = [keccak256(f"{count} {size} {i}".encode()) * (size // 32 + 1) for i in range(count)]
    items = [item[:size] for item in items]
    assert ordered_trie_root(items) == _hexary_trie_root(items)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.binary(max_size=80), max_size=140),
                 st.integers(0, 300).flatmap(lambda n: st.lists(st.binary(min_size=0, max_size=3), min_size=n,
                                                                max_size=n))))
def test_ordered_trie_root_matches_hexary_trie_on_random_items(items: list[bytes]) -> None:
    assert ordered_trie_root(items) == _hexary_trie_root(items)


def test_ordered_trie_root_of_nothing_and_of_empty_items_is_the_empty_root() -> None:
    assert ordered_trie_root([]) == EMPTY_TRIE_ROOT == _hexary_trie_root([b""])
    assert ordered_trie_root([b"", b""]) == EMPTY_TRIE_ROOT


# -- receipts: the written-out RLP and bloom against pyrlp's sedes and eth-bloom ----------------
_logs = st.lists(st.builds(Log, st.binary(min_size=20, max_size=20),
                           st.lists(st.binary(min_size=32, max_size=32), max_size=4).map(tuple),
                           st.binary(max_size=300)), max_size=5).map(tuple)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from((0, 2)), st.integers(0, 1), st.integers(0, 2**64), _logs)
def test_encode_receipt_matches_pyrlp_and_the_bloom_matches_eth_bloom(
        tx_type: int, status: int, gas: int, logs: tuple[Log, ...]) -> None:
    from eth_bloom.bloom import BloomFilter

    from rxledger.core.types.receipts import _encode_receipt_checked

    reference = BloomFilter()
    for log in logs:
        reference.add(log.address)
        for topic in log.topics:
            reference.add(topic)
    bloom = logs_bloom(logs)
    assert bloom == int(reference).to_bytes(256, "big")
    receipt = Receipt(tx_type, status, gas, bloom, logs)
    checked = _encode_receipt_checked(receipt)
    assert encode_receipt(receipt) == (checked if tx_type == 0 else bytes([tx_type]) + checked)
    assert decode_receipt(encode_receipt(receipt)) == receipt


def test_encode_receipt_refuses_malformed_fields_as_pyrlp_does() -> None:
    good = Log(b"\x01" * 20, (b"\x02" * 32,), b"")
    for bad in (Receipt(0, 1, 1, b"\x00" * 255, ()),
                Receipt(0, 1, 1, b"\x00" * 256, (Log(b"\x01" * 19, (), b""),)),
                Receipt(0, 1, 1, b"\x00" * 256, (good, Log(b"\x01" * 20, (b"\x02" * 31,), b"")))):
        with pytest.raises(rlp.exceptions.SerializationError):
            encode_receipt(bad)


# -- accounts: the native fast path's written-out account RLP against py-evm's sedes ---------
@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**256 - 1), st.binary(min_size=32, max_size=32),
       st.binary(min_size=32, max_size=32))
def test_encode_account_matches_pyrlp(nonce: int, balance: int, storage_root: bytes, code_hash: bytes) -> None:
    from eth.rlp.accounts import Account as EvmAccount

    from node.execution.evm import encode_account

    account = EvmAccount(nonce, balance, storage_root, code_hash)
    assert encode_account(account) == rlp.encode(account, sedes=EvmAccount)
    assert encode_account(EvmAccount()) == rlp.encode(EvmAccount(), sedes=EvmAccount)


# -- transactions: the written-out RLP decoding against pyrlp's strict sedes ------------------
_uint_st = st.one_of(st.integers(0, 300), st.integers(0, 2**256 - 1))
_to_st = st.sampled_from([b"", b"\x11" * 20, b"\x00" * 20])
_data_st = st.one_of(st.binary(max_size=80), st.binary(min_size=50, max_size=400))
_access_st = st.one_of(st.just([]), st.lists(st.tuples(st.binary(min_size=20, max_size=20),
                                                       st.lists(st.binary(min_size=32, max_size=32), max_size=2)),
                                             max_size=2))


def _legacy_payload(f: tuple) -> bytes:
    from rxledger.core.types.transactions import LEGACY_FIELDS

    return rlp.encode(list(f), LEGACY_FIELDS)


def _dynamic_payload(f: tuple) -> bytes:
    from rxledger.core.types.transactions import DYNAMIC_FEE_FIELDS

    return rlp.encode([*f[:8], [[a, list(k)] for a, k in f[8]], *f[9:]], DYNAMIC_FEE_FIELDS)


@st.composite
def _mutated(draw, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0xB7, 0xB8, 0xBF, 0xC0, 0xF7, 0xF8, 0xFF]))
        elif kind == "insert":
            data.insert(at, draw(st.integers(0, 255)))
        elif kind == "delete" and data:
            del data[at]
        elif kind == "truncate":
            del data[at:]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=3))
    return bytes(data)


def _pyrlp_or_none(payload: bytes, sedes) -> list | None:
    try:
        return list(rlp.decode(payload, sedes))
    except rlp.exceptions.RLPException:
        return None


@settings(max_examples=400, deadline=None)
@given(st.tuples(_uint_st, _uint_st, _uint_st, _to_st, _uint_st, _data_st, _uint_st, _uint_st, _uint_st),
       st.data())
def test_fast_legacy_decoding_agrees_with_pyrlp(fields, data) -> None:
    from rxledger.core.types.transactions import LEGACY_FIELDS, _fast_legacy

    payload = _legacy_payload(fields)
    assert _fast_legacy(payload) == fields  # canonical input: the fast path takes it
    for candidate in (data.draw(_mutated(payload)), data.draw(st.binary(max_size=120))):
        fast = _fast_legacy(candidate)
        if fast is not None:  # accepted: pyrlp accepts it too, with the same fields
            assert list(fast) == _pyrlp_or_none(candidate, LEGACY_FIELDS)


@settings(max_examples=400, deadline=None)
@given(st.tuples(_uint_st, _uint_st, _uint_st, _uint_st, _uint_st, _to_st, _uint_st, _data_st, _access_st,
                 _uint_st, _uint_st, _uint_st), st.data())
def test_fast_dynamic_fee_decoding_agrees_with_pyrlp(fields, data) -> None:
    from rxledger.core.types.transactions import DYNAMIC_FEE_FIELDS, _fast_dynamic_fee

    payload = _dynamic_payload(fields)
    fast = _fast_dynamic_fee(payload)
    if fields[8]:
        assert fast is None  # an access list: pyrlp decodes it
    else:
        assert fast is not None and list(fast) == _pyrlp_or_none(payload, DYNAMIC_FEE_FIELDS)
    for candidate in (data.draw(_mutated(payload)), data.draw(st.binary(max_size=120))):
        fast = _fast_dynamic_fee(candidate)
        if fast is not None:
            assert list(fast) == _pyrlp_or_none(candidate, DYNAMIC_FEE_FIELDS)


# -- the written-out RLP helpers against pyrlp ---------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=60), st.binary(min_size=50, max_size=70_000)),
       st.one_of(st.integers(0, 300), st.integers(0, 2**256 - 1)),
       st.lists(st.binary(max_size=80), max_size=30))
def test_rlp_helpers_match_pyrlp(value: bytes, number: int, items: list[bytes]) -> None:
    from rxledger.core.types.rlp_codec import rlp_bytes, rlp_int, rlp_list

    assert rlp_bytes(value) == rlp.encode(value)
    assert rlp_int(number) == rlp.encode(number)
    assert rlp_list(b"".join(rlp_bytes(i) for i in items)) == rlp.encode(items)
    assert rlp_list(rlp_bytes(value) * 3) == rlp.encode([value] * 3)
