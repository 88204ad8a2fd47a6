"""Header-only verification of the final chain: the light client's rules (pure functions).

Trust model
-----------
A light client holds no state and runs no transactions. It starts from one trusted
point and accepts each following header only if the validators in force for it have
finalised it:

- The anchor is either the genesis header, whose validator set is trusted by
  configuration (compare its block hash with a genesis hash obtained out of band), or a
  pinned point: "block `height` has hash H and block `height + 1` is sealed by these
  validators" (`TrustedState.from_validators`), e.g. taken from a node the user runs.
- Header N's extraData lists the validators that seal block N. A header is final iff it
  carries commit seals from at least quorum(n) = ceil(2n/3) distinct members of that
  set, each a secp256k1 signature over `seal_hash(header)` (the header with no seals and
  its real round). A seal by anyone else, a duplicate signer, or a seal that does not
  recover rejects the header: a final header has none of these.
- Header N's 32-byte vanity is keccak256(RLP(sorted validators of block N + 1)), the
  next-validator commitment (docs/ARCHITECTURE.md). The seals of block N cover it, so
  once N is verified, block N + 1's validator list is trusted iff it hashes to N's vanity.
  This is what lets a client walk across validator changes from headers alone: the
  votes that changed the set, and the ballots still open that decide when a change
  takes effect, need not be replayed (Besu's headers, without the commitment, would
  need the vote tally rebuilt from genesis).
- Each header must be the next one: number = trusted height + 1, and its parent hash
  the trusted block hash, so a verified chain of headers is one chain, without gaps.

The safety assumption is QBFT's: fewer than a third of the validators in force at any
height are faulty. A quorum that is dishonest can sign anything, including a header
that commits to a validator set of its choosing; no header check can detect that.

What a light client cannot check: execution. The state, transactions and receipts
roots, gas used and logs bloom are accepted because a quorum signed them, not because
they were recomputed; a proof against those roots (a receipt, an account) is as good as
the quorum's word. It also cannot tell that a header is the latest one (a server may
withhold newer blocks), and it says nothing about timestamps beyond what was sealed.

`verify_header` walks a chain of headers (the SDK's anchor verifier); `verify_final_header`
checks the seals of one header against a set the caller already trusts (receipt proofs).
`seal_quorum_problem` is the seal-quorum rule both use, and the node's consensus uses it
for a final block from sync (`node.consensus.qbft`).
Every rejection raises `LightClientError` (an `InvalidBlock`) with a reason naming the
block and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import rlp

from rxledger.core.crypto import SECP256K1_N, decode_signature, keccak256, recover_address
from rxledger.core.errors import InvalidBlock
from rxledger.core.types.headers import Header, QbftExtra, block_hash, seal_hash

__all__ = [
    "LightClientError",
    "TrustedState",
    "quorum",
    "seal_quorum_problem",
    "validators_commitment",
    "verify_chain",
    "verify_final_header",
    "verify_header",
]


class LightClientError(InvalidBlock):
    """A header the light client will not accept; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def validators_commitment(validators: Iterable[bytes]) -> bytes:
    """keccak256(RLP(sorted validators)): what a header commits to for the next block."""
    return keccak256(rlp.encode(sorted(validators)))


