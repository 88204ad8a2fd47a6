"""`up` / `down` with real processes: the fake node (fake_node.py) serves /health.

The real node command is exercised by the integration tests once it exists; these check
the launcher's own contract: detach, pids.json, readiness, refusal to start twice, a
node dying during start, stopping (SIGTERM, then SIGKILL), Ctrl-C in the foreground.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from network_helpers import FAKE_NODE, free_base_port

from network import launcher
from network._proc import is_alive, load_pids
from network.errors import AlreadyRunning, LauncherError, NodeDied
from network.init import init_network
from network.launcher import down, up
from network.layout import NetworkInfo, load_network, pids_path

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def net(tmp_path: Path) -> Iterator[NetworkInfo]:
    info = init_network(tmp_path / "net", base_port=free_base_port(), deploy=False)
    yield info
    down(info.dir, out=io.StringIO())  # never leave a process behind


def pids(info: NetworkInfo) -> dict[str, int]:
    return {n.name: n.pid for n in load_pids(info.dir) or []}


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not is_alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_up_detached_then_down(net: NetworkInfo) -> None:
    out = io.StringIO()
    urls = up(net.dir, detach=True, node_command=FAKE_NODE, timeout=20, out=out)
    assert urls == [n.rpc for n in net.nodes]
    text = out.getvalue()
    for node in net.nodes:
        assert node.rpc in text and node.name in text
    assert "rxledger down --dir" in text
    running = pids(net)
    assert set(running) == {n.name for n in net.nodes}
    record = json.loads(pids_path(net.dir).read_text())
    assert record["detached"] is True
    assert all(is_alive(pid) for pid in running.values())
    for node in net.nodes:
        assert httpx.get(node.rpc + "/health", timeout=2, trust_env=False).json()["head"] == 1
        assert "fake node" in (node.config.parent / "node.log").read_text()

    with pytest.raises(AlreadyRunning, match="already running.*`rxledger down` first"):
        up(net.dir, detach=True, node_command=FAKE_NODE, out=io.StringIO())
    assert pids(net) == running  # the refused `up` touched nothing

    out = io.StringIO()
    assert sorted(down(net.dir, out=out)) == sorted(running)
    assert not pids_path(net.dir).exists()
    assert all(wait_gone(pid) for pid in running.values())
    for node in net.nodes:
        assert "stopped cleanly" in (node.config.parent / "node.log").read_text()
    assert down(net.dir, out=io.StringIO()) == []  # nothing to stop is not an error


def test_down_tolerates_dead_pids_and_a_stale_record(net: NetworkInfo) -> None:
    up(net.dir, detach=True, node_command=FAKE_NODE, timeout=20, out=io.StringIO())
    running = pids(net)
    victim = running["pharmacy-a"]
    os.killpg(victim, signal.SIGKILL)
    assert wait_gone(victim)
    stopped = down(net.dir, out=io.StringIO())
    assert sorted(stopped) == sorted(set(running) - {"pharmacy-a"})
    # A record whose processes are all gone is stale: `up` starts anew.
    up(net.dir, detach=True, node_command=FAKE_NODE, timeout=20, out=io.StringIO())
    for pid in pids(net).values():
        os.killpg(pid, signal.SIGKILL)
        assert wait_gone(pid)
    up(net.dir, detach=True, node_command=FAKE_NODE, timeout=20, out=io.StringIO())
    assert len(down(net.dir, out=io.StringIO())) == 4


def test_a_recorded_pid_of_another_program_is_never_signalled(net: NetworkInfo) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pids_path(net.dir).parent.mkdir(parents=True, exist_ok=True)
        pids_path(net.dir).write_text(json.dumps({"nodes": [
            {"name": "hospital-a", "pid": other.pid, "config": str(net.nodes[0].config)}]}))
        assert down(net.dir, out=io.StringIO()) == []
        assert other.poll() is None  # still running: its command line is not our node's
    finally:
        other.kill()
        other.wait()


def test_a_node_that_dies_during_start_is_reported_and_the_rest_stopped(
        net: NetworkInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NODE_DIE", "pharmacy-a")
    with pytest.raises(NodeDied) as info:
        up(net.dir, detach=True, node_command=FAKE_NODE, timeout=20, out=io.StringIO())
    err = info.value
    assert err.name == "pharmacy-a" and err.returncode == 3
    assert "fatal: cannot open the database of pharmacy-a" in str(err)
    assert "node pharmacy-a exited with code 3 during start" in str(err)
    assert not pids_path(net.dir).exists()
    for node in net.nodes:  # the others were stopped, their ports are free again
        with pytest.raises(httpx.HTTPError):
            httpx.get(node.rpc + "/health", timeout=0.5, trust_env=False)


def test_not_ready_in_time_names_the_waiting_nodes(net: NetworkInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NODE_NOT_READY", "regulator")
    with pytest.raises(LauncherError, match=r"not ready after 1\.5 s(.|\n)*regulator: head 0") as info:
        up(net.dir, detach=True, node_command=FAKE_NODE, timeout=1.5, out=io.StringIO())
    assert "hospital-a: head 1" in str(info.value)
    assert not pids_path(net.dir).exists()


def test_a_node_of_another_genesis_is_refused(net: NetworkInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NODE_GENESIS", "0x" + "11" * 32)
    with pytest.raises(LauncherError, match="runs genesis 0x1111.*data dir from another network"):
        up(net.dir, detach=True, node_command=FAKE_NODE, timeout=20, out=io.StringIO())


def test_a_busy_port_is_reported_before_starting(net: NetworkInfo) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", net.nodes[1].rpc_port))
        busy.listen()
        with pytest.raises(LauncherError, match=f"hospital-b: its RPC port 127.0.0.1:{net.nodes[1].rpc_port} is in use"):
            up(net.dir, detach=True, node_command=FAKE_NODE, out=io.StringIO())
    assert not pids_path(net.dir).exists()


def test_a_node_ignoring_sigterm_is_killed(net: NetworkInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NODE_IGNORE_TERM", "hospital-b")
    monkeypatch.setattr(launcher, "STOP_TIMEOUT", 1.0)
    up(net.dir, detach=True, node_command=FAKE_NODE, timeout=20, out=io.StringIO())
    stubborn = pids(net)["hospital-b"]
    out = io.StringIO()
    assert len(down(net.dir, out=out)) == 4
    assert "hospital-b: killed" in out.getvalue()
    assert wait_gone(stubborn)


def test_up_without_a_network_initialises_one_or_refuses(tmp_path: Path) -> None:
    with pytest.raises(LauncherError, match="no network in .*network init"):
        up(tmp_path / "none", init_if_missing=False, node_command=FAKE_NODE, out=io.StringIO())
    target = tmp_path / "fresh"
    base = free_base_port()
    try:
        up(target, base_port=base, detach=True, node_command=FAKE_NODE, timeout=20, out=io.StringIO())
        info = load_network(target)
        assert [n.rpc_port for n in info.nodes] == [base, base + 1, base + 2, base + 3]
    finally:
        down(target, out=io.StringIO())


def test_foreground_up_stops_every_node_on_ctrl_c(net: NetworkInfo) -> None:
    script = (
        "import sys; from network.launcher import up; "
        f"up({str(net.dir)!r}, node_command={FAKE_NODE!r}, timeout=20)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops the network" in line:
                break
        else:
            pytest.fail("up never became ready:\n" + "".join(lines))
        running = pids(net)
        assert len(running) == 4 and json.loads(pids_path(net.dir).read_text())["detached"] is False
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + rest
    assert "network stopped" in rest
    assert all(wait_gone(pid) for pid in running.values())
    assert not pids_path(net.dir).exists()
    for node in net.nodes:
        assert "stopped cleanly" in (node.config.parent / "node.log").read_text()
