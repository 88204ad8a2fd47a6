"""`ConsortiumAllowlist`: who may connect to a consortium node, following governance.

A peer may connect when, at our head,

- it is a validator of the next block (the header votes decide that, `Chain.validators_at`),
  and its organisation has not been removed by a Governance vote; or
- it is listed in our node.toml as an observer (`[[peers]]` with `role = "observer"`, or
  no role and not a genesis validator), and its organisation has not been removed.

A listed validator that was a validator and is no longer (voted out) is refused; one not
yet voted in (a node `network add-node` issued) is accepted as an observer until then, so
that it can sync before the vote (docs/DEPLOY.md). "Was a validator" is known from the
genesis, the current set and every set seen since this node started: a validator voted
in and out again before this node (re)started counts as not yet voted in (it may observe,
never seal). A regulator's suspension of accounts or organisations changes nothing here:
only a vote changes who validates, and only a vote removes an organisation.

Each address is bound to an organisation, whose CA must have issued its certificate
(`node.p2p.tls.check_organisation`): a validator to the organisation the vote that added
it named (the vote tally), else the one genesis binds it to (`GenesisConfig.validator_orgs`),
else its peer entry's `org`; an observer to its peer entry's `org`.

`on_block(block, receipts)` is a chain listener: it takes a new snapshot of the validator
set, the bindings and (when the block's receipts hold Governance events) the organisations
Governance knows; `P2PService.recheck_peers()` then closes what is no longer allowed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from node.genesis import GenesisConfig
from rxledger.core.addresses import GOVERNANCE
from rxledger.core.crypto import keccak256

log = logging.getLogger("rxledger.p2p")

_ORGS_SELECTOR = keccak256(b"orgs()")[:4]
ZERO_ADDRESS = b"\x00" * 20


class ConsortiumChain(Protocol):
    """What the allowlist reads from the chain (`node.chain.Chain` is one)."""

    genesis: GenesisConfig

    @property
    def head(self) -> Any: ...

    def tally_after(self, header: Any) -> Any: ...

    def env_for(self, parent: Any, timestamp: int, coinbase: bytes) -> Any: ...

    @property
    def executor(self) -> Any: ...


@dataclass(frozen=True)
class AllowedPeer:
    """A node.toml peer entry, as the allowlist sees it."""

    name: str
    address: bytes
    org: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class _Snapshot:
    head: int
    validators: frozenset[bytes]
    vote_orgs: dict[bytes, str]
    removed_orgs: frozenset[str]


def org_id(name: str) -> bytes:
    """Governance's id of an organisation: keccak256 of its name (chaincode_py.genesis)."""
    return keccak256(name.encode("utf-8"))


def governance_org_ids(chain: ConsortiumChain) -> frozenset[bytes] | None:
    """The organisations Governance holds at the head (ids), or None without Governance."""
    from eth_abi.abi import decode  # the ABI codec of the EVM layer

    head = chain.head
    try:
        result = chain.executor.call(head.state_root, chain.env_for(head, head.timestamp, ZERO_ADDRESS),
                                     sender=ZERO_ADDRESS, to=GOVERNANCE, data=_ORGS_SELECTOR)
        (ids,) = decode(["bytes32[]"], result.output)
    except Exception as exc:  # no Governance on this chain (or its state unreadable now)
        log.debug("cannot read Governance's organisations: %s", exc)
        return None
    return frozenset(bytes(i) for i in ids)


