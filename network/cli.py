"""The command-line face of `network/`: parsers and handlers for `rxledger.cli` to mount.

    rxledger network init [--orgs SPEC] [--out DIR] [--base-port P] [--chain-id N]
                          [--observers N|ORG,NAME@ORG] [--no-dev-keys] [--admin ORG=ADDR]… [--force]
    rxledger network add-node --dir DIR --org ORG --name NAME [--observer]
    rxledger network deploy [--dir DIR] [--host NAME=HOST[:PORT]]…
    rxledger up [--dir DIR] [--base-port P] [--detach] [--timeout S]
    rxledger down [--dir DIR]

`add_commands(subparsers, parser_class)` adds them; each sets `handler`, a function of
the parsed arguments returning the exit code (0 ok, 1 refused or failed, 2 bad argument,
with one line on stderr saying what is wrong).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from network.errors import NetworkError, OrgSpecError
from network.init import (
    DEFAULT_BASE_PORT,
    DEFAULT_NET_DIR,
    DEFAULT_ORGS,
    add_node,
    init_network,
    parse_orgs,
)
from network.layout import NetworkInfo, load_network
from node.cli import port_arg
from node.genesis import DEV_CHAIN_ID


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"rxledger: error: {message}\n")
    return code


def orgs_arg(value: str) -> str:
    """argparse type for --orgs: checks the spec, keeps the text."""
    try:
        parse_orgs(value)
    except OrgSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def observers_arg(value: str) -> int | list[str]:
    """argparse type for --observers: a count, or ORG / NAME@ORG separated by commas."""
    if value.strip().isdigit():
        return int(value)
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"--observers: empty entry in {value!r}")
    return items


def assignment_arg(value: str) -> tuple[str, str]:
    """argparse type for KEY=VALUE options (--admin, --host)."""
    key, eq, val = value.partition("=")
    if not eq or not key.strip() or not val.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key.strip(), val.strip()


def positive_float_arg(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return number


def add_commands(commands: Any, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> None:
    """Add `network`, `up` and `down` to `commands` (the result of `add_subparsers`)."""
    default_dir = f"default {DEFAULT_NET_DIR}"
    network = commands.add_parser("network", help="create and extend a consortium network")
    sub = network.add_subparsers(dest="network_command", required=True, parser_class=parser_class)

    init = sub.add_parser("init", help="generate a consortium: CAs, keys, certificates, genesis, configs")
    init.add_argument("--orgs", type=orgs_arg, default=DEFAULT_ORGS, metavar="SPEC",
                      help=f"comma-separated name:kind, kind hospital|pharmacy|regulator (default {DEFAULT_ORGS})")
    init.add_argument("--out", type=Path, default=DEFAULT_NET_DIR, metavar="DIR", help=f"({default_dir})")
    init.add_argument("--base-port", type=port_arg, default=DEFAULT_BASE_PORT, metavar="P",
                      help="node i gets RPC port P+i and p2p port P-8545+30303+i (default 8545)")
    init.add_argument("--chain-id", type=int, default=DEV_CHAIN_ID, help=f"(default {DEV_CHAIN_ID})")
    init.add_argument("--observers", type=observers_arg, default=0, metavar="N|ORG,NAME@ORG",
                      help="non-validating nodes: a count (run by the regulator) or a list (default 0)")
    init.add_argument("--no-dev-keys", action="store_true",
                      help="enrol no development account and write no private key to network.json")
    init.add_argument("--admin", type=assignment_arg, action="append", default=[], metavar="ORG=ADDRESS",
                      help="enrol ADDRESS as the org admin of ORG in genesis (repeatable)")
    init.add_argument("--force", action="store_true",
                      help="replace a network already in DIR (its keys and chain data are deleted)")
    init.set_defaults(handler=run_network_init)

    add = sub.add_parser("add-node", help="issue a new node of an organisation and add it to every config")
    add.add_argument("--dir", type=Path, default=DEFAULT_NET_DIR, help=f"the network directory ({default_dir})")
    add.add_argument("--org", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--observer", action="store_true", help="a non-validating node")
    add.set_defaults(handler=run_add_node)

    deploy = sub.add_parser("deploy", help="rewrite DIR/deploy/ (per-host configs, docker-compose, systemd)")
    deploy.add_argument("--dir", type=Path, default=DEFAULT_NET_DIR, help=f"({default_dir})")
    deploy.add_argument("--host", type=assignment_arg, action="append", default=[], metavar="NAME=HOST[:PORT]",
                        help="the host (and p2p port) of node NAME (default: its name, port 30303)")
    deploy.set_defaults(handler=run_deploy)

    up_parser = commands.add_parser("up", help="start a local network (init it if needed); Ctrl-C stops it")
    up_parser.add_argument("--dir", type=Path, default=DEFAULT_NET_DIR, help=f"({default_dir})")
    up_parser.add_argument("--base-port", type=port_arg, default=DEFAULT_BASE_PORT, metavar="P",
                           help="ports of a network initialised by this command (default 8545)")
    up_parser.add_argument("--detach", action="store_true", help="return once ready; `rxledger down` stops it")
    up_parser.add_argument("--timeout", type=positive_float_arg, default=60.0,
                           help="seconds to wait for the first final block (default 60)")
    up_parser.set_defaults(handler=run_up)

    down_parser = commands.add_parser("down", help="stop a network started with `rxledger up --detach`")
    down_parser.add_argument("--dir", type=Path, default=DEFAULT_NET_DIR, help=f"({default_dir})")
    down_parser.set_defaults(handler=run_down)


def print_network(info: NetworkInfo) -> None:
    print(f"network in {info.dir}: chain id {info.chain_id}, genesis 0x{info.genesis_hash.hex()}")
    width = max(len(n.name) for n in info.nodes)
    for n in info.nodes:
        print(f"  {n.name:<{width}}  {n.role:<9} 0x{n.address.hex()}  {n.rpc}  p2p {n.p2p}")
    keys = "with their development keys" if any(a.private_key for a in info.accounts) else "no private keys"
    print(f"  {len(info.accounts)} enrolled accounts in {info.network_json} ({keys})")


def run_network_init(args: argparse.Namespace) -> int:
    try:
        info = init_network(args.out, orgs_spec=args.orgs, base_port=args.base_port, chain_id=args.chain_id,
                            observers=args.observers, dev_keys=not args.no_dev_keys, force=args.force,
                            admins=dict(args.admin))
    except OrgSpecError as exc:
        return _fail(str(exc), 2)
    except NetworkError as exc:
        return _fail(str(exc))
    print_network(info)
    print(f"start it with: rxledger up --dir {info.dir}   (per-host files: {info.dir / 'deploy'})")
    return 0


def run_add_node(args: argparse.Namespace) -> int:
    try:
        node = add_node(args.dir, args.org, args.name, observer=args.observer)
    except NetworkError as exc:
        return _fail(str(exc))
    print(f"added {node.role} {node.name} of {node.org}: 0x{node.address.hex()}, {node.rpc}, p2p {node.p2p}")
    print(f"  config {node.config}; every other node.toml now lists it as a peer (restart them to connect)")
    if node.role == "validator":
        print(f"  it seals blocks once a majority of validators vote it in: on each, "
              f"qbft_proposeValidatorVote(\"0x{node.address.hex()}\", true, \"{node.org}\")")
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    from network.deploy import write_deployment

    try:
        out = write_deployment(load_network(args.dir), dict(args.host))
    except NetworkError as exc:
        return _fail(str(exc))
    print(f"wrote {out} (see docs/DEPLOY.md)")
    return 0


def run_up(args: argparse.Namespace) -> int:
    from network.launcher import up

    try:
        up(args.dir, base_port=args.base_port, detach=args.detach, timeout=args.timeout)
    except NetworkError as exc:
        return _fail(str(exc))
    return 0


def run_down(args: argparse.Namespace) -> int:
    from network.launcher import down

    try:
        down(args.dir)
    except NetworkError as exc:
        return _fail(str(exc))
    return 0
