"""network/cli.py mounted on a parser like rxledger.cli's: exit codes and one-line errors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

import pytest
from network_helpers import free_base_port

from network.cli import add_commands


class _Parser(argparse.ArgumentParser):  # as rxledger.cli's: one line, exit 2
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"rxledger: error: {message} (see --help)\n")
        sys.exit(2)


def run(*argv: str) -> int:
    parser = _Parser(prog="rxledger")
    add_commands(parser.add_subparsers(dest="command", required=True, parser_class=_Parser), _Parser)
    args = parser.parse_args(argv)
    return int(args.handler(args))


@pytest.mark.parametrize(("argv", "message"), [
    (["network", "init", "--orgs", "a:clinic"], "kind 'clinic' of 'a' is not one of"),
    (["network", "init", "--orgs", ""], "--orgs is empty"),
    (["network", "init", "--base-port", "70000"], "port must be between 1 and 65535"),
    (["network", "init", "--admin", "hospital-a"], "expected KEY=VALUE"),
    (["network", "add-node", "--org", "x"], "the following arguments are required: --name"),
    (["up", "--timeout", "0"], "must be greater than 0"),
])
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(*argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_init_add_node_deploy_and_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "net"
    assert run("network", "init", "--out", str(out), "--base-port", str(free_base_port()),
               "--observers", "1", "--no-dev-keys", "--admin", "hospital-a=0x" + "12" * 20) == 0
    text = capsys.readouterr().out
    assert "observer-1" in text and "rxledger up --dir" in text and "no private keys" in text
    assert "privateKey" not in (out / "network.json").read_text()

    assert run("network", "init", "--out", str(out)) == 1
    assert "already holds a network" in capsys.readouterr().err
    assert run("network", "init", "--out", str(tmp_path / "x"), "--observers", "nowhere") == 2
    assert "no organisation 'nowhere'" in capsys.readouterr().err

    assert run("network", "add-node", "--dir", str(out), "--org", "pharmacy-a", "--name", "pharmacy-a-2") == 0
    assert "qbft_proposeValidatorVote" in capsys.readouterr().out
    assert json.loads((out / "network.json").read_text())["nodes"][-1]["name"] == "pharmacy-a-2"
    assert run("network", "add-node", "--dir", str(out), "--org", "pharmacy-a", "--name", "pharmacy-a-2") == 1
    assert "already exists" in capsys.readouterr().err

    assert run("network", "deploy", "--dir", str(out), "--host", "hospital-a=ha.example.org") == 0
    assert 'host = "ha.example.org"' in (out / "deploy" / "hospital-b" / "node.toml").read_text()

    assert run("down", "--dir", str(out)) == 0
    assert "no network is running" in capsys.readouterr().out
