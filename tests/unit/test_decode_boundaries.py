"""Every decoder of untrusted bytes, fuzzed: random bytes, mutations of valid encodings
(bit flips, truncation, splices, type swaps anywhere in the RLP tree, deep nesting) and
the issue's reproductions. Each may return or raise its boundary's typed error, with a
message; nothing else (no TypeError, IndexError, ValueError, RecursionError,
AssertionError) may come out.

    transactions       decode_transaction             InvalidTransaction
    blocks, sync       decode_block / decode_body     InvalidBlock
                       decode_header / decode_extra   InvalidBlock
                       decode_receipt                 InvalidBlock
    consensus          decode_message / envelope      InvalidMessage
    consensus WAL      prepared-certificate records   InvalidMessage
    p2p frames         STATUS, GET_BLOCKS, BLOCKS,    P2PError
                       frame headers and bodies
    SDK                decode_token                   VerificationFailed
                       AnchorReceipt.from_json/verify VerificationFailed
"""

from __future__ import annotations

import json
import zlib
from dataclasses import replace

import rlp
from fuzzing import assert_only, deep_lists, fuzz, hostile_inputs, mutated_bytes
from hypothesis import given
from hypothesis import strategies as st

from client_sdk._anchor import AnchorReceipt, Trust
from client_sdk._errors import VerificationFailed
from client_sdk._token import COMPACT_PREFIX, PrescriptionToken, _b64, decode_token
from node.consensus.messages import (
    COMMIT,
    PREPARE,
    PROPOSAL,
    ROUND_CHANGE,
    CommitMsg,
    InvalidMessage,
    PrepareMsg,
    ProposalMsg,
    RoundChangeMsg,
    decode_envelope,
    decode_message,
    decode_signed,
    encode_message,
    encode_signed,
    sign_payload,
)
from node.consensus.qbft import WalRecord, _decode_prepared, _encode_prepared, _Prepared
from node.p2p.frames import (
    Kind,
    P2PError,
    Status,
    decode_blocks,
    decode_body,
    decode_frames,
    decode_get_blocks,
    decode_length,
    decode_status,
    encode_blocks,
    encode_frame,
    encode_get_blocks,
    encode_status,
)
from rxledger.core.crypto import encode_signature, keccak256, private_key_to_address, sign_hash
from rxledger.core.errors import InvalidBlock, InvalidTransaction
from rxledger.core.types.blocks import Block, decode_block, encode_block, encode_body
from rxledger.core.types.blocks import decode_body as decode_block_body
from rxledger.core.types.headers import (
    EMPTY_OMMERS_HASH,
    EMPTY_REQUESTS_HASH,
    EMPTY_TRIE_ROOT,
    QBFT_MIX_HASH,
    ZERO_HASH,
    Header,
    QbftExtra,
    Vote,
    decode_extra,
    decode_header,
    encode_extra,
    encode_header,
    seal_hash,
)
from rxledger.core.types.receipts import Log, Receipt, decode_receipt, encode_receipt
from rxledger.core.types.rlp_codec import decode_rlp, rlp_bytes, rlp_int, rlp_list
from rxledger.core.types.transactions import (
    DYNAMIC_FEE_TX_TYPE,
    DynamicFeeTransaction,
    LegacyTransaction,
    decode_transaction,
)

KEYS = [bytes([i + 1]) * 32 for i in range(4)]
VALIDATORS = tuple(sorted(private_key_to_address(k) for k in KEYS))
CHAIN_ID = 2024


# -- valid encodings -----------------------------------------------------------------------
def legacy_tx(nonce: int, data: bytes = b"", key: bytes = KEYS[0]) -> bytes:
    unsigned = LegacyTransaction(nonce, 0, 50_000, b"\x11" * 20, 5, data, CHAIN_ID, 0, 0)
    digest = keccak256(rlp.encode([nonce, 0, 50_000, b"\x11" * 20, 5, data, CHAIN_ID, 0, 0]))
    y, r, s = sign_hash(digest, key)
    return replace(unsigned, v=35 + 2 * CHAIN_ID + y, r=r, s=s).encode()


def dynamic_tx(nonce: int, access: bool = True, key: bytes = KEYS[1]) -> bytes:
    access_list = ((b"\x22" * 20, (b"\x33" * 32,)),) if access else ()
    tx = DynamicFeeTransaction(CHAIN_ID, nonce, 0, 0, 60_000, b"", 0, b"\x60\x00", access_list, 0, 0, 0)
    y, r, s = sign_hash(tx.signing_hash(), key)
    return replace(tx, y_parity=y, r=r, s=s).encode()


