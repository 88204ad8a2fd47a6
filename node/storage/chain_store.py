"""The chain's keyspaces in the key-value store, and reading / writing blocks.

Keyspaces (one-byte prefixes):

    H hash            → header RLP (with its commit seals)
    B hash            → block body (transactions)
    R hash            → receipts of the block (RLP list of consensus-encoded receipts)
    N number (8 B BE) → canonical block hash
    T tx hash         → RLP([block hash, index])
    s …               → EVM state: trie nodes and contract code (node.execution.evm)
    c …               → native chaincode state (chaincode_py)
    W tally hash      → the validator vote tally after a block
    W wal …           → the QBFT write-ahead log (signed messages, prepared certificates):
                        node.storage.wal
    M name            → metadata: head hash, genesis hash, genesis config

Every keyspace's prefix is declared here, so that no two can collide; a new one (the
regulator's indexes) is added here with its functions.

A block, its receipts, its indexes, its state writes and the new head are written in one
atomic batch with fsync (`save_block`): after a crash the database holds the block
completely or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping

import rlp

from node.storage.base import KeyValueStore
from rxledger.core.types.blocks import Block, decode_body, encode_body
from rxledger.core.types.headers import Header, decode_header, encode_header
from rxledger.core.types.receipts import Receipt, decode_receipt, encode_receipt
from rxledger.core.types.rlp_codec import rlp_bytes, rlp_int, rlp_list

HEADER = b"H"
BODY = b"B"
RECEIPTS = b"R"
CANONICAL = b"N"
TX_INDEX = b"T"
STATE = b"s"  # the EVM's trie nodes and code, keyed by hash (node.execution.evm)
CHAINCODE = b"c"  # the native chaincode's state (the chaincode host)
CONSENSUS = b"W"
META = b"M"

META_HEAD = META + b"head"
META_GENESIS_HASH = META + b"genesis-hash"
META_GENESIS_CONFIG = META + b"genesis-config"


def tally_key(block_hash: bytes) -> bytes:
    """Consensus record: the validator vote tally after a block."""
    return CONSENSUS + b"tally" + block_hash


def number_key(number: int) -> bytes:
    return CANONICAL + number.to_bytes(8, "big")


def save_block(
    store: KeyValueStore,
    block: Block,
    receipts: list[Receipt],
    state_writes: Mapping[bytes, bytes | None],
    extra: Mapping[bytes, bytes] | None = None,
    encoded_receipts: list[bytes] | None = None,
) -> None:
    """Write a final block and everything it implies in one synced batch
    (`encoded_receipts`: the receipts' encodings, if already made)."""
    h = block.hash
    if encoded_receipts is None:
        encoded_receipts = [encode_receipt(r) for r in receipts]
    stored_receipts = rlp_list(b"".join(rlp_bytes(e) for e in encoded_receipts))  # as rlp.encode(list)
    prefix = rlp_bytes(h)
    with store.batch(sync=True) as batch:
        for key, value in state_writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(HEADER + h, encode_header(block.header))
        batch.put(BODY + h, encode_body(block.transactions))
        batch.put(RECEIPTS + h, stored_receipts)
        for index, stx in enumerate(block.transactions):
            batch.put(TX_INDEX + stx.hash, rlp_list(prefix + rlp_int(index)))  # rlp.encode([h, index])
        batch.put(number_key(block.number), h)
        for key, value in (extra or {}).items():
            batch.put(key, value)
        batch.put(META_HEAD, h)


def load_header(store: KeyValueStore, block_hash: bytes) -> Header | None:
    data = store.get(HEADER + block_hash)
    return None if data is None else decode_header(data)


def load_canonical_hash(store: KeyValueStore, number: int) -> bytes | None:
    return store.get(number_key(number))


def load_block(store: KeyValueStore, block_hash: bytes) -> Block | None:
    """Load a stored block. Stored bodies were validated when written; this re-decodes
    them (senders are recovered again), so callers cache what they read often."""
    header = load_header(store, block_hash)
    body = store.get(BODY + block_hash)
    if header is None or body is None:
        return None
    return Block(header, decode_body(body))


def load_receipts(store: KeyValueStore, block_hash: bytes) -> list[Receipt] | None:
    data = store.get(RECEIPTS + block_hash)
    if data is None:
        return None
    return [decode_receipt(item) for item in rlp.decode(data)]


def load_tx_location(store: KeyValueStore, tx_hash: bytes) -> tuple[bytes, int] | None:
    data = store.get(TX_INDEX + tx_hash)
    if data is None:
        return None
    block_hash, index = rlp.decode(data)
    return block_hash, int.from_bytes(index, "big")


def load_head_hash(store: KeyValueStore) -> bytes | None:
    return store.get(META_HEAD)
