"""Blocks: a header and its transactions, and the roots a header commits to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import rlp
from trie.hexary import HexaryTrie

from node.errors import InvalidBlock
from node.types.headers import EMPTY_TRIE_ROOT, Header, block_hash, decode_header, encode_header
from node.types.transactions import SignedTransaction, decode_transaction


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    transactions: tuple[SignedTransaction, ...]

    @property
    def number(self) -> int:
        return self.header.number

    @property
    def hash(self) -> bytes:
        return block_hash(self.header)


def ordered_trie_root(items: Sequence[bytes]) -> bytes:
    """Root of the trie keyed by RLP(index), as Ethereum's transactions and receipts roots."""
    if not items:
        return EMPTY_TRIE_ROOT
    trie = HexaryTrie({})
    for index, item in enumerate(items):
        trie[rlp.encode(index)] = item
    return trie.root_hash


def encode_body(transactions: Sequence[SignedTransaction]) -> bytes:
    """Block body as stored: [[tx…], ommers=[], withdrawals=[]]; typed txs as byte strings."""
    return rlp.encode([[_tx_item(t.raw) for t in transactions], [], []])


def _tx_item(raw: bytes) -> object:
    # In a block body a legacy transaction is an RLP list, a typed one a byte string.
    return rlp.decode(raw) if raw[0] >= 0xC0 else raw


def decode_body(data: bytes) -> tuple[SignedTransaction, ...]:
    """Decode a stored body; recovers senders (use only for blocks from outside)."""
    try:
        items, _ommers, _withdrawals = rlp.decode(data)
    except (rlp.exceptions.RLPException, ValueError) as exc:
        raise InvalidBlock(f"malformed block body: {exc}") from exc
    return tuple(
        decode_transaction(rlp.encode(item) if isinstance(item, list) else item) for item in items
    )


def encode_block(block: Block) -> bytes:
    """Wire form: RLP([header, [tx…], ommers, withdrawals])."""
    return rlp.encode(
        [rlp.decode(encode_header(block.header)), [_tx_item(t.raw) for t in block.transactions], [], []]
    )


def decode_block(data: bytes) -> Block:
    try:
        header_items, items, _ommers, _withdrawals = rlp.decode(data)
    except (rlp.exceptions.RLPException, ValueError) as exc:
        raise InvalidBlock(f"malformed block: {exc}") from exc
    header = decode_header(rlp.encode(header_items))
    txs = tuple(
        decode_transaction(rlp.encode(item) if isinstance(item, list) else item) for item in items
    )
    return Block(header, txs)
