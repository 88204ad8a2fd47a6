"""Blocks: a header and its transactions, and the roots a header commits to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import rlp

from rxledger.core.crypto import keccak256
from rxledger.core.errors import InvalidBlock, InvalidTransaction
from rxledger.core.types.headers import (
    EMPTY_TRIE_ROOT,
    Header,
    block_hash,
    encode_header,
    header_from_items,
)
from rxledger.core.types.rlp_codec import decode_rlp, rlp_bytes, rlp_int, rlp_list
from rxledger.core.types.transactions import SignedTransaction, decode_transaction


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    transactions: tuple[SignedTransaction, ...]
    # The wire encoding, made once per object (`encode_block`): a proposal, its WAL record,
    # the stored block and sync all need it. `dataclasses.replace` starts a new cache.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def number(self) -> int:
        return self.header.number

    @property
    def hash(self) -> bytes:
        return block_hash(self.header)


def ordered_trie_root(items: Sequence[bytes]) -> bytes:
    """Root of the trie keyed by RLP(index), as Ethereum's transactions and receipts roots.

    Built in one pass over the keys in nibble order (`_trie_node`), not by inserting into a
    `trie.HexaryTrie` one key at a time (which re-encoded and re-hashed the path of every
    insert: a fifth of a native transaction's block-building time). Same root: checked
    against HexaryTrie on random inputs by tests/unit/test_types.py. As in HexaryTrie, an
    empty value is no entry.
    """
    entries = sorted(
        (_nibbles(rlp_int(index)), item) for index, item in enumerate(items) if item
    )
    if not entries:
        return EMPTY_TRIE_ROOT
    return keccak256(_trie_node(entries, 0))


def _nibbles(key: bytes) -> bytes:
    return bytes(n for byte in key for n in (byte >> 4, byte & 0x0F))


def _hex_prefix(nibbles: bytes, leaf: bool) -> bytes:
    flag = 2 if leaf else 0
    if len(nibbles) % 2:
        head, rest = bytes([(flag + 1) << 4 | nibbles[0]]), nibbles[1:]
    else:
        head, rest = bytes([flag << 4]), nibbles
    return head + bytes(rest[i] << 4 | rest[i + 1] for i in range(0, len(rest), 2))


def _reference(node: bytes) -> bytes:
    """How a parent refers to a node: the node itself under 32 bytes, else its hash."""
    return node if len(node) < 32 else b"\xa0" + keccak256(node)


def _trie_node(entries: list[tuple[bytes, bytes]], depth: int) -> bytes:
    """The RLP of the node holding `entries` (sorted by nibbles, all sharing their first
    `depth` nibbles)."""
    if len(entries) == 1:
        path, value = entries[0]
        return rlp_list(rlp_bytes(_hex_prefix(path[depth:], True)) + rlp_bytes(value))
    first, last = entries[0][0], entries[-1][0]
    common = depth  # sorted: the first and last keys share what all keys share
    limit = min(len(first), len(last))
    while common < limit and first[common] == last[common]:
        common += 1
    if common > depth:
        child = _trie_node(entries, common)
        return rlp_list(rlp_bytes(_hex_prefix(first[depth:common], False)) + _reference(child))
    slots: list[bytes] = []
    value = b"\x80"
    start = 0
    if len(first) == depth:  # a key ending here keeps its value in the branch
        value = rlp_bytes(entries[0][1])
        start = 1
    for nibble in range(16):
        end = start
        while end < len(entries) and entries[end][0][depth] == nibble:
            end += 1
        slots.append(_reference(_trie_node(entries[start:end], depth + 1)) if end > start else b"\x80")
        start = end
    return rlp_list(b"".join(slots) + value)


def _tx_list(transactions: Sequence[SignedTransaction]) -> bytes:
    # In a block body a legacy transaction is an RLP list (its raw bytes as they are), a
    # typed one a byte string. Concatenated, not decoded and re-encoded by pyrlp.
    return rlp_list(b"".join(t.raw if t.raw[0] >= 0xC0 else rlp_bytes(t.raw) for t in transactions))


_EMPTY_LIST = b"\xc0"


def encode_body(transactions: Sequence[SignedTransaction]) -> bytes:
    """Block body as stored: [[tx…], ommers=[], withdrawals=[]]; typed txs as byte strings."""
    return rlp_list(_tx_list(transactions) + _EMPTY_LIST + _EMPTY_LIST)


def decode_body(data: bytes) -> tuple[SignedTransaction, ...]:
    """Decode a body ([[tx…], [], []]); recovers senders (use only for blocks from outside).
    Raises `InvalidBlock` saying what is malformed."""
    try:
        items = decode_rlp(data, max_depth=BLOCK_DEPTH)
    except rlp.exceptions.RLPException as exc:
        raise InvalidBlock(f"malformed block body: {exc}") from exc
    if not isinstance(items, list) or len(items) != 3:
        raise InvalidBlock("malformed block body: expected [transactions, ommers, withdrawals]")
    return _transactions(items[0], items[1], items[2], "block body")


# A block is [header, [tx…], [], []], a legacy transaction a list in the list of
# transactions (a typed one is a byte string): no valid block nests lists deeper than 3.
BLOCK_DEPTH = 3


def _transactions(txs: object, ommers: object, withdrawals: object,
                  what: str) -> tuple[SignedTransaction, ...]:
    if not isinstance(txs, list):
        raise InvalidBlock(f"malformed {what}: the transaction list is a byte string")
    if ommers != [] or withdrawals != []:
        raise InvalidBlock(f"malformed {what}: ommers and withdrawals must be empty lists")
    out = []
    for index, item in enumerate(txs):
        if isinstance(item, list):
            raw = rlp.encode(item)  # a legacy transaction: its list, as it was (canonical)
        elif not item or item[0] >= 0xC0:
            raise InvalidBlock(f"malformed {what}: transaction {index} is an empty or list-like byte "
                               "string (a typed transaction is its type byte and payload)")
        else:
            raw = item
        try:
            out.append(decode_transaction(raw))
        except InvalidTransaction as exc:
            raise InvalidBlock(f"malformed {what}: transaction {index}: {exc}") from exc
    return tuple(out)


def encode_block(block: Block) -> bytes:
    """Wire form: RLP([header, [tx…], ommers, withdrawals]), made once per Block object."""
    encoded = block._encoded
    if encoded is None:
        encoded = rlp_list(encode_header(block.header) + _tx_list(block.transactions)
                           + _EMPTY_LIST + _EMPTY_LIST)
        object.__setattr__(block, "_encoded", encoded)
    return encoded


def decode_block(data: bytes) -> Block:
    """Decode a block's wire form; raises `InvalidBlock` saying what is malformed."""
    try:
        items = decode_rlp(data, max_depth=BLOCK_DEPTH)
    except rlp.exceptions.RLPException as exc:
        raise InvalidBlock(f"malformed block: {exc}") from exc
    if not isinstance(items, list) or len(items) != 4:
        raise InvalidBlock("malformed block: expected [header, transactions, ommers, withdrawals]")
    header = header_from_items(items[0])
    return Block(header, _transactions(items[1], items[2], items[3], "block"))
