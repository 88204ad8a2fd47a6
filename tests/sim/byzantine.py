"""A Byzantine validator for the simulation: real key, real state machine, lies on the wire.

The Byzantine node runs an ordinary `QbftNode` (so it knows the height, the round and
what an honest validator would send), and every message that state machine sends goes
through `Byzantine.__call__` once per target instead of straight to the network. Each
enabled behaviour fires with probability `rate` per (message, target), so different
validators hear different stories. Everything it sends is crafted with its own key via
`sign_payload` / `encode_message`: the lies are validly signed, only their content is
wrong. The behaviours:

equivocate         its PROPOSAL goes to some targets as a different block (another
                   timestamp or vote) for the same height and round; sometimes both.
conflicting_votes  PREPAREs and COMMITs for a second digest (random, or a conflicting
                   block's) instead of, or besides, the real one; ROUND-CHANGEs that
                   hide its lock (a second, unprepared round change for the round).
bad_seals          COMMITs whose seal is garbage, signs another digest, or was made with
                   a key that is not the author's; messages with a corrupted outer
                   signature; block-sync answers whose seals are forged or duplicated.
missing_seals      withheld COMMITs; block-sync answers with seals stripped below quorum.
replay             re-sends earlier messages (its own and others', any height or round).
future             validly signed messages for later heights and far-off rounds.
unjustified        PROPOSALs for rounds it leads (now, or a later one) with no, too few,
                   duplicated or wrong-round round changes, a round-0 proposal carrying a
                   justification, a proposal for a round it does not lead, a re-proposal
                   of a block that is not the highest prepared one, and round changes
                   claiming a prepared certificate they cannot show.
invalid_block      its PROPOSALs carry a block execution rejects (`INVALID_STATE_ROOT`),
                   or one that does not extend the parent.
mutated_header     its PROPOSALs carry its honest block with one header field changed
                   (`HEADER_MUTATIONS`: every field of the header, and each part of
                   extraData), re-signed, so that only that field is wrong. By default the
                   fields the header rules judge (`HEADER_RULE_CASES`; the simulation does
                   not execute, so the execution results are `invalid_block`'s).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import rlp
from harness import INVALID_STATE_ROOT

from node.consensus.messages import (
    COMMIT,
    PREPARE,
    PROPOSAL,
    ROUND_CHANGE,
    CommitMsg,
    InvalidMessage,
    Message,
    PrepareMsg,
    ProposalMsg,
    RoundChangeMsg,
    Signed,
    decode_message,
    encode_message,
    sign_payload,
)
from node.consensus.validators import tally_vote, validators_commitment
from rxledger.core.crypto import encode_signature, keccak256, private_key_to_address, sign_hash
from rxledger.core.errors import InvalidBlock
from rxledger.core.types.blocks import Block
from rxledger.core.types.headers import (
    Header,
    Vote,
    decode_extra,
    encode_extra,
    encode_header,
    seal_hash,
)

if TYPE_CHECKING:
    from harness import Network, SimNode

BEHAVIOURS = (
    "equivocate", "conflicting_votes", "bad_seals", "missing_seals", "replay", "future",
    "unjustified", "invalid_block", "mutated_header",
)

# A key no validator holds (for seals "by someone else").
_STRANGER_KEY = bytes.fromhex("11" * 32)
_STRANGER = private_key_to_address(_STRANGER_KEY)


def _other(label: str) -> bytes:
    """32 bytes no honest header holds."""
    return keccak256(b"mutated " + label.encode())


def _raw_extra(header: Header, **items: object) -> bytes:
    """extraData as RLP with some of its items replaced by raw (possibly malformed) values."""
    extra = decode_extra(header.extra_data)
    vote: list[bytes] = [] if extra.vote is None else [extra.vote.validator, b"\xff" if extra.vote.add else b"\x00"]
    fields = {"vanity": extra.vanity, "validators": list(extra.validators), "vote": vote,
              "round": extra.round, "seals": list(extra.seals)}
    fields.update(items)
    return rlp.encode([fields[k] for k in ("vanity", "validators", "vote", "round", "seals")])


def _with_extra(header: Header, **changes: object) -> Header:
    extra = decode_extra(header.extra_data)
    return replace(header, extra_data=encode_extra(replace(extra, **changes)))  # type: ignore[arg-type]


def _flip_first_bit(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


# One case per header field (and per part of extraData): (honest header, its parent) → the
# same header with that one field wrong. Each value is one no honest block of this chain
# holds: the rules of node.validation (or execution, or QBFT) must refuse it.
HEADER_MUTATIONS: dict[str, Callable[[Header, Header], Header]] = {
    "parent_hash": lambda h, p: replace(h, parent_hash=_other("parent")),
    "ommers_hash": lambda h, p: replace(h, ommers_hash=keccak256(rlp.encode([[b"an ommer"]]))),
    "coinbase": lambda h, p: replace(h, coinbase=_STRANGER),
    "state_root": lambda h, p: replace(h, state_root=_other("state")),
    "transactions_root": lambda h, p: replace(h, transactions_root=_other("transactions")),
    "receipts_root": lambda h, p: replace(h, receipts_root=_other("receipts")),
    "logs_bloom": lambda h, p: replace(h, logs_bloom=_flip_first_bit(h.logs_bloom)),
    "difficulty": lambda h, p: replace(h, difficulty=h.difficulty + 1),
    "number": lambda h, p: replace(h, number=p.number + 2),
    "gas_limit": lambda h, p: replace(h, gas_limit=h.gas_limit + 1),
    "gas_used": lambda h, p: replace(h, gas_used=h.gas_limit + 1),
    "timestamp": lambda h, p: replace(h, timestamp=p.timestamp - 1),
    "extra_data.vanity": lambda h, p: _with_extra(h, vanity=_other("vanity")),
    "extra_data.validators": lambda h, p: _with_extra(h, validators=decode_extra(h.extra_data).validators[1:]),
    "extra_data.vote": lambda h, p: replace(h, extra_data=_raw_extra(h, vote=[_STRANGER, b"\x01"])),
    "extra_data.round": lambda h, p: replace(h, extra_data=_raw_extra(h, round=[b"\x00"])),
    "mix_hash": lambda h, p: replace(h, mix_hash=_other("mix")),
    "nonce": lambda h, p: replace(h, nonce=b"\x00" * 7 + b"\x01"),
    "base_fee_per_gas": lambda h, p: replace(h, base_fee_per_gas=7),
    "withdrawals_root": lambda h, p: replace(h, withdrawals_root=_other("withdrawals")),
    "blob_gas_used": lambda h, p: replace(h, blob_gas_used=131_072),
    "excess_blob_gas": lambda h, p: replace(h, excess_blob_gas=131_072),
    "parent_beacon_block_root": lambda h, p: replace(h, parent_beacon_block_root=_other("beacon")),
    "requests_hash": lambda h, p: replace(h, requests_hash=_other("requests")),
}
# The cases the header rules judge without executing (the simulation's blocks are not
# executed: a wrong execution result there is `invalid_block`'s INVALID_STATE_ROOT).
EXECUTION_RESULTS = ("state_root", "transactions_root", "receipts_root", "logs_bloom")
HEADER_RULE_CASES = tuple(c for c in HEADER_MUTATIONS if c not in EXECUTION_RESULTS)


def mutate_header(case: str, header: Header, parent: Header) -> Header:
    """`header` with the one field of `case` wrong (see HEADER_MUTATIONS)."""
    return HEADER_MUTATIONS[case](header, parent)


def proposal_digest(header: Header) -> bytes:
    """What a PROPOSAL for `header` signs: its seal hash, or (extraData malformed, so there
    is none) the hash of the header as it is."""
    try:
        return seal_hash(header)
    except InvalidBlock:
        return keccak256(encode_header(header))


class Byzantine:
    """The hook installed as `Network.byzantine[address]`."""

    def __init__(self, behaviours: tuple[str, ...] | frozenset[str], rng: random.Random,
                 rate: float = 0.5, header_cases: tuple[str, ...] = HEADER_RULE_CASES) -> None:
        unknown = set(behaviours) - set(BEHAVIOURS)
        if unknown:
            raise ValueError(f"unknown behaviours {sorted(unknown)}")
        unknown = set(header_cases) - set(HEADER_MUTATIONS)
        if unknown:
            raise ValueError(f"unknown header mutations {sorted(unknown)}")
        self.behaviours = tuple(b for b in BEHAVIOURS if b in behaviours)
        self.rng = rng
        self.rate = rate
        self.header_cases = header_cases  # mutated_header: which fields it changes
        self.history: list[bytes] = []  # messages seen and sent, for replays
        self._last: tuple[bytes, Message] | None = None
        self.actions = 0

    # -- the hook --------------------------------------------------------------------------
    def __call__(self, net: Network, sim: SimNode, target: bytes, data: bytes) -> None:
        msg = self._decode(data)
        self._remember(data)
        out: list[tuple[str, bytes]] = []
        send_original = True
        for behaviour in self.behaviours:
            if self.rng.random() >= self.rate:
                continue
            replace_original, extra = getattr(self, "_" + behaviour)(net, sim, msg)
            if replace_original:
                send_original = False
            out.extend((f"{behaviour}: {label}", d) for label, d in extra)
        if send_original:
            net.send(sim.address, target, ("msg", data))
        for label, d in out:
            self.actions += 1
            net.log(f"{net.name(sim.address)} BYZ -> {net.name(target)} {label}")
            net.send(sim.address, target, ("msg", d))

    def observe(self, net: Network, sim: SimNode, src: bytes, data: bytes) -> None:
        """A message the Byzantine node received (kept for replays)."""
        if "replay" in self.behaviours:
            self._remember(data)

    def serve_blocks(self, net: Network, sim: SimNode, peer: bytes, blocks: list[Block]) -> list[Block]:
        """Block sync answers, forged when bad_seals / missing_seals fire."""
        forging = [b for b in ("bad_seals", "missing_seals") if b in self.behaviours]
        if not forging or not blocks:
            return blocks
        out = []
        for block in blocks:
            if self.rng.random() >= self.rate:
                out.append(block)
                continue
            how = self.rng.choice(forging)
            forged = self._forge_final(sim, block, how)
            net.log(f"{net.name(sim.address)} BYZ sync -> {net.name(peer)} {how}: forged final block {block.number}")
            self.actions += 1
            out.append(forged)
        return out

    # -- helpers ---------------------------------------------------------------------------
    def _decode(self, data: bytes) -> Message:
        if self._last is None or self._last[0] is not data:
            self._last = (data, decode_message(data))
        return self._last[1]

    def _remember(self, data: bytes) -> None:
        if not self.history or self.history[-1] is not data:
            self.history.append(data)
            if len(self.history) > 400:
                del self.history[:200]

    def _sign(self, sim: SimNode, code: int, height: int, round_: int, body: tuple[object, ...]) -> Signed:
        return sign_payload(code, height, round_, body, sim.key, sim.address)

    def _digest(self) -> bytes:
        return self.rng.randbytes(32)

    def _variant(self, sim: SimNode, block: Block) -> Block:
        """Another valid-looking block at the same height and round (a different digest)."""
        header = block.header
        extra = decode_extra(header.extra_data)
        if self.rng.random() < 0.5 and sim.node is not None:
            vote = Vote(self.rng.randbytes(20), True)
            tally = sim.node.h.tally if sim.node.h.number == block.number else sim.tally
            vanity = validators_commitment(tally_vote(tally, header.coinbase, vote).validators)
            header = replace(header, extra_data=encode_extra(replace(extra, vote=vote, vanity=vanity)))
        else:
            header = replace(header, timestamp=header.timestamp + self.rng.randint(1, 3))
        return Block(header, block.transactions)

    def _proposal(self, sim: SimNode, height: int, round_: int, block: Block,
                  rcs: tuple[Signed, ...], prepares: tuple[Signed, ...]) -> bytes:
        signed = self._sign(sim, PROPOSAL, height, round_, (seal_hash(block.header),))
        return encode_message(ProposalMsg(signed, block, rcs, prepares))

    def _seal(self, sim: SimNode, digest: bytes, key: bytes | None = None) -> bytes:
        return encode_signature(*sign_hash(digest, key or sim.key))

    def _commit(self, sim: SimNode, height: int, round_: int, digest: bytes, seal: bytes) -> bytes:
        return encode_message(CommitMsg(self._sign(sim, COMMIT, height, round_, (digest, seal))))

    def _round_change(self, sim: SimNode, height: int, round_: int) -> RoundChangeMsg:
        return RoundChangeMsg(self._sign(sim, ROUND_CHANGE, height, round_, (None,)), None, ())

    # -- behaviours: each returns (replace the original?, [(label, wire bytes)]) -------------
    def _equivocate(self, net: Network, sim: SimNode, msg: Message) -> tuple[bool, list[tuple[str, bytes]]]:
        if not isinstance(msg, ProposalMsg):
            return False, []
        s = msg.signed
        alt = self._variant(sim, msg.block)
        data = self._proposal(sim, s.height, s.round, alt, msg.round_changes, msg.prepares)
        both = self.rng.random() < 0.3
        return not both, [(f"conflicting PROPOSAL h{s.height} r{s.round} {seal_hash(alt.header).hex()[:8]}"
                           + (" (and the real one)" if both else ""), data)]

    def _conflicting_votes(self, net: Network, sim: SimNode, msg: Message) -> tuple[bool, list[tuple[str, bytes]]]:
        s = msg.signed
        if isinstance(msg, ProposalMsg):
            # Vote for a conflicting block of its own as well as proposing the real one.
            alt = seal_hash(self._variant(sim, msg.block).header)
            signed = self._sign(sim, PREPARE, s.height, s.round, (alt,))
            return False, [(f"PREPARE for its own conflicting block {alt.hex()[:8]}", encode_message(PrepareMsg(signed)))]
        if isinstance(msg, PrepareMsg):
            alt = self._digest()
            data = encode_message(PrepareMsg(self._sign(sim, PREPARE, s.height, s.round, (alt,))))
            both = self.rng.random() < 0.5
            return not both, [(f"PREPARE h{s.height} r{s.round} for {alt.hex()[:8]}" + (" (and the real one)" if both else ""), data)]
        if isinstance(msg, CommitMsg):
            alt = self._digest()
            data = self._commit(sim, s.height, s.round, alt, self._seal(sim, alt))
            both = self.rng.random() < 0.5
            return not both, [(f"COMMIT h{s.height} r{s.round} for {alt.hex()[:8]}" + (" (and the real one)" if both else ""), data)]
        if isinstance(msg, RoundChangeMsg) and msg.prepared is not None:
            # A round change that hides its lock.
            data = encode_message(self._round_change(sim, s.height, s.round))
            return True, [(f"ROUND-CHANGE h{s.height} r{s.round} hiding its lock r{msg.prepared[0]}", data)]
        return False, []

    def _bad_seals(self, net: Network, sim: SimNode, msg: Message) -> tuple[bool, list[tuple[str, bytes]]]:
        s = msg.signed
        if isinstance(msg, CommitMsg):
            how = self.rng.randrange(4)
            if how == 0:
                seal, what = self.rng.randbytes(64) + bytes([self.rng.randrange(2)]), "garbage seal"
            elif how == 1:
                seal, what = self._seal(sim, self._digest()), "seal over another digest"
            elif how == 2:
                seal, what = self._seal(sim, s.digest, _STRANGER_KEY), "seal by a non-validator key"
            else:
                seal, what = msg.seal[:64] + bytes([msg.seal[64] ^ 1]), "seal with the wrong recovery id"
            return True, [(f"COMMIT h{s.height} r{s.round} with a {what}", self._commit(sim, s.height, s.round, s.digest, seal))]
        if self.rng.random() < 0.3:
            # The message itself with a corrupted signature: decodes to another author or fails.
            data = bytearray(encode_message(msg))
            sig = s.signature
            i = bytes(data).rfind(sig)
            if i >= 0:
                data[i + 5] ^= 0x40
                return True, [(f"{_describe(msg)} with a corrupted signature", bytes(data))]
        return False, []

    def _missing_seals(self, net: Network, sim: SimNode, msg: Message) -> tuple[bool, list[tuple[str, bytes]]]:
        if isinstance(msg, CommitMsg):
            net.log(f"{net.name(sim.address)} BYZ missing_seals: withheld {_describe(msg)}")
            return True, []
        return False, []

    def _replay(self, net: Network, sim: SimNode, msg: Message) -> tuple[bool, list[tuple[str, bytes]]]:
        if len(self.history) < 2:
            return False, []
        out = []
        for _ in range(self.rng.randint(1, 3)):
            old = self.rng.choice(self.history)
            try:
                what = _describe(decode_message(old))
            except InvalidMessage:
                what = "an undecodable message"
            out.append((f"replayed {what}", old))
        return False, out

    def _future(self, net: Network, sim: SimNode, msg: Message) -> tuple[bool, list[tuple[str, bytes]]]:
        s = msg.signed
        height = s.height + self.rng.choice([0, 0, 1, 2, 3, 5, 12])
        round_ = s.round + self.rng.choice([1, 2, 5, 40]) if height == s.height else self.rng.randrange(4)
        if self.rng.random() < 0.05:
            round_ = 1_000_000  # beyond max_round
        code = self.rng.choice([PREPARE, COMMIT, ROUND_CHANGE])
        digest = self._digest()
        if code == PREPARE:
            data = encode_message(PrepareMsg(self._sign(sim, PREPARE, height, round_, (digest,))))
        elif code == COMMIT:
            data = self._commit(sim, height, round_, digest, self._seal(sim, digest))
        else:
            data = encode_message(self._round_change(sim, height, round_))
        name = {PREPARE: "PREPARE", COMMIT: "COMMIT", ROUND_CHANGE: "ROUND-CHANGE"}[code]
        return False, [(f"future {name} h{height} r{round_}", data)]

    def _unjustified(self, net: Network, sim: SimNode, msg: Message) -> tuple[bool, list[tuple[str, bytes]]]:
        node = sim.node
        if node is None:
            return False, []
        s = msg.signed
        if isinstance(msg, ProposalMsg) and s.round > 0:
            rcs = msg.round_changes
            how = self.rng.randrange(4)
            if msg.prepares and how == 0:
                # Re-proposal: swap the highest prepared block for a fresh one.
                alt = self._variant(sim, msg.block)
                return True, [("re-proposal of a block that is not the highest prepared",
                               self._proposal(sim, s.height, s.round, alt, rcs, msg.prepares))]
            if how <= 1:
                cut = rcs[: max(0, len(rcs) - 1 - self.rng.randrange(len(rcs) or 1))]
                return True, [(f"PROPOSAL r{s.round} with {len(cut)} round changes",
                               self._proposal(sim, s.height, s.round, msg.block, cut, ()))]
            if how == 2 and rcs:
                dup = (rcs[0],) * len(rcs)
                return True, [(f"PROPOSAL r{s.round} with one round change repeated",
                               self._proposal(sim, s.height, s.round, msg.block, dup, msg.prepares))]
            wrong = tuple(self._round_change(sim, s.height, s.round + 1).signed for _ in range(1))
            return True, [(f"PROPOSAL r{s.round} justified by a round change for r{s.round + 1}",
                           self._proposal(sim, s.height, s.round, msg.block, rcs[:-1] + wrong, msg.prepares))]
        if not isinstance(msg, (PrepareMsg, RoundChangeMsg)) or s.height != node.height:
            return False, []
        h = node.height
        block = _block_for(sim, h)
        if block is None:
            return False, []
        how = self.rng.randrange(4)
        if how == 0:
            # A round it leads, ahead of time, justified only by its own round change.
            later = [r for r in range(node.round + 1, node.round + 2 * len(node.h.validators) + 1)
                     if node.proposer(r) == sim.address]
            if later:
                r = later[0]
                own = self._round_change(sim, h, r).signed
                blk = _with_round(block, r)
                return False, [(f"PROPOSAL h{h} r{r} justified only by its own round change",
                                self._proposal(sim, h, r, blk, (own,), ()))]
        if how == 1:
            # A round-0 proposal that carries a justification (or is not its to make).
            rc = self._round_change(sim, h, 1).signed
            blk = _with_round(block, 0)
            return False, [(f"PROPOSAL h{h} r0 carrying a justification",
                            self._proposal(sim, h, 0, blk, (rc,), ()))]
        if how == 2:
            r = node.round
            if node.proposer(r) != sim.address:
                blk = _with_round(block, r)
                return False, [(f"PROPOSAL h{h} r{r} from a validator that does not lead it",
                                self._proposal(sim, h, r, blk, (), ()))]
            return False, []
        # A round change claiming a prepared certificate it cannot show.
        r = node.round + 1
        blk = _with_round(block, r - 1)
        digest = seal_hash(blk.header)
        own_prepare = self._sign(sim, PREPARE, h, r - 1, (digest,))
        signed = self._sign(sim, ROUND_CHANGE, h, r, ((r - 1, digest),))
        data = encode_message(RoundChangeMsg(signed, blk, (own_prepare,)))
        return False, [(f"ROUND-CHANGE h{h} r{r} claiming prepared r{r - 1} with one prepare", data)]

    def _invalid_block(self, net: Network, sim: SimNode, msg: Message) -> tuple[bool, list[tuple[str, bytes]]]:
        if not isinstance(msg, ProposalMsg):
            return False, []
        s = msg.signed
        header = msg.block.header
        if self.rng.random() < 0.75:
            bad, what = replace(header, state_root=INVALID_STATE_ROOT), "an invalid state root"
        else:
            bad, what = replace(header, parent_hash=self.rng.randbytes(32)), "a wrong parent"
        block = Block(bad, msg.block.transactions)
        return True, [(f"PROPOSAL h{s.height} r{s.round} with {what}",
                       self._proposal(sim, s.height, s.round, block, msg.round_changes, msg.prepares))]

    def _mutated_header(self, net: Network, sim: SimNode, msg: Message) -> tuple[bool, list[tuple[str, bytes]]]:
        if not isinstance(msg, ProposalMsg) or sim.node is None or msg.block.number != sim.node.height:
            return False, []
        s = msg.signed
        case = self.rng.choice(self.header_cases)
        header = mutate_header(case, msg.block.header, sim.node.h.parent)
        block = Block(header, msg.block.transactions)
        signed = self._sign(sim, PROPOSAL, s.height, s.round, (proposal_digest(header),))
        return True, [(f"PROPOSAL h{s.height} r{s.round} with a wrong {case}",
                       encode_message(ProposalMsg(signed, block, msg.round_changes, msg.prepares)))]

    # -- forged final blocks (block sync) --------------------------------------------------
    def _forge_final(self, sim: SimNode, block: Block, how: str) -> Block:
        header = block.header
        extra = decode_extra(header.extra_data)
        seals = extra.seals
        own = self._seal(sim, seal_hash(header))
        if how == "missing_seals":
            seals = seals[: max(0, len(extra.validators) * 2 // 3 - 1)]  # below quorum
        else:
            choice = self.rng.randrange(4)
            if choice == 0 and seals:
                seals = seals[:-1] + (self.rng.randbytes(64) + b"\x00",)
            elif choice == 1:
                seals = (own,) * len(seals)
            elif choice == 2:
                seals = seals[:-1] + (self._seal(sim, seal_hash(header), _STRANGER_KEY),)
            else:
                # A block of its own at that height, sealed by itself alone.
                alt = replace(header, state_root=INVALID_STATE_ROOT, extra_data=encode_extra(replace(extra, seals=())))
                return Block(replace(alt, extra_data=encode_extra(replace(
                    extra, seals=(self._seal(sim, seal_hash(alt)),) * len(seals)))), block.transactions)
        return Block(replace(header, extra_data=encode_extra(replace(extra, seals=seals))), block.transactions)


def _block_for(sim: SimNode, height: int) -> Block | None:
    """A block the Byzantine node could propose at `height` (its honest builder's)."""
    if sim.head.number + 1 != height:
        return None
    return sim.build(height, 0)


def _with_round(block: Block, round_: int) -> Block:
    extra = decode_extra(block.header.extra_data)
    return Block(replace(block.header, extra_data=encode_extra(replace(extra, round=round_, seals=()))),
                 block.transactions)


def _describe(msg: Message) -> str:
    from node.consensus.messages import describe

    return describe(msg)
