"""The dev chain's trust file (INTERFACES.md, "Dev chain trust file"): `rxledger node start
--dev` writes `<data dir>/network.json`, and `rxledger anchor verify --trust` checks a dev
chain's receipts against it with the node stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from devnode import CHAIN_ID, DevNode, account
from eth_utils.address import to_checksum_address

from node.genesis import DEV_ORGS, dev_accounts, dev_validator_key
from rxledger.core.crypto import private_key_to_address

PRESCRIBER = 1  # an enrolled account: may anchor
DEV_VALIDATOR = private_key_to_address(dev_validator_key())


def _rxledger(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rxledger", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_the_dev_node_writes_its_trust_file_at_start(node_factory: Callable[..., DevNode], tmp_path: Path) -> None:
    data_dir = tmp_path / "dev"
    node = node_factory(data_dir)
    trust = json.loads((data_dir / "network.json").read_text())
    assert trust["chainId"] == CHAIN_ID
    assert trust["genesisHash"] == node.result("eth_getBlockByNumber", ["0x0", False])["hash"]
    [validator] = trust["nodes"]
    assert validator["validator"] == validator["address"] == to_checksum_address(DEV_VALIDATOR)
    assert (validator["org"], validator["kind"]) == DEV_ORGS[0]
    assert validator["role"] == "validator" and validator["rpc"] == node.url.rstrip("/")
    assert validator["p2p"] is None and validator["config"] is None
    assert validator["dataDir"] == str(data_dir.resolve())
    assert trust["accounts"] == [
        {"org": a.org, "role": a.role, "address": to_checksum_address(a.address),
         "privateKey": "0x" + a.private_key.hex()} for a in dev_accounts()]
    assert not (data_dir / "network.json.tmp").exists()  # written by a rename
    # A restart on the same data dir writes it again: the same chain, its new RPC address.
    node.stop()
    (data_dir / "network.json").unlink()
    again = node_factory(data_dir)
    rewritten = json.loads((data_dir / "network.json").read_text())
    assert rewritten["nodes"][0].pop("rpc") == again.url.rstrip("/")
    del trust["nodes"][0]["rpc"]
    assert rewritten == trust


def test_anchor_verify_against_the_dev_trust_file_with_the_node_stopped(
    node_factory: Callable[..., DevNode], tmp_path: Path,
) -> None:
    data_dir = tmp_path / "dev"
    node = node_factory(data_dir)
    files = []
    for i in range(3):
        path = tmp_path / "docs" / f"report-{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(16) + b" report %d" % i)
        files.append(path)
    receipts_dir = tmp_path / "receipts"
    submitted = _rxledger("anchor", "submit", *files, "--receipts", receipts_dir, "--rpc", node.url,
                          "--key", account(PRESCRIBER).private_key.hex(), "--batch-size", "2")
    assert submitted.returncode == 0, submitted.stderr
    receipts = [receipts_dir / f"report-{i}.txt.receipt.json" for i in range(3)]

    node.stop()
    assert not node.alive()
    trust = data_dir / "network.json"
    ok = _rxledger("anchor", "verify", *receipts, "--trust", trust, "--file", files[0], "--file", files[1],
                   "--file", files[2])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("VALID ") == 3
    assert f"(trust: {trust} (1 genesis validators))" in ok.stdout

    tampered = tmp_path / "tampered.receipt.json"
    receipt = json.loads(receipts[2].read_text())
    receipt["blockNumber"] = receipt["blockNumber"] + 1
    tampered.write_text(json.dumps(receipt))
    bad = _rxledger("anchor", "verify", receipts[0], tampered, "--trust", trust)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"VALID    {receipts[0]}" in bad.stdout
    assert f"INVALID  {tampered}: " in bad.stdout
