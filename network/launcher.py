"""`rxledger up` / `rxledger down`: a local consortium as one process per node.

`up` starts every node of a network directory with `rxledger node start --config`
(each in its own session, so a Ctrl-C reaches the launcher only and the launcher stops
the nodes in order), output to `nodes/<name>/node.log`, pids in `run/pids.json`. It is
ready when every node answers `GET /health`, runs the genesis of network.json, and all
report the same head hash at a height ≥ 1 (a block was final). In the foreground it then
waits for Ctrl-C or SIGTERM and stops the nodes (SIGTERM, up to 10 s, then SIGKILL);
with `detach` it returns and `down` stops them later from pids.json.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import httpx

from network._proc import (
    RunningNode,
    is_alive,
    load_pids,
    remove_pids,
    save_pids,
    stop_nodes,
)
from network.errors import AlreadyRunning, LauncherError, NodeDied
from network.init import DEFAULT_BASE_PORT, DEFAULT_NET_DIR, init_network
from network.layout import NETWORK_JSON, NetworkInfo, NodeInfo, load_network, node_paths, pids_path

DEFAULT_NODE_COMMAND: tuple[str, ...] = (sys.executable, "-m", "rxledger", "node", "start")
LOG_TAIL_LINES = 25
STOP_TIMEOUT = 10.0


@dataclass
class _Started:
    node: NodeInfo
    process: subprocess.Popen[bytes]
    log: Path
    log_offset: int  # where this run's output starts in the (appended) log


def _tail(path: Path, offset: int, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _check_ports(info: NetworkInfo) -> None:
    for node in info.nodes:
        for what, host, port in (("RPC", node.rpc_host, node.rpc_port), ("p2p", node.p2p_host, node.p2p_port)):
            if _port_in_use(host, port):
                raise LauncherError(
                    f"cannot start {node.name}: its {what} port {host}:{port} is in use (another "
                    "node or network? `rxledger down`, or init a network with another --base-port)")


def running_nodes(net_dir: str | os.PathLike[str]) -> list[RunningNode]:
    """The nodes of `net_dir` that pids.json records and that still run."""
    return [n for n in (load_pids(Path(net_dir).expanduser().absolute()) or []) if is_alive(n.pid, n.config)]


def _start(info: NetworkInfo, node_command: Sequence[str]) -> list[_Started]:
    started: list[_Started] = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for node in info.nodes:
        log = node_paths(info.dir, node.name).log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            f.write(f"--- rxledger up: starting {node.name} at "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            offset = f.tell()
            try:
                process = subprocess.Popen(
                    [*node_command, "--config", str(node.config)],
                    stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                    start_new_session=True, env=env, close_fds=True,
                )
            except OSError as exc:
                _stop(started)
                raise LauncherError(f"cannot start {node.name}: {exc}") from exc
        started.append(_Started(node, process, log, offset))
    return started


def _stop(started: list[_Started]) -> dict[str, str]:
    outcome = stop_nodes([_record(s) for s in started], STOP_TIMEOUT)
    for s in started:
        s.process.poll()  # settle the Popen (stop_nodes may have reaped it already)
    return outcome


def _record(s: _Started) -> RunningNode:
    return RunningNode(s.node.name, s.process.pid, str(s.node.config), str(s.log))


def _health(client: httpx.Client, node: NodeInfo) -> dict[str, Any] | None:
    try:
        response = client.get(node.rpc + "/health", timeout=1.0)
        data = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _check_died(started: list[_Started]) -> None:
    for s in started:
        code = s.process.poll()
        if code is not None:
            raise NodeDied(s.node.name, code, _tail(s.log, s.log_offset), str(s.log))


def _wait_ready(info: NetworkInfo, started: list[_Started], timeout: float,
                stop: threading.Event) -> dict[str, dict[str, Any]] | None:
    """Poll /health until all nodes agree on a head ≥ 1 (their answers), or a stop signal
    (None); raise NodeDied or LauncherError (timeout, wrong genesis)."""
    deadline = time.monotonic() + timeout
    want_genesis = "0x" + info.genesis_hash.hex()
    last: dict[str, dict[str, Any] | None] = {}
    with httpx.Client(trust_env=False) as client:  # no proxy for loopback
        while True:
            _check_died(started)
            if stop.is_set():
                return None
            last = {s.node.name: _health(client, s.node) for s in started}
            for name, status in last.items():
                genesis = status.get("genesisHash") if status else None
                if genesis is not None and genesis != want_genesis:
                    raise LauncherError(
                        f"node {name} runs genesis {genesis}, but {info.network_json} says "
                        f"{want_genesis}: is its data dir from another network? (delete "
                        f"{info.node(name).data_dir} or init a new network)")
            if all(last.values()):
                answers = [s for s in last.values() if s is not None]
                heads = {(s.get("head"), s.get("headHash")) for s in answers}
                if len(heads) == 1 and isinstance(answers[0].get("head"), int) and answers[0]["head"] >= 1:
                    return {k: v for k, v in last.items() if v is not None}
            if time.monotonic() >= deadline:
                break
            stop.wait(0.2)
    waiting = []
    for name, status in last.items():
        if status is None:
            waiting.append(f"{name}: no answer from {info.node(name).rpc}/health")
        else:
            waiting.append(f"{name}: head {status.get('head')} {status.get('headHash')}, "
                           f"peers {_peer_count(status)}")
    raise LauncherError(f"the network was not ready after {timeout:g} s (all nodes at one head ≥ 1):\n"
                        + "\n".join("  " + w for w in waiting)
                        + f"\n  logs: {info.dir / 'nodes'}/<name>/node.log")


def _peer_count(status: dict[str, Any]) -> Any:
    peers = status.get("peers")
    return len(peers) if isinstance(peers, list) else peers if peers is not None else "?"


def _print_endpoints(info: NetworkInfo, ready: dict[str, dict[str, Any]], out: TextIO) -> None:
    first = next(iter(ready.values()))
    out.write(f"RxLedger network {info.dir}: {len(info.nodes)} nodes, chain id {info.chain_id}, "
              f"head {first.get('head')} ({first.get('headHash')})\n")
    width = max(len(n.name) for n in info.nodes)
    for node in info.nodes:
        who = f"validator 0x{node.address.hex()}" if node.is_validator else f"observer 0x{node.address.hex()}"
        out.write(f"  {node.name:<{width}}  {node.rpc:<24} p2p {node.p2p:<17} {who}\n")
    out.write(f"accounts and keys: {info.network_json}\n")
    out.flush()


def up(
    net_dir: str | os.PathLike[str] = DEFAULT_NET_DIR,
    base_port: int = DEFAULT_BASE_PORT,
    detach: bool = False,
    init_if_missing: bool = True,
    timeout: float = 60.0,
    node_command: Sequence[str] | None = None,
    out: TextIO | None = None,
) -> list[str]:
    """Start every node of `net_dir`; return their RPC URLs once the network is ready.

    Initialises the default consortium first if `net_dir` has no network.json (and
    `init_if_missing`); `base_port` only applies then. In the foreground (no `detach`)
    it then blocks until SIGINT/SIGTERM, stops the nodes cleanly and returns. Raises
    AlreadyRunning, NodeDied (name, exit code and log tail) or LauncherError; on any
    failure the nodes it started are stopped. `node_command` replaces
    `python -m rxledger node start` (it gets `--config <node.toml>` appended).
    """
    out = out or sys.stdout
    directory = Path(net_dir).expanduser().absolute()
    command = list(node_command or DEFAULT_NODE_COMMAND)
    live = running_nodes(directory)
    if live:
        raise AlreadyRunning(f"the network in {directory} is already running (nodes "
                             f"{', '.join(f'{n.name} pid {n.pid}' for n in live)}); "
                             "`rxledger down` first")
    remove_pids(directory)  # a stale record of a network that is gone
    if not (directory / NETWORK_JSON).exists():
        if not init_if_missing:
            raise LauncherError(f"no network in {directory} (no {NETWORK_JSON}); "
                                "create one with `rxledger network init`")
        info = init_network(directory, base_port=base_port)
        out.write(f"initialised a new network in {directory}\n")
    else:
        info = load_network(directory)
    _check_ports(info)

    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if not detach and threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    started: list[_Started] = []
    clean_stop = False
    try:
        started = _start(info, command)
        save_pids(directory, [_record(s) for s in started], detached=detach)
        out.write(f"started {len(started)} nodes; waiting for the first final block "
                  f"(logs: {directory / 'nodes'}/<name>/node.log)\n")
        out.flush()
        ready = _wait_ready(info, started, timeout, stop)
        urls = [s.node.rpc for s in started]
        if ready is None:  # Ctrl-C or SIGTERM while starting: stop as asked, not an error
            out.write("interrupted while starting\n")
            clean_stop = True
            return []
        _print_endpoints(info, ready, out)
        if detach:
            for s in started:  # they belong to pids.json now; outliving this object is intended
                warnings.filterwarnings("ignore", message=f"subprocess {s.process.pid} is still running",
                                        category=ResourceWarning)
            out.write(f"running in the background; stop with: rxledger down --dir {directory}\n")
            out.flush()
            return urls
        out.write("Ctrl-C stops the network\n")
        out.flush()
        _watch(started, stop, out)
        clean_stop = True
        return urls
    except BaseException:
        if started:
            _stop(started)
            remove_pids(directory)
        raise
    finally:
        if clean_stop:  # our handlers stay while stopping: a second Ctrl-C cannot cut it short
            outcome = _stop(started)
            remove_pids(directory)
            killed = [name for name, how in outcome.items() if how == "killed"]
            if killed:
                out.write(f"killed (no clean stop within {STOP_TIMEOUT:g} s): {', '.join(killed)}\n")
            out.write("network stopped\n")
            out.flush()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _watch(started: list[_Started], stop: threading.Event, out: TextIO) -> None:
    """Block until a stop signal (or until every node has exited), reporting node deaths."""
    reported: set[str] = set()
    while not stop.wait(0.5):
        for s in started:
            code = s.process.poll()
            if code is not None and s.node.name not in reported:
                reported.add(s.node.name)
                out.write(f"node {s.node.name} exited with code {code}; last lines of {s.log}:\n"
                          + "\n".join("    " + line for line in _tail(s.log, s.log_offset).splitlines())
                          + "\n")
                out.flush()
        if len(reported) == len(started):
            raise LauncherError("every node of the network has exited (see the log lines above)")
    out.write("stopping the network\n")
    out.flush()


def down(net_dir: str | os.PathLike[str] = DEFAULT_NET_DIR, out: TextIO | None = None) -> list[str]:
    """Stop the network that `up --detach` started in `net_dir` (SIGTERM, ≤ 10 s, SIGKILL).

    Tolerates nodes that already exited; removes pids.json. Returns the names of the nodes
    that were running (empty when none was: nothing to do is not an error).
    """
    out = out or sys.stdout
    directory = Path(net_dir).expanduser().absolute()
    recorded = load_pids(directory)
    if recorded is None:
        out.write(f"no network is running in {directory} (no {pids_path(directory)})\n")
        return []
    outcome = stop_nodes(recorded, STOP_TIMEOUT)
    remove_pids(directory)
    stopped = [name for name, how in outcome.items() if how != "not running"]
    for name, how in outcome.items():
        out.write(f"  {name}: {how}\n")
    out.write(f"stopped {len(stopped)} node(s) of {directory}\n" if stopped
              else f"no node of {directory} was running; removed its stale pid record\n")
    return stopped
