"""Signed Ethereum transactions: legacy (EIP-155) and dynamic-fee (EIP-1559).

The rules read top to bottom:

1. `decode_transaction(raw)` parses the wire form (a legacy RLP list, or the type byte
   0x02 followed by an RLP list), checks the shape of every field, checks the signature
   values (r, s in range, low s, EIP-155 replay protection for legacy) and recovers the
   sender once. The result, `SignedTransaction`, carries the sender, the hash and the raw
   bytes, so nothing downstream (txpool, block building, RPC) recovers or encodes again.
2. `validate_transaction(tx, chain_id, ...)` checks what depends on the chain: the chain
   id, the gas against intrinsic gas and the block gas limit.

Other transaction types (0x01 access-list, 0x03 blob, 0x04 set-code) are refused with a
message naming the type: a permissioned chain with zero gas price has no use for them yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import rlp
from rlp.codec import consume_length_prefix, length_prefix
from rlp.sedes import Binary, CountableList, List, binary

from rxledger.core.crypto import SECP256K1_HALF_N, SECP256K1_N, keccak256, recover_address
from rxledger.core.errors import InvalidTransaction
from rxledger.core.types.rlp_codec import decode_rlp, uint

address_sedes = Binary.fixed_length(20, allow_empty=True)
hash_sedes = Binary.fixed_length(32)
access_list_sedes = CountableList(List([Binary.fixed_length(20), CountableList(hash_sedes)]))

LEGACY_FIELDS = List(
    [uint, uint, uint, address_sedes, uint, binary,
     uint, uint, uint],
    strict=True,
)
DYNAMIC_FEE_FIELDS = List(
    [uint, uint, uint, uint, uint,
     address_sedes, uint, binary, access_list_sedes, uint,
     uint, uint],
    strict=True,
)

# [fields…, [[address, [key…]]…], …]: the access list nests lists three deep.
DYNAMIC_FEE_DEPTH = 4
DYNAMIC_FEE_TX_TYPE = 2
UNSUPPORTED_TYPES = {1: "access-list (0x01)", 3: "blob (0x03)", 4: "set-code (0x04)"}

TX_GAS = 21_000
TX_CREATE_GAS = 32_000
TX_DATA_ZERO_GAS = 4
TX_DATA_NONZERO_GAS = 16
ACCESS_LIST_ADDRESS_GAS = 2_400
ACCESS_LIST_STORAGE_KEY_GAS = 1_900
INITCODE_WORD_GAS = 2
MAX_INITCODE_SIZE = 49_152
UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1

AccessList = tuple[tuple[bytes, tuple[bytes, ...]], ...]


@dataclass(frozen=True, slots=True)
class LegacyTransaction:
    """A type-0 transaction. `v` is 35 + 2·chainId + yParity (EIP-155)."""

    nonce: int
    gas_price: int
    gas: int
    to: bytes  # 20 bytes, or b"" for contract creation
    value: int
    data: bytes
    v: int
    r: int
    s: int

    type_id = 0

    @property
    def chain_id(self) -> int | None:
        """The chain id the signature commits to, None for an unprotected signature."""
        return (self.v - 35) // 2 if self.v >= 35 else None

    @property
    def y_parity(self) -> int:
        return (self.v - 35) % 2 if self.v >= 35 else self.v - 27

    @property
    def max_fee_per_gas(self) -> int:
        return self.gas_price

    @property
    def max_priority_fee_per_gas(self) -> int:
        return self.gas_price

    @property
    def access_list(self) -> AccessList:
        return ()

    def signing_hash(self) -> bytes:
        """keccak256 of the EIP-155 signing payload (or the pre-155 one when unprotected)."""
        fields: list[object] = [self.nonce, self.gas_price, self.gas, self.to, self.value, self.data]
        if self.chain_id is not None:
            fields += [self.chain_id, 0, 0]
            return keccak256(rlp.encode(fields, LEGACY_FIELDS))
        return keccak256(rlp.encode(fields))

    def encode(self) -> bytes:
        return rlp.encode(
            [self.nonce, self.gas_price, self.gas, self.to, self.value, self.data,
             self.v, self.r, self.s],
            LEGACY_FIELDS,
        )


@dataclass(frozen=True, slots=True)
class DynamicFeeTransaction:
    """A type-2 (EIP-1559) transaction."""

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas: int
    to: bytes
    value: int
    data: bytes
    access_list: AccessList
    y_parity: int
    r: int
    s: int

    type_id = DYNAMIC_FEE_TX_TYPE

    @property
    def gas_price(self) -> int:
        # The effective gas price with a zero base fee.
        return min(self.max_fee_per_gas, self.max_priority_fee_per_gas)

    @property
    def v(self) -> int:
        return self.y_parity

    def _payload(self, signed: bool) -> list[object]:
        fields: list[object] = [
            self.chain_id, self.nonce, self.max_priority_fee_per_gas, self.max_fee_per_gas,
            self.gas, self.to, self.value, self.data,
            [[addr, list(keys)] for addr, keys in self.access_list],
        ]
        if signed:
            fields += [self.y_parity, self.r, self.s]
        return fields

    def signing_hash(self) -> bytes:
        return keccak256(bytes([DYNAMIC_FEE_TX_TYPE]) + rlp.encode(self._payload(False)))

    def encode(self) -> bytes:
        return bytes([DYNAMIC_FEE_TX_TYPE]) + rlp.encode(self._payload(True), DYNAMIC_FEE_FIELDS)


Transaction = LegacyTransaction | DynamicFeeTransaction


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    """A decoded transaction with its sender recovered once, its hash and its wire bytes."""

    tx: Transaction
    sender: bytes
    hash: bytes
    raw: bytes
    intrinsic_gas: int = field(default=0)

    @property
    def nonce(self) -> int:
        return self.tx.nonce

    @property
    def to(self) -> bytes:
        return self.tx.to

    @property
    def gas(self) -> int:
        return self.tx.gas


def _check_uint(name: str, value: int, limit: int = UINT256_MAX) -> None:
    if value > limit:
        raise InvalidTransaction(f"invalid transaction: {name} exceeds {limit.bit_length()} bits")


def _check_signature_values(y_parity: int, r: int, s: int) -> None:
    if y_parity not in (0, 1):
        raise InvalidTransaction(f"invalid signature: y parity must be 0 or 1, got {y_parity}")
    if not 0 < r < SECP256K1_N:
        raise InvalidTransaction("invalid signature: r is out of range")
    if not 0 < s <= SECP256K1_HALF_N:
        raise InvalidTransaction("invalid signature: s is zero or not in the lower half of the curve order")


def intrinsic_gas(tx: Transaction) -> int:
    """Gas charged before execution: base, calldata, creation, access list (Prague rules
    without the EIP-7623 floor, which `validate_transaction` checks separately)."""
    zeros = tx.data.count(0)
    gas = TX_GAS + zeros * TX_DATA_ZERO_GAS + (len(tx.data) - zeros) * TX_DATA_NONZERO_GAS
    if not tx.to:
        gas += TX_CREATE_GAS + INITCODE_WORD_GAS * ((len(tx.data) + 31) // 32)
    for _addr, storage_keys in tx.access_list:
        gas += ACCESS_LIST_ADDRESS_GAS + ACCESS_LIST_STORAGE_KEY_GAS * len(storage_keys)
    return gas


def calldata_floor_gas(tx: Transaction) -> int:
    """EIP-7623 (Prague) minimum gas: 21000 + 10 per calldata token."""
    zeros = tx.data.count(0)
    tokens = zeros + 4 * (len(tx.data) - zeros)
    return TX_GAS + 10 * tokens


def _unsigned_prefix(list_rlp: bytes, n_items: int) -> bytes:
    """The encoded first `n_items` items of an RLP list, sliced from its bytes.

    Signing payloads are prefixes of the signed encoding; slicing them out avoids
    re-encoding every field (about a quarter of decode time when re-encoded).
    """
    _prefix, _type, _length, pos = consume_length_prefix(list_rlp, 0)
    start = pos
    for _ in range(n_items):
        _prefix, _type, length, payload = consume_length_prefix(list_rlp, pos)
        pos = payload + length
    return list_rlp[start:pos]


def _signing_hash_from_raw(tx: Transaction, raw: bytes) -> bytes:
    if isinstance(tx, LegacyTransaction):
        assert tx.chain_id is not None  # unprotected signatures were refused
        body = _unsigned_prefix(raw, 6) + rlp.encode(tx.chain_id) + b"\x80\x80"
        return keccak256(length_prefix(len(body), 0xC0) + body)
    body = _unsigned_prefix(raw[1:], 9)
    return keccak256(raw[:1] + length_prefix(len(body), 0xC0) + body)


_EMPTY_LIST = ()  # an empty RLP list item in `_flat_items`


def _flat_items(raw: bytes) -> list[bytes | tuple[()]] | None:
    """The items of `raw` when it is exactly one canonical RLP list of byte strings (and
    empty lists); None for anything else, which the caller hands to pyrlp.

    Written out because pyrlp's sedes decode was a fifth of admitting a transaction. It
    only has to be right when it accepts: it accepts a subset of what strict pyrlp
    decoding accepts and then yields the same items (tests/unit/test_types.py checks
    both on generated and mutated transactions)."""
    n = len(raw)
    if not n:
        return None
    b0 = raw[0]
    if 0xC0 <= b0 <= 0xF7:
        pos, end = 1, 1 + b0 - 0xC0
    elif b0 >= 0xF8:
        size = b0 - 0xF7
        if n < 1 + size or raw[1] == 0:
            return None
        length = int.from_bytes(raw[1:1 + size], "big")
        if length < 56:
            return None
        pos = 1 + size
        end = pos + length
    else:
        return None
    if end != n:
        return None
    items: list[bytes | tuple[()]] = []
    while pos < n:
        b = raw[pos]
        if b < 0x80:
            items.append(raw[pos:pos + 1])
            pos += 1
            continue
        if b <= 0xB7:
            start = pos + 1
            stop = start + b - 0x80
            if stop > n or (stop == start + 1 and raw[start] < 0x80):
                return None
        elif b <= 0xBF:
            start = pos + 1 + b - 0xB7
            if start > n or raw[pos + 1] == 0:
                return None
            length = int.from_bytes(raw[pos + 1:start], "big")
            if length < 56:
                return None
            stop = start + length
            if stop > n:
                return None
        elif b == 0xC0:
            items.append(_EMPTY_LIST)
            pos += 1
            continue
        else:
            return None
        items.append(raw[start:stop])
        pos = stop
    return items


def _uint(item: bytes | tuple[()]) -> int | None:
    """A canonical big-endian integer item (no leading zero byte), else None."""
    if isinstance(item, tuple) or (item and item[0] == 0):
        return None
    return int.from_bytes(item, "big")


def _fast_legacy(raw: bytes) -> tuple[int, int, int, bytes, int, bytes, int, int, int] | None:
    items = _flat_items(raw)
    if items is None or len(items) != 9:
        return None
    to, data = items[3], items[5]
    if isinstance(to, tuple) or isinstance(data, tuple) or len(to) not in (0, 20):
        return None
    ints = [_uint(items[i]) for i in (0, 1, 2, 4, 6, 7, 8)]
    if None in ints:
        return None
    nonce, gas_price, gas, value, v, r, s = ints
    return nonce, gas_price, gas, to, value, data, v, r, s  # type: ignore[return-value]


def _decode_legacy(raw: bytes) -> LegacyTransaction:
    fields = _fast_legacy(raw)
    if fields is None:  # pyrlp decides (and says what is wrong)
        fields = decode_rlp(raw, LEGACY_FIELDS, max_depth=1)
    nonce, gas_price, gas, to, value, data, v, r, s = fields
    tx = LegacyTransaction(nonce, gas_price, gas, to, value, data, v, r, s)
    if v in (27, 28):
        raise InvalidTransaction(
            "only replay-protected (EIP-155) transactions are accepted: sign with the chain id"
        )
    if v < 35:
        raise InvalidTransaction(f"invalid signature: v={v} is neither 27/28 nor EIP-155 (>= 35)")
    return tx


def _fast_dynamic_fee(payload: bytes) -> tuple[Any, ...] | None:
    """The fields of a type-2 payload with an empty access list (the common case), else None."""
    items = _flat_items(payload)
    if items is None or len(items) != 12 or items[8] != _EMPTY_LIST:
        return None
    to, data = items[5], items[7]
    if isinstance(to, tuple) or isinstance(data, tuple) or len(to) not in (0, 20):
        return None
    ints = [_uint(items[i]) for i in (0, 1, 2, 3, 4, 6, 9, 10, 11)]
    if None in ints:
        return None
    chain_id, nonce, prio, max_fee, gas, value, y_parity, r, s = ints
    return chain_id, nonce, prio, max_fee, gas, to, value, data, (), y_parity, r, s


def _decode_dynamic_fee(payload: bytes) -> DynamicFeeTransaction:
    fields = _fast_dynamic_fee(payload)
    if fields is None:  # pyrlp decides (and says what is wrong)
        fields = decode_rlp(payload, DYNAMIC_FEE_FIELDS, max_depth=DYNAMIC_FEE_DEPTH)
    (chain_id, nonce, prio, max_fee, gas, to, value, data, access_list,
     y_parity, r, s) = fields
    return DynamicFeeTransaction(
        chain_id, nonce, prio, max_fee, gas, to, value, data,
        tuple((addr, tuple(keys)) for addr, keys in access_list), y_parity, r, s,
    )


def decode_transaction(raw: bytes) -> SignedTransaction:
    """Decode wire bytes into a `SignedTransaction`, recovering the sender once.

    Raises `InvalidTransaction` with a message saying what is wrong.
    """
    if not raw:
        raise InvalidTransaction("invalid transaction: empty input")
    first = raw[0]
    try:
        if first >= 0xC0:
            tx: Transaction = _decode_legacy(raw)
        elif first == DYNAMIC_FEE_TX_TYPE:
            tx = _decode_dynamic_fee(raw[1:])
        elif first in UNSUPPORTED_TYPES:
            raise InvalidTransaction(
                f"transaction type {UNSUPPORTED_TYPES[first]} is not supported; "
                "send a legacy (EIP-155) or EIP-1559 (type 0x02) transaction"
            )
        else:
            raise InvalidTransaction(f"invalid transaction: unknown transaction type 0x{first:02x}")
    except rlp.exceptions.RLPException as exc:
        raise InvalidTransaction(f"invalid transaction: malformed RLP ({exc})") from exc
    # Canonical form needs no re-encoding check: strict RLP decoding refuses non-minimal
    # length prefixes and trailing bytes, and the integer sedes refuses leading zeros.
    for name in ("nonce", "gas"):
        _check_uint(name, getattr(tx, name), UINT64_MAX)
    _check_uint("value", tx.value)
    _check_uint("max fee per gas", tx.max_fee_per_gas)
    _check_uint("max priority fee per gas", tx.max_priority_fee_per_gas)
    if isinstance(tx, DynamicFeeTransaction) and tx.max_priority_fee_per_gas > tx.max_fee_per_gas:
        raise InvalidTransaction("invalid transaction: max priority fee per gas higher than max fee per gas")
    if not tx.to and len(tx.data) > MAX_INITCODE_SIZE:
        raise InvalidTransaction(
            f"invalid transaction: init code of {len(tx.data)} bytes exceeds {MAX_INITCODE_SIZE}"
        )
    _check_signature_values(tx.y_parity, tx.r, tx.s)
    try:
        sender = recover_address(_signing_hash_from_raw(tx, raw), tx.y_parity, tx.r, tx.s)
    except Exception as exc:  # eth-keys raises BadSignature and friends
        raise InvalidTransaction(f"invalid signature: cannot recover the sender ({exc})") from exc
    return SignedTransaction(tx, sender, keccak256(raw), raw, intrinsic_gas(tx))


def validate_transaction(stx: SignedTransaction, *, chain_id: int, block_gas_limit: int) -> None:
    """Chain-dependent rules: chain id, gas bounds. Raises `InvalidTransaction`."""
    tx = stx.tx
    if tx.chain_id != chain_id:
        raise InvalidTransaction(
            f"invalid chain id: transaction is signed for chain {tx.chain_id}, this chain is {chain_id}"
        )
    needed = max(stx.intrinsic_gas, calldata_floor_gas(tx))
    if tx.gas < needed:
        raise InvalidTransaction(f"intrinsic gas too low: have {tx.gas}, want {needed}")
    if tx.gas > block_gas_limit:
        raise InvalidTransaction(
            f"exceeds block gas limit: transaction gas {tx.gas} > block gas limit {block_gas_limit}"
        )