def quorum(n: int) -> int:
    """QBFT quorum: ceil(2n/3)."""
    return -(-2 * n // 3)


def _hex(address: bytes) -> str:
    return "0x" + address.hex()


def _decode(header: Header) -> QbftExtra:
    try:
        return header.extra
    except InvalidBlock as exc:
        raise LightClientError(f"block {header.number}: {exc}") from exc


def _known_next_set(extra: QbftExtra) -> tuple[bytes, ...] | None:
    """The validators the vanity commits to, when they can be named from this header.

    The set of the next block is this header's set, or this header's set with its vote
    applied (a change takes effect in the block after the vote that carries it). When
    the vanity is neither, the set is learnt from the next header.
    """
    current = set(extra.validators)
    candidates = [current]
    if extra.vote is not None:
        candidates.append(
            current | {extra.vote.validator} if extra.vote.add else current - {extra.vote.validator}
        )
    for members in candidates:
        if members and validators_commitment(members) == extra.vanity:
            return tuple(sorted(members))
    return None


@dataclass(frozen=True, slots=True)
class TrustedState:
    """The last verified header and what the next one's validator list must be.

    `height` and `block_hash` are those of the last verified (or pinned) block.
    `next_commitment` is keccak256(RLP(sorted validators of block height + 1)).
    `next_validators` is that set when it is known (pinned, or nameable from the last
    header: unchanged, or changed by that header's own vote), else None.
    """

    height: int
    block_hash: bytes
    next_commitment: bytes
    next_validators: tuple[bytes, ...] | None = None

    def __post_init__(self) -> None:
        if self.height < 0:
            raise LightClientError(f"trusted height must not be negative, got {self.height}")
        if len(self.block_hash) != 32:
            raise LightClientError("trusted block hash must be 32 bytes")
        if len(self.next_commitment) != 32:
            raise LightClientError("trusted validator commitment must be 32 bytes")
        if self.next_validators is not None:
            nv = self.next_validators
            if not nv:
                raise LightClientError("the trusted validator set is empty")
            if any(len(a) != 20 for a in nv):
                raise LightClientError("validator addresses must be 20 bytes")
            if list(nv) != sorted(set(nv)):
                raise LightClientError("trusted validators must be sorted and distinct")
            if validators_commitment(nv) != self.next_commitment:
                raise LightClientError("trusted validators do not match the trusted commitment")

    @classmethod
    def from_genesis(cls, genesis: Header, expected_hash: bytes | None = None) -> TrustedState:
        """Trust a genesis header (checked against `expected_hash` when given)."""
        if genesis.number != 0:
            raise LightClientError(f"a genesis header has number 0, got block {genesis.number}")
        extra = _decode(genesis)
        digest = block_hash(genesis)
        if expected_hash is not None and digest != expected_hash:
            raise LightClientError(
                f"genesis hash {_hex(digest)} does not match the expected {_hex(expected_hash)}"
            )
        return cls(0, digest, extra.vanity, _known_next_set(extra))

    @classmethod
    def from_validators(
        cls, height: int, block_hash: bytes, validators: Iterable[bytes]
    ) -> TrustedState:
        """A pinned point: block `height` is `block_hash`; block height + 1 is sealed by
        `validators` (any order; duplicates are an error)."""
        members = tuple(validators)
        if len(set(members)) != len(members):
            raise LightClientError("the pinned validator set has duplicates")
        ordered = tuple(sorted(members))
        return cls(height, block_hash, validators_commitment(ordered), ordered)


def seal_quorum_problem(header: Header, validators: Iterable[bytes]) -> str | None:
    """Why `header` is not final for `validators`, or None when it is: its commit seals
    must each recover (a secp256k1 signature over `seal_hash(header)`, r and s in range)
    to a member of `validators`, no member twice, and at least quorum(n) of them.

    This is the one seal-quorum rule: the light client (`verify_header`,
    `verify_final_header`) and the node's consensus (a final block from sync) both use
    it. `header.extra` must decode (callers decode it first: `InvalidBlock` otherwise).
    """
    members = frozenset(validators)
    if not members:
        return "the validator set is empty"
    digest = seal_hash(header)
    seen: set[bytes] = set()
    for i, seal in enumerate(header.extra.seals):
        try:
            v, r, s = decode_signature(seal)
            if not 0 < r < SECP256K1_N or not 0 < s < SECP256K1_N:
                raise ValueError("r and s must be in [1, n - 1]")
            signer = recover_address(digest, v, r, s)
        except Exception as exc:  # eth-keys raises several types for an unrecoverable seal
            return f"seal {i} is malformed: {exc}"
        if signer not in members:
            return f"seal {i} is signed by {_hex(signer)} which is not a validator"
        if signer in seen:
            return f"duplicate seal from {_hex(signer)}"
        seen.add(signer)
    required = quorum(len(members))
    if len(seen) < required:
        return f"{len(seen)} valid seals, {required} required (quorum of {len(members)})"
    return None


def _check_seals(header: Header, validators: Iterable[bytes]) -> None:
    problem = seal_quorum_problem(header, validators)
    if problem is not None:
        raise LightClientError(f"block {header.number}: {problem}")


def verify_final_header(validators: Sequence[bytes], header: Header) -> None:
    """Check that `header` is final for the given validator set (its seals only).

    The caller vouches for `validators` being the set in force at the header's height;
    the header's own validator list is not consulted.
    """
    _decode(header)
    _check_seals(header, validators)


def verify_header(trusted: TrustedState, header: Header) -> TrustedState:
    """Accept the header after `trusted` and return the state it leads to.

    Raises `LightClientError` when the header is not the next one, its extraData does
    not decode, its validator list is not the one committed to, or its seals are not a
    quorum of distinct validators of that list.
    """
    number = header.number
    if number != trusted.height + 1:
        raise LightClientError(f"expected block {trusted.height + 1}, got block {number}")
    if header.parent_hash != trusted.block_hash:
        raise LightClientError(
            f"block {number}: parent hash does not match the trusted block {trusted.height}"
        )
    extra = _decode(header)
    if validators_commitment(extra.validators) != trusted.next_commitment:
        raise LightClientError(
            f"block {number}: validator set does not match the trusted commitment"
        )
    _check_seals(header, extra.validators)
    return TrustedState(number, block_hash(header), extra.vanity, _known_next_set(extra))


def verify_chain(trusted: TrustedState, headers: Iterable[Header]) -> TrustedState:
    """`verify_header` over consecutive headers; the state after the last one."""
    for header in headers:
        trusted = verify_header(trusted, header)
    return trusted