def header(number: int = 1, round_: int = 0, vote: Vote | None = None) -> Header:
    extra = QbftExtra(b"\x44" * 32, VALIDATORS, vote, round_, ())
    return Header(
        parent_hash=b"\x55" * 32, ommers_hash=EMPTY_OMMERS_HASH, coinbase=VALIDATORS[0],
        state_root=EMPTY_TRIE_ROOT, transactions_root=EMPTY_TRIE_ROOT, receipts_root=EMPTY_TRIE_ROOT,
        logs_bloom=b"\x00" * 256, difficulty=1, number=number, gas_limit=30_000_000, gas_used=0,
        timestamp=1_700_000_000 + number, extra_data=encode_extra(extra), mix_hash=QBFT_MIX_HASH,
        nonce=b"\x00" * 8, base_fee_per_gas=0, withdrawals_root=EMPTY_TRIE_ROOT, blob_gas_used=0,
        excess_blob_gas=0, parent_beacon_block_root=ZERO_HASH, requests_hash=EMPTY_REQUESTS_HASH,
    )


TXS = (legacy_tx(0), dynamic_tx(0), dynamic_tx(1, access=False), legacy_tx(1, b"\x00\x01" * 40))
BLOCK = Block(header(vote=Vote(b"\x66" * 20, True)), tuple(decode_transaction(t) for t in TXS))
BLOCK_BYTES = encode_block(BLOCK)


def signed(code: int, body: tuple[object, ...], key: bytes = KEYS[0], round_: int = 1):
    return sign_payload(code, 1, round_, body, key, private_key_to_address(key))


DIGEST = seal_hash(BLOCK.header)
SEAL = encode_signature(*sign_hash(DIGEST, KEYS[0]))
PREPARES = tuple(signed(PREPARE, (DIGEST,), k, 0) for k in KEYS[:3])
RCS = tuple(signed(ROUND_CHANGE, ((0, DIGEST),), k) for k in KEYS[:3])
MESSAGES = (
    encode_message(ProposalMsg(signed(PROPOSAL, (DIGEST,)), BLOCK, RCS, PREPARES)),
    encode_message(PrepareMsg(signed(PREPARE, (DIGEST,)))),
    encode_message(CommitMsg(signed(COMMIT, (DIGEST, SEAL)))),
    encode_message(RoundChangeMsg(signed(ROUND_CHANGE, ((0, DIGEST),)), BLOCK, PREPARES)),
    encode_message(RoundChangeMsg(signed(ROUND_CHANGE, (None,)), None, ())),
)


def _message_fully(data: bytes) -> None:
    msg = decode_message(data)
    _ = msg.signed.author  # and a PROPOSAL's block, decoded whole
    if isinstance(msg, ProposalMsg | RoundChangeMsg) and msg.block is not None:
        _ = msg.block.hash


# -- transactions, blocks, headers -----------------------------------------------------------
@fuzz(80)
@given(st.data())
def test_decode_transaction_raises_only_invalid_transaction(data) -> None:
    valid = data.draw(st.sampled_from(TXS))
    assert_only(InvalidTransaction, decode_transaction, data.draw(hostile_inputs(valid, TXS)))
    # typed: the type byte, then a hostile payload
    payload = data.draw(hostile_inputs(valid[1:] if valid[0] < 0x80 else valid, TXS))
    assert_only(InvalidTransaction, decode_transaction, bytes([DYNAMIC_FEE_TX_TYPE]) + payload)


@fuzz(80)
@given(st.data())
def test_decode_block_raises_only_invalid_block(data) -> None:
    candidate = data.draw(hostile_inputs(BLOCK_BYTES, TXS))
    block = assert_only(InvalidBlock, decode_block, candidate)
    if block is not None:
        assert_only(InvalidBlock, lambda: block.hash)  # extraData decodes lazily
    assert_only(InvalidBlock, decode_block_body, data.draw(hostile_inputs(encode_body(BLOCK.transactions), TXS)))


@fuzz(60)
@given(st.data())
def test_decode_header_and_extra_raise_only_invalid_block(data) -> None:
    valid = encode_header(BLOCK.header)
    assert_only(InvalidBlock, decode_header, data.draw(hostile_inputs(valid)))
    assert_only(InvalidBlock, decode_extra, data.draw(hostile_inputs(BLOCK.header.extra_data)))


@fuzz(60)
@given(st.data())
def test_decode_receipt_raises_only_invalid_block(data) -> None:
    receipt = Receipt(2, 1, 21_000, b"\x00" * 256, (Log(b"\x11" * 20, (b"\x22" * 32,), b"data"),))
    valid = encode_receipt(receipt)
    assert decode_receipt(valid) == receipt
    assert_only(InvalidBlock, decode_receipt, data.draw(hostile_inputs(valid)))


