"""The header rules of this chain: what every block's header must hold, field by field.

`validate_header(parent, header, tally)` states them top to bottom in the header's field
order, in the manner of the Ethereum execution specs' `validate_header`: each rule raises
`InvalidBlock` naming the block, the field, what was expected and what was found. It is
pure (no store, no clock) and cheap (a handful of comparisons and one hash of the
validator set), so the same function serves every path a block takes into the chain:

- a proposal: `QbftNode._on_proposal` → the runtime's `_validate_block` →
  `Chain.verify_execution`, which calls it before executing;
- a final block from block sync: `QbftNode._check_final` → the same `_validate_block`
  → `Chain.verify_execution`;
- a decided block being applied (`ConsensusRuntime._apply`) when its execution is not
  cached: `Chain.verify_execution` again.

The runtime skips `verify_execution` for a block whose hash it holds an execution for.
That is safe: the block hash is keccak256 of every header field (extraData re-encoded
with round = 0 and no seals), so a block with a cached hash has the same header, field
for field, as one this node built (`Chain.build_block`, which writes exactly what these
rules require) or already verified; only its round and commit seals can differ, and
those are consensus's to check (`QbftNode`). tests/unit/test_block_validity.py checks
that a change to any other field changes the hash.

What the rules leave to others:
- the execution results (state root, transactions root, receipts root, logs bloom, gas
  used as execution counts it) need the transactions: `Chain.verify_execution`;
- QBFT's own rules: the proposer of the round and its signature, the round in extraData
  equal to the message's, no seals in a proposal and a quorum of valid seals in a final
  block, a timestamp at least one block period after the parent's and at most
  `max_clock_drift` ahead of the validator's clock (proposals only: a synced block is
  judged by its seals, not by our clock): `QbftNode._check_proposal` / `_check_final`.
"""

from __future__ import annotations

from node.consensus.validators import VoteTally, next_commitment
from rxledger.core.errors import InvalidBlock
from rxledger.core.types.headers import (
    BASE_FEE_PER_GAS,
    BLOB_GAS_USED,
    EMPTY_OMMERS_HASH,
    EMPTY_REQUESTS_HASH,
    EMPTY_TRIE_ROOT,
    EXCESS_BLOB_GAS,
    MAX_UINT64,
    PARENT_BEACON_BLOCK_ROOT,
    QBFT_DIFFICULTY,
    QBFT_MIX_HASH,
    QBFT_NONCE,
    Header,
    block_hash,
)


