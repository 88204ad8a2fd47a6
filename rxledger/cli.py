"""The `rxledger` console entry: every package's public command set on one parser.

    rxledger node …                  node.cli.add_commands (start, check, status)
    rxledger network … | up | down   network.cli.add_commands
    rxledger rx …                    client_sdk.cli.add_rx_commands
    rxledger anchor …                client_sdk.cli.add_anchor_commands

This module sits above every package (INTERFACES.md layering): it is the one place that
assembles them, so it also chooses the chaincode host the node runs
(`chaincode_py.NativeChaincodeHost`). The later command sets (`audit`, `gov`) are added
in `build_parser` the same way, each through its package's public `cli` module.

Bad arguments exit 2 with one line (`rxledger: error: … (see --help)`); every command's
handler returns its exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from rxledger import __version__
from rxledger.extras import missing_node_modules, require_node_extra

#: The command sets that run or set up a node: they need the `node` extra.
NODE_COMMANDS = ("node", "network", "up", "down")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `rxledger: error: … (see --help)`, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"rxledger: error: {message} (see --help)\n")
        sys.exit(2)


def _without_node_extra(commands: argparse._SubParsersAction[Parser]) -> None:
    """Placeholders for the node's command sets on an SDK-only install (`pip install rxledger`):
    listed in `--help`, and each answers with the one line saying how to install the node."""
    for name in NODE_COMMANDS:
        sub = commands.add_parser(name, help="(needs the node: pip install 'rxledger[node]')",
                                  add_help=False)
        sub.add_argument("rest", nargs=argparse.REMAINDER)
        sub.set_defaults(handler=lambda _args: require_node_extra())


def build_parser() -> argparse.ArgumentParser:
    from client_sdk import cli as client_cli

    parser = Parser(prog="rxledger", description="RxLedger: a permissioned QBFT ledger for e-prescriptions")
    parser.add_argument("--version", action="version", version=f"rxledger {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    if missing_node_modules():
        _without_node_extra(commands)
    else:
        from chaincode_py import NativeChaincodeHost
        from network import cli as network_cli
        from node import cli as node_cli

        node_cli.add_commands(commands, Parser, chaincode=NativeChaincodeHost)
        network_cli.add_commands(commands, Parser)
    client_cli.add_rx_commands(commands, Parser)
    client_cli.add_anchor_commands(commands, Parser)
    # The regulator's `audit` and governance's `gov` command sets mount here, from their
    # packages' public `cli` modules, in the same way.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in NODE_COMMANDS:
        require_node_extra()  # one line and exit 1 on an SDK-only install, before any import
    args = build_parser().parse_args(argv)
    if missing_node_modules():
        logging.basicConfig(level=getattr(args, "log_level", "info").upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    else:
        from node.cli import setup_logging

        setup_logging(getattr(args, "log_level", "info"), "dev")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
