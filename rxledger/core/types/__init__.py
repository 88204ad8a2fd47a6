"""Data types of the chain: transactions, headers (QBFT extraData), blocks, receipts, logs.

Plain frozen dataclasses with `encode_*` / `decode_*` functions; decoding raises the
node's typed errors (`InvalidTransaction`, `InvalidBlock`) with a readable message.
"""

from rxledger.core.types.blocks import Block, decode_block, encode_block, ordered_trie_root
from rxledger.core.types.headers import (
    Header,
    QbftExtra,
    Vote,
    block_hash,
    decode_extra,
    decode_header,
    encode_extra,
    encode_header,
    recover_seal_signers,
    seal_hash,
)
from rxledger.core.types.receipts import Log, Receipt, decode_receipt, encode_receipt, logs_bloom
from rxledger.core.types.transactions import (
    DynamicFeeTransaction,
    LegacyTransaction,
    SignedTransaction,
    decode_transaction,
    validate_transaction,
)

__all__ = [
    "Block", "DynamicFeeTransaction", "Header", "LegacyTransaction", "Log", "QbftExtra",
    "Receipt", "SignedTransaction", "Vote", "block_hash", "decode_block", "decode_extra",
    "decode_header", "decode_receipt", "decode_transaction", "encode_block", "encode_extra",
    "encode_header", "encode_receipt", "logs_bloom", "ordered_trie_root",
    "recover_seal_signers", "seal_hash", "validate_transaction",
]
