"""Genesis: the chain's first block, its enrolled accounts and the development defaults.

A `GenesisConfig` says everything the first block commits to: chain id, gas limit,
timestamp, the validator set, the organisations (name and kind), the enrolled
(permissioned) accounts with their organisation and role, and any pre-funded accounts;
and, next to it, the organisation of each genesis validator (`validator_orgs`).

Where a validator's organisation lives. The p2p layer accepts a validator's TLS
certificate only from the CA of the organisation its address is bound to, so every
honest node must derive the same address → organisation map:

- genesis validators: `validator_orgs` in genesis.json, the one file every node of a
  network reads (`network init` writes it). It is part of `GenesisConfig.encode()`, which
  a node stores in its data directory at first start and compares at every start, so a
  node never silently changes the binding under an existing chain. It is deliberately
  *not* folded into the genesis block hash: the hash commits to the header fields and
  the chaincode state, and the binding is neither (the Governance constructor, mirrored
  from the Solidity contract, has no organisation per validator; the header's 32-byte
  vanity is the next-validator commitment the light client relies on). Committing it
  would change Governance's genesis state and every network's genesis hash for a value
  that only decides whom this node talks to, never what is final: a node with a
  different map refuses or accepts connections differently, but cannot make or accept a
  different block. Leaving it out keeps every existing genesis hash and data directory.
- validators added later: the header vote that adds one names its organisation
  (`rxledger.core.types.headers.Vote.org`), tallied by `node.consensus.validators` into the vote
  tally every node keeps per block, so the binding is derived from the final headers.

The dev chain has one validator and no p2p layer; its genesis binds none (so existing
dev data directories open unchanged).
The native Governance chaincode starts from the organisations, accounts and validators
(`chaincode_py.genesis`). The dev chain and `rxledger up` enrol the development accounts
of INTERFACES.md: the public Hardhat/Anvil mnemonic, never a real secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache, lru_cache

from eth_account import Account

from rxledger.core.crypto import private_key_to_address

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_CHAIN_ID = 2024
DEFAULT_GAS_LIMIT = 30_000_000
# The dev chain's single validator: a key of the public dev mnemonic, outside the ten
# enrolled accounts, so that its genesis (and genesis hash) is the same on every machine.
DEV_VALIDATOR_INDEX = 100

# INTERFACES.md, "Development accounts": (index, org, role)
DEV_ACCOUNT_ROLES: tuple[tuple[int, str | None, str | None], ...] = (
    (0, "hospital-a", "org admin"),
    (1, "hospital-a", "prescriber"),
    (2, "hospital-a", "hospital pharmacist"),
    (3, "pharmacy-a", "pharmacist"),
    (4, "regulator", "auditor"),
    (5, "hospital-b", "prescriber"),
    (6, "hospital-b", "hospital pharmacist"),
    (7, "pharmacy-a", "org admin"),
    (8, "regulator", "org admin"),
    (9, None, None),  # deployer: may deploy EVM contracts, no role
)
# INTERFACES.md: the development organisations, in Governance's order (as contracts/deploy.py).
DEV_ORGS: tuple[tuple[str, str], ...] = (
    ("hospital-a", "hospital"),
    ("hospital-b", "hospital"),
    ("pharmacy-a", "pharmacy"),
    ("regulator", "regulator"),
)
# Codes of docs/CONTRACTS.md (Governance).
ORG_KIND_CODES = {"hospital": 1, "pharmacy": 2, "regulator": 3}
ROLE_CODES = {"prescriber": 1, "hospital pharmacist": 2, "pharmacist": 3, "auditor": 4, "org admin": 5}
# The kind of organisation a role implies (org admins fit any kind).
_KIND_OF_ROLE = {"prescriber": "hospital", "hospital pharmacist": "hospital",
                 "pharmacist": "pharmacy", "auditor": "regulator"}


@dataclass(frozen=True)
class Enrolment:
    """An account allowed to send transactions, with its organisation and role."""

    address: bytes
    org: str | None
    role: str | None


@dataclass(frozen=True)
class DevAccount:
    index: int
    address: bytes
    private_key: bytes
    org: str | None
    role: str | None


@dataclass(frozen=True)
class GenesisConfig:
    """The genesis block's contents.

    `orgs` lists the organisations as (name, kind) in Governance's order, kind one of
    hospital, pharmacy, regulator. Left empty (configs written before it existed), the
    organisations are those the enrolments name, in order of first appearance, each of the
    kind its accounts' roles imply (prescriber or hospital pharmacist: hospital; pharmacist:
    pharmacy; auditor: regulator) or, for an organisation with admins only, the kind its
    name starts with ("hospital-b": hospital); `organisations()` refuses anything else.
    """

    chain_id: int
    validators: tuple[bytes, ...]
    enrolments: tuple[Enrolment, ...]
    gas_limit: int = DEFAULT_GAS_LIMIT
    timestamp: int = 0
    balances: tuple[tuple[bytes, int], ...] = field(default=())
    orgs: tuple[tuple[str, str], ...] = field(default=())
    validator_orgs: tuple[tuple[bytes, str], ...] = field(default=())

    def validator_org(self, validator: bytes) -> str | None:
        """The organisation genesis binds `validator` to, or None (not bound)."""
        for address, org in self.validator_orgs:
            if address == validator:
                return org
        return None

    def organisations(self) -> tuple[tuple[str, str], ...]:
        """(name, kind) of every genesis organisation, in order (see the class docstring)."""
        if self.orgs:
            return self.orgs
        kinds: dict[str, str | None] = {}
        for e in self.enrolments:
            if e.org is None:
                continue
            implied = _KIND_OF_ROLE.get(e.role or "")
            if kinds.get(e.org) is None:
                kinds[e.org] = implied
        out = []
        for name, kind in kinds.items():
            if kind is None:
                kind = next((k for k in ORG_KIND_CODES if name.startswith(k)), None)
            if kind is None:
                raise ValueError(
                    f"genesis: the kind of organisation {name!r} is unknown (its accounts are "
                    "org admins only); list the organisations with their kinds in `orgs`"
                )
            out.append((name, kind))
        return tuple(out)

    def encode(self) -> bytes:
        """Canonical JSON (sorted keys, hex bytes) as stored in the database. `orgs` and
        `validator_orgs` are left out when empty, so configs that predate them encode as
        they did."""
        def conv(v: object) -> object:
            if isinstance(v, bytes):
                return "0x" + v.hex()
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v]
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            return v
        fields = asdict(self)
        if not self.orgs:
            del fields["orgs"]
        if not self.validator_orgs:
            del fields["validator_orgs"]
        return json.dumps(conv(fields), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> GenesisConfig:
        raw = json.loads(data)
        hexb = bytes.fromhex
        return cls(
            chain_id=raw["chain_id"],
            validators=tuple(hexb(v[2:]) for v in raw["validators"]),
            enrolments=tuple(
                Enrolment(hexb(e["address"][2:]), e["org"], e["role"]) for e in raw["enrolments"]
            ),
            gas_limit=raw["gas_limit"],
            timestamp=raw["timestamp"],
            balances=tuple((hexb(a[2:]), b) for a, b in raw["balances"]),
            orgs=tuple((name, kind) for name, kind in raw.get("orgs", ())),
            validator_orgs=tuple((hexb(a[2:]), org) for a, org in raw.get("validator_orgs", ())),
        )


@cache
def derive_dev_key(index: int) -> bytes:
    """Private key m/44'/60'/0'/0/index of the public development mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    acct = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return bytes(acct.key)


@lru_cache(maxsize=1)
def dev_accounts() -> tuple[DevAccount, ...]:
    """The ten development accounts of INTERFACES.md."""
    out = []
    for index, org, role in DEV_ACCOUNT_ROLES:
        key = derive_dev_key(index)
        out.append(DevAccount(index, private_key_to_address(key), key, org, role))
    return tuple(out)


def dev_validator_key() -> bytes:
    return derive_dev_key(DEV_VALIDATOR_INDEX)


def dev_genesis(chain_id: int = DEV_CHAIN_ID, gas_limit: int = DEFAULT_GAS_LIMIT) -> GenesisConfig:
    """Genesis of the one-validator dev chain, with the development accounts enrolled."""
    return GenesisConfig(
        chain_id=chain_id,
        validators=(private_key_to_address(dev_validator_key()),),
        enrolments=tuple(Enrolment(a.address, a.org, a.role) for a in dev_accounts()),
        gas_limit=gas_limit,
        orgs=DEV_ORGS,
    )
