"""Receipts and logs, encoded as Ethereum encodes them (typed receipts since EIP-2718)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import rlp
from rlp.sedes import Binary, CountableList, List, binary

from rxledger.core.crypto import keccak256
from rxledger.core.errors import InvalidBlock
from rxledger.core.types.rlp_codec import decode_rlp, rlp_bytes, rlp_int, rlp_list, uint

LOG_SEDES = List([Binary.fixed_length(20), CountableList(Binary.fixed_length(32)), binary], strict=True)
RECEIPT_SEDES = List(
    [uint, uint, Binary.fixed_length(256), CountableList(LOG_SEDES)], strict=True
)


@dataclass(frozen=True, slots=True)
class Log:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    """A transaction receipt. `status` is 1 for success, 0 for failure (EIP-658)."""

    tx_type: int
    status: int
    cumulative_gas_used: int
    logs_bloom: bytes
    logs: tuple[Log, ...]


def logs_bloom(logs: tuple[Log, ...] | list[Log]) -> bytes:
    """The 2048-bit bloom over every log's address and topics."""
    bloom = 0
    for log in logs:
        bloom |= _bloom_bits(log.address)
        for topic in log.topics:
            bloom |= _bloom_bits(topic)
    return bloom.to_bytes(256, "big")


@lru_cache(maxsize=4096)  # addresses and event signatures recur in every block
def _bloom_bits(value: bytes) -> int:
    """The three bloom bits of one value: the low 11 bits of the first three byte pairs
    of its keccak (as eth-bloom's BloomFilter.add, which tests compare)."""
    h = keccak256(value)
    return (1 << (((h[0] << 8) | h[1]) & 2047)) | (1 << (((h[2] << 8) | h[3]) & 2047)) | (
        1 << (((h[4] << 8) | h[5]) & 2047))


def merge_blooms(blooms: list[bytes]) -> bytes:
    acc = 0
    for b in blooms:
        acc |= int.from_bytes(b, "big")
    return acc.to_bytes(256, "big")


def encode_receipt(receipt: Receipt) -> bytes:
    """Consensus encoding: RLP list for legacy, type byte ‖ RLP list for typed receipts."""
    if len(receipt.logs_bloom) != 256 or any(
            len(log.address) != 20 or any(len(t) != 32 for t in log.topics) for log in receipt.logs):
        body = _encode_receipt_checked(receipt)  # raises, as RECEIPT_SEDES does
    else:
        logs = b"".join(
            rlp_list(rlp_bytes(log.address) + rlp_list(b"".join(rlp_bytes(t) for t in log.topics))
                     + rlp_bytes(log.data))
            for log in receipt.logs
        )
        body = rlp_list(rlp_int(receipt.status) + rlp_int(receipt.cumulative_gas_used)
                        + rlp_bytes(receipt.logs_bloom) + rlp_list(logs))
    return body if receipt.tx_type == 0 else bytes([receipt.tx_type]) + body


def _encode_receipt_checked(receipt: Receipt) -> bytes:
    """The same encoding through pyrlp's sedes (which check every field's length)."""
    return rlp.encode(
        [receipt.status, receipt.cumulative_gas_used, receipt.logs_bloom,
         [[log.address, list(log.topics), log.data] for log in receipt.logs]],
        RECEIPT_SEDES,
    )


def decode_receipt(data: bytes) -> Receipt:
    """Decode a receipt's consensus encoding; raises `InvalidBlock` if malformed."""
    tx_type = 0
    if data and data[0] < 0x80:
        tx_type, data = data[0], data[1:]
    try:
        # [status, gas, bloom, [[address, [topic…], data]…]]: lists four deep.
        status, cumulative, bloom, logs = decode_rlp(data, RECEIPT_SEDES, max_depth=4)
    except rlp.exceptions.RLPException as exc:
        raise InvalidBlock(f"malformed receipt: {exc}") from exc
    return Receipt(
        tx_type, status, cumulative, bloom,
        tuple(Log(addr, tuple(topics), payload) for addr, topics, payload in logs),
    )
