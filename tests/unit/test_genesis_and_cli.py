"""Development accounts as INTERFACES.md lists them, and the CLI's argument errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from node.genesis import dev_accounts, dev_genesis

INTERFACES_TABLE = [
    ("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "hospital-a", "org admin"),
    ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "hospital-a", "prescriber"),
    ("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "hospital-a", "hospital pharmacist"),
    ("0x90F79bf6EB2c4f870365E785982E1f101E93b906", "pharmacy-a", "pharmacist"),
    ("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65", "regulator", "auditor"),
    ("0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc", "hospital-b", "prescriber"),
    ("0x976EA74026E726554dB657fA54763abd0C3a0aa9", "hospital-b", "hospital pharmacist"),
    ("0x14dC79964da2C08b23698B3D3cc7Ca32193d9955", "pharmacy-a", "org admin"),
    ("0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f", "regulator", "org admin"),
    ("0xa0Ee7A142d267C1f36714E4a8F75612F20a79720", None, None),
]


def test_dev_accounts_match_interfaces_table():
    got = [("0x" + a.address.hex(), a.org, a.role) for a in dev_accounts()]
    assert got == [(addr.lower(), org, role) for addr, org, role in INTERFACES_TABLE]


def test_dev_genesis_enrols_exactly_the_dev_accounts():
    genesis = dev_genesis()
    assert {e.address for e in genesis.enrolments} == {a.address for a in dev_accounts()}
    assert genesis.chain_id == 2024 and len(genesis.validators) == 1
    assert genesis.validators[0] not in {a.address for a in dev_accounts()}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rxledger", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: command"),
        (("node", "start"), "one of the arguments --dev --config is required"),
        (("node", "start", "--dev", "--rpc-port", "99999"), "port must be between 1 and 65535"),
        (("node", "start", "--dev", "--rpc-port", "http"), "not a port number"),
        (("node", "start", "--dev", "--empty-block-period", "-1"), "must not be negative"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.parametrize("args", [("--help",), ("node", "--help"), ("node", "start", "--help")])
def test_every_command_has_help(args):
    result = run_cli(*args)
    assert result.returncode == 0 and "usage: rxledger" in result.stdout


def test_port_in_use_exits_1_with_reason(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_cli("node", "start", "--dev", "--data-dir", str(tmp_path), "--rpc-port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_data_dir_in_use_exits_1_with_reason(tmp_path):
    import socket

    from node.storage import LevelDBStore

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = LevelDBStore(tmp_path / "chaindata")
    try:
        result = run_cli("node", "start", "--dev", "--data-dir", str(tmp_path), "--rpc-port", str(port))
    finally:
        store.close()
    assert result.returncode == 1
    assert "cannot start the node" in result.stderr and "in use by another process" in result.stderr