class ConsortiumAllowlist:
    """The allowlist of a consortium node (`node.p2p.tls.Allowlist`), following governance."""

    def __init__(self, chain: ConsortiumChain, peers: Iterable[AllowedPeer]) -> None:
        self.chain = chain
        self.genesis = chain.genesis
        self.peers = {p.address: p for p in peers}
        self._lock = threading.Lock()
        # Organisations we can name (id → name), and those ever seen in Governance (the
        # genesis's, and every later read): one seen and missing now was removed by vote.
        self._known_orgs = {org_id(name): name for name, _ in self._genesis_orgs()}
        self._seen_orgs = set(self._known_orgs)
        self._known_orgs.update({org_id(p.org): p.org for p in self.peers.values() if p.org})
        self._known_orgs.update({org_id(o): o for _, o in self.genesis.validator_orgs})
        self._ever_validators: set[bytes] = set(self.genesis.validators)
        self._governed: frozenset[bytes] | None = None
        self._snapshot = self._take_snapshot(read_governance=True)

    def _genesis_orgs(self) -> tuple[tuple[str, str], ...]:
        try:
            return self.genesis.organisations()
        except ValueError:
            return ()

    def _take_snapshot(self, *, read_governance: bool) -> _Snapshot:
        head = self.chain.head
        tally = self.chain.tally_after(head)
        self._known_orgs.update({org_id(o): o for _, o in tally.orgs})
        if read_governance:
            governed = governance_org_ids(self.chain)
            if governed is not None:  # a failed read keeps the last good one (removed stays removed)
                self._seen_orgs.update(governed)
                self._governed = governed
        governed = self._governed
        removed: frozenset[str] = frozenset()
        if governed is not None:
            removed = frozenset(name for i, name in self._known_orgs.items()
                                if i in self._seen_orgs and i not in governed)
        self._ever_validators.update(tally.validators)
        return _Snapshot(head.number, frozenset(tally.validators), dict(tally.orgs), removed)

    # -- a chain listener --------------------------------------------------------------------
    def on_block(self, block: Any, receipts: Iterable[Any]) -> None:
        """After each committed block: the validators of the next one, and Governance's
        organisations if this block's receipts hold Governance events."""
        governance = any(entry.address == GOVERNANCE for receipt in receipts for entry in receipt.logs)
        with self._lock:
            before = self._snapshot
            self._snapshot = after = self._take_snapshot(read_governance=governance)
        for gone in sorted(before.validators - after.validators):
            log.info("0x%s is no longer a validator after block %d: its connections close", gone.hex(),
                     after.head)
        for org in sorted(after.removed_orgs - before.removed_orgs):
            log.info("organisation %s was removed by governance vote in block %d: its nodes' connections close",
                     org, after.head)

    # -- node.p2p.tls.Allowlist ----------------------------------------------------------
    def refusal(self, address: bytes) -> str | None:
        snap = self._snapshot
        who = f"0x{address.hex()}"
        peer = self.peers.get(address)
        if peer is not None:
            who += f" ({peer.name})"
        org = self._org(snap, address)
        if org is not None and org in snap.removed_orgs:
            return f"{who} belongs to organisation {org}, which was removed by governance vote"
        if address in snap.validators:
            if org is None and self.genesis.validator_orgs:
                # Where the network binds validators to organisations, an unbound one (added by
                # a vote that named none) could be certified by any organisation's CA.
                return (f"{who} is a validator bound to no organisation (its vote named none); "
                        "vote it in again naming its organisation")
            return None
        if peer is None:
            return f"address 0x{address.hex()} is not on the allowlist"
        role = peer.role or ("validator" if address in self.genesis.validators else "observer")
        if role == "validator" and address in self._ever_validators:
            return f"{who} is no longer a validator: it was removed by vote"
        return None  # an observer, or a validator not yet voted in (it may sync meanwhile)

    def org_of(self, address: bytes) -> str | None:
        return self._org(self._snapshot, address)

    def _org(self, snap: _Snapshot, address: bytes) -> str | None:
        peer = self.peers.get(address)
        if address in snap.validators or address in self._ever_validators:
            org = snap.vote_orgs.get(address) or self.genesis.validator_org(address)
            if org is not None:
                return org
        return peer.org if peer is not None else None

    def validator_count(self) -> int:
        return len(self._snapshot.validators)


class _Listened(Protocol):
    def add_listener(self, listener: Callable[[Any, list[Any]], None]) -> None: ...


class _Rechecks(Protocol):
    def recheck_peers(self) -> None: ...


def follow_governance(chain: _Listened, allowlist: ConsortiumAllowlist, service: _Rechecks) -> None:
    """After each committed block: a new snapshot of who may connect, then `service`
    closes the connections no longer allowed (within the block that changed it)."""
    def on_block(block: Any, receipts: list[Any]) -> None:
        allowlist.on_block(block, receipts)
        service.recheck_peers()

    chain.add_listener(on_block)


__all__ = ["AllowedPeer", "ConsortiumAllowlist", "follow_governance", "governance_org_ids", "org_id"]