def test_block_with_a_byte_string_for_its_transactions_is_invalid_block() -> None:
    # The reproduction: [header, b"...", [], []] raised TypeError.
    data = rlp_list(encode_header(BLOCK.header) + rlp_bytes(b"\x01\x02\x03") + b"\xc0\xc0")
    try:
        decode_block(data)
        raise AssertionError("decoded")
    except InvalidBlock as exc:
        assert "transaction list is a byte string" in str(exc)


def test_wrong_types_and_shapes_in_a_block_are_named() -> None:
    h = encode_header(BLOCK.header)
    cases = {
        rlp_list(rlp_bytes(b"\x01" * 40) + b"\xc0\xc0\xc0"): "header",
        rlp_list(h + rlp_list(rlp_bytes(b"")) + b"\xc0\xc0"): "transaction 0",
        rlp_list(h + rlp_list(rlp_bytes(b"\xc1\x80")) + b"\xc0\xc0"): "transaction 0",
        rlp_list(h + rlp_list(rlp_list(rlp_int(1))) + b"\xc0\xc0"): "transaction 0",
        rlp_list(h + b"\xc0" + rlp_list(h) + b"\xc0"): "ommers",
        rlp_list(h + b"\xc0\xc0"): "expected [header",
        rlp_list(h + b"\xc0" + deep_lists(10) + b"\xc0"): "nested",
    }
    for data, words in cases.items():
        try:
            decode_block(data)
            raise AssertionError(f"decoded {data.hex()[:40]}")
        except InvalidBlock as exc:
            assert words in str(exc), str(exc)


# -- consensus messages and the WAL ------------------------------------------------------------
@fuzz(60)
@given(st.data())
def test_decode_message_raises_only_invalid_message(data) -> None:
    valid = data.draw(st.sampled_from(MESSAGES))
    candidate = data.draw(hostile_inputs(valid, MESSAGES))
    assert_only(InvalidMessage, _message_fully, candidate)
    env = assert_only(InvalidMessage, decode_envelope, candidate)
    if env is not None:
        assert_only(InvalidMessage, env.open, data.draw(st.sampled_from([None, 0, 1, 4])))
    try:  # any decoded tree as a signed payload, under any code
        tree = decode_rlp(candidate, max_depth=8)
    except rlp.exceptions.RLPException:
        return
    code = data.draw(st.sampled_from([PROPOSAL, PREPARE, COMMIT, ROUND_CHANGE, 0x99]))
    for item in (tree, *(tree if isinstance(tree, list) else ())):
        assert_only(InvalidMessage, decode_signed, code, item)


def test_a_proposal_whose_block_carries_a_byte_string_for_transactions_is_invalid_message() -> None:
    s = signed(PROPOSAL, (DIGEST,))
    bad_block = rlp_list(encode_header(BLOCK.header) + rlp_bytes(b"\x01\x02") + b"\xc0\xc0")
    data = rlp_list(rlp.encode(PROPOSAL) + rlp.encode(encode_signed(s)) + bad_block + b"\xc0\xc0")
    env = decode_envelope(data)  # the author is known before the block is read
    assert env.signed.author == private_key_to_address(KEYS[0])
    try:
        env.open()
        raise AssertionError("opened")
    except InvalidMessage as exc:
        assert "carried block is invalid" in str(exc) and "byte string" in str(exc)


def test_150000_nested_lists_are_invalid_message() -> None:
    for data in (deep_lists(150_000),
                 rlp_list(rlp.encode(PROPOSAL) + rlp.encode(encode_signed(signed(PROPOSAL, (DIGEST,))))
                          + deep_lists(150_000) + b"\xc0\xc0")):
        try:
            _message_fully(data)
            raise AssertionError("decoded")
        except InvalidMessage as exc:
            assert "deep" in str(exc)


def test_an_oversized_message_is_refused_unread() -> None:
    try:
        decode_envelope(b"\xff" * (4 * 1024 * 1024 + 1))
        raise AssertionError("decoded")
    except InvalidMessage as exc:
        assert "exceeds" in str(exc)


def test_a_justification_longer_than_the_validator_set_is_refused() -> None:
    msg = decode_envelope(MESSAGES[0])
    assert len(msg.open(3).round_changes) == 3
    try:
        msg.open(2)
        raise AssertionError("opened")
    except InvalidMessage as exc:
        assert "more than the 2 validators" in str(exc)


@fuzz(50)
@given(st.data())
def test_wal_prepared_records_raise_only_invalid_message(data) -> None:
    valid = _encode_prepared(_Prepared(0, BLOCK, DIGEST, PREPARES))
    rec = WalRecord("prepared", 1, 0, 0, data.draw(hostile_inputs(valid)))
    assert_only(InvalidMessage, _decode_prepared, rec)


