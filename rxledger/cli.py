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
import sys
from typing import NoReturn

from rxledger import __version__


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `rxledger: error: … (see --help)`, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"rxledger: error: {message} (see --help)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    from chaincode_py import NativeChaincodeHost
    from client_sdk import cli as client_cli
    from network import cli as network_cli
    from node import cli as node_cli

    parser = Parser(prog="rxledger", description="RxLedger: a permissioned QBFT ledger for e-prescriptions")
    parser.add_argument("--version", action="version", version=f"rxledger {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    node_cli.add_commands(commands, Parser, chaincode=NativeChaincodeHost)
    network_cli.add_commands(commands, Parser)
    client_cli.add_rx_commands(commands, Parser)
    client_cli.add_anchor_commands(commands, Parser)
    # The regulator's `audit` and governance's `gov` command sets mount here, from their
    # packages' public `cli` modules, in the same way.
    return parser


def main(argv: list[str] | None = None) -> int:
    from node.cli import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "log_level", "info"), "dev")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
