"""`rxledger anchor …`: anchoring files and checking receipts from the shell.

    rxledger anchor submit FILE… --receipts DIR [--rpc URL] [--key HEX | --key-file F]
                           [--batch-size N] [--meta HEX] [--json]
    rxledger anchor verify RECEIPT… --trust network.json [--file F]… [--json]

`submit` hashes each file (SHA-256, read in chunks), anchors the hashes in Merkle batches
and writes one receipt per file, `DIR/<file name>.receipt.json`; a progress bar for the
batches goes to stderr when it is a terminal. `verify` contacts no node: it checks each
receipt against the trust file (a network.json) and, with `--file` (once per receipt, in
the same order), that the file is the anchored record.

Exit codes (INTERFACES.md): 0 done / all valid; 1 refused, failed, or a receipt that does
not verify (each failure named); 2 bad arguments, with one line on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from client_sdk._anchor import (
    DEFAULT_BATCH_SIZE,
    ZERO32,
    Anchorer,
    AnchorReceipt,
    Trust,
    verify_receipt,
)
from client_sdk._cli import BadArgument, add_key_options, guarded, positive_int, read_key
from client_sdk._errors import ClientError, VerificationFailed
from client_sdk._ledger import Signer
from client_sdk._rpc import DEFAULT_URL

__all__ = ["add_anchor_commands"]

RECEIPT_SUFFIX = ".receipt.json"
_CHUNK = 1 << 20


def _file_hash(path: Path) -> bytes:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise BadArgument(f"cannot read {path}: {exc.strerror}") from exc
    return digest.digest()


class _ProgressBar:
    """`anchoring [#####-----] 3/10 batches final` on one terminal line, redrawn in place."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.drawn = False

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if total:
            filled = self.WIDTH * done // total
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            text = f"\ranchoring [{bar}] {done}/{total} batches {stage}"
        else:
            text = f"\ranchoring: {done} batches {stage}"
        self.stream.write(text)
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _run_submit(args: argparse.Namespace) -> int:
    names: dict[str, Path] = {}
    for path in args.files:
        if path.name in names:
            raise BadArgument(f"two files are named {path.name} ({names[path.name]} and {path}): "
                               "their receipts would overwrite each other")
        names[path.name] = path
    try:
        signer = Signer.from_key(read_key(args))
    except ClientError as exc:
        raise BadArgument(str(exc)) from exc
    if not args.receipts.is_dir():
        try:
            args.receipts.mkdir(parents=True)
        except OSError as exc:
            raise BadArgument(f"cannot create the receipts directory {args.receipts}: {exc.strerror}") from exc
    hashes = [_file_hash(path) for path in args.files]
    anchorer = Anchorer(args.rpc, signer, batch_size=args.batch_size, meta=args.meta)
    bar = _ProgressBar(sys.stderr)
    try:
        with anchorer:
            receipts = anchorer.submit_hashes(hashes, progress=bar)
    finally:
        bar.close()
    written = []
    for path, receipt in zip(args.files, receipts, strict=True):
        out = args.receipts / (path.name + RECEIPT_SUFFIX)
        out.write_text(receipt.to_json(indent=2) + "\n")
        written.append(out)
    batches: dict[bytes, AnchorReceipt] = {}
    for receipt in receipts:
        batches.setdefault(receipt.root, receipt)
    summary = [
        {"root": "0x" + r.root.hex(), "size": r.tree_size, "block": r.block_number,
         "tx": "0x" + r.transaction_hash.hex()}
        for r in batches.values()
    ]
    if args.json:
        print(json.dumps({"anchored": len(receipts), "batches": summary,
                          "receipts": [str(p) for p in written]}))
    else:
        print(f"anchored {len(receipts)} file(s) in {len(summary)} batch(es); receipts in {args.receipts}")
        for b in summary:
            print(f"  root {b['root']}  {b['size']} record(s)  block {b['block']}  tx {b['tx']}")
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    if args.file and len(args.file) != len(args.receipts):
        raise BadArgument(f"give --file once per receipt, in the same order "
                           f"({len(args.receipts)} receipt(s), {len(args.file)} --file)")
    try:
        trust = Trust.from_network_json(args.trust)
    except VerificationFailed as exc:
        raise BadArgument(exc.reason) from exc
    records: list[bytes | None] = [None] * len(args.receipts)
    results: list[dict[str, Any]] = []
    for i, path in enumerate(args.receipts):
        entry: dict[str, Any] = {"receipt": str(path), "valid": False, "reason": None}
        try:
            try:
                text = path.read_text()
            except OSError as exc:
                raise VerificationFailed(f"cannot read the receipt: {exc.strerror}") from exc
            receipt = AnchorReceipt.from_json(text)
            entry.update(leafIndex=receipt.leaf_index, treeSize=receipt.tree_size,
                         block=receipt.block_number, root="0x" + receipt.root.hex())
            if args.file:
                try:
                    records[i] = args.file[i].read_bytes()
                except OSError as exc:
                    raise VerificationFailed(f"cannot read {args.file[i]}: {exc.strerror}") from exc
                entry["file"] = str(args.file[i])
            verify_receipt(receipt, trust, record=records[i])
        except VerificationFailed as exc:
            entry["reason"] = exc.reason
        else:
            entry["valid"] = True
        results.append(entry)
    valid = all(e["valid"] for e in results)
    if args.json:
        print(json.dumps({"valid": valid, "trust": trust.source, "receipts": results}))
    else:
        for e in results:
            if e["valid"]:
                what = f" matches {e['file']};" if "file" in e else ""
                print(f"VALID    {e['receipt']}:{what} leaf {e['leafIndex']} of {e['treeSize']}, "
                      f"block {e['block']}")
            else:
                print(f"INVALID  {e['receipt']}: {e['reason']}")
        bad = sum(not e["valid"] for e in results)
        print(f"{len(results) - bad} of {len(results)} receipt(s) valid (trust: {trust.source})")
    return 0 if valid else 1


