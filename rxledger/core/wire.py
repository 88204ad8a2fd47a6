"""Chain objects as the JSON of the Ethereum execution-apis specification.

Quantities are minimal lowercase hex ("0x0", "0x1a"), data is lowercase hex; the
shapes follow tests/conformance/execution_apis (checked by the conformance tests).
"""

from __future__ import annotations

from typing import Any

import rlp

from rxledger.core.crypto import keccak256
from rxledger.core.types.blocks import Block, encode_block
from rxledger.core.types.headers import Header
from rxledger.core.types.receipts import Log, Receipt
from rxledger.core.types.transactions import DynamicFeeTransaction, SignedTransaction


def q(value: int) -> str:
    """Quantity: minimal hex."""
    return hex(value)


def d(value: bytes) -> str:
    """Data: lowercase hex."""
    return "0x" + value.hex()


def address_or_none(value: bytes) -> str | None:
    return d(value) if value else None


def format_header(header: Header, block_hash: bytes) -> dict[str, Any]:
    return {
        "hash": d(block_hash),
        "parentHash": d(header.parent_hash),
        "sha3Uncles": d(header.ommers_hash),
        "miner": d(header.coinbase),
        "stateRoot": d(header.state_root),
        "transactionsRoot": d(header.transactions_root),
        "receiptsRoot": d(header.receipts_root),
        "logsBloom": d(header.logs_bloom),
        "difficulty": q(header.difficulty),
        "totalDifficulty": q(header.number + 1),
        "number": q(header.number),
        "gasLimit": q(header.gas_limit),
        "gasUsed": q(header.gas_used),
        "timestamp": q(header.timestamp),
        "extraData": d(header.extra_data),
        "mixHash": d(header.mix_hash),
        "nonce": d(header.nonce),
        "baseFeePerGas": q(header.base_fee_per_gas),
        "withdrawalsRoot": d(header.withdrawals_root),
        "withdrawals": [],
        "blobGasUsed": q(header.blob_gas_used),
        "excessBlobGas": q(header.excess_blob_gas),
        "parentBeaconBlockRoot": d(header.parent_beacon_block_root),
        "requestsHash": d(header.requests_hash),
        "uncles": [],
    }


def header_from_rpc(block: dict[str, Any]) -> Header:
    """The header of a block object as any node returns it (the inverse of `format_header`).

    Raises ValueError if the fields do not hash to the block's `hash`: what a light
    client fetches from an untrusted node is checked before it is used.
    """
    def h(key: str) -> bytes:
        return bytes.fromhex(block[key][2:])

    def n(key: str) -> int:
        return int(block[key], 16)

    header = Header(
        h("parentHash"), h("sha3Uncles"), h("miner"), h("stateRoot"), h("transactionsRoot"),
        h("receiptsRoot"), h("logsBloom"), n("difficulty"), n("number"), n("gasLimit"), n("gasUsed"),
        n("timestamp"), h("extraData"), h("mixHash"), h("nonce"), n("baseFeePerGas"),
        h("withdrawalsRoot"), n("blobGasUsed"), n("excessBlobGas"), h("parentBeaconBlockRoot"),
        h("requestsHash"),
    )
    if d(header.hash) != block["hash"]:
        raise ValueError(f"block {block.get('number')}: its fields do not hash to {block['hash']}")
    return header


def format_block(block: Block, full: bool) -> dict[str, Any]:
    block_hash = block.hash
    out = format_header(block.header, block_hash)
    out["size"] = q(len(encode_block(block)))
    if full:
        out["transactions"] = [
            format_transaction(stx, block, index) for index, stx in enumerate(block.transactions)
        ]
    else:
        out["transactions"] = [d(stx.hash) for stx in block.transactions]
    return out


def format_transaction(stx: SignedTransaction, block: Block | None, index: int | None) -> dict[str, Any]:
    """A transaction object; block fields are null for a transaction still waiting."""
    tx = stx.tx
    out: dict[str, Any] = {
        "blockHash": d(block.hash) if block else None,
        "blockNumber": q(block.number) if block else None,
        "blockTimestamp": q(block.header.timestamp) if block else None,
        "transactionIndex": q(index) if index is not None else None,
        "hash": d(stx.hash),
        "from": d(stx.sender),
        "to": address_or_none(tx.to),
        "type": q(tx.type_id),
        "nonce": q(tx.nonce),
        "gas": q(tx.gas),
        "value": q(tx.value),
        "input": d(tx.data),
        "gasPrice": q(tx.gas_price),
        "chainId": q(tx.chain_id) if tx.chain_id is not None else None,
        "v": q(tx.v),
        "r": q(tx.r),
        "s": q(tx.s),
    }
    if out["chainId"] is None:
        del out["chainId"]
    if isinstance(tx, DynamicFeeTransaction):
        out["maxFeePerGas"] = q(tx.max_fee_per_gas)
        out["maxPriorityFeePerGas"] = q(tx.max_priority_fee_per_gas)
        out["accessList"] = [
            {"address": d(addr), "storageKeys": [d(k) for k in keys]} for addr, keys in tx.access_list
        ]
        out["yParity"] = q(tx.y_parity)
    return out


def contract_address(sender: bytes, nonce: int) -> bytes:
    return keccak256(rlp.encode([sender, nonce]))[12:]


def format_log(log: Log, block: Block, tx: SignedTransaction, tx_index: int, log_index: int) -> dict[str, Any]:
    return {
        "removed": False,
        "logIndex": q(log_index),
        "transactionIndex": q(tx_index),
        "transactionHash": d(tx.hash),
        "blockHash": d(block.hash),
        "blockNumber": q(block.number),
        "blockTimestamp": q(block.header.timestamp),
        "address": d(log.address),
        "data": d(log.data),
        "topics": [d(t) for t in log.topics],
    }


def format_receipt(
    receipt: Receipt, block: Block, index: int, cumulative_before: int, log_index_before: int
) -> dict[str, Any]:
    stx = block.transactions[index]
    return {
        "transactionHash": d(stx.hash),
        "transactionIndex": q(index),
        "blockHash": d(block.hash),
        "blockNumber": q(block.number),
        "from": d(stx.sender),
        "to": address_or_none(stx.tx.to),
        "cumulativeGasUsed": q(receipt.cumulative_gas_used),
        "gasUsed": q(receipt.cumulative_gas_used - cumulative_before),
        "contractAddress": None if stx.tx.to else d(contract_address(stx.sender, stx.tx.nonce)),
        "logs": [
            format_log(log, block, stx, index, log_index_before + i) for i, log in enumerate(receipt.logs)
        ],
        "logsBloom": d(receipt.logs_bloom),
        "type": q(receipt.tx_type),
        "status": q(receipt.status),
        "effectiveGasPrice": q(stx.tx.gas_price),
    }
