"""`genesis.json`: a consortium's `node.genesis.GenesisConfig` on disk.

The file holds exactly the fields of `GenesisConfig` (so `GenesisConfig.decode` reads it
too), pretty-printed:

    {"chain_id": 2024,
     "validators": ["0x…", …],                       # the org nodes' addresses
     "enrolments": [{"address": "0x…", "org": "hospital-a", "role": "prescriber"}, …],
     "gas_limit": 30000000, "timestamp": 1700000000,
     "balances": [["0x…", 0], …],
     "orgs": [["hospital-a", "hospital"], …],        # optional: name, kind
     "validator_orgs": [["0x…", "hospital-a"], …]}    # optional: each validator's org

`validator_orgs` binds each genesis validator to the organisation whose CA must have
issued its TLS certificate (`node.genesis` says why it lives here and not in the
genesis hash); `network init` writes it for every validator, and `load_genesis` refuses
a binding to an address that is not a validator or to an organisation the genesis does
not name.

Every node of a network reads the same file; its genesis block hash is in network.json.
With development keys the enrolments are the accounts of INTERFACES.md; without them the
genesis enrols only the org admins given (`admins`), and everything else is enrolled
through governance.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from network.errors import ConfigError
from node.genesis import DEFAULT_GAS_LIMIT, DEV_ORGS, Enrolment, GenesisConfig, dev_accounts

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_FIELDS = ("chain_id", "validators", "enrolments", "gas_limit", "timestamp", "balances")
_OPTIONAL_FIELDS = ("orgs", "validator_orgs")
_KINDS = ("hospital", "pharmacy", "regulator")
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

    return Chain(MemoryStore(), genesis).genesis_hash


def _fail(path: Path, field: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: {field}: {problem}")


def _address(path: Path, field: str, value: Any) -> bytes:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise _fail(path, field, f"must be a 20-byte hex address 0x…, got {value!r}")
    return bytes.fromhex(value[2:])


def _int(path: Path, field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(path, field, f"must be an integer ≥ {minimum}, got {value!r}")
    return value


def _optional_str(path: Path, field: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(path, field, f"must be a non-empty string or null, got {value!r}")
    return value


def load_genesis(path: str | os.PathLike[str]) -> GenesisConfig:
    """Read and validate genesis.json. Raises ConfigError naming the file and the field."""
    file = Path(path).expanduser().absolute()
    try:
        raw = json.loads(file.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"genesis file {file} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read genesis file {file}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{file}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: must hold a JSON object")
    for key in _FIELDS:
        if key not in raw:
            raise _fail(file, key, "missing")
    unknown = sorted(set(raw) - set(_FIELDS) - set(_OPTIONAL_FIELDS))
    if unknown:
        raise _fail(file, unknown[0], "unknown field")

    chain_id = _int(file, "chain_id", raw["chain_id"], 1)
    if not isinstance(raw["validators"], list) or not raw["validators"]:
        raise _fail(file, "validators", "must be a non-empty list of addresses")
    validators = tuple(_address(file, f"validators[{i}]", v) for i, v in enumerate(raw["validators"]))
    if len(set(validators)) != len(validators):
        raise _fail(file, "validators", "lists an address twice")

    if not isinstance(raw["enrolments"], list):
        raise _fail(file, "enrolments", "must be a list")
    enrolments: list[Enrolment] = []
    for i, item in enumerate(raw["enrolments"]):
        where = f"enrolments[{i}]"
        if not isinstance(item, dict) or set(item) != {"address", "org", "role"}:
            raise _fail(file, where, "must be an object with exactly address, org, role")
        address = _address(file, where + ".address", item["address"])
        if any(e.address == address for e in enrolments):
            raise _fail(file, where + ".address", f"{item['address']} is enrolled twice")
        enrolments.append(Enrolment(address, _optional_str(file, where + ".org", item["org"]),
                                    _optional_str(file, where + ".role", item["role"])))

    if not isinstance(raw["balances"], list):
        raise _fail(file, "balances", "must be a list of [address, amount]")
    balances: list[tuple[bytes, int]] = []
    for i, item in enumerate(raw["balances"]):
        if not isinstance(item, list) or len(item) != 2:
            raise _fail(file, f"balances[{i}]", "must be [address, amount]")
        balances.append((_address(file, f"balances[{i}][0]", item[0]),
                         _int(file, f"balances[{i}][1]", item[1], 0)))

    orgs: list[tuple[str, str]] = []
    for i, item in enumerate(raw.get("orgs", [])):
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
                and item[1] in _KINDS):
            raise _fail(file, f"orgs[{i}]", f"must be [name, kind] with kind one of {', '.join(_KINDS)}")
        orgs.append((item[0], item[1]))

    raw_bindings = raw.get("validator_orgs", [])
    if not isinstance(raw_bindings, list):
        raise _fail(file, "validator_orgs", "must be a list of [validator address, organisation]")
    named = {name for name, _ in orgs} | {e.org for e in enrolments if e.org}
    bindings: dict[bytes, str] = {}
    for i, item in enumerate(raw_bindings):
        where = f"validator_orgs[{i}]"
        if not isinstance(item, list) or len(item) != 2:
            raise _fail(file, where, "must be [validator address, organisation]")
        address, org = _address(file, where + "[0]", item[0]), item[1]
        if address not in validators:
            raise _fail(file, where + "[0]", f"{item[0]} is not one of the validators")
        if address in bindings:
            raise _fail(file, where + "[0]", f"{item[0]} is bound twice")
        if not isinstance(org, str) or org not in named:
            raise _fail(file, where + "[1]", f"must name an organisation of the genesis "
                                             f"({', '.join(sorted(named)) or 'none named'}), got {org!r}")
        bindings[address] = org
    return GenesisConfig(
        chain_id=chain_id,
        validators=validators,
        enrolments=tuple(enrolments),
        orgs=tuple(orgs),
        gas_limit=_int(file, "gas_limit", raw["gas_limit"], 5000),
        timestamp=_int(file, "timestamp", raw["timestamp"], 0),
        balances=tuple(balances),
        validator_orgs=tuple((a, bindings[a]) for a in validators if a in bindings),
    )
