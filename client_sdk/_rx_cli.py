"""`rxledger rx …`: the prescription lifecycle from the shell, over the SDK.

Exit codes (INTERFACES.md): 0 done (or dispensable), 1 refused or not dispensable with each
reason printed, 2 bad arguments (one line). `--json` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client_sdk._cli import (
    BadArgument,
    add_key_options,
    guarded,
    positive_int,
    read_bytes,
    read_key,
)
from client_sdk._commitment import DEV_CONSORTIUM_KEY
from client_sdk._fhir import ScheduleTable
from client_sdk._prescriptions import Hospital, Pharmacy, PrescriptionRecord, Regulator, format_time
from client_sdk._rpc import DEFAULT_URL

__all__ = ["add_rx_commands"]


def _consortium_key(args: argparse.Namespace) -> bytes:
    if args.consortium_key_file is None:
        return DEV_CONSORTIUM_KEY
    raw = read_bytes(args.consortium_key_file, "the consortium key file").strip()
    try:
        key = bytes.fromhex(raw.decode().removeprefix("0x"))
    except ValueError:
        key = raw
    if len(key) < 16:
        raise BadArgument("the consortium key must be at least 16 bytes (hex or raw)")
    return key


def _common(parser: argparse.ArgumentParser, *, signs: bool = True) -> None:
    parser.add_argument("--rpc", default=DEFAULT_URL, help="the node's JSON-RPC URL (default %(default)s)")
    if signs:
        add_key_options(parser)
    parser.add_argument("--consortium-key-file", type=Path, metavar="F",
                        help="the consortium's pseudonym key (default: the public dev-chain key)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _emit(args: argparse.Namespace, obj: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(obj, indent=None, sort_keys=True))
    else:
        print("\n".join(lines))


def _record_json(record: PrescriptionRecord) -> dict[str, Any]:
    return {
        "rxId": record.rx_id, "status": record.status, "prescriber": record.prescriber,
        "hospital": "0x" + record.hospital.hex(), "schedule": record.schedule,
        "fillsAllowed": record.fills_allowed, "fillsUsed": record.fills_used,
        "fillsLeft": record.fills_left, "quantityPerFill": record.quantity_per_fill,
        "quantityDispensed": record.quantity_dispensed, "validFrom": format_time(record.valid_from),
        "validUntil": format_time(record.valid_until), "issuedAt": format_time(record.issued_at),
    }


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"consortium_key": _consortium_key(args)}


def _run_issue(args: argparse.Namespace) -> int:
    document = read_bytes(args.fhir, "the FHIR file")
    schedules = (ScheduleTable.from_json(read_bytes(args.schedules, "the schedule table").decode())
                 if args.schedules else None)
    seal = read_bytes(args.seal_to, "the pharmacy's public key") if args.seal_to else None
    hospital = Hospital(args.rpc, read_key(args), schedules=schedules, **_kwargs(args))
    issued = hospital.issue(document, pharmacy_key=seal)
    token = issued.token.to_json()
    if args.token_out:
        args.token_out.write_text(json.dumps(token, indent=2) + "\n")
    obj = {"rxId": issued.rx_id, "tx": issued.tx_hash, "block": issued.block_number,
           "fillsAllowed": issued.fills_allowed, "quantityPerFill": issued.quantity_per_fill,
           "validFrom": format_time(issued.valid_from), "validUntil": format_time(issued.valid_until),
           "schedule": issued.schedule, "patient": "0x" + issued.patient.hex(),
           "token": str(args.token_out) if args.token_out else token}
    lines = [f"issued {issued.rx_id} (draft, waiting for review) in block {issued.block_number}",
             f"  {issued.fills_allowed} fill(s) of {issued.quantity_per_fill}, valid "
             f"{format_time(issued.valid_from)} to {format_time(issued.valid_until)}, schedule {issued.schedule}",
             f"  token: {args.token_out}" if args.token_out else f"  token: {json.dumps(token)}"]
    _emit(args, obj, lines)
    return 0


def _run_transition(args: argparse.Namespace) -> int:
    hospital = Hospital(args.rpc, read_key(args), **_kwargs(args))
    action = args.rx_command
    if action == "review":
        tx = hospital.review(args.rx, approve=args.reject is None, reason=args.reject or "")
        done = "approved" if args.reject is None else f"rejected ({args.reject})"
    elif action == "resume":
        tx = hospital.resume(args.rx)
        done = "resumed"
    else:
        method: Callable[[str, str], str] = {
            "hold": hospital.hold, "cancel": hospital.cancel, "stop": hospital.stop,
            "entered-in-error": hospital.mark_entered_in_error,
        }[action]
        tx = method(args.rx, args.reason)
        done = {"hold": "on hold", "cancel": "cancelled", "stop": "stopped",
                "entered-in-error": "marked entered-in-error"}[action]
    record = hospital.get(args.rx)
    _emit(args, {"rxId": args.rx, "tx": tx, "status": record.status},
          [f"{args.rx}: {done}; status now {record.status} (tx {tx})"])
    return 0


def _token_key(args: argparse.Namespace) -> bytes | None:
    return read_bytes(args.token_key, "the pharmacy's token key") if args.token_key else None


def _run_verify(args: argparse.Namespace) -> int:
    token = read_bytes(args.token, "the token")
    pharmacy = Pharmacy(args.rpc, None, token_key=_token_key(args), **_kwargs(args))
    check = pharmacy.verify(token)
    obj: dict[str, Any] = {"rxId": check.rx_id, "dispensable": check.dispensable,
                           "matches": check.matches, "prescriberOk": check.prescriber_ok,
                           "problems": list(check.problems),
                           "record": _record_json(check.record) if check.record else None}
    if check.dispensable and check.record is not None:
        r = check.record
        lines = [f"{check.rx_id}: DISPENSABLE - {r.fills_left} fill(s) of {r.quantity_per_fill} left, "
                 f"valid until {format_time(r.valid_until)}, schedule {r.schedule}"]
    else:
        lines = [f"{check.rx_id}: NOT DISPENSABLE"] + [f"  - {p}" for p in check.problems]
    _emit(args, obj, lines)
    return 0 if check.dispensable else 1


def _run_dispense(args: argparse.Namespace) -> int:
    token = read_bytes(args.token, "the token")
    document = read_bytes(args.fhir, "the FHIR file") if args.fhir else None
    pharmacy = Pharmacy(args.rpc, read_key(args), token_key=_token_key(args), **_kwargs(args))
    result = pharmacy.dispense(token, document, quantity=args.quantity)
    record = pharmacy.get(result.rx_id)
    obj = {"rxId": result.rx_id, "fillNumber": result.fill_number, "quantity": result.quantity,
           "tx": result.tx_hash, "block": result.block_number, "status": record.status,
           "fillsLeft": record.fills_left,
           "dispenseCommitment": "0x" + result.dispense_commitment.hex(),
           "dispenseSalt": "0x" + result.dispense_salt.hex()}
    _emit(args, obj, [f"{result.rx_id}: fill {result.fill_number} of {result.quantity} recorded in "
                      f"block {result.block_number}; status {record.status}, "
                      f"{record.fills_left} fill(s) left"])
    return 0


def _run_history(args: argparse.Namespace) -> int:
    entries = Regulator(args.rpc, None, **_kwargs(args)).history(args.rx)
    obj = {"rxId": args.rx, "events": [
        {"event": e.event, "block": e.block_number, "blockHash": e.block_hash, "time": format_time(e.time),
         "tx": e.tx_hash, "actor": e.actor, **{k: v for k, v in e.details.items() if k != "rxId"}}
        for e in entries]}
    _emit(args, obj, [f"history of {args.rx}:"] + [f"  {e.describe()}  tx {e.tx_hash}" for e in entries])
    return 0


def _run_keygen(args: argparse.Namespace) -> int:
    from client_sdk._token import generate_pharmacy_key

    private, public = generate_pharmacy_key()
    private_path = args.out.with_suffix(".key.pem")
    public_path = args.out.with_suffix(".pub.pem")
    private_path.write_bytes(private)
    private_path.chmod(0o600)
    public_path.write_bytes(public)
    _emit(args, {"private": str(private_path), "public": str(public_path)},
          [f"pharmacy token key: {private_path} (keep secret), {public_path} (give to hospitals)"])
    return 0


def add_rx_commands(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `rx` and its subcommands to `commands` (the result of `add_subparsers`)."""
    rx = commands.add_parser("rx", help="prescriptions: issue, review, verify, dispense, history")
    sub = rx.add_subparsers(dest="rx_command", required=True, parser_class=parser_class)

    issue = sub.add_parser("issue", help="validate, commit and issue a FHIR MedicationRequest")
    issue.add_argument("--fhir", type=Path, required=True, metavar="MEDREQ.json")
    issue.add_argument("--token-out", type=Path, metavar="F", help="write the prescription token here")
    issue.add_argument("--seal-to", type=Path, metavar="PUB.pem",
                       help="encrypt the token's document to this pharmacy's public key")
    issue.add_argument("--schedules", type=Path, metavar="TABLE.json",
                       help='controlled-substance table: [{"system":…,"code":…,"schedule":2}]')
    _common(issue)
    issue.set_defaults(handler=guarded(_run_issue))

    review = sub.add_parser("review", help="a hospital pharmacist's review: approve or reject")
    review.add_argument("--rx", required=True, metavar="ID")
    verdict = review.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--approve", action="store_true")
    verdict.add_argument("--reject", metavar="REASON")
    _common(review)
    review.set_defaults(handler=guarded(_run_transition))

    for name, text in (("hold", "put an active prescription on hold"),
                       ("cancel", "cancel a prescription with no fill"),
                       ("stop", "stop a prescription after a fill"),
                       ("entered-in-error", "mark a prescription entered in error (hospital admin)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--rx", required=True, metavar="ID")
        p.add_argument("--reason", default="", help="at most 32 bytes")
        _common(p)
        p.set_defaults(handler=guarded(_run_transition))
    resume = sub.add_parser("resume", help="resume a prescription on hold")
    resume.add_argument("--rx", required=True, metavar="ID")
    _common(resume)
    resume.set_defaults(handler=guarded(_run_transition))

    verify = sub.add_parser("verify", help="check a presented token against the ledger")
    verify.add_argument("--token", type=Path, required=True, metavar="F")
    verify.add_argument("--token-key", type=Path, metavar="KEY.pem",
                        help="the pharmacy's private key for an encrypted token")
    _common(verify, signs=False)
    verify.set_defaults(handler=guarded(_run_verify))

    dispense = sub.add_parser("dispense", help="record a fill")
    dispense.add_argument("--token", type=Path, required=True, metavar="F")
    what = dispense.add_mutually_exclusive_group(required=True)
    what.add_argument("--fhir", type=Path, metavar="MEDDISPENSE.json")
    what.add_argument("--quantity", type=positive_int, metavar="N")
    dispense.add_argument("--token-key", type=Path, metavar="KEY.pem")
    _common(dispense)
    dispense.set_defaults(handler=guarded(_run_dispense))

    history = sub.add_parser("history", help="every event of a prescription")
    history.add_argument("--rx", required=True, metavar="ID")
    _common(history, signs=False)
    history.set_defaults(handler=guarded(_run_history))

    keygen = sub.add_parser("keygen", help="make a pharmacy's X25519 key pair for encrypted tokens")
    keygen.add_argument("--out", type=Path, required=True, metavar="PREFIX",
                        help="writes PREFIX.key.pem and PREFIX.pub.pem")
    keygen.add_argument("--json", action="store_true")
    keygen.set_defaults(handler=guarded(_run_keygen))
