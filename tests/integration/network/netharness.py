"""A real local consortium for acceptance tests: `network init`, `up --detach`, `down`.

`launch_network(dir, …)` initialises a consortium in `dir` on a random free base port
with small QBFT timings, brings it up detached (measuring the time from `up` to the
first final block) and returns a `Net`. `Net` talks to the nodes over JSON-RPC and
`GET /health`, sends transactions signed with the development accounts, perturbs nodes
(SIGKILL / SIGTERM by pid, `rxledger node start --config` as a subprocess it manages,
output appended to `nodes/<name>/node.log`) and always cleans up: `Net.shutdown()` runs
`down`, stops the nodes it restarted, and SIGKILLs any process of the network still
alive.

`launch_fault_network(dir, …)` (the fault runner's networks, netmanifest.py) starts the
nodes itself instead of `up`: every peer link goes through a loopback proxy
(netproxy.py) the test can cut, and the nodes a manifest steers run through nodewrap.py
(clock skew, Byzantine modes), each with a control file `set_control` writes.

Every wait polls (`wait_until`), never sleeps blindly. Figures worth keeping (for the
benchmark) go to `record(...)`; conftest prints them at the end of the run.

This module has a distinctive name (not `helpers`) because tests/ directories have no
`__init__.py` and pytest's default import mode puts them on `sys.path`.
"""

from __future__ import annotations

import io
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from eth_account import Account

from network._proc import is_alive, load_pids
from network.config import ConsensusSettings
from network.errors import LauncherError
from network.init import DEFAULT_ORGS, P2P_PORT_OFFSET, init_network
from network.launcher import down, up
from network.layout import NetworkInfo, NodeInfo, load_network, node_paths
from rxledger.core.types import decode_header, encode_header
from rxledger.core.types.headers import Header, decode_extra, recover_seal_signers
from rxledger.core.wire import header_from_rpc

T = TypeVar("T")

# Small timings: a round times out after 1 s, doubling to a 4 s cap. Block timestamps are
# whole seconds, so the block period is too (test_net_tx_propagation.py shows why).
FAST_CONSENSUS = ConsensusSettings(block_period=1.0, empty_block_period=1.0,
                                   round_timeout=1.0, max_round_timeout=4.0)
READY_TIMEOUT = 60.0  # `up` on a loaded two-core machine
NODE_START_TIMEOUT = 30.0
FINAL_TIMEOUT = 30.0

# Development accounts by index (INTERFACES.md): all enrolled; 9 is the deployer.
DEPLOYER = 9

MEASUREMENTS: list[tuple[str, str]] = []


