#!/usr/bin/env python3
"""Deploy RxLedger's Solidity contracts to any Ethereum JSON-RPC endpoint.

Usage::

    python contracts/deploy.py [--rpc URL] [--key HEX | --key-file F]
                               [--dev-setup | --no-dev-setup] [--setup FILE]
                               [--validators ADDR,...] [--timeout S]

Deploys, in this order and from one account, ``Governance`` (with its genesis: the
initial organisations, accounts and validators), then ``PrescriptionRegistry`` and
``AnchorRegistry`` pointing to it, from the committed artifacts in
``contracts/artifacts`` (build them with ``python contracts/build.py``). Prints one JSON
object: ``{"chainId", "deployer", "Governance", "PrescriptionRegistry",
"AnchorRegistry"}`` (checksummed addresses). Not idempotent: every run deploys anew.

The signing key defaults to development account 9 (the dev chain's deployer, no role).
``--dev-setup`` (the default on chain id 2024) enrols the development organisations
and accounts of INTERFACES.md; otherwise ``--setup FILE`` names a JSON file: either a
``network.json`` written by ``rxledger network init`` (organisations and validators
from ``nodes``, accounts from ``accounts``) or ``{"orgs": [{"name", "kind"}],
"accounts": [{"address", "org", "role"}], "validators": ["0x…"]}``; kinds and roles are
names (``hospital``, ``org admin``) or codes. Validators default to the chain's current
QBFT validators (``qbft_getValidatorsByBlockNumber``), none if the chain has no such
method; ``--validators`` overrides both.

Exit status: 0 deployed, 1 failed (one line on stderr saying why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere: find the node package
    sys.path.insert(0, str(REPO_ROOT))

from eth_account import Account  # noqa: E402
from eth_utils.address import is_address, to_checksum_address  # noqa: E402
from eth_utils.crypto import keccak  # noqa: E402
from web3 import HTTPProvider, Web3  # noqa: E402
from web3.middleware import ExtraDataToPOAMiddleware  # noqa: E402

from node.genesis import DEV_ACCOUNT_ROLES, DEV_CHAIN_ID, derive_dev_key  # noqa: E402
from rxledger.core.artifacts import load_artifact  # noqa: E402

DEFAULT_RPC = "http://127.0.0.1:8545"
DEPLOYER_INDEX = 9

ORG_KINDS = {"hospital": 1, "pharmacy": 2, "regulator": 3}
ROLES = {"prescriber": 1, "hospital pharmacist": 2, "pharmacist": 3, "auditor": 4, "org admin": 5}
# INTERFACES.md, "Development accounts" (accounts and roles from node.genesis).
DEV_ORGS = (
    ("hospital-a", "hospital"),
    ("hospital-b", "hospital"),
    ("pharmacy-a", "pharmacy"),
    ("regulator", "regulator"),
)


class DeployError(Exception):
    """A deployment failure with a message meant for the user."""


def org_id(name: str) -> bytes:
    """An organisation's id: keccak256 of its name's UTF-8 bytes."""
    return keccak(name.encode("utf-8"))


@dataclass(frozen=True)
class GovernanceSetup:
    """The arguments of Governance's constructor."""

    orgs: tuple[tuple[bytes, int], ...]  # (id, kind)
    accounts: tuple[tuple[str, bytes, int], ...]  # (checksummed address, org id, role)
    validators: tuple[str, ...]

    def constructor_args(self) -> tuple[list[Any], ...]:
        return (
            [o for o, _ in self.orgs],
            [k for _, k in self.orgs],
            [a for a, _, _ in self.accounts],
            [o for _, o, _ in self.accounts],
            [r for _, _, r in self.accounts],
            list(self.validators),
        )

    def with_validators(self, validators: Sequence[str]) -> GovernanceSetup:
        return GovernanceSetup(self.orgs, self.accounts, tuple(_address(v) for v in validators))


