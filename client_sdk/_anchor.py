"""Anchoring batches of record hashes, and receipts anyone can verify with no node.

`Anchorer.submit(records)` hashes each record (SHA-256), cuts the hashes into batches,
builds one RFC 6962 Merkle tree per batch (`client_sdk._merkle`), anchors each root with
one `AnchorRegistry.anchor(root, size, meta)` transaction, waits until the transactions
are final, fetches each block's header (with its commit seals), transactions and
receipts, proves the anchoring transaction and its receipt against the header's roots
(Merkle-Patricia proofs), and returns one `AnchorReceipt` per record, in input order.
`AsyncAnchorer` does the same over asyncio: both drive the same flows (`client_sdk._rpc`).

`verify_receipt(receipt, trust)` checks a receipt offline against a `Trust` (who the
validators are): the audit path folds to the root; the header's receipts root proves a
successful receipt with the AnchorRegistry's ``Anchored(root, by, size, meta)`` log for
this root and size; the header's transactions root proves the transaction with this hash
and chain id; the header carries commit seals of a quorum (ceil(2n/3)) of the validator
set the trust holds for its height. Every failure raises `VerificationFailed` whose
`reason` names what is wrong. The expensive part (seal recovery, ~50 µs a seal, and the
trie proofs) is done once per anchoring and cached in the `Trust`, so the receipts of
one batch verify at the cost of their audit paths (`verify_receipts` for many).

Receipt JSON (version 1; docs/ANCHORING.md has the same table)
---------------------------------------------------------------
One JSON object; byte strings are 0x-prefixed lowercase hex, numbers are JSON integers:

=================== ======== ==========================================================
field               type     meaning
=================== ======== ==========================================================
version             int      1
recordHash          32 bytes SHA-256 of the record: the tree entry d(i)
leafIndex           int      i, the entry's index in its batch (0-based)
treeSize            int      n, the number of entries in the batch
auditPath           [32 b]   RFC 6962 PATH(i, D[n]), leaf to root
root                32 bytes MTH(D[n]); leaf = SHA-256(0x00 ‖ d), node = SHA-256(0x01 ‖ l ‖ r)
meta                32 bytes the batch's meta word, as anchored
chainId             int      the chain's id (also proven by the signed transaction)
registry            20 bytes the AnchorRegistry that emitted the Anchored log
anchoredBy          20 bytes the account that anchored (the log's `by`)
transactionHash     32 bytes keccak256 of the anchoring transaction
transactionIndex    int      its index in the block (the key of both trie proofs)
blockNumber         int      the block's number
blockHash           32 bytes the block's hash (seals = [], round = 0 in extraData)
header              bytes    RLP of the block header, extraData with the commit seals
receiptProof        [bytes]  trie nodes from receiptsRoot to the transaction's receipt
transactionProof    [bytes]  trie nodes from transactionsRoot to the raw transaction
=================== ======== ==========================================================

The two proofs are the RLP-encoded Merkle-Patricia trie nodes on the path to key
RLP(transactionIndex), root first, as `eth_getProof` gives account proofs. A malformed
receipt (missing field, wrong type or length) raises `VerificationFailed` naming the
field. Unknown fields are ignored, so later versions can add to a receipt.

What a receipt proves: a quorum of the validators the verifier trusts sealed a block
whose transaction `transactionHash` anchored `root` for `treeSize` entries, and the
record with hash `recordHash` is entry `leafIndex` of that tree. The record itself is
never on the ledger; a holder of the record proves it matches with `record=`. The audit
path reveals the leaf hashes of neighbouring records: records that a third party could
guess (short, formulaic documents) should be salted before they are anchored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rlp
from trie.hexary import HexaryTrie

from client_sdk._errors import ClientError, Refused, VerificationFailed
from client_sdk._json import load_json
from client_sdk._ledger import (
    ANCHOR_REGISTRY,
    Contract,
    Signer,
    _reason_of_failed,
    call_flow,
    send_transaction_flow,
    wait_receipt_flow,
)
from client_sdk._merkle import audit_paths, root_from_path, tree_levels
from client_sdk._rpc import AsyncRpc, Call, Flow, Rpc
from client_sdk._web3 import connect, connect_async, signer_for
from rxledger.core.crypto import keccak256
from rxledger.core.errors import InvalidBlock, InvalidTransaction
from rxledger.core.light_client import (
    LightClientError,
    TrustedState,
    validators_commitment,
    verify_final_header,
    verify_header,
)
from rxledger.core.types.headers import Header, block_hash, decode_header, encode_header
from rxledger.core.types.receipts import Log, Receipt, decode_receipt, encode_receipt
from rxledger.core.types.rlp_codec import decode_rlp
from rxledger.core.types.transactions import decode_transaction
from rxledger.core.wire import header_from_rpc

if TYPE_CHECKING:
    from web3 import AsyncWeb3, Web3

__all__ = [
    "AnchorProof",
    "AnchorReceipt",
    "Anchorer",
    "AsyncAnchorer",
    "Progress",
    "Trust",
    "verify_receipt",
    "verify_receipts",
]

RECEIPT_VERSION = 1
# A receipt read from outside: a flat object with lists of hex strings (depth 2). Its
# audit path and proofs are a few KB; the header under 1 KB.
MAX_RECEIPT_BYTES = 1024 * 1024
MAX_RECEIPT_DEPTH = 2
# A proof node: a trie node's RLP, nesting at most a branch holding an inlined node.
_PROOF_NODE_DEPTH = 8
DEFAULT_BATCH_SIZE = 10_000
ZERO32 = b"\x00" * 32
_sha256 = hashlib.sha256
_ANCHOR_CONTRACT = Contract("AnchorRegistry", ANCHOR_REGISTRY)
ANCHORED_TOPIC = _ANCHOR_CONTRACT.events["Anchored"].topic

# progress(stage, done, total): stage "sent" after each batch's transaction is sent,
# "final" after each batch's receipts are built; total is None for an iterator of
# unknown length.
Progress = Callable[[str, int, "int | None"], None]


# -- the receipt -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AnchorProof:
    """What every receipt of one batch shares: the anchoring and its proof in a block."""

    root: bytes
    tree_size: int
    meta: bytes
    chain_id: int
    registry: bytes
    anchored_by: bytes
    transaction_hash: bytes
    transaction_index: int
    block_number: int
    block_hash: bytes
    header: bytes
    receipt_proof: tuple[bytes, ...]
    transaction_proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class AnchorReceipt:
    """The proof that one record hash was anchored (JSON schema in the module docstring)."""

    record_hash: bytes
    leaf_index: int
    audit_path: tuple[bytes, ...]
    anchor: AnchorProof
    version: int = RECEIPT_VERSION

    @property
    def root(self) -> bytes:
        return self.anchor.root

    @property
    def tree_size(self) -> int:
        return self.anchor.tree_size

    @property
    def block_number(self) -> int:
        return self.anchor.block_number

    @property
    def transaction_hash(self) -> bytes:
        return self.anchor.transaction_hash

    def to_dict(self) -> dict[str, Any]:
        a = self.anchor
        return {
            "version": self.version,
            "recordHash": _hex(self.record_hash),
            "leafIndex": self.leaf_index,
            "treeSize": a.tree_size,
            "auditPath": [_hex(p) for p in self.audit_path],
            "root": _hex(a.root),
            "meta": _hex(a.meta),
            "chainId": a.chain_id,
            "registry": _hex(a.registry),
            "anchoredBy": _hex(a.anchored_by),
            "transactionHash": _hex(a.transaction_hash),
            "transactionIndex": a.transaction_index,
            "blockNumber": a.block_number,
            "blockHash": _hex(a.block_hash),
            "header": _hex(a.header),
            "receiptProof": [_hex(n) for n in a.receipt_proof],
            "transactionProof": [_hex(n) for n in a.transaction_proof],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, obj: Any) -> AnchorReceipt:
        """Parse a receipt object; raises `VerificationFailed` naming a malformed field."""
        if not isinstance(obj, Mapping):
            raise VerificationFailed("a receipt is a JSON object")
        version = _int_field(obj, "version")
        if version != RECEIPT_VERSION:
            raise VerificationFailed(
                f"receipt field 'version': version {version} is not supported "
                f"(this SDK reads version {RECEIPT_VERSION})"
            )
        anchor = _anchor_proof(obj)
        return cls(
            _bytes_field(obj, "recordHash", 32), _int_field(obj, "leafIndex"),
            _hash_list_field(obj, "auditPath"), anchor, version,
        )

    def verify(self, trust: Trust, *, record: bytes | None = None) -> None:
        """`verify_receipt(self, trust, record=record)`."""
        verify_receipt(self, trust, record=record)

    @classmethod
    def from_json(cls, text: str | bytes) -> AnchorReceipt:
        """Parse receipt JSON; raises `VerificationFailed` if it is too large, nested too
        deep, not JSON, or a field is malformed (the reason names the field)."""
        obj = load_json(text, "receipt", max_bytes=MAX_RECEIPT_BYTES, max_depth=MAX_RECEIPT_DEPTH)
        return cls.from_dict(obj)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _field(obj: Mapping[str, Any], name: str) -> Any:
    try:
        return obj[name]
    except KeyError:
        raise VerificationFailed(f"receipt field '{name}' is missing") from None


def _int_field(obj: Mapping[str, Any], name: str) -> int:
    value = _field(obj, name)
    if type(value) is not int or value < 0:
        raise VerificationFailed(f"receipt field '{name}': expected a non-negative integer, got {value!r:.40}")
    return value


def _decode_hex(value: Any, name: str, length: int | None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise VerificationFailed(f"receipt field '{name}': expected 0x-prefixed hex, got {value!r:.40}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raw = None
    if raw is None or 2 * len(raw) != len(value) - 2:  # fromhex skips whitespace: refuse it
        raise VerificationFailed(f"receipt field '{name}': not hex: {value!r:.40}")
    if length is not None and len(raw) != length:
        raise VerificationFailed(f"receipt field '{name}': expected {length} bytes, got {len(raw)}")
    return raw


_ANCHOR_FIELDS = ("root", "treeSize", "meta", "chainId", "registry", "anchoredBy", "transactionHash",
                  "transactionIndex", "blockNumber", "blockHash", "header")
_PROOFS: dict[tuple[Any, ...], AnchorProof] = {}  # parsed batch parts by their JSON text


def _anchor_proof(obj: Mapping[str, Any]) -> AnchorProof:
    # The receipts of one batch share all of this: parse it once per batch, by its text.
    try:
        key = (*(obj[f] for f in _ANCHOR_FIELDS), *obj["receiptProof"], None, *obj["transactionProof"])
        cached = _PROOFS.get(key)
    except (KeyError, TypeError):  # a missing field, or a list unhashable: the slow path names it
        key, cached = None, None
    if cached is not None:
        return cached
    anchor = AnchorProof(
        root=_bytes_field(obj, "root", 32),
        tree_size=_int_field(obj, "treeSize"),
        meta=_bytes_field(obj, "meta", 32),
        chain_id=_int_field(obj, "chainId"),
        registry=_bytes_field(obj, "registry", 20),
        anchored_by=_bytes_field(obj, "anchoredBy", 20),
        transaction_hash=_bytes_field(obj, "transactionHash", 32),
        transaction_index=_int_field(obj, "transactionIndex"),
        block_number=_int_field(obj, "blockNumber"),
        block_hash=_bytes_field(obj, "blockHash", 32),
        header=_bytes_field(obj, "header"),
        receipt_proof=_bytes_list_field(obj, "receiptProof"),
        transaction_proof=_bytes_list_field(obj, "transactionProof"),
    )
    if key is not None:
        if len(_PROOFS) >= 256:
            _PROOFS.clear()
        _PROOFS[key] = anchor
    return anchor


def _hash_list_field(obj: Mapping[str, Any], name: str) -> tuple[bytes, ...]:
    """A list of 32-byte hashes: one hex decoding for the whole list when it is well formed."""
    value = obj.get(name)
    if type(value) is list:
        n = len(value)
        try:
            joined = "".join(value)  # TypeError if an item is not a string
        except TypeError:
            joined = ""
        if (len(joined) == 66 * n and set(map(len, value)) <= {66}
                and joined[0::66] == "0" * n and joined[1::66] == "x" * n):
            try:
                raw = bytes.fromhex(joined.replace("0x", ""))  # "x" is no hex digit
            except ValueError:
                raw = b""
            if len(raw) == 32 * n:
                return tuple([raw[i:i + 32] for i in range(0, 32 * n, 32)])
    return _bytes_list_field(obj, name, 32)  # names what is wrong


def _bytes_field(obj: Mapping[str, Any], name: str, length: int | None = None) -> bytes:
    return _decode_hex(_field(obj, name), name, length)


def _bytes_list_field(obj: Mapping[str, Any], name: str, length: int | None = None) -> tuple[bytes, ...]:
    value = _field(obj, name)
    if not isinstance(value, list):
        raise VerificationFailed(f"receipt field '{name}': expected a list, got {value!r:.40}")
    return tuple(_decode_hex(item, f"{name}[{i}]", length) for i, item in enumerate(value))


# -- trust -------------------------------------------------------------------------------
class Trust:
    """Who the validators are, height by height, as far as the verifier knows.

    - `Trust.from_network_json(path)`: the consortium's network.json (chainId,
      genesisHash, and the `validator` address of every validator node): the genesis
      validator set.
    - `Trust.from_validators(validators, chain_id=…, from_height=…)`: a pinned set,
      trusted from `from_height` on (e.g. read from a node the verifier runs).
    - `Trust.from_headers(genesis, headers, …)`: the genesis header (checked against
      `genesis_hash` when given) and the headers since, walked with the light client's
      `verify_header`; `extend(headers)` walks further. The set of every walked height is
      known exactly, and so is its block hash: a receipt for a walked height must carry
      that very block.

    After the last height it knows, a trust assumes the last set it knows stays in force
    (a light client's usual assumption). A receipt whose header lists another validator
    set than the trust holds for its height fails closed ("the validator set changed:
    extend the trust"), as does one sealed by anyone outside the set or by fewer than
    ceil(2n/3) of it. A malformed trust raises `VerificationFailed` too.

    `registries` is the set of AnchorRegistry addresses whose logs count (the native
    0x…1003 by default).

    A trust caches what it has verified per anchoring (header, seals, trie proofs), so
    the receipts of one batch cost one seal check (and the batches of one block one seal
    check in all); the caches are cleared by `extend`.
    """

    CACHE_LIMIT = 4096

    def __init__(
        self,
        segments: Sequence[tuple[int, Sequence[bytes]]],
        *,
        chain_id: int | None = None,
        genesis_hash: bytes | None = None,
        state: TrustedState | None = None,
        block_hashes: Mapping[int, bytes] | None = None,
        source: str = "validators",
    ) -> None:
        """`segments`: (first height, validators) pairs in height order; each set holds
        from its height until the next segment's. Prefer the `from_*` constructors."""
        checked: list[tuple[int, tuple[bytes, ...]]] = []
        for start, members in segments:
            ordered = tuple(sorted(members))
            if not ordered:
                raise VerificationFailed(f"trust: the validator set from block {start} is empty")
            if any(len(a) != 20 for a in ordered) or len(set(ordered)) != len(ordered):
                raise VerificationFailed(
                    f"trust: the validator set from block {start} must be distinct 20-byte addresses"
                )
            if checked and start <= checked[-1][0]:
                raise VerificationFailed("trust: validator sets must be in increasing height order")
            checked.append((start, ordered))
        if not checked and state is None:
            raise VerificationFailed("trust: no validator set")
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash
        self.source = source
        # Whose Anchored logs count: the native registry; add a Solidity deployment's
        # address here to accept receipts of it (a log of any other contract proves nothing).
        self.registries: set[bytes] = {bytes.fromhex(ANCHOR_REGISTRY[2:])}
        self._segments = checked
        self._state = state
        self._hashes: dict[int, bytes] = dict(block_hashes or {})
        self._cache: dict[AnchorProof, str | None] = {}  # per anchoring: its failure or None
        self._seals: dict[bytes, str | None] = {}  # per header: its seals' failure or None

    # constructors ------------------------------------------------------------------
    @classmethod
    def from_validators(
        cls, validators: Iterable[bytes | str], *, chain_id: int | None = None,
        from_height: int = 1, genesis_hash: bytes | None = None,
    ) -> Trust:
        """A pinned validator set, in force from block `from_height` on."""
        members = [_address(v, "validator") for v in validators]
        if len(set(members)) != len(members):
            raise VerificationFailed("trust: the pinned validator set has duplicates")
        return cls([(from_height, members)], chain_id=chain_id, genesis_hash=genesis_hash,
                   source=f"{len(members)} pinned validators from block {from_height}")

    @classmethod
    def from_network_json(cls, source: str | Path | Mapping[str, Any]) -> Trust:
        """The genesis validators, chain id and genesis hash of a consortium's network.json
        (a path or the parsed object): every node whose `validator` is an address."""
        where = str(source) if not isinstance(source, Mapping) else "network.json"
        if isinstance(source, Mapping):
            raw: Any = source
        else:
            try:
                raw = json.loads(Path(source).read_text())
            except OSError as exc:
                raise VerificationFailed(f"trust: cannot read {where}: {exc.strerror}") from exc
            except ValueError as exc:
                raise VerificationFailed(f"trust: {where} is not JSON: {exc}") from exc
        if not isinstance(raw, Mapping):
            raise VerificationFailed(f"trust: {where} is not a JSON object")
        chain_id = raw.get("chainId")
        if type(chain_id) is not int:
            raise VerificationFailed(f"trust: {where} has no integer chainId")
        genesis = raw.get("genesisHash")
        genesis_hash = None
        if genesis is not None:
            try:
                genesis_hash = _decode_hex(genesis, "genesisHash", 32)
            except VerificationFailed as exc:
                raise VerificationFailed(f"trust: {where}: {exc.reason}") from None
        nodes = raw.get("nodes")
        if not isinstance(nodes, list):
            raise VerificationFailed(f"trust: {where} has no list of nodes")
        validators = []
        for i, node in enumerate(nodes):
            if isinstance(node, Mapping) and node.get("validator"):
                validators.append(_address(node["validator"], f"nodes[{i}].validator"))
        if not validators:
            raise VerificationFailed(f"trust: {where} names no validator")
        if len(set(validators)) != len(validators):
            raise VerificationFailed(f"trust: {where} names a validator twice")
        return cls([(1, validators)], chain_id=chain_id, genesis_hash=genesis_hash,
                   source=f"{where} ({len(validators)} genesis validators)")

    @classmethod
    def from_headers(
        cls, genesis: Header | bytes, headers: Iterable[Header | bytes] = (), *,
        chain_id: int | None = None, genesis_hash: bytes | None = None,
    ) -> Trust:
        """Genesis (checked against `genesis_hash` when given) and the headers after it,
        walked with `verify_header`: each must be the next block, sealed by a quorum of
        the set its predecessor committed to."""
        header = _as_header(genesis)
        try:
            state = TrustedState.from_genesis(header, genesis_hash)
        except LightClientError as exc:
            raise VerificationFailed(f"trust: {exc.reason}") from exc
        trust = cls([], chain_id=chain_id, genesis_hash=state.block_hash, state=state,
                    block_hashes={0: state.block_hash}, source="genesis and headers")
        trust.extend(headers)
        return trust

    def extend(self, headers: Iterable[Header | bytes]) -> None:
        """Walk more headers (only for a trust built `from_headers`)."""
        if self._state is None:
            raise VerificationFailed("trust: only a trust built from headers can be extended")
        state = self._state
        for item in headers:
            header = _as_header(item)
            try:
                state = verify_header(state, header)
            except LightClientError as exc:
                raise VerificationFailed(f"trust: {exc.reason}") from exc
            validators = header.extra.validators
            if not self._segments or self._segments[-1][1] != tuple(sorted(validators)):
                self._segments.append((header.number, tuple(sorted(validators))))
            self._hashes[header.number] = state.block_hash
        self._state = state
        self._cache.clear()
        self._seals.clear()

    @property
    def height(self) -> int | None:
        """The last walked height (a trust from headers), else None."""
        return self._state.height if self._state is not None else None

    def validators_at(self, height: int, listed: Sequence[bytes] | None = None) -> tuple[bytes, ...]:
        """The validator set the trust holds for block `height`; `listed` is the set the
        block's header names, needed only for the block right after the last walked one
        when that set is known by its commitment alone. Raises `VerificationFailed`."""
        state = self._state
        if state is not None and height > state.height:
            if state.next_validators is not None:
                return state.next_validators
            if height == state.height + 1 and listed is not None:
                if validators_commitment(listed) == state.next_commitment:
                    return tuple(sorted(listed))
                raise VerificationFailed(
                    f"block {height}: its validator list is not the set block {state.height} "
                    "committed to"
                )
            raise VerificationFailed(
                f"block {height}: the validator set after block {state.height + 1} is not "
                "known from the headers walked: extend the trust"
            )
        chosen: tuple[bytes, ...] | None = None
        for start, members in self._segments:
            if start > height:
                break
            chosen = members
        if chosen is None:
            first = self._segments[0][0] if self._segments else 0
            raise VerificationFailed(f"block {height}: the trust holds validators from block {first} on")
        return chosen

    def known_block_hash(self, height: int) -> bytes | None:
        return self._hashes.get(height)


def _address(value: bytes | str, what: str) -> bytes:
    if isinstance(value, bytes):
        raw = value
    else:
        try:
            raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
        except (ValueError, AttributeError):
            raise VerificationFailed(f"trust: {what} is not an address: {value!r:.50}") from None
    if len(raw) != 20:
        raise VerificationFailed(f"trust: {what} is not a 20-byte address")
    return raw


def _as_header(item: Header | bytes) -> Header:
    if isinstance(item, Header):
        return item
    try:
        return decode_header(item)
    except InvalidBlock as exc:
        raise VerificationFailed(f"trust: {exc}") from exc


# -- verification ------------------------------------------------------------------------
def verify_receipt(receipt: AnchorReceipt, trust: Trust, *, record: bytes | None = None) -> None:
    """Check one receipt offline; raises `VerificationFailed` with the reason, else
    returns None. With `record`, also check that the record hashes to the receipt's."""
    if receipt.version != RECEIPT_VERSION:
        raise VerificationFailed(f"receipt version {receipt.version} is not supported")
    if record is not None and _sha256(record).digest() != receipt.record_hash:
        raise VerificationFailed("the record does not match the receipt: its SHA-256 is not recordHash")
    a = receipt.anchor
    try:
        root = root_from_path(
            receipt.leaf_index, a.tree_size, _sha256(b"\x00" + receipt.record_hash).digest(),
            receipt.audit_path,
        )
    except ValueError as exc:
        raise VerificationFailed(f"audit path: {exc}") from None
    if root != a.root:
        raise VerificationFailed(
            f"audit path: leaf {receipt.leaf_index} of {a.tree_size} does not fold to the root"
        )
    if a.registry not in trust.registries:  # not cached: `registries` may change
        raise VerificationFailed(f"registry: {_hex(a.registry)} is not an AnchorRegistry the trust accepts")
    cache = trust._cache
    try:
        reason = cache[a]
    except KeyError:
        reason = _anchoring_failure(a, trust)
        if len(cache) >= trust.CACHE_LIMIT:
            cache.clear()
        cache[a] = reason
    if reason is not None:
        raise VerificationFailed(reason)


def verify_receipts(
    receipts: Iterable[AnchorReceipt], trust: Trust, *, records: Iterable[bytes | None] | None = None
) -> list[VerificationFailed | None]:
    """Check many receipts; per receipt None (valid) or the `VerificationFailed`."""
    results: list[VerificationFailed | None] = []
    paired: Iterator[bytes | None] = iter(records) if records is not None else iter(())
    for receipt in receipts:
        record = next(paired, None) if records is not None else None
        try:
            verify_receipt(receipt, trust, record=record)
        except VerificationFailed as exc:
            results.append(exc)
        else:
            results.append(None)
    return results


def _anchoring_failure(a: AnchorProof, trust: Trust) -> str | None:
    try:
        header = _check_anchoring_in_block(a)
        _check_seals(a, header, trust)
    except VerificationFailed as exc:
        return exc.reason
    return None


def _check_anchoring_in_block(a: AnchorProof, *, expected_chain_id: int | None = None) -> Header:
    """Everything but the seals: the header, both trie proofs, the receipt's log."""
    try:
        header = decode_header(a.header)
        digest = block_hash(header)
    except InvalidBlock as exc:
        raise VerificationFailed(f"header: {exc}") from None
    if encode_header(header) != a.header:
        # Defence in depth: decode_header accepts canonical RLP only, so re-encoding must give the same bytes.
        raise VerificationFailed("header: not in canonical RLP")
    if header.number != a.block_number:
        raise VerificationFailed(f"header: it is block {header.number}, the receipt says {a.block_number}")
    if digest != a.block_hash:
        raise VerificationFailed("header: it does not hash to blockHash")
    key = rlp.encode(a.transaction_index)
    raw_receipt = _proven_value(header.receipts_root, key, a.receipt_proof, "receiptProof", a)
    try:
        receipt = decode_receipt(raw_receipt)
    except InvalidBlock as exc:
        raise VerificationFailed(f"receiptProof: the proven receipt does not decode: {exc}") from None
    if receipt.status != 1:
        raise VerificationFailed(f"the anchoring transaction failed (receipt status {receipt.status})")
    _check_anchored_log(a, receipt)
    raw_tx = _proven_value(header.transactions_root, key, a.transaction_proof, "transactionProof", a)
    if keccak256(raw_tx) != a.transaction_hash:
        raise VerificationFailed("transactionProof: the proven transaction does not hash to transactionHash")
    try:
        tx_chain_id = decode_transaction(raw_tx).tx.chain_id
    except InvalidTransaction as exc:
        raise VerificationFailed(f"transactionProof: the proven transaction does not decode: {exc}") from None
    if tx_chain_id != a.chain_id:
        raise VerificationFailed(f"chainId: the transaction was signed for chain id {tx_chain_id}, not {a.chain_id}")
    if expected_chain_id is not None and a.chain_id != expected_chain_id:
        raise VerificationFailed(f"chainId: {a.chain_id}, expected {expected_chain_id}")
    return header


def _proven_value(root: bytes, key: bytes, nodes: tuple[bytes, ...], name: str, a: AnchorProof) -> bytes:
    try:
        value = HexaryTrie.get_from_proof(  # type: ignore[no-untyped-call]
            root, key, [decode_rlp(node, max_depth=_PROOF_NODE_DEPTH) for node in nodes]
        )
    except Exception as exc:  # rlp and trie raise several types for a broken proof
        raise VerificationFailed(
            f"{name}: it does not prove index {a.transaction_index} under the header's root: {exc}"
        ) from None
    if not value:
        raise VerificationFailed(f"{name}: it proves there is no entry at index {a.transaction_index}")
    return bytes(value)


def _check_anchored_log(a: AnchorProof, receipt: Receipt) -> None:
    ours = [log for log in receipt.logs if log.address == a.registry]
    if not ours:
        raise VerificationFailed(f"registry: the receipt has no log from {_hex(a.registry)}")
    anchored = [log for log in ours if log.topics[:1] == (ANCHORED_TOPIC,) and len(log.topics) == 3]
    if not anchored:
        raise VerificationFailed("the anchoring receipt has no Anchored event from the registry")
    log = next((log for log in anchored if log.topics[1] == a.root), None)
    if log is None:
        raise VerificationFailed("root: the Anchored event is for another root")
    if log.topics[2] != b"\x00" * 12 + a.anchored_by:
        raise VerificationFailed("anchoredBy: the Anchored event names another account")
    if len(log.data) != 64:
        raise VerificationFailed("the Anchored event's data is malformed")
    size = int.from_bytes(log.data[:32], "big")
    if size != a.tree_size:
        raise VerificationFailed(f"treeSize: the Anchored event records {size} entries, not {a.tree_size}")
    if log.data[32:] != a.meta:
        raise VerificationFailed("meta: the Anchored event records another meta word")


def _check_seals(a: AnchorProof, header: Header, trust: Trust) -> None:
    if trust.chain_id is not None and a.chain_id != trust.chain_id:
        raise VerificationFailed(f"chainId: the receipt is for chain {a.chain_id}, the trust for chain {trust.chain_id}")
    known = trust.known_block_hash(header.number)
    if known is not None and known != a.block_hash:
        raise VerificationFailed(
            f"block {header.number} is not the block the trusted headers have at that height"
        )
    try:
        listed = header.extra.validators
    except InvalidBlock as exc:
        raise VerificationFailed(f"header: {exc}") from None
    validators = trust.validators_at(header.number, listed)
    if tuple(sorted(listed)) != validators:
        raise VerificationFailed(
            f"block {header.number} lists {len(listed)} validators other than the {len(validators)} "
            f"the trust holds at that height (the validator set changed? extend the trust)"
        )
    # Per header (its bytes, seals included): several batches anchored in one block.
    seals = trust._seals
    try:
        reason = seals[a.header]
    except KeyError:
        reason = None
        try:
            verify_final_header(validators, header)
        except LightClientError as exc:
            reason = exc.reason
        if len(seals) >= trust.CACHE_LIMIT:
            seals.clear()
        seals[a.header] = reason
    if reason is not None:
        raise VerificationFailed(reason)


# -- anchoring (flows, driven by Rpc or AsyncRpc) ------------------------------------------
@dataclass(frozen=True, slots=True)
class _Sent:
    hashes: list[bytes]
    levels: list[list[bytes]]
    root: bytes
    tx: dict[str, Any]
    tx_hash: str


@dataclass(frozen=True, slots=True)
class _BlockProofs:
    header: Header
    header_rlp: bytes
    block_hash: bytes
    transactions: HexaryTrie
    receipts: HexaryTrie


def _chunks(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _raw_transaction(tx: Mapping[str, Any]) -> bytes:
    """The signed wire form of a transaction object (legacy or dynamic-fee)."""
    def n(key: str) -> int:
        return int(tx[key], 16)

    def b(key: str) -> bytes:
        value = tx.get(key)
        return bytes.fromhex(value[2:]) if value else b""

    kind = n("type")
    if kind == 0:
        return rlp.encode([n("nonce"), n("gasPrice"), n("gas"), b("to"), n("value"), b("input"),
                           n("v"), n("r"), n("s")])
    if kind == 2:
        access = [[bytes.fromhex(e["address"][2:]), [bytes.fromhex(k[2:]) for k in e["storageKeys"]]]
                  for e in tx.get("accessList", [])]
        return b"\x02" + rlp.encode([
            n("chainId"), n("nonce"), n("maxPriorityFeePerGas"), n("maxFeePerGas"), n("gas"),
            b("to"), n("value"), b("input"), access, n("yParity"), n("r"), n("s"),
        ])
    raise ClientError(f"transaction {tx.get('hash')}: type {kind} cannot be proven by this SDK")


def _receipt_from_rpc(r: Mapping[str, Any]) -> Receipt:
    return Receipt(
        int(r["type"], 16), int(r["status"], 16), int(r["cumulativeGasUsed"], 16),
        bytes.fromhex(r["logsBloom"][2:]),
        tuple(Log(bytes.fromhex(log["address"][2:]), tuple(bytes.fromhex(t[2:]) for t in log["topics"]),
                  bytes.fromhex(log["data"][2:])) for log in r["logs"]),
    )


def _ordered_trie(items: Sequence[bytes]) -> HexaryTrie:
    trie = HexaryTrie({})
    for index, item in enumerate(items):
        trie[rlp.encode(index)] = item
    return trie


def _block_proofs_flow(number: int) -> Flow[_BlockProofs]:
    """Fetch a final block's header, transactions and receipts; rebuild both tries and
    check them against the header (whose fields are checked against its hash)."""
    block = yield Call("eth_getBlockByNumber", (hex(number), True))
    receipts = yield Call("eth_getBlockReceipts", (hex(number),))
    if block is None or receipts is None:
        raise ClientError(f"the node does not have block {number}, which holds a final anchoring")
    try:
        header = header_from_rpc(block)
    except (ValueError, KeyError) as exc:
        raise ClientError(f"the node's block {number} is inconsistent: {exc}") from exc
    raws = []
    for tx in block["transactions"]:
        raw = _raw_transaction(tx)
        if _hex(keccak256(raw)) != tx["hash"]:
            raise ClientError(f"block {number}: transaction {tx['hash']} does not rebuild to its hash")
        raws.append(raw)
    tx_trie = _ordered_trie(raws)
    receipt_trie = _ordered_trie([encode_receipt(_receipt_from_rpc(r)) for r in receipts])
    if tx_trie.root_hash != header.transactions_root or receipt_trie.root_hash != header.receipts_root:
        raise ClientError(f"block {number}: the node's transactions or receipts do not match its header")
    return _BlockProofs(header, encode_header(header), block_hash(header), tx_trie, receipt_trie)


def _proof_nodes(trie: HexaryTrie, index: int) -> tuple[bytes, ...]:
    nodes = trie.get_proof(rlp.encode(index))  # type: ignore[no-untyped-call]
    return tuple(rlp.encode(node) for node in nodes)


def _estimate_flow(tx: dict[str, Any], attempts: int = 3) -> Flow[int]:
    """eth_estimateGas with a margin. The node refuses a native-chaincode estimate that a
    new head overtook ("the head moved during the call"): that one is tried again."""
    for attempt in range(attempts):
        try:
            estimate = int((yield Call("eth_estimateGas", (tx, "latest"))), 16)
        except Refused as exc:
            if "head moved" not in exc.reason or attempt + 1 == attempts:
                raise
            continue
        return estimate + estimate // 4 + 10_000
    raise AssertionError("unreachable")


def _failure_reason_flow(batch: _Sent, receipt: dict[str, Any]) -> Flow[str]:
    """Why an anchoring failed on chain: the usual cause, a root anchored meanwhile, is
    asked of the registry at the head (native chaincode state is the head's only)."""
    (at,) = yield from call_flow(_ANCHOR_CONTRACT, "anchoredAt", batch.root)
    if at and at != int(receipt["blockNumber"], 16):
        return f"Anchor: root already anchored (in block {at})"
    return (yield from _reason_of_failed(batch.tx, receipt))


def _anchor_flow(
    signer: Signer, hashes: Iterable[bytes], *, batch_size: int, meta: bytes,
    timeout: float, poll: float, progress: Progress | None, total: int | None,
) -> Flow[list[AnchorReceipt]]:
    contract = _ANCHOR_CONTRACT
    registry = bytes.fromhex(contract.address[2:])
    by = bytes.fromhex(signer.address[2:])
    if signer.chain_id is None:
        signer.chain_id = int((yield Call("eth_chainId")), 16)
    chain_id = signer.chain_id
    gas_price = int((yield Call("eth_gasPrice")), 16)
    pending = int((yield Call("eth_getTransactionCount", (signer.address, "pending"))), 16)
    nonce = max(pending, signer.next_nonce)
    sent: list[_Sent] = []
    roots: set[bytes] = set()
    gas = 0
    sha = _sha256
    # Every tree first, then every transaction at once: the node seals them in one or two
    # blocks (sent one by one as their trees are ready, each took a block of its own, and
    # the node's blocks, not our trees, were the slower part).
    trees: list[tuple[list[bytes], list[list[bytes]], bytes, dict[str, Any]]] = []
    for chunk in _chunks(hashes, batch_size):
        for h in chunk:
            if len(h) != 32:
                raise ClientError(f"a record hash is 32 bytes, got {len(h)}")
        levels = tree_levels([sha(b"\x00" + h).digest() for h in chunk])
        root = levels[-1][0]
        if root in roots:
            raise Refused("Anchor: root already anchored (two batches of this call are the same records)")
        roots.add(root)
        tx: dict[str, Any] = {"from": signer.address, "to": contract.address,
                              "data": contract.encode("anchor", root, len(chunk), meta)}
        trees.append((chunk, levels, root, tx))
    if trees:
        # Once: every anchor() costs about the same. Before anything is sent, so a
        # refusal (not enrolled, root anchored before) comes before any transaction.
        gas = yield from _estimate_flow(trees[0][3])
    for chunk, levels, root, tx in trees:
        tx_hash = yield from send_transaction_flow(
            signer, contract.address, tx["data"], gas=gas, gas_price=gas_price, nonce=nonce)
        nonce += 1
        signer.next_nonce = nonce
        sent.append(_Sent(chunk, levels, root, tx, tx_hash))
        if progress is not None:
            progress("sent", len(sent), total)
    # While the node seals the last transactions: every leaf's audit path.
    all_paths = [audit_paths(batch.levels) for batch in sent]
    out: list[AnchorReceipt] = []
    blocks: dict[int, _BlockProofs] = {}
    for done, (batch, paths) in enumerate(zip(sent, all_paths, strict=True), 1):
        receipt = yield from wait_receipt_flow(batch.tx_hash, timeout=timeout, poll=poll)
        if int(receipt["status"], 16) != 1:
            reason = yield from _failure_reason_flow(batch, receipt)
            raise Refused(reason, tx_hash=batch.tx_hash)
        number = int(receipt["blockNumber"], 16)
        if number not in blocks:
            blocks[number] = yield from _block_proofs_flow(number)
        proofs = blocks[number]
        index = int(receipt["transactionIndex"], 16)
        anchor = AnchorProof(
            root=batch.root, tree_size=len(batch.hashes), meta=meta, chain_id=chain_id,
            registry=registry, anchored_by=by, transaction_hash=bytes.fromhex(batch.tx_hash[2:]),
            transaction_index=index, block_number=number, block_hash=proofs.block_hash,
            header=proofs.header_rlp, receipt_proof=_proof_nodes(proofs.receipts, index),
            transaction_proof=_proof_nodes(proofs.transactions, index),
        )
        # Check what the node gave us once per batch, so a receipt we hand out verifies.
        try:
            header = _check_anchoring_in_block(anchor, expected_chain_id=chain_id)
            verify_final_header(header.extra.validators, header)
        except (VerificationFailed, LightClientError) as exc:
            raise ClientError(f"the node's block {number} does not prove the anchoring: {exc}") from exc
        out.extend(map(AnchorReceipt, batch.hashes, range(len(paths)), paths, repeat(anchor)))
        if progress is not None:
            progress("final", done, total)
    return out


def _record_hashes(records: Iterable[bytes]) -> Iterator[bytes]:
    sha = _sha256
    for record in records:
        yield sha(record).digest()


def _batches(count: int | None, batch_size: int) -> int | None:
    return None if count is None else -(-count // batch_size)


def _length(items: Iterable[bytes]) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


class _AnchorerBase:
    def __init__(
        self, rpc: Rpc | AsyncRpc, key: str | bytes | Signer | None, *, batch_size: int,
        meta: bytes, timeout: float, poll: float,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(meta) != 32:
            raise ValueError(f"meta is 32 bytes, got {len(meta)}")
        signer = signer_for(key, rpc)
        if signer is None:
            raise ClientError("anchoring sends transactions: give the account's key "
                              "(or a web3.Web3 whose default account has a signing middleware)")
        self.signer = signer
        self.batch_size = batch_size
        self.meta = meta
        self.timeout = timeout
        self.poll = poll

    def _flow(self, hashes: Iterable[bytes], count: int | None, progress: Progress | None) -> Flow[list[AnchorReceipt]]:
        return _anchor_flow(
            self.signer, hashes, batch_size=self.batch_size, meta=self.meta, timeout=self.timeout,
            poll=self.poll, progress=progress, total=_batches(count, self.batch_size),
        )


class Anchorer(_AnchorerBase):
    """Anchor record hashes through one node, blocking.

    `rpc` is the node's URL, an `Rpc` or a `web3.Web3`; `key` the signing account (an
    enrolled one; None: the Web3's default account, signed by its middleware);
    `batch_size` the most records per tree (one transaction each); `meta` the 32-byte
    word anchored with every root (free for the caller: a batch kind, a date, …);
    `chain_id` the chain meant (a node of another is refused).
    """

    def __init__(
        self, rpc: str | Rpc | Web3, key: str | bytes | Signer | None = None, *,
        batch_size: int = DEFAULT_BATCH_SIZE, meta: bytes = ZERO32, timeout: float = 60.0,
        poll: float = 0.02, chain_id: int | None = None,
    ) -> None:
        self._owns_rpc = not isinstance(rpc, Rpc)
        self.rpc = connect(rpc, chain_id=chain_id)
        super().__init__(self.rpc, key, batch_size=batch_size, meta=meta, timeout=timeout, poll=poll)

    def submit(self, records: Iterable[bytes], *, progress: Progress | None = None) -> list[AnchorReceipt]:
        """Anchor the records (each hashed with SHA-256); one receipt per record, in order.

        Raises `Refused` (e.g. the account is not enrolled, or a batch's root was anchored
        before), `NotFinal`, `TransportError`; batches sent before a failure stay anchored.
        """
        return self.rpc.run(self._flow(_record_hashes(records), _length(records), progress))

    def submit_hashes(self, hashes: Iterable[bytes], *, progress: Progress | None = None) -> list[AnchorReceipt]:
        """Anchor precomputed 32-byte record hashes (e.g. of large files, hashed streaming)."""
        return self.rpc.run(self._flow(hashes, _length(hashes), progress))

    def close(self) -> None:
        if self._owns_rpc:
            self.rpc.close()

    def __enter__(self) -> Anchorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAnchorer(_AnchorerBase):
    """`Anchorer` for asyncio callers (the same flows, driven by `AsyncRpc`)."""

    def __init__(
        self, rpc: str | AsyncRpc | AsyncWeb3[Any], key: str | bytes | Signer | None = None, *,
        batch_size: int = DEFAULT_BATCH_SIZE, meta: bytes = ZERO32, timeout: float = 60.0,
        poll: float = 0.02, chain_id: int | None = None,
    ) -> None:
        self._owns_rpc = not isinstance(rpc, AsyncRpc)
        self.rpc = connect_async(rpc, chain_id=chain_id)
        super().__init__(self.rpc, key, batch_size=batch_size, meta=meta, timeout=timeout, poll=poll)

    async def submit(self, records: Iterable[bytes], *, progress: Progress | None = None) -> list[AnchorReceipt]:
        return await self.rpc.run(self._flow(_record_hashes(records), _length(records), progress))

    async def submit_hashes(
        self, hashes: Iterable[bytes], *, progress: Progress | None = None
    ) -> list[AnchorReceipt]:
        return await self.rpc.run(self._flow(hashes, _length(hashes), progress))

    async def aclose(self) -> None:
        if self._owns_rpc:
            await self.rpc.aclose()

    async def __aenter__(self) -> AsyncAnchorer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
