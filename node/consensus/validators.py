"""Validator set changes by vote, as carried in QBFT headers (pure functions).

Each header may carry one vote (add or remove one address), cast by the block's
proposer (the header's coinbase). A change takes effect at the next block once more
than half of the validators in force have voted for the same change; each validator's
latest vote on a target counts once. When the set changes, all pending ballots reset,
as in Besu.

`VoteTally` is the state after a block: the validators of the next block and the
ballots still open. The chain stores one per block, so finding a block's validator set
is one read, whatever the height.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import rlp
from rlp.sedes import Binary, CountableList, List, big_endian_int

from node.crypto import keccak256
from node.types.headers import Vote

_address = Binary.fixed_length(20)
TALLY_SEDES = List(
    [CountableList(_address),
     CountableList(List([_address, big_endian_int, CountableList(_address)], strict=True))],
    strict=True,
)


@dataclass(frozen=True, slots=True)
class VoteTally:
    """Validators in force for the next block, and open ballots (target, add) → voters."""

    validators: tuple[bytes, ...]
    ballots: tuple[tuple[bytes, bool, tuple[bytes, ...]], ...] = ()

    def encode(self) -> bytes:
        return rlp.encode(
            [list(self.validators), [[t, int(add), list(v)] for t, add, v in self.ballots]], TALLY_SEDES
        )

    @classmethod
    def decode(cls, data: bytes) -> VoteTally:
        validators, ballots = rlp.decode(data, TALLY_SEDES)
        return cls(tuple(validators), tuple((t, bool(add), tuple(v)) for t, add, v in ballots))


def tally_vote(tally: VoteTally, proposer: bytes, vote: Vote | None) -> VoteTally:
    """The tally after a block proposed by `proposer` carrying `vote`."""
    current = tally.validators
    if vote is None or proposer not in current or vote.add == (vote.validator in current):
        return tally  # no vote, a non-validator's vote, or a change that changes nothing
    ballots: dict[tuple[bytes, bool], set[bytes]] = {(t, a): set(v) for t, a, v in tally.ballots}
    # A proposer's newer vote on the same target replaces its older one.
    ballots.get((vote.validator, not vote.add), set()).discard(proposer)
    voters = ballots.setdefault((vote.validator, vote.add), set())
    voters.add(proposer)
    if len(voters) * 2 > len(current):
        members = set(current)
        if vote.add:
            members.add(vote.validator)
        else:
            members.discard(vote.validator)
        return VoteTally(tuple(sorted(members)))
    return VoteTally(
        current, tuple(sorted((t, a, tuple(sorted(v))) for (t, a), v in ballots.items() if v))
    )


def apply_votes(validators: tuple[bytes, ...], votes: Iterable[tuple[bytes, Vote]]) -> tuple[bytes, ...]:
    """The validator set after the (proposer, vote) pairs, in order, from a fresh tally."""
    tally = VoteTally(tuple(sorted(validators)))
    for proposer, vote in votes:
        tally = tally_vote(tally, proposer, vote)
    return tally.validators


def validators_commitment(validators: Iterable[bytes]) -> bytes:
    """keccak256(RLP(sorted validators)): what a header commits to for the next block."""
    return keccak256(rlp.encode(sorted(validators)))


def quorum(n: int) -> int:
    """QBFT quorum: ceil(2n/3)."""
    return -(-2 * n // 3)