def _code(value: Any, names: dict[str, int], what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value in names.values():
        return value
    if isinstance(value, str) and value.strip().lower() in names:
        return names[value.strip().lower()]
    raise DeployError(f"unknown {what} {value!r}: expected one of {', '.join(names)}")


def _address(value: Any) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise DeployError(f"not an address: {value!r}")
    return to_checksum_address(value)


def dev_setup(validators: Sequence[str] = ()) -> GovernanceSetup:
    """The development organisations and accounts of INTERFACES.md (account 9: no role)."""
    accounts = []
    for index, org, role in DEV_ACCOUNT_ROLES:
        if org is None or role is None:
            continue
        address = to_checksum_address(Account.from_key(derive_dev_key(index)).address)
        accounts.append((address, org_id(org), ROLES[role]))
    return GovernanceSetup(
        tuple((org_id(name), ORG_KINDS[kind]) for name, kind in DEV_ORGS),
        tuple(accounts),
        tuple(_address(v) for v in validators),
    )


def setup_from_json(data: Any) -> GovernanceSetup:
    """A setup from a ``network.json`` or an ``{"orgs", "accounts", "validators"}`` object."""
    if not isinstance(data, dict):
        raise DeployError("the setup file must hold a JSON object")
    try:
        if "orgs" in data:
            orgs = [(o["name"], o["kind"]) for o in data["orgs"]]
        else:
            orgs = []
            for node in data.get("nodes", []):
                if (node["org"], node["kind"]) not in orgs:
                    orgs.append((node["org"], node["kind"]))
        if not orgs:
            raise DeployError("the setup file names no organisations ('orgs' or 'nodes')")
        names = {name for name, _ in orgs}
        accounts = []
        for acc in data.get("accounts", []):
            if acc.get("org") is None or acc.get("role") is None:
                continue  # the deployer and other accounts without a role
            if acc["org"] not in names:
                raise DeployError(f"account {acc['address']} names an unknown organisation {acc['org']!r}")
            accounts.append((_address(acc["address"]), org_id(acc["org"]), _code(acc["role"], ROLES, "role")))
        if "validators" in data:
            validators = [_address(v) for v in data["validators"]]
        else:
            validators = [_address(n["validator"]) for n in data.get("nodes", []) if n.get("validator")]
    except (KeyError, TypeError) as exc:
        raise DeployError(f"the setup file is missing a field: {exc}") from None
    return GovernanceSetup(
        tuple((org_id(name), _code(kind, ORG_KINDS, "organisation kind")) for name, kind in orgs),
        tuple(accounts),
        tuple(validators),
    )


def chain_validators(w3: Web3) -> list[str] | None:
    """The chain's QBFT validators at the latest block, or None without that method."""
    response = w3.provider.make_request("qbft_getValidatorsByBlockNumber", ["latest"])  # type: ignore[arg-type]
    result = response.get("result") if isinstance(response, dict) else None
    if not isinstance(result, list):
        return None
    return [_address(v) for v in result]


def connect(rpc: str, timeout: float = 30.0) -> Web3:
    """A Web3 for `rpc` with the proof-of-authority extraData middleware (QBFT headers)."""
    w3 = Web3(HTTPProvider(rpc, request_kwargs={"timeout": timeout}))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def _send(w3: Web3, account: Any, tx: dict[str, Any], what: str, timeout: float) -> Any:
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    if receipt["status"] != 1:
        raise DeployError(f"deploying {what} failed: transaction 0x{bytes(tx_hash).hex()} reverted")
    return receipt


def deploy_contract(w3: Web3, account: Any, name: str, args: Sequence[Any], nonce: int,
                    timeout: float = 120.0) -> str:
    """Deploy artifact `name` with constructor `args`; returns its checksummed address."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor(*args).build_transaction({
        "from": account.address,
        "nonce": nonce,
        "gasPrice": w3.eth.gas_price,
        "chainId": w3.eth.chain_id,
    })
    receipt = _send(w3, account, dict(tx), name, timeout)
    address = receipt["contractAddress"]
    if not address or not w3.eth.get_code(address):
        raise DeployError(f"deploying {name} left no code at {address}")
    return to_checksum_address(address)


def deploy_all(w3: Web3, private_key: bytes | str, setup: GovernanceSetup,
               timeout: float = 120.0) -> dict[str, Any]:
    """Deploy Governance with `setup`, then both registries; returns the printed object."""
    account = Account.from_key(private_key)
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    governance = deploy_contract(w3, account, "Governance", setup.constructor_args(), nonce, timeout)
    registry = deploy_contract(w3, account, "PrescriptionRegistry", [governance], nonce + 1, timeout)
    anchors = deploy_contract(w3, account, "AnchorRegistry", [governance], nonce + 2, timeout)
    return {
        "chainId": w3.eth.chain_id,
        "deployer": to_checksum_address(account.address),
        "Governance": governance,
        "PrescriptionRegistry": registry,
        "AnchorRegistry": anchors,
    }


def _private_key(args: argparse.Namespace, parser: argparse.ArgumentParser) -> bytes:
    text: str | None = args.key
    if args.key_file is not None:
        try:
            text = Path(args.key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            parser.error(f"cannot read --key-file {args.key_file}: {exc.strerror}")
    if text is None:
        return derive_dev_key(DEPLOYER_INDEX)
    try:
        key = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        key = b""
    if len(key) != 32:
        parser.error("the key must be 32 bytes of hex (64 hex digits, 0x optional)")
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deploy.py", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--rpc", default=DEFAULT_RPC, help=f"JSON-RPC endpoint (default {DEFAULT_RPC})")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--key", help="the deployer's private key, hex (default: dev account 9)")
    keys.add_argument("--key-file", help="a file holding the deployer's private key, hex")
    parser.add_argument("--dev-setup", action=argparse.BooleanOptionalAction, default=None,
                        help=f"enrol the development accounts (default: on for chain id {DEV_CHAIN_ID})")
    parser.add_argument("--setup", type=Path, help="JSON file with the initial organisations, "
                        "accounts and validators (a network.json will do)")
    parser.add_argument("--validators", help="comma-separated validator addresses for Governance")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for each receipt (default 120)")
    args = parser.parse_args(argv)
    if args.dev_setup and args.setup is not None:
        parser.error("--dev-setup and --setup exclude each other")
    if args.dev_setup is False and args.setup is None:
        parser.error("--no-dev-setup needs --setup FILE (Governance needs its genesis)")
    key = _private_key(args, parser)
    validators: list[str] | None = None
    if args.validators is not None:
        try:
            validators = [_address(v.strip()) for v in args.validators.split(",") if v.strip()]
        except DeployError as exc:
            parser.error(f"--validators: {exc}")
    try:
        setup = None
        if args.setup is not None:
            try:
                setup = setup_from_json(json.loads(args.setup.read_text(encoding="utf-8")))
            except OSError as exc:
                raise DeployError(f"cannot read --setup {args.setup}: {exc.strerror}") from None
            except ValueError as exc:
                raise DeployError(f"--setup {args.setup} is not valid JSON: {exc}") from None
        w3 = connect(args.rpc)
        try:
            chain_id = w3.eth.chain_id
        except Exception as exc:  # connection refused, DNS, HTTP errors: one line says so
            raise DeployError(f"cannot reach {args.rpc}: {exc}") from None
        if setup is None:
            dev = args.dev_setup if args.dev_setup is not None else chain_id == DEV_CHAIN_ID
            if not dev:
                parser.error(f"chain id {chain_id} is not the dev chain's ({DEV_CHAIN_ID}): "
                             "give --setup FILE or --dev-setup")
            setup = dev_setup()
        if validators is not None:
            setup = setup.with_validators(validators)
        elif not setup.validators:
            setup = setup.with_validators(chain_validators(w3) or [])
        result = deploy_all(w3, key, setup, timeout=args.timeout)
    except DeployError as exc:
        print(f"deploy.py: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # web3 errors (RPC refusals, timeouts): one line, no traceback
        print(f"deploy.py: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
