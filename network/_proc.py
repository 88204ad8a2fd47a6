"""The record of a running local network (`<net>/run/pids.json`) and process checks.

A pid in the record is only trusted while the process still runs our node: on Linux its
command line must contain the node's config path (a pid reused by an unrelated process
is never signalled), and a zombie counts as dead.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from network.errors import LauncherError
from network.layout import pids_path


@dataclass(frozen=True)
class RunningNode:
    name: str
    pid: int
    config: str
    log: str


def save_pids(net_dir: Path, nodes: list[RunningNode], *, detached: bool) -> None:
    path = pids_path(net_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "launcher": os.getpid(),
        "detached": detached,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nodes": [{"name": n.name, "pid": n.pid, "config": n.config, "log": n.log} for n in nodes],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def load_pids(net_dir: Path) -> list[RunningNode] | None:
    """The recorded nodes, or None when there is no record."""
    path = pids_path(net_dir)
    try:
        raw = json.loads(path.read_text())
        return [RunningNode(n["name"], int(n["pid"]), n["config"], n.get("log", ""))
                for n in raw["nodes"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LauncherError(f"{path} is unreadable ({exc}); if no node of this network runs, "
                            "delete it") from exc


def remove_pids(net_dir: Path) -> None:
    pids_path(net_dir).unlink(missing_ok=True)


def is_alive(pid: int, config: str | None = None) -> bool:
    """Whether `pid` runs (and, where /proc tells, runs the node of `config`)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our exited child
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not a node we started
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if config is not None:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            return os.fsencode(config) in args
    except (OSError, IndexError):
        pass  # no /proc (macOS): trust kill(pid, 0)
    return True


def signal_node(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to the node's process group (it leads its own session), tolerating its death."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_nodes(nodes: list[RunningNode], timeout: float = 10.0) -> dict[str, str]:
    """SIGTERM every live node, wait up to `timeout` s in all, SIGKILL the rest.

    Returns name -> how it ended: "stopped", "killed" or "not running".
    """
    outcome: dict[str, str] = {}
    live = []
    for n in nodes:
        if is_alive(n.pid, n.config):
            signal_node(n.pid, signal.SIGTERM)
            live.append(n)
        else:
            outcome[n.name] = "not running"
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        still = []
        for n in live:
            if is_alive(n.pid, n.config):
                still.append(n)
            else:
                outcome[n.name] = "stopped"
        live = still
        if live:
            time.sleep(0.05)
    for n in live:
        signal_node(n.pid, signal.SIGKILL)
        outcome[n.name] = "killed"
    # Reap what we can, so no zombie outlives us.
    for n in live:
        end = time.monotonic() + 2.0
        while is_alive(n.pid, n.config) and time.monotonic() < end:
            time.sleep(0.02)
    return outcome
