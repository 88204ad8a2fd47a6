"""Anchoring against a real dev node: 10,000 records in one `submit`, every receipt verified
offline (trust from the dev validator, from network.json, from genesis and the headers),
a flipped bit anywhere in a receipt rejected with a reason, forged seals rejected, the
async anchorer, and `rxledger anchor submit | verify` end to end."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from devnode import CHAIN_ID, DevNode, account

from client_sdk._anchor import (
    Anchorer,
    AnchorReceipt,
    AsyncAnchorer,
    Trust,
    verify_receipt,
    verify_receipts,
)
from client_sdk._errors import Refused, VerificationFailed
from client_sdk._merkle import leaf_hash
from client_sdk._rpc import Rpc
from node.genesis import dev_validator_key
from rxledger.core.crypto import encode_signature, keccak256, private_key_to_address, sign_hash
from rxledger.core.types.headers import (
    QbftExtra,
    block_hash,
    decode_extra,
    decode_header,
    encode_extra,
    encode_header,
    seal_hash,
)
from rxledger.core.wire import header_from_rpc

PRESCRIBER = 1  # an enrolled account: may anchor
DEPLOYER = 9  # enrolled in no organisation: may not
DEV_VALIDATOR = private_key_to_address(dev_validator_key())
N_RECORDS = 10_000


def _records(n: int, tag: bytes) -> list[bytes]:
    return [tag + b"/record/" + i.to_bytes(4, "big") for i in range(n)]


@pytest.fixture(scope="module")
def anchored(dev_node: DevNode) -> tuple[list[bytes], list[AnchorReceipt]]:
    records = _records(N_RECORDS, os.urandom(8))
    with Anchorer(dev_node.url, account(PRESCRIBER).private_key, batch_size=N_RECORDS) as anchorer:
        receipts = anchorer.submit(records)
    return records, receipts


@pytest.fixture(scope="module")
def dev_trust() -> Trust:
    return Trust.from_validators([DEV_VALIDATOR], chain_id=CHAIN_ID)


def _headers(url: str, first: int, last: int) -> list[Any]:
    with Rpc(url) as rpc:
        return [header_from_rpc(rpc.request("eth_getBlockByNumber", hex(n), False))
                for n in range(first, last + 1)]


def test_ten_thousand_records_in_one_submit_all_verify_offline(
    anchored: tuple[list[bytes], list[AnchorReceipt]], dev_trust: Trust, dev_node: DevNode,
) -> None:
    records, receipts = anchored
    assert len(receipts) == N_RECORDS
    assert [r.leaf_index for r in receipts] == list(range(N_RECORDS))
    assert {r.tree_size for r in receipts} == {N_RECORDS}
    assert len({r.root for r in receipts}) == 1
    assert verify_receipts(receipts, dev_trust, records=records) == [None] * N_RECORDS
    # The receipts survive JSON, and the anchoring is on the ledger.
    again = [AnchorReceipt.from_json(r.to_json()) for r in receipts[::97]]
    assert verify_receipts(again, Trust.from_validators([DEV_VALIDATOR], chain_id=CHAIN_ID)) == [None] * len(again)
    root = "0x" + receipts[0].root.hex()
    logs = dev_node.result("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest",
                                            "address": "0x0000000000000000000000000000000000001003",
                                            "topics": [None, root]}])
    assert [int(log["blockNumber"], 16) for log in logs] == [receipts[0].block_number]
    # A record that is not the receipt's.
    with pytest.raises(VerificationFailed, match="does not match the receipt"):
        verify_receipt(receipts[0], dev_trust, record=records[1])


def test_trust_from_genesis_and_headers(
    anchored: tuple[list[bytes], list[AnchorReceipt]], dev_node: DevNode,
) -> None:
    _, receipts = anchored
    height = receipts[0].block_number
    genesis, *since = _headers(dev_node.url, 0, height)
    health = dev_node.health()
    trust = Trust.from_headers(genesis, since, chain_id=CHAIN_ID,
                               genesis_hash=bytes.fromhex(health["genesisHash"][2:]))
    assert trust.height == height
    assert trust.validators_at(height) == (DEV_VALIDATOR,)
    assert verify_receipts(receipts, trust) == [None] * len(receipts)
    # Walked only to the block before: the next block's set is known from its commitment.
    short = Trust.from_headers(genesis, since[:-1], chain_id=CHAIN_ID)
    verify_receipt(receipts[5], short)
    # A wrong genesis hash is refused up front; a chain that skips a block too.
    with pytest.raises(VerificationFailed, match="genesis hash"):
        Trust.from_headers(genesis, since, genesis_hash=b"\x11" * 32)
    if len(since) >= 2:
        with pytest.raises(VerificationFailed, match="expected block 1"):
            Trust.from_headers(genesis, since[1:])


def test_trust_from_network_json_and_fail_closed(
    anchored: tuple[list[bytes], list[AnchorReceipt]], dev_node: DevNode, tmp_path: Path,
) -> None:
    _, receipts = anchored
    network = _network_json(dev_node, tmp_path)
    verify_receipt(receipts[0], Trust.from_network_json(network))
    stranger = private_key_to_address(keccak256(b"stranger"))
    cases = [
        (Trust.from_validators([stranger], chain_id=CHAIN_ID), "lists 1 validators other than"),
        (Trust.from_validators([DEV_VALIDATOR], chain_id=CHAIN_ID + 1), "the trust for chain 2025"),
        (Trust.from_validators([DEV_VALIDATOR], from_height=receipts[0].block_number + 1),
         "the trust holds validators from block"),
    ]
    for trust, reason in cases:
        with pytest.raises(VerificationFailed, match=reason):
            verify_receipt(receipts[0], trust)
    no_registry = Trust.from_network_json(network)
    no_registry.registries = set()
    with pytest.raises(VerificationFailed, match="not an AnchorRegistry the trust accepts"):
        verify_receipt(receipts[0], no_registry)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"chainId": CHAIN_ID, "nodes": [{"validator": None}]}))
    with pytest.raises(VerificationFailed, match="names no validator"):
        Trust.from_network_json(bad)


def _flip(value: str, byte: int, bit: int = 0) -> str:
    raw = bytearray(bytes.fromhex(value[2:]))
    raw[byte] ^= 1 << bit
    return "0x" + raw.hex()


def _mutants(receipt: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The receipt with one bit flipped: in every integer field, and in every byte of every
    byte-string field and of every element of every list field."""
    out = []
    for name, value in receipt.items():
        if isinstance(value, int):
            for bit in (0, 5):
                out.append((f"{name} bit {bit}", {**receipt, name: value ^ (1 << bit)}))
        elif isinstance(value, str):
            for i in range(len(value) // 2 - 1):
                out.append((f"{name} byte {i}", {**receipt, name: _flip(value, i, i % 8)}))
        else:
            assert isinstance(value, list) and value, name
            for k, item in enumerate(value):
                for i in range(len(item) // 2 - 1):
                    changed = list(value)
                    changed[k] = _flip(item, i, i % 8)
                    out.append((f"{name}[{k}] byte {i}", {**receipt, name: changed}))
    return out


def test_a_flipped_bit_in_any_field_fails_with_a_reason(
    anchored: tuple[list[bytes], list[AnchorReceipt]], dev_trust: Trust,
) -> None:
    _, receipts = anchored
    original = receipts[1234].to_dict()
    verify_receipt(AnchorReceipt.from_dict(original), dev_trust)
    mutants = _mutants(original)
    assert {m.split()[0].split("[")[0] for m, _ in mutants} == set(original)  # every field
    accepted = []
    for what, mutant in mutants:
        try:
            verify_receipt(AnchorReceipt.from_dict(mutant), dev_trust)
        except VerificationFailed as exc:
            assert exc.reason, what
        else:
            accepted.append(what)
    assert not accepted, f"accepted with a flipped bit: {accepted[:10]}"
    # Removing a field or giving it the wrong type names the field.
    for name in original:
        with pytest.raises(VerificationFailed, match=f"'{name}'"):
            AnchorReceipt.from_dict({k: v for k, v in original.items() if k != name})
    with pytest.raises(VerificationFailed, match="'leafIndex'"):
        AnchorReceipt.from_dict({**original, "leafIndex": "3"})
    with pytest.raises(VerificationFailed, match="'auditPath\\[0\\]'"):
        AnchorReceipt.from_dict({**original, "auditPath": ["0x12"] + original["auditPath"][1:]})
    with pytest.raises(VerificationFailed, match="not JSON"):
        AnchorReceipt.from_json("{")


# -- forged seals -------------------------------------------------------------------------
FORGERS = [keccak256(b"forger %d" % i) for i in range(5)]


def _forge(receipt: AnchorReceipt, validators: list[bytes], signers: list[bytes]) -> AnchorReceipt:
    """The receipt with its block re-sealed: the header names `validators` and carries
    one commit seal by each of `signers` (private keys)."""
    header = decode_header(receipt.anchor.header)
    extra = decode_extra(header.extra_data)
    unsealed = replace(header, extra_data=encode_extra(
        QbftExtra(extra.vanity, tuple(sorted(validators)), None, extra.round, ())))
    digest = seal_hash(unsealed)
    seals = tuple(encode_signature(*sign_hash(digest, key)) for key in signers)
    sealed = replace(unsealed, extra_data=encode_extra(replace(decode_extra(unsealed.extra_data), seals=seals)))
    anchor = replace(receipt.anchor, header=encode_header(sealed), block_hash=block_hash(sealed))
    return replace(receipt, anchor=anchor)


def test_too_few_or_unknown_seals_fail(
    anchored: tuple[list[bytes], list[AnchorReceipt]], dev_trust: Trust,
) -> None:
    _, receipts = anchored
    receipt = receipts[7]
    four = [private_key_to_address(k) for k in FORGERS[:4]]
    trust4 = Trust.from_validators(four, chain_id=CHAIN_ID)
    # Three of four seal it: a quorum of the trusted set (the trust is what decides).
    verify_receipt(_forge(receipt, four, FORGERS[:3]), trust4)
    cases = [
        (_forge(receipt, four, FORGERS[:1]), trust4, "1 valid seals, 3 required"),
        (_forge(receipt, four, FORGERS[:2]), trust4, "2 valid seals, 3 required"),
        (_forge(receipt, four, []), trust4, "0 valid seals, 3 required"),
        (_forge(receipt, four, [FORGERS[0], FORGERS[1], FORGERS[4]]), trust4, "which is not a validator"),
        (_forge(receipt, four, [FORGERS[0], FORGERS[1], FORGERS[1]]), trust4, "duplicate seal"),
        # Against the dev chain's real validator: a forged set is not the trusted one, and
        # the validator's name in the header does not make a stranger's seal its own.
        (_forge(receipt, four, FORGERS[:4]), dev_trust, "validators other than"),
        (_forge(receipt, [DEV_VALIDATOR], [FORGERS[0]]), dev_trust, "which is not a validator"),
        # Seals over the original header by the four, presented to the dev trust.
        (_forge(receipt, [DEV_VALIDATOR], []), dev_trust, "0 valid seals, 1 required"),
    ]
    for forged, trust, reason in cases:
        with pytest.raises(VerificationFailed, match=reason):
            verify_receipt(forged, trust)
        # And the same through JSON (what a verifier receives).
        with pytest.raises(VerificationFailed, match=reason):
            verify_receipt(AnchorReceipt.from_json(forged.to_json()), trust)


def test_refusals(dev_node: DevNode, anchored: tuple[list[bytes], list[AnchorReceipt]]) -> None:
    records, _ = anchored
    with Anchorer(dev_node.url, account(DEPLOYER).private_key) as anchorer:
        with pytest.raises(Refused, match="not enrolled"):
            anchorer.submit([b"a record"])
    with Anchorer(dev_node.url, account(PRESCRIBER).private_key, batch_size=N_RECORDS) as anchorer:
        with pytest.raises(Refused, match="already anchored"):
            anchorer.submit(records)  # the same batch, the same root
        assert anchorer.submit([]) == []


def test_async_anchorer(dev_node: DevNode, dev_trust: Trust) -> None:
    records = _records(1000, os.urandom(8))
    events: list[tuple[str, int, int | None]] = []

    async def main() -> list[AnchorReceipt]:
        async with AsyncAnchorer(dev_node.url, account(PRESCRIBER).private_key, batch_size=300) as anchorer:
            return await anchorer.submit(records, progress=lambda *e: events.append(e))

    receipts = asyncio.run(main())
    assert [r.tree_size for r in receipts] == [300] * 900 + [100] * 100
    assert events[:4] == [("sent", i, 4) for i in range(1, 5)]
    assert events[4:] == [("final", i, 4) for i in range(1, 5)]
    assert verify_receipts(receipts, dev_trust, records=records) == [None] * 1000
    assert receipts[301].record_hash == hashlib.sha256(records[301]).digest()
    assert leaf_hash(receipts[0].record_hash) != receipts[0].record_hash


# -- the command line ---------------------------------------------------------------------
def _network_json(dev_node: DevNode, tmp_path: Path) -> Path:
    """A network.json-shaped trust file for the dev chain."""
    genesis = dev_node.result("eth_getBlockByNumber", ["0x0", False])["hash"]
    path = tmp_path / "network.json"
    path.write_text(json.dumps({
        "chainId": CHAIN_ID, "genesisHash": genesis,
        "nodes": [{"name": "dev", "org": "dev", "kind": "hospital", "rpc": dev_node.url,
                   "validator": "0x" + DEV_VALIDATOR.hex()},
                  {"name": "observer", "validator": None}],
    }))
    return path


def _cli() -> list[str]:
    """The `rxledger` command line, as an installed console script runs it."""
    return [sys.executable, "-m", "rxledger"]


def test_cli_submit_then_verify(dev_node: DevNode, tmp_path: Path) -> None:
    cli = _cli()
    files = []
    for i in range(7):
        path = tmp_path / "docs" / f"lab-{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(16) + b" lab report %d" % i)
        files.append(path)
    receipts_dir = tmp_path / "receipts"
    key = account(PRESCRIBER).private_key.hex()

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, "anchor", *map(str, args)], capture_output=True, text=True, timeout=60)

    done = run("submit", *files, "--receipts", receipts_dir, "--rpc", dev_node.url, "--key", key,
               "--batch-size", "3", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["anchored"] == 7 and [b["size"] for b in summary["batches"]] == [3, 3, 1]
    receipts = [receipts_dir / f"lab-{i}.txt.receipt.json" for i in range(7)]
    assert all(p.exists() for p in receipts)

    trust = _network_json(dev_node, tmp_path)
    ok = run("verify", *receipts, "--trust", trust)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("VALID ") == 7
    with_files = run("verify", receipts[0], receipts[6], "--trust", trust, "--file", files[0], "--file", files[6])
    assert with_files.returncode == 0, with_files.stdout
    wrong_file = run("verify", receipts[0], "--trust", trust, "--file", files[1], "--json")
    assert wrong_file.returncode == 1
    result = json.loads(wrong_file.stdout)
    assert not result["valid"] and "does not match the receipt" in result["receipts"][0]["reason"]

    # A tampered receipt: exit 1, the failure named, the others still valid.
    tampered = tmp_path / "tampered.receipt.json"
    obj = json.loads(receipts[2].read_text())
    obj["treeSize"] = 4
    tampered.write_text(json.dumps(obj))
    bad = run("verify", receipts[1], tampered, "--trust", trust)
    assert bad.returncode == 1
    assert "VALID    " + str(receipts[1]) in bad.stdout
    assert f"INVALID  {tampered}: " in bad.stdout
    # Bad arguments: exit 2 with one line.
    for args in (("verify", receipts[0], "--trust", tmp_path / "missing.json"),
                 ("verify", receipts[0], receipts[1], "--trust", trust, "--file", files[0]),
                 ("verify", receipts[0]),
                 ("submit", files[0], "--receipts", receipts_dir, "--rpc", dev_node.url),
                 ("submit", files[0], "--receipts", receipts_dir, "--key", "12"),
                 ("submit", files[0], "--receipts", receipts_dir, "--key", key, "--batch-size", "0")):
        bad_args = run(*args)
        assert bad_args.returncode == 2, (args, bad_args.stdout, bad_args.stderr)
        assert len(bad_args.stderr.strip().splitlines()) == 1, bad_args.stderr
    # The same files again: their batches are anchored already.
    again = run("submit", *files[:3], "--receipts", tmp_path / "again", "--rpc", dev_node.url,
                "--key", key, "--batch-size", "3")
    assert again.returncode == 1 and "already anchored" in again.stderr
