"""Validator set changes by vote, as carried in QBFT headers (pure functions).

Each header may carry one vote (add or remove one address), cast by the block's
proposer (the header's coinbase). A change takes effect at the next block once more
than half of the validators in force have voted for the same change; each validator's
latest vote on a target counts once. When the set changes, all pending tallies reset,
as in Besu.
"""

from __future__ import annotations

from collections.abc import Iterable

import rlp

from node.crypto import keccak256
from node.types.headers import Vote


def apply_votes(
    validators: tuple[bytes, ...], votes: Iterable[tuple[bytes, Vote]]
) -> tuple[bytes, ...]:
    """The validator set after the (proposer, vote) pairs since the last change, in order."""
    current = tuple(sorted(validators))
    ballots: dict[tuple[bytes, bool], set[bytes]] = {}
    for proposer, vote in votes:
        if proposer not in current:
            continue
        if vote.add == (vote.validator in current):
            continue  # adding a member or removing a non-member changes nothing
        # A proposer's newer vote on the same target replaces its older one.
        ballots.setdefault((vote.validator, not vote.add), set()).discard(proposer)
        voters = ballots.setdefault((vote.validator, vote.add), set())
        voters.add(proposer)
        if len(voters) * 2 > len(current):
            members = set(current)
            if vote.add:
                members.add(vote.validator)
            else:
                members.discard(vote.validator)
            current = tuple(sorted(members))
            ballots.clear()
    return current


def validators_commitment(validators: Iterable[bytes]) -> bytes:
    """keccak256(RLP(sorted validators)): what a header commits to for the next block."""
    return keccak256(rlp.encode(sorted(validators)))


def quorum(n: int) -> int:
    """QBFT quorum: ceil(2n/3)."""
    return -(-2 * n // 3)
