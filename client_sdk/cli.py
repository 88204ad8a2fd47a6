"""The SDK's command sets, for the `rxledger` console entry (`rxledger.cli`) to mount.

    add_rx_commands(subparsers, parser_class)       # rxledger rx issue | review | verify | dispense | history
    add_anchor_commands(subparsers, parser_class)   # rxledger anchor submit | verify

Each command sets `handler`, a function of the parsed arguments returning the exit code.
They use only the SDK (and through it `rxledger.core`): no node needs to be installed.
"""

from client_sdk._anchor_cli import add_anchor_commands
from client_sdk._rx_cli import add_rx_commands

__all__ = ["add_anchor_commands", "add_rx_commands"]