def validate_header(parent: Header, header: Header, tally: VoteTally) -> None:
    """Raise `InvalidBlock` unless `header` is a valid header for the block after `parent`.

    `tally` is the vote tally after `parent` (`Chain.tally_after(parent)`): the validators
    in force for this block and the ballots its vote may complete.
    """
    n = header.number
    # parent_hash: the block extends its parent.
    if header.parent_hash != block_hash(parent):
        raise InvalidBlock(f"block {n} does not extend the head {parent.number}: parent_hash is "
                           f"0x{header.parent_hash.hex()}, expected 0x{block_hash(parent).hex()}")
    # ommers_hash: there are no ommers; the hash of the empty list.
    _require_equal(n, "ommers_hash", header.ommers_hash, EMPTY_OMMERS_HASH)
    # coinbase: the proposer, who must be a validator in force (Besu's QBFT coinbase rule;
    # QBFT also requires it to be the round's proposer unless a locked block is re-proposed).
    if header.coinbase not in tally.validators:
        raise InvalidBlock(f"block {n}: coinbase 0x{header.coinbase.hex()} is not one of the "
                           f"{len(tally.validators)} validators in force")
    # state_root, transactions_root, receipts_root, logs_bloom: results of execution
    # (`Chain.verify_execution`).
    # difficulty: constant (no proof of work).
    _require_equal(n, "difficulty", header.difficulty, QBFT_DIFFICULTY)
    # number: one more than the parent's.
    _require_equal(n, "number", header.number, parent.number + 1)
    # gas_limit: the parent's (the genesis gas limit never changes).
    _require_equal(n, "gas_limit", header.gas_limit, parent.gas_limit)
    # gas_used: at most the gas limit (and what execution counts: `verify_execution`).
    if header.gas_used > header.gas_limit:
        raise InvalidBlock(f"block {n}: gas_used {header.gas_used} exceeds gas_limit {header.gas_limit}")
    # timestamp: not before the parent's, and a 64-bit number. (QBFT requires a proposal's
    # to be at least one block period after the parent's, and not in its future.)
    if header.timestamp < parent.timestamp:
        raise InvalidBlock(f"block {n}: timestamp {header.timestamp} is earlier than its "
                           f"parent's {parent.timestamp}")
    if header.timestamp > MAX_UINT64:
        raise InvalidBlock(f"block {n}: timestamp {header.timestamp} does not fit in 64 bits")
    # extra_data: the QBFT layout, well formed (decode_extra: vanity 32 bytes, validators
    # 20-byte addresses sorted and distinct, vote [] or [address, 0xff | 0x00], round an
    # integer, seals 65 bytes each; decoded strictly, so in its one canonical encoding) ...
    try:
        extra = header.extra
    except InvalidBlock as exc:
        raise InvalidBlock(f"block {n}: extra_data: {exc}") from exc
    # ... listing the validators in force ...
    if extra.validators != tally.validators:
        raise InvalidBlock(f"block {n}: extra_data lists validators {_addresses(extra.validators)}, "
                           f"expected the validators in force {_addresses(tally.validators)}")
    # ... and committing (vanity) to the validators of the next block: these ones with
    # the coinbase's vote counted.
    following = next_commitment(tally, header.coinbase, extra.vote)
    if extra.vanity != following:
        raise InvalidBlock(f"block {n}: extra_data vanity is 0x{extra.vanity.hex()}, expected the "
                           f"next validators' commitment 0x{following.hex()}")
    # mix_hash: Besu's IBFT/QBFT marker.
    _require_equal(n, "mix_hash", header.mix_hash, QBFT_MIX_HASH)
    # nonce: zero (QBFT votes are in extra_data, not in the nonce as in Clique).
    _require_equal(n, "nonce", header.nonce, QBFT_NONCE)
    # base_fee_per_gas: zero (a permissioned chain: no fee market).
    _require_equal(n, "base_fee_per_gas", header.base_fee_per_gas, BASE_FEE_PER_GAS)
    # withdrawals_root: no withdrawals; the empty trie's root.
    _require_equal(n, "withdrawals_root", header.withdrawals_root, EMPTY_TRIE_ROOT)
    # blob_gas_used, excess_blob_gas: no blobs.
    _require_equal(n, "blob_gas_used", header.blob_gas_used, BLOB_GAS_USED)
    _require_equal(n, "excess_blob_gas", header.excess_blob_gas, EXCESS_BLOB_GAS)
    # parent_beacon_block_root: no beacon chain; zero.
    _require_equal(n, "parent_beacon_block_root", header.parent_beacon_block_root,
                   PARENT_BEACON_BLOCK_ROOT)
    # requests_hash: no execution-layer requests; the hash of the empty list of requests.
    _require_equal(n, "requests_hash", header.requests_hash, EMPTY_REQUESTS_HASH)


def _require_equal(number: int, name: str, found: int | bytes, expected: int | bytes) -> None:
    if found != expected:
        raise InvalidBlock(f"block {number}: {name} is {_show(found)}, expected {_show(expected)}")


def _show(value: int | bytes) -> str:
    return f"0x{value.hex()}" if isinstance(value, bytes) else str(value)


def _addresses(addresses: tuple[bytes, ...]) -> str:
    return "[" + ", ".join(f"0x{a.hex()}" for a in addresses) + "]"


__all__ = ["validate_header"]
