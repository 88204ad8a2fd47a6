"""What `rxledger rx …` and `rxledger anchor …` share: the signing-key options, argument
types, and one handler wrapper that turns SDK errors into INTERFACES.md's exit codes
(1 refused or failed, with the reason; 2 a bad argument, in one line)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from client_sdk._errors import ClientError, Refused

__all__ = ["BadArgument", "add_key_options", "guarded", "positive_int", "read_bytes", "read_key"]


class BadArgument(Exception):
    """A bad argument found after parsing (a missing file, a malformed key): exit 2."""


def read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadArgument(f"cannot read {what} {path}: {exc.strerror}") from exc


def add_key_options(parser: argparse.ArgumentParser, who: str = "the signing account") -> None:
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--key", metavar="HEX", help=f"{who}'s private key")
    key.add_argument("--key-file", type=Path, metavar="F", help="a file holding the private key (hex)")


def read_key(args: argparse.Namespace) -> str:
    """The signing key from `--key HEX` or `--key-file F` (hex, optionally 0x-prefixed)."""
    if args.key_file is not None:
        return read_bytes(args.key_file, "the key file").decode().strip()
    if args.key is None:
        raise BadArgument("this command signs a transaction: give --key HEX or --key-file F")
    return str(args.key)


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {number}")
    return number


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command; a `BadArgument` exits 2, a `ClientError` 1, each with one line on
    stderr (and, with `--json`, one JSON object on stdout)."""
    def handler(args: argparse.Namespace) -> int:
        as_json = getattr(args, "json", False)
        try:
            return int(run(args))
        except BadArgument as exc:
            sys.stderr.write(f"rxledger: error: {exc}\n")
            return 2
        except Refused as exc:
            if as_json:
                print(json.dumps({"error": "refused", "reason": exc.reason, "tx": exc.tx_hash}))
            where = f" (transaction {exc.tx_hash})" if exc.tx_hash else ""
            sys.stderr.write(f"rxledger: refused: {exc.reason}{where}\n")
            return 1
        except ClientError as exc:
            if as_json:
                print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
            sys.stderr.write(f"rxledger: {exc}\n")
            return 1
    return handler
