"""The native Governance's genesis from a `GenesisConfig`.

The chain's genesis names organisations (`GenesisConfig.organisations()`: name and kind),
accounts with their organisation and role (`enrolments`; role None = a genesis account
with no role, such as the dev chain's deployer) and validators. This module turns them into
the arguments of Governance's constructor, exactly as `contracts/deploy.py` does for the
Solidity contract: organisation id = keccak256(name), kinds and roles as codes.
"""

from __future__ import annotations

from node.genesis import ORG_KIND_CODES, ROLE_CODES, GenesisConfig
from rxledger.core.crypto import keccak256
from rxledger.core.errors import NodeError


class GenesisError(NodeError):
    """A genesis configuration the chaincode cannot set up."""


def org_id(name: str) -> bytes:
    """An organisation's id: keccak256 of its name's UTF-8 bytes."""
    return keccak256(name.encode("utf-8"))


def governance_arguments(config: GenesisConfig) -> tuple[
        list[bytes], list[int], list[bytes], list[bytes], list[int], list[bytes]]:
    """(orgIds, kinds, accounts, accountOrgs, roles, validators) for Governance's genesis."""
    try:
        organisations = config.organisations()
    except ValueError as exc:
        raise GenesisError(str(exc)) from None
    org_ids = [org_id(name) for name, _ in organisations]
    kinds = []
    for name, kind in organisations:
        if kind not in ORG_KIND_CODES:
            raise GenesisError(f"genesis: organisation {name!r} has an unknown kind {kind!r}; "
                               f"expected one of {', '.join(ORG_KIND_CODES)}")
        kinds.append(ORG_KIND_CODES[kind])
    accounts, account_orgs, roles = [], [], []
    for e in config.enrolments:
        if e.role is None:
            continue  # a genesis account without a role (may send, holds no role)
        if e.role not in ROLE_CODES:
            raise GenesisError(f"genesis: account 0x{e.address.hex()} has an unknown role "
                               f"{e.role!r}; expected one of {', '.join(ROLE_CODES)}")
        if e.org is None:
            raise GenesisError(f"genesis: account 0x{e.address.hex()} has a role but no organisation")
        accounts.append(e.address)
        account_orgs.append(org_id(e.org))
        roles.append(ROLE_CODES[e.role])
    return org_ids, kinds, accounts, account_orgs, roles, list(config.validators)
