"""The console entry (rxledger/cli.py) mounts every package's public command set."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import rxledger
import rxledger.cli

COMMANDS = ["node", "network", "up", "down", "rx", "anchor"]


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def test_it_mounts_each_package_s_command_set_in_order() -> None:
    parser = rxledger.cli.build_parser()
    assert _subcommands(parser) == COMMANDS
    [node] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert _subcommands(node.choices["node"]) == ["start", "check", "status"]
    for argv in (["node", "check"], ["node", "status"], ["node", "start", "--dev"], ["up"], ["down"],
                 ["network", "init"], ["anchor", "verify", "r.json", "--trust", "network.json"]):
        assert callable(parser.parse_args(argv).handler), argv


def test_it_imports_only_public_modules() -> None:
    tree = ast.parse(Path(rxledger.cli.__file__).read_text())
    imported = {f"{n.module}.{a.name}" for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module and n.module != "__future__" for a in n.names}
    assert {"node.cli", "network.cli", "client_sdk.cli", "chaincode_py.NativeChaincodeHost"} <= imported
    assert not [m for m in imported if any(part.startswith("_") and not part.endswith("__") for part in m.split("."))]


def test_python_dash_m_rxledger_is_the_console_entry() -> None:
    result = subprocess.run([sys.executable, "-m", "rxledger", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"rxledger {rxledger.__version__}"


def test_a_missing_node_toml_exits_1_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "node.toml"
    result = subprocess.run([sys.executable, "-m", "rxledger", "node", "start", "--config", str(missing)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == f"rxledger: cannot start the node: node config {missing} does not exist"
