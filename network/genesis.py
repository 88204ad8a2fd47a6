"""`genesis.json`: a consortium's `node.genesis.GenesisConfig` on disk, written here.

The file's format, its `validator_orgs` binding and the checks made when it is read are
described once, in `node.config` (the node reads its own genesis file; `load_genesis`
here wraps that reader so `network` tools get `network.errors.ConfigError`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from chaincode_py import NativeChaincodeHost
from network.errors import ConfigError
from node import config as _node_config
from node.genesis import DEFAULT_GAS_LIMIT, DEV_ORGS, Enrolment, GenesisConfig, dev_accounts

ORG_ADMIN = "org admin"


def make_genesis(
    chain_id: int,
    validators: Iterable[bytes],
    *,
    dev_keys: bool = True,
    admins: Mapping[str, bytes] | None = None,
    timestamp: int | None = None,
    gas_limit: int = DEFAULT_GAS_LIMIT,
    orgs: Iterable[tuple[str, str]] = (),
    validator_orgs: Mapping[bytes, str] | None = None,
) -> GenesisConfig:
    """The genesis of a new consortium.

    `dev_keys` enrols the development accounts of INTERFACES.md; `admins` (org -> address)
    enrols one more org admin per organisation (for deployments without dev keys: the
    admins then enrol everyone else through governance). `timestamp` defaults to now.
    """
    enrolments: list[Enrolment] = []
    org_list = list(orgs)
    if dev_keys:
        enrolments.extend(Enrolment(a.address, a.org, a.role) for a in dev_accounts())
        # The development accounts belong to the development organisations: add those the
        # spec does not name, so Governance knows every enrolled account's organisation.
        named = {name for name, _ in org_list}
        org_list += [(name, kind) for name, kind in DEV_ORGS if name not in named]
    for org, address in (admins or {}).items():
        if any(e.address == address for e in enrolments):
            raise ConfigError(f"admin 0x{address.hex()} of {org} is already enrolled")
        enrolments.append(Enrolment(address, org, ORG_ADMIN))
    validator_list = tuple(validators)
    bindings = dict(validator_orgs or {})
    known = {name for name, _ in org_list} | {e.org for e in enrolments if e.org}
    for address, org in bindings.items():
        if address not in validator_list:
            raise ConfigError(f"validator_orgs: 0x{address.hex()} is not a validator")
        if org not in known:
            raise ConfigError(f"validator_orgs: 0x{address.hex()} is bound to {org!r}, which the genesis "
                              "does not name")
    return GenesisConfig(
        chain_id=chain_id,
        validators=validator_list,
        enrolments=tuple(enrolments),
        gas_limit=gas_limit,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        orgs=tuple(org_list),
        validator_orgs=tuple((a, bindings[a]) for a in validator_list if a in bindings),
    )


def genesis_to_json(genesis: GenesisConfig) -> dict[str, Any]:
    """The JSON object of `genesis` (addresses as 0x-hex)."""
    return {
        "chain_id": genesis.chain_id,
        "validators": ["0x" + v.hex() for v in genesis.validators],
        "enrolments": [{"address": "0x" + e.address.hex(), "org": e.org, "role": e.role}
                       for e in genesis.enrolments],
        "gas_limit": genesis.gas_limit,
        "timestamp": genesis.timestamp,
        "balances": [["0x" + a.hex(), b] for a, b in genesis.balances],
        **({"orgs": [[name, kind] for name, kind in genesis.orgs]} if genesis.orgs else {}),
        **({"validator_orgs": [["0x" + a.hex(), org] for a, org in genesis.validator_orgs]}
           if genesis.validator_orgs else {}),
    }


def save_genesis(path: Path, genesis: GenesisConfig) -> None:
    """Write genesis.json (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(genesis_to_json(genesis), indent=2) + "\n")
    os.replace(tmp, path)


def genesis_hash(genesis: GenesisConfig) -> bytes:
    """The hash of the genesis block every node builds from `genesis`."""
    from node.chain import Chain  # py-evm: imported only when needed
    from node.storage import MemoryStore

    return Chain(MemoryStore(), genesis, NativeChaincodeHost).genesis_hash


def load_genesis(path: str | os.PathLike[str]) -> GenesisConfig:
    """Read and validate genesis.json (`node.config.load_genesis`, the node reads it
    itself). Raises `network.errors.ConfigError` naming the file and the field."""
    try:
        return _node_config.load_genesis(path)
    except _node_config.ConfigError as exc:
        raise ConfigError(str(exc)) from exc
