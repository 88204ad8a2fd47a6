"""Receipts and logs, encoded as Ethereum encodes them (typed receipts since EIP-2718)."""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from eth_bloom.bloom import BloomFilter
from rlp.sedes import Binary, CountableList, List, big_endian_int, binary

LOG_SEDES = List([Binary.fixed_length(20), CountableList(Binary.fixed_length(32)), binary], strict=True)
RECEIPT_SEDES = List(
    [big_endian_int, big_endian_int, Binary.fixed_length(256), CountableList(LOG_SEDES)], strict=True
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
    bloom = BloomFilter()
    for log in logs:
        bloom.add(log.address)
        for topic in log.topics:
            bloom.add(topic)
    return int(bloom).to_bytes(256, "big")


def merge_blooms(blooms: list[bytes]) -> bytes:
    acc = 0
    for b in blooms:
        acc |= int.from_bytes(b, "big")
    return acc.to_bytes(256, "big")


def encode_receipt(receipt: Receipt) -> bytes:
    """Consensus encoding: RLP list for legacy, type byte ‖ RLP list for typed receipts."""
    body = rlp.encode(
        [receipt.status, receipt.cumulative_gas_used, receipt.logs_bloom,
         [[log.address, list(log.topics), log.data] for log in receipt.logs]],
        RECEIPT_SEDES,
    )
    return body if receipt.tx_type == 0 else bytes([receipt.tx_type]) + body


def decode_receipt(data: bytes) -> Receipt:
    tx_type = 0
    if data and data[0] < 0x80:
        tx_type, data = data[0], data[1:]
    status, cumulative, bloom, logs = rlp.decode(data, RECEIPT_SEDES)
    return Receipt(
        tx_type, status, cumulative, bloom,
        tuple(Log(addr, tuple(topics), payload) for addr, topics, payload in logs),
    )