def _meta(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not hex: {value!r}") from None
    if len(raw) > 32:
        raise argparse.ArgumentTypeError(f"at most 32 bytes, got {len(raw)}")
    return raw.rjust(32, b"\x00")


def add_anchor_commands(
    commands: Any, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser
) -> None:
    """Add `anchor submit` and `anchor verify` to `commands` (the result of `add_subparsers`)."""
    anchor = commands.add_parser("anchor", help="anchor files' hashes; verify receipts offline")
    sub = anchor.add_subparsers(dest="anchor_command", required=True, parser_class=parser_class)

    submit = sub.add_parser("submit", help="anchor the files' SHA-256 hashes in Merkle batches")
    submit.add_argument("files", nargs="+", type=Path, metavar="FILE")
    submit.add_argument("--receipts", type=Path, required=True, metavar="DIR",
                        help=f"write DIR/<file name>{RECEIPT_SUFFIX} for each file")
    submit.add_argument("--rpc", default=DEFAULT_URL, help="the node's JSON-RPC URL (default %(default)s)")
    add_key_options(submit, "the signing (enrolled) account")
    submit.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help="at most N files per Merkle tree and transaction (default %(default)s)")
    submit.add_argument("--meta", type=_meta, default=ZERO32, metavar="HEX",
                        help="a word of at most 32 bytes anchored with each root (default zero)")
    submit.add_argument("--json", action="store_true", help="print one JSON object")
    submit.set_defaults(handler=guarded(_run_submit))

    verify = sub.add_parser("verify", help="check receipts offline against the consortium's validators")
    verify.add_argument("receipts", nargs="+", type=Path, metavar="RECEIPT")
    verify.add_argument("--trust", type=Path, required=True, metavar="network.json",
                        help="the consortium's network.json (chain id, genesis hash, validators)")
    verify.add_argument("--file", type=Path, action="append", default=[], metavar="F",
                        help="also check that F is the anchored record (once per receipt, in order)")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(handler=guarded(_run_verify))