# -- p2p frames ---------------------------------------------------------------------------------
STATUS = encode_status(Status(CHAIN_ID, b"\x01" * 32, 7, b"\x02" * 32, b"\x03" * 20))


@fuzz(60)
@given(st.data())
def test_frame_payload_decoders_raise_only_p2p_error(data) -> None:
    assert_only(P2PError, decode_status, data.draw(hostile_inputs(STATUS)))
    assert_only(P2PError, decode_get_blocks, data.draw(hostile_inputs(encode_get_blocks(3, 128))))
    assert_only(P2PError, decode_blocks, data.draw(hostile_inputs(encode_blocks([BLOCK_BYTES, BLOCK_BYTES]))))
    stream = encode_frame(Kind.STATUS, STATUS) + encode_frame(Kind.CONSENSUS, MESSAGES[1])
    stream = data.draw(st.one_of(st.binary(max_size=300), mutated_bytes(stream)))
    assert_only(P2PError, decode_frames, stream, 4096)
    assert_only(P2PError, decode_length, data.draw(st.binary(max_size=6)))
    assert_only(P2PError, decode_body, data.draw(st.binary(max_size=20)))


# -- SDK: tokens and receipts ---------------------------------------------------------------------
TOKEN = PrescriptionToken(b"\x07" * 32, b"\x08" * 32, b'{"resourceType":"MedicationRequest"}')


def _json_mutations(obj: object) -> st.SearchStrategy[str]:
    text = json.dumps(obj)
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                       st.text(max_size=20), st.just("0x" + "ab" * 32), st.just([]), st.just({}))

    @st.composite
    def swapped(draw):
        value = json.loads(text)
        if isinstance(value, dict) and value:
            key = draw(st.sampled_from(sorted(value)))
            value[key] = draw(leaves | st.lists(leaves, max_size=3) | st.dictionaries(st.text(max_size=5), leaves, max_size=3))
            if draw(st.booleans()):
                value.pop(draw(st.sampled_from(sorted(value))), None)
        return json.dumps(value)

    deep = st.sampled_from([2, 3, 64, 1_000, 100_000]).map(lambda n: "[" * n + "]" * n)
    return st.one_of(swapped(), st.text(max_size=200), deep,
                     st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                     st.integers(0, len(text)).map(lambda i: text[:i]))


ZLIB_BOMB = COMPACT_PREFIX + _b64(zlib.compress(b"[" * 5_000_000))  # 5 MB from 5 KB


@fuzz(60)
@given(st.data())
def test_decode_token_raises_only_verification_failed(data) -> None:
    candidate = data.draw(st.one_of(
        _json_mutations(TOKEN.to_json()),
        _json_mutations({**TOKEN.to_json(), "doc": None, "enc": {"alg": "x", "ct": "AA"}}),
        st.binary(max_size=200).map(lambda b: COMPACT_PREFIX + _b64(b)),
        st.just(ZLIB_BOMB),
    ))
    token = assert_only(VerificationFailed, decode_token, candidate)
    if token is not None and not token.is_sealed:
        assert_only(VerificationFailed, token.document_json)


RECEIPT = {
    "version": 1, "recordHash": "0x" + "01" * 32, "leafIndex": 0, "treeSize": 1, "auditPath": [],
    "root": "0x" + "02" * 32, "meta": "0x" + "00" * 32, "chainId": CHAIN_ID,
    "registry": "0x" + "00" * 19 + "01", "anchoredBy": "0x" + "03" * 20,
    "transactionHash": "0x" + "04" * 32, "transactionIndex": 0, "blockNumber": 1,
    "blockHash": "0x" + "05" * 32, "header": "0x" + encode_header(BLOCK.header).hex(),
    "receiptProof": ["0x" + rlp.encode([b"\x20", b"x"]).hex()], "transactionProof": ["0xc0"],
}


@fuzz(60)
@given(st.data())
def test_anchor_receipt_parsing_and_verification_raise_only_verification_failed(data) -> None:
    candidate = data.draw(_json_mutations(RECEIPT))
    receipt = assert_only(VerificationFailed, AnchorReceipt.from_json, candidate)
    if receipt is not None:
        trust = Trust.from_validators(VALIDATORS, chain_id=CHAIN_ID)
        assert_only(VerificationFailed, receipt.verify, trust)


def test_a_deeply_nested_receipt_or_token_is_refused_before_parsing() -> None:
    for parse in (AnchorReceipt.from_json, decode_token):
        try:
            parse("[" * 100_000 + "]" * 100_000)  # the 200 KB of brackets
            raise AssertionError("parsed")
        except VerificationFailed as exc:
            assert "levels deep" in str(exc)
