"""Block headers and the QBFT extraData layout (INTERFACES.md, "Block header").

A header carries the Ethereum (Prague) fields in their usual order. `extraData` is

    RLP([vanity: 32 bytes, validators: [address…] sorted, vote: [] or [address, 0xff|0x00],
         round: integer, commit seals: [65-byte signature…]])

as Besu's QBFT, with one extension: a vote to add a validator may carry a third item,
the name of the organisation the new validator belongs to (`[address, 0xff, org]`, org a
lowercase DNS label of at most 63 bytes). The organisation binds the validator's address
to that organisation's CA on the p2p layer (`node.p2p.tls`); every node tallies it from
the headers, so every honest node derives the same address → organisation map. Headers
without it (Besu's two-item vote, every header written before) stay valid. Two hashes are derived from a header:

- the block hash: keccak256(RLP(header)) with extraData re-encoded with seals = [] and
  round = 0, so every validator's view of one block has one hash whatever round it was
  committed in and whoever sealed it;
- the seal hash: keccak256(RLP(header)) with seals = [] and the real round; a commit
  seal is a secp256k1 signature over it.

A `Header` is immutable, so its decoded extraData and both hashes are computed at most
once per header object and kept on it (`dataclasses.replace` makes a new object, whose
caches start empty). The caches take no part in equality, `repr` or the RLP encoding.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields

import rlp
from rlp.sedes import Binary, CountableList, List, binary

from rxledger.core.crypto import decode_signature, keccak256, recover_address
from rxledger.core.errors import InvalidBlock
from rxledger.core.types.rlp_codec import decode_rlp, deserialize, uint

hash32 = Binary.fixed_length(32)
address20 = Binary.fixed_length(20)

EMPTY_TRIE_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
EMPTY_OMMERS_HASH = bytes.fromhex("1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347")
# EIP-7685: sha256 of the empty list of requests.
EMPTY_REQUESTS_HASH = hashlib.sha256(b"").digest()
# Besu's IBFT/QBFT mixHash marker: "Istanbul Byzantine fault tolerance".
QBFT_MIX_HASH = bytes.fromhex("63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365")
ZERO_HASH = b"\x00" * 32
# The values every header of this chain carries in the fields proof of work, the fee
# market, withdrawals, blobs, the beacon chain and execution requests gave Ethereum: none
# of them exists here. `Chain.build_block` writes these and `node.validation` requires
# them (the same names, so builder and validator cannot drift apart).
QBFT_DIFFICULTY = 1
QBFT_NONCE = b"\x00" * 8
BASE_FEE_PER_GAS = 0
BLOB_GAS_USED = 0
EXCESS_BLOB_GAS = 0
PARENT_BEACON_BLOCK_ROOT = ZERO_HASH
# number, gas limit, gas used and timestamp are 64-bit (Ethereum's header types).
MAX_UINT64 = 2**64 - 1
VOTE_ADD = 0xFF
VOTE_REMOVE = 0x00
# An organisation's name in a vote: a lowercase DNS label (as network/config.py's names).
_ORG_NAME = re.compile(rb"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

HEADER_SEDES = List(
    [hash32, hash32, address20, hash32, hash32, hash32, Binary.fixed_length(256),
     uint, uint, uint, uint, uint,
     binary, hash32, Binary.fixed_length(8), uint, hash32, uint,
     uint, hash32, hash32],
    strict=True,
)
# [vanity, [address…], vote, round, [seal…]]: lists two deep.
EXTRA_DEPTH = 2
EXTRA_SEDES = List(
    [Binary.fixed_length(32), CountableList(address20), CountableList(binary),
     uint, CountableList(Binary.fixed_length(65))],
    strict=True,
)


@dataclass(frozen=True, slots=True)
class Vote:
    """A proposal carried by a header to add (True) or remove (False) a validator.

    `org`: for an addition, the organisation the validator belongs to (None: not named,
    as in Besu's votes and every vote before organisations were bound); never on a removal.
    """

    validator: bytes
    add: bool
    org: str | None = None


def is_valid_org_name(name: str) -> bool:
    """Whether `name` may name an organisation in a vote (a lowercase DNS label)."""
    return _ORG_NAME.fullmatch(name.encode("utf-8", "replace")) is not None


@dataclass(frozen=True, slots=True)
class QbftExtra:
    """The decoded extraData of a QBFT header."""

    vanity: bytes
    validators: tuple[bytes, ...]
    vote: Vote | None
    round: int
    seals: tuple[bytes, ...]


def encode_extra(extra: QbftExtra) -> bytes:
    """RLP-encode extraData; validators are written sorted, as the layout requires."""
    vote: list[bytes] = []
    if extra.vote is not None:
        vote = [extra.vote.validator, bytes([VOTE_ADD if extra.vote.add else VOTE_REMOVE])]
        if extra.vote.org is not None:
            if not extra.vote.add:
                raise ValueError("a vote to remove a validator names no organisation")
            if not is_valid_org_name(extra.vote.org):
                raise ValueError(f"{extra.vote.org!r} is not a valid organisation name")
            vote.append(extra.vote.org.encode("ascii"))
    return rlp.encode(
        [extra.vanity, sorted(extra.validators), vote, extra.round, list(extra.seals)], EXTRA_SEDES
    )


def decode_extra(data: bytes) -> QbftExtra:
    """Decode extraData; raises `InvalidBlock` naming what is malformed."""
    try:
        vanity, validators, vote_items, round_, seals = decode_rlp(data, EXTRA_SEDES, max_depth=EXTRA_DEPTH)
    except rlp.exceptions.RLPException as exc:
        raise InvalidBlock(f"malformed QBFT extraData: {exc}") from exc
    vote = None
    if vote_items:
        if (len(vote_items) not in (2, 3) or len(vote_items[0]) != 20
                or vote_items[1] not in (b"\xff", b"\x00")):
            raise InvalidBlock("malformed QBFT extraData: vote must be [address, 0xff | 0x00] "
                               "or [address, 0xff, organisation]")
        org = None
        if len(vote_items) == 3:
            if vote_items[1] != b"\xff":
                raise InvalidBlock("malformed QBFT extraData: a vote to remove a validator names "
                                   "no organisation")
            if _ORG_NAME.fullmatch(vote_items[2]) is None:
                raise InvalidBlock("malformed QBFT extraData: the vote's organisation must be a "
                                   "lowercase DNS label of at most 63 bytes")
            org = vote_items[2].decode("ascii")
        vote = Vote(vote_items[0], vote_items[1] == b"\xff", org)
    if list(validators) != sorted(validators) or len(set(validators)) != len(validators):
        raise InvalidBlock("malformed QBFT extraData: validators must be sorted and distinct")
    return QbftExtra(vanity, tuple(validators), vote, round_, tuple(seals))


@dataclass(frozen=True, slots=True)
class Header:
    """An Ethereum (Prague) block header."""

    parent_hash: bytes
    ommers_hash: bytes
    coinbase: bytes
    state_root: bytes
    transactions_root: bytes
    receipts_root: bytes
    logs_bloom: bytes
    difficulty: int
    number: int
    gas_limit: int
    gas_used: int
    timestamp: int
    extra_data: bytes
    mix_hash: bytes
    nonce: bytes
    base_fee_per_gas: int
    withdrawals_root: bytes
    blob_gas_used: int
    excess_blob_gas: int
    parent_beacon_block_root: bytes
    requests_hash: bytes
    # Derived once, on first use (see the module docstring): not constructor arguments,
    # not compared, not encoded. A sync imports each header through a dozen checks that
    # all need its hash; computing it each time was two thirds of the import's CPU.
    _extra: QbftExtra | None = field(default=None, init=False, repr=False, compare=False)
    _block_hash: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _seal_hash: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def fields(self) -> list[object]:
        """The 21 header fields in RLP order."""
        return [getattr(self, name) for name in HEADER_FIELDS]

    @property
    def extra(self) -> QbftExtra:
        """The decoded extraData (decoded once); raises `InvalidBlock` if malformed."""
        extra = self._extra
        if extra is None:
            extra = decode_extra(self.extra_data)
            object.__setattr__(self, "_extra", extra)
        return extra

    @property
    def hash(self) -> bytes:
        return block_hash(self)


HEADER_FIELDS = tuple(f.name for f in dataclass_fields(Header) if f.init)
_EXTRA_INDEX = HEADER_FIELDS.index("extra_data")


def encode_header(header: Header) -> bytes:
    return rlp.encode(header.fields(), HEADER_SEDES)


def decode_header(data: bytes) -> Header:
    """Decode an RLP header, its QBFT extraData included; raises `InvalidBlock` if
    either is malformed."""
    try:
        header = Header(*decode_rlp(data, HEADER_SEDES, max_depth=1))
    except rlp.exceptions.RLPException as exc:
        raise InvalidBlock(f"malformed header: {exc}") from exc
    _ = header.extra  # extraData is part of the format: malformed, it is refused here
    return header


def header_from_items(items: object) -> Header:
    """A header from its decoded RLP items (a block's first item); raises `InvalidBlock`."""
    if not isinstance(items, list):
        raise InvalidBlock("malformed header: expected a list of 21 fields, got a byte string")
    try:
        header = Header(*deserialize(items, HEADER_SEDES))
    except rlp.exceptions.RLPException as exc:
        raise InvalidBlock(f"malformed header: {exc}") from exc
    _ = header.extra  # as decode_header
    return header


def _hash_with_extra(header: Header, extra: QbftExtra) -> bytes:
    items = header.fields()
    items[_EXTRA_INDEX] = encode_extra(extra)
    return keccak256(rlp.encode(items, HEADER_SEDES))


def block_hash(header: Header) -> bytes:
    """The block hash: seals = [] and round = 0 in extraData (computed once per header)."""
    digest = header._block_hash
    if digest is None:
        digest = _hash_with_extra(header, replace(header.extra, seals=(), round=0))
        object.__setattr__(header, "_block_hash", digest)
    return digest


def seal_hash(header: Header) -> bytes:
    """What a commit seal signs: the header with seals = [] and the real round (computed once)."""
    digest = header._seal_hash
    if digest is None:
        digest = _hash_with_extra(header, replace(header.extra, seals=()))
        object.__setattr__(header, "_seal_hash", digest)
    return digest


def recover_seal_signers(header: Header) -> list[bytes]:
    """The addresses that produced the header's commit seals, in seal order.

    Raises `InvalidBlock` if a seal is malformed or unrecoverable.
    """
    extra = header.extra
    digest = seal_hash(header)
    signers = []
    for i, seal in enumerate(extra.seals):
        try:
            v, r, s = decode_signature(seal)
            signers.append(recover_address(digest, v, r, s))
        except Exception as exc:
            raise InvalidBlock(f"commit seal {i} is invalid: {exc}") from exc
    return signers
