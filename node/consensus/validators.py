"""Validator set changes by vote, as carried in QBFT headers (pure functions).

Each header may carry one vote (add or remove one address), cast by the block's
proposer (the header's coinbase). A change takes effect at the next block once more
than half of the validators in force have voted for the same change; each validator's
latest vote on a target counts once. When the set changes, all pending ballots reset,
as in Besu. A vote to add may name the new validator's organisation
(`rxledger.core.types.headers.Vote.org`); the tally then records that binding, which every node
derives alike from the headers (the p2p layer checks the validator's certificate
against it).

`VoteTally` is the state after a block: the validators of the next block and the
ballots still open. The chain stores one per block, so finding a block's validator set
is one read, whatever the height.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import rlp
from rlp.sedes import Binary, CountableList, List, big_endian_int, binary

from rxledger.core.light_client import quorum, validators_commitment
from rxledger.core.types.headers import Vote

__all__ = [
    "VoteTally",
    "apply_votes",
    "next_commitment",
    "quorum",
    "tally_vote",
    "validators_commitment",
]

_address = Binary.fixed_length(20)
_BALLOTS = CountableList(List([_address, big_endian_int, CountableList(_address)], strict=True))
TALLY_SEDES = List([CountableList(_address), _BALLOTS], strict=True)
# With organisations (written only when a vote named one, so older tallies read as before):
# [validators, ballots, org ballots [[target, org, voters]], bindings [[address, org]]].
TALLY_ORG_SEDES = List(
    [CountableList(_address), _BALLOTS,
     CountableList(List([_address, binary, CountableList(_address)], strict=True)),
     CountableList(List([_address, binary], strict=True))],
    strict=True,
)


@dataclass(frozen=True, slots=True)
class VoteTally:
    """Validators in force for the next block, and open ballots.

    `ballots`: (target, add) → voters, for removals and for additions naming no
    organisation. `org_ballots`: (target, org) → voters, for additions naming one (votes
    for one address with different organisations are different ballots). `orgs`: the
    organisation of each validator added by a vote that named one, sorted by address (a
    genesis validator's organisation is in the genesis, `node.genesis`).
    """

    validators: tuple[bytes, ...]
    ballots: tuple[tuple[bytes, bool, tuple[bytes, ...]], ...] = ()
    org_ballots: tuple[tuple[bytes, str, tuple[bytes, ...]], ...] = ()
    orgs: tuple[tuple[bytes, str], ...] = ()

    def encode(self) -> bytes:
        validators = list(self.validators)
        ballots = [[t, int(add), list(v)] for t, add, v in self.ballots]
        if not self.org_ballots and not self.orgs:
            return rlp.encode([validators, ballots], TALLY_SEDES)
        return rlp.encode(
            [validators, ballots, [[t, org.encode(), list(v)] for t, org, v in self.org_ballots],
             [[a, org.encode()] for a, org in self.orgs]],
            TALLY_ORG_SEDES,
        )

    @classmethod
    def decode(cls, data: bytes) -> VoteTally:
        """Decode a stored tally (our own store: either layout)."""
        if len(rlp.decode(data, strict=False)) == 2:
            validators, ballots = rlp.decode(data, TALLY_SEDES)
            return cls(tuple(validators), tuple((t, bool(add), tuple(v)) for t, add, v in ballots))
        validators, ballots, org_ballots, orgs = rlp.decode(data, TALLY_ORG_SEDES)
        return cls(tuple(validators), tuple((t, bool(add), tuple(v)) for t, add, v in ballots),
                   tuple((t, org.decode(), tuple(v)) for t, org, v in org_ballots),
                   tuple((a, org.decode()) for a, org in orgs))

    def org_of(self, validator: bytes) -> str | None:
        """The organisation a vote bound `validator` to, or None."""
        return dict(self.orgs).get(validator)


def tally_vote(tally: VoteTally, proposer: bytes, vote: Vote | None) -> VoteTally:
    """The tally after a block proposed by `proposer` carrying `vote`."""
    current = tally.validators
    if vote is None or proposer not in current or vote.add == (vote.validator in current):
        return tally  # no vote, a non-validator's vote, or a change that changes nothing
    # (target, add, org or None) → voters
    ballots: dict[tuple[bytes, bool, str | None], set[bytes]] = {
        (t, a, None): set(v) for t, a, v in tally.ballots}
    ballots.update({(t, True, org): set(v) for t, org, v in tally.org_ballots})
    key = (vote.validator, vote.add, vote.org if vote.add else None)
    # A proposer's newer vote on the same target replaces its older one.
    for other, voters in ballots.items():
        if other[0] == vote.validator and other != key:
            voters.discard(proposer)
    voters = ballots.setdefault(key, set())
    voters.add(proposer)
    if len(voters) * 2 > len(current):
        members = set(current)
        orgs = dict(tally.orgs)
        orgs.pop(vote.validator, None)
        if vote.add:
            members.add(vote.validator)
            if key[2] is not None:
                orgs[vote.validator] = key[2]
        else:
            members.discard(vote.validator)
        return VoteTally(tuple(sorted(members)), orgs=tuple(sorted(orgs.items())))
    return VoteTally(
        current,
        tuple(sorted((t, a, tuple(sorted(v))) for (t, a, org), v in ballots.items() if v and org is None)),
        tuple(sorted((t, org, tuple(sorted(v))) for (t, _, org), v in ballots.items()
                     if v and org is not None)),
        tally.orgs,
    )


def apply_votes(validators: tuple[bytes, ...], votes: Iterable[tuple[bytes, Vote]]) -> tuple[bytes, ...]:
    """The validator set after the (proposer, vote) pairs, in order, from a fresh tally."""
    tally = VoteTally(tuple(sorted(validators)))
    for proposer, vote in votes:
        tally = tally_vote(tally, proposer, vote)
    return tally.validators


def next_commitment(tally: VoteTally, proposer: bytes, vote: Vote | None) -> bytes:
    """The next-validator commitment (vanity) of a header proposed by `proposer` carrying
    `vote` after `tally`: the validators of the block after it, this one's vote counted.
    The one rule for it: blocks are built, validated and accepted from sync with it."""
    return validators_commitment(tally_vote(tally, proposer, vote).validators)