def record(what: str, value: str) -> None:
    """Keep a measured figure for the end-of-run summary (and print it now, for -s)."""
    MEASUREMENTS.append((what, value))
    print(f"[measured] {what}: {value}", flush=True)


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.1) -> T:
    """Poll `predicate` until it returns something truthy (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def capped_round_timeouts(settings: ConsensusSettings, rounds: int) -> float:
    """Seconds that `rounds` consecutive QBFT rounds take to time out from round 0."""
    return sum(min(settings.round_timeout * (1 << r), settings.max_round_timeout) for r in range(rounds))


# -- ports --------------------------------------------------------------------------------

def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_base_port(node_count: int, rng: random.Random | None = None) -> int:
    """A base port whose RPC and p2p ports (network.init's layout) are all free now."""
    rng = rng or random.Random()
    for _ in range(200):
        # RPC ports below the ephemeral range; p2p ports land at base + 21758.
        base = rng.randrange(12000, 32000 - node_count)
        ports = [base + i for i in range(node_count + 2)]
        ports += [base + P2P_PORT_OFFSET + i for i in range(node_count + 2)]  # room for add-node
        if all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free base port found")


# -- headers from JSON-RPC ----------------------------------------------------------------

def header_of(block: dict[str, Any]) -> Header:
    """A header rebuilt from RPC fields, checked against the block hash the node gave."""
    header = header_from_rpc(block)
    assert decode_header(encode_header(header)) == header
    return header


def hex_address(address: bytes) -> str:
    return "0x" + address.hex()


# -- the network --------------------------------------------------------------------------

@dataclass
class Managed:
    """A node process this harness started itself (`rxledger node start --config`)."""

    name: str
    process: subprocess.Popen[bytes]
    config: str


@dataclass
class Net:
    dir: Path
    consensus: ConsensusSettings
    up_seconds: float
    info: NetworkInfo
    managed: dict[str, Managed] = field(default_factory=dict)
    seen_pids: dict[int, str] = field(default_factory=dict)  # pid -> config, for the final sweep
    nonces: dict[int, int] = field(default_factory=dict)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(trust_env=False, timeout=10.0))
    _ids: int = 0
    last_sent: dict[str, str] = field(default_factory=dict)  # tx hash -> node it was sent to
    # Fault runs (launch_fault_network): the command line that starts each node (default
    # `rxledger`; the nodewrap.py wrapper for a node a test steers), its control file, and
    # the per-link TCP proxy between the peers.
    commands: dict[str, list[str]] = field(default_factory=dict)
    controls: dict[str, Path] = field(default_factory=dict)
    proxy: Any = None

    # -- nodes ---------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read network.json (after `network add-node`)."""
        self.info = load_network(self.dir)

    def node(self, name: str) -> NodeInfo:
        return self.info.node(name)

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.info.nodes]

    @property
    def validator_names(self) -> list[str]:
        return [n.name for n in self.info.nodes if n.is_validator]

    def address(self, name: str) -> str:
        return hex_address(self.node(name).address)

    def name_of(self, address: str | bytes) -> str:
        raw = address if isinstance(address, bytes) else bytes.fromhex(address[2:])
        for n in self.info.nodes:
            if n.address == raw:
                return n.name
        return hex_address(raw)

    def log_path(self, name: str) -> Path:
        return node_paths(self.dir, name).log

    def log_text(self, name: str) -> str:
        try:
            return self.log_path(name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pid(self, name: str) -> int | None:
        """The pid of the node's live process (one we restarted, or the one `up` started)."""
        managed = self.managed.get(name)
        if managed is not None:
            return managed.process.pid if managed.process.poll() is None else None
        for rec in load_pids(self.dir) or []:
            if rec.name == name and is_alive(rec.pid, rec.config):
                self.seen_pids[rec.pid] = rec.config
                return rec.pid
        return None

    def is_running(self, name: str) -> bool:
        return self.pid(name) is not None

    def signal(self, name: str, sig: signal.Signals) -> int:
        """Send `sig` to the node's process; returns the pid. Fails if it does not run."""
        pid = self.pid(name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, sig)
        return pid

    def kill(self, name: str) -> None:
        """SIGKILL the node and wait until it is gone."""
        pid = self.signal(name, signal.SIGKILL)
        self._wait_dead(name, pid, 10.0)

    def stop(self, name: str, timeout: float = 15.0) -> None:
        """SIGTERM the node and wait until it has exited (SIGKILL if it does not)."""
        pid = self.signal(name, signal.SIGTERM)
        try:
            self._wait_dead(name, pid, timeout)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            self._wait_dead(name, pid, 10.0)
            raise AssertionError(f"{name} did not exit within {timeout:g} s of SIGTERM") from None

    def _wait_dead(self, name: str, pid: int, timeout: float) -> None:
        config = str(self.node(name).config)
        managed = self.managed.get(name)

        def gone() -> bool:
            if managed is not None and managed.process.pid == pid:
                return managed.process.poll() is not None
            return not is_alive(pid, config)

        wait_until(gone, timeout, f"{name} (pid {pid}) to exit", interval=0.02)

    def start(self, name: str, wait: bool = True) -> Managed:
        """`rxledger node start --config <node.toml>` as our subprocess, output appended to
        its node.log; waits until it answers /health (unless `wait` is false)."""
        assert not self.is_running(name), f"{name} is already running"
        node = self.node(name)
        rxledger = Path(sys.executable).parent / "rxledger"
        command = self.commands.get(name) or (
            [str(rxledger)] if rxledger.exists() else [sys.executable, "-m", "rxledger"])
        log = self.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            f.write(f"--- test harness: starting {name} at {time.strftime('%H:%M:%S')} ---\n".encode())
            process = subprocess.Popen(
                [*command, "node", "start", "--config", str(node.config)],
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        managed = Managed(name, process, str(node.config))
        self.managed[name] = managed
        self.seen_pids[process.pid] = str(node.config)
        if wait:
            self.wait_serving(name)
        return managed

    def wait_serving(self, name: str, timeout: float = NODE_START_TIMEOUT) -> dict[str, Any]:
        def answer() -> dict[str, Any] | None:
            managed = self.managed.get(name)
            if managed is not None and managed.process.poll() is not None:
                raise AssertionError(f"{name} exited with code {managed.process.returncode}:\n"
                                     + "\n".join(self.log_text(name).splitlines()[-30:]))
            return self.health(name)

        return wait_until(answer, timeout, f"{name} to answer /health")

    # -- RPC -----------------------------------------------------------------------------
    def health(self, name: str) -> dict[str, Any] | None:
        try:
            data = self.client.get(self.node(name).rpc + "/health", timeout=2.0).json()
        except (httpx.HTTPError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def rpc(self, name: str, method: str, params: Sequence[Any] = ()) -> dict[str, Any]:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        answer: dict[str, Any] = self.client.post(self.node(name).rpc, json=body).json()
        return answer

    def call(self, name: str, method: str, params: Sequence[Any] = ()) -> Any:
        answer = self.rpc(name, method, params)
        assert "error" not in answer, f"{name}: {method}{list(params)} answered {answer['error']}"
        return answer["result"]

    def head(self, name: str) -> int:
        return int(self.call(name, "eth_blockNumber"), 16)

    def block(self, name: str, number: int) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.call(name, "eth_getBlockByNumber", [hex(number), False])
        return result

    def block_hash(self, name: str, number: int) -> str | None:
        block = self.block(name, number)
        return None if block is None else str(block["hash"])

    def header(self, name: str, number: int) -> Header:
        block = self.block(name, number)
        assert block is not None, f"{name} has no block {number}"
        return header_of(block)

    def seal_signers(self, name: str, number: int) -> list[str]:
        return [hex_address(a) for a in recover_seal_signers(self.header(name, number))]

    def validators(self, name: str, block: str = "latest") -> list[str]:
        return list(self.call(name, "qbft_getValidatorsByBlockNumber", [block]))

    # -- transactions --------------------------------------------------------------------
    def send_tx(self, name: str, sender: int = DEPLOYER) -> str:
        """A plain 0-value transfer signed by dev account `sender`, sent to `name`; its hash."""
        account = self.info.accounts[sender]
        assert account.private_key is not None
        if sender not in self.nonces:
            self.nonces[sender] = int(self.call(name, "eth_getTransactionCount",
                                                [hex_address(account.address), "latest"]), 16)
        nonce = self.nonces[sender]
        signed = Account.sign_transaction(
            {"nonce": nonce, "gasPrice": 0, "gas": 21_000, "value": 0, "chainId": self.info.chain_id,
             "to": "0x" + (b"\x42" * 20).hex()},
            account.private_key,
        )
        tx_hash = self.call(name, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
        self.nonces[sender] = nonce + 1
        return str(tx_hash)

    def confirm_transactions(self, via: Sequence[str], on: Sequence[str],
                             timeout: float = FINAL_TIMEOUT,
                             senders: Sequence[int] = (DEPLOYER, *range(0, DEPLOYER))) -> dict[str, dict[str, Any]]:
        """Send one transaction to each node of `via` (from the dev accounts `senders` in
        turn) and wait until every one is final on every node of `on`, with the same receipt
        and the same block hash everywhere. Returns tx hash -> receipt."""
        sent = {self.send_tx(name, senders[i % len(senders)]): name for i, name in enumerate(via)}
        self.last_sent = dict(sent)
        out: dict[str, dict[str, Any]] = {}
        for tx_hash, sent_to in sent.items():
            receipts = self.wait_final_on(on, tx_hash, timeout)
            first = receipts[on[0]]
            for name, receipt in receipts.items():
                assert receipt == first, (f"{tx_hash} (sent to {sent_to}): receipt on {name} differs "
                                          f"from {on[0]}:\n{receipt}\n{first}")
            number = int(first["blockNumber"], 16)
            for name in on:
                assert self.block_hash(name, number) == first["blockHash"], (
                    f"block {number} on {name} is not {first['blockHash']} (the receipts' block)")
            out[tx_hash] = first
        return out

    def receipt(self, name: str, tx_hash: str) -> dict[str, Any] | None:
        answer = self.rpc(name, "eth_getTransactionReceipt", [tx_hash])
        result: dict[str, Any] | None = answer.get("result")
        return result

    def wait_final_on(self, names: Iterable[str], tx_hash: str,
                      timeout: float = FINAL_TIMEOUT) -> dict[str, dict[str, Any]]:
        """Wait until `tx_hash` has a receipt on every node of `names`; their receipts."""
        names = list(names)
        got: dict[str, dict[str, Any]] = {}

        def all_final() -> bool:
            for name in names:
                if name not in got:
                    receipt = self.receipt(name, tx_hash)
                    if receipt is not None:
                        got[name] = receipt
            return len(got) == len(names)

        try:
            wait_until(all_final, timeout, f"{tx_hash} final on {', '.join(n for n in names if n not in got)}",
                       interval=0.05)
        except AssertionError as exc:
            sent_to = self.last_sent.get(tx_hash, "?")
            raise AssertionError(f"{exc}; sent to {sent_to}; {self.describe_tx(tx_hash)}") from None
        return got

    def describe_tx(self, tx_hash: str) -> str:
        """Where a transaction is: per node, final / waiting in its pool / unknown."""
        parts = []
        for node in self.info.nodes:
            try:
                if self.receipt(node.name, tx_hash) is not None:
                    state = "final"
                else:
                    known = self.rpc(node.name, "eth_getTransactionByHash", [tx_hash]).get("result")
                    status = self.health(node.name) or {}
                    state = ("pending" if known else "unknown") + f" (pool {status.get('txpool')}, " \
                        f"head {status.get('head')}, peers {len(status.get('peers') or [])})"
            except httpx.HTTPError:
                state = "no answer"
            parts.append(f"{node.name}: {state}")
        return "; ".join(parts)

    # -- chains --------------------------------------------------------------------------
    def heads(self, names: Iterable[str]) -> dict[str, int]:
        return {name: self.head(name) for name in names}

    def wait_head(self, names: Iterable[str], at_least: int, timeout: float = FINAL_TIMEOUT) -> None:
        names = list(names)
        wait_until(lambda: all(self.head(n) >= at_least for n in names), timeout,
                   f"head ≥ {at_least} on {', '.join(names)}")

    def chain_hashes(self, name: str, upto: int) -> list[str]:
        return [str(self.block_hash(name, n)) for n in range(upto + 1)]

    def assert_same_chain(self, names: Sequence[str], upto: int | None = None) -> int:
        """Every node of `names` has the same block hash at every height ≤ `upto` (default:
        their lowest head); returns that height."""
        if upto is None:
            upto = min(self.heads(names).values())
        reference = self.chain_hashes(names[0], upto)
        for name in names[1:]:
            other = self.chain_hashes(name, upto)
            for number, (a, b) in enumerate(zip(reference, other, strict=True)):
                assert a == b, f"fork at block {number}: {names[0]} has {a}, {name} has {b}"
        return upto

    # -- teardown ------------------------------------------------------------------------
    def shutdown(self) -> None:
        """`down`, stop what we started, SIGKILL any straggler we ever saw. Never raises."""
        for rec in load_pids(self.dir) or []:
            self.seen_pids[rec.pid] = rec.config
        try:
            down(self.dir, out=io.StringIO())
        except Exception as exc:  # keep cleaning
            print(f"rxledger down failed: {exc}", file=sys.stderr)
        for managed in self.managed.values():
            if managed.process.poll() is None:
                managed.process.send_signal(signal.SIGTERM)
        for managed in self.managed.values():
            try:
                managed.process.wait(10)
            except subprocess.TimeoutExpired:
                managed.process.kill()
                managed.process.wait(5)
        for pid, config in self.seen_pids.items():
            if is_alive(pid, config):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        if self.proxy is not None:
            self.proxy.close()
        self.client.close()


def launch_network(out_dir: Path, *, consensus: ConsensusSettings = FAST_CONSENSUS,
                   orgs: str = DEFAULT_ORGS, observers: Sequence[str] = (), attempts: int = 3) -> Net:
    """Init a consortium in `out_dir` on a free base port and `up --detach` it.

    Retries on another port if one was taken between the check and `up`. The seconds
    from `up` to the first final block on every node go to `Net.up_seconds`.
    """
    node_count = len(orgs.split(",")) + len(observers)
    last: Exception | None = None
    for _ in range(attempts):
        base = pick_base_port(node_count)
        init_network(out_dir, orgs_spec=orgs, base_port=base, observers=list(observers),
                     consensus=consensus, force=True, deploy=False)
        started = time.monotonic()
        try:
            up(out_dir, detach=True, timeout=READY_TIMEOUT, out=io.StringIO())
        except LauncherError as exc:
            last = exc
            down(out_dir, out=io.StringIO())
            if "is in use" in str(exc):
                continue
            raise
        elapsed = time.monotonic() - started
        net = Net(out_dir, consensus, elapsed, load_network(out_dir))
        for rec in load_pids(out_dir) or []:
            net.seen_pids[rec.pid] = rec.config
        return net
    raise AssertionError(f"could not bring a network up on a free port: {last}")


NODEWRAP = Path(__file__).resolve().parent / "nodewrap.py"


def launch_fault_network(out_dir: Path, *, consensus: ConsensusSettings = FAST_CONSENSUS,
                         orgs: str = DEFAULT_ORGS, wrapped: Sequence[str] = (),
                         controls: dict[str, dict[str, Any]] | None = None, attempts: int = 3) -> Net:
    """Init a consortium whose peers reach each other through a `LinkProxy` (one loopback
    port per directed link, so links can be cut), and start every node as our subprocess:
    `rxledger node start --config`, or through nodewrap.py for the nodes in `wrapped`
    (steered by a control file in the node's directory, initially `controls[name]`).
    Waits until a first block is final on every node (its time goes to `up_seconds`)."""
    import json

    from netproxy import LinkProxy

    node_count = len(orgs.split(","))
    last: Exception | None = None
    for _ in range(attempts):
        base = pick_base_port(node_count)
        init_network(out_dir, orgs_spec=orgs, base_port=base, consensus=consensus, force=True, deploy=False)
        net = Net(out_dir, consensus, 0.0, load_network(out_dir))
        net.proxy = proxy = LinkProxy()
        proxy.install(net.info)
        for name in wrapped:
            control = node_paths(out_dir, name).log.parent / "control.json"
            control.write_text(json.dumps((controls or {}).get(name, {})))
            net.controls[name] = control
            net.commands[name] = [sys.executable, str(NODEWRAP), "--control", str(control), "--"]
        started = time.monotonic()
        try:
            for name in net.names:
                net.start(name, wait=False)
            for name in net.names:
                net.wait_serving(name)
        except AssertionError as exc:
            net.shutdown()
            last = exc
            if "in use" in "".join(net.log_text(n) for n in net.names):
                continue
            raise
        first = max(net.heads(net.names).values()) + 1
        try:
            net.wait_head(net.names, first, READY_TIMEOUT)
        except AssertionError:
            net.shutdown()
            raise
        net.up_seconds = time.monotonic() - started
        return net
    raise AssertionError(f"could not start a network on a free port: {last}")


def set_control(net: Net, name: str, **values: Any) -> None:
    """Change what the wrapped node `name` does (nodewrap.py re-reads the file)."""
    import json

    control = net.controls[name]
    data = json.loads(control.read_text())
    data.update(values)
    tmp = control.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, control)


def extra_validators(header: Header) -> list[str]:
    return [hex_address(v) for v in decode_extra(header.extra_data).validators]
