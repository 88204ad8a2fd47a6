"""What the benchmarks share: their JSON-RPC client, starting, waiting for and stopping a
dev node or the 4-node network, following blocks, receipts, the machine's load and CPU,
and printing a result.

Only public entry points of our packages: the `rxledger` console command (a dev node is
`rxledger node start --dev`), `network.init.init_network`, `network.launcher.up`, `down`
and `running_nodes`, and `rxledger.core`. The benchmarks import this module as `common`
(their own directory is on `sys.path` when they run as scripts).

    with DevNode(args.url, prefix="rxledger-tps-") as node:   # starts one unless a URL
        rpc = Rpc(node.url)
        ...
    net = init_net(tmp / "net", pick_base_port(), ConsensusSettings(...))
    thread = start_net(net, timeout=120.0); thread.join(130.0); record_pids(net)
    ...
    stop_net(net)
"""

from __future__ import annotations

import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

LOOKAHEAD = 16  # blocks asked for in one batch per poll
RECEIPT_BATCH = 16  # blocks per `eth_getBlockReceipts` batch
MAX_NONCE_GAP = 64  # per-account nonces in flight: the old pool's window, kept so figures compare (the pool now holds 16+ pending and 256 gapped per account: PoolLimits)


# -- the machine ---------------------------------------------------------------------------
def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def process_cpu_seconds(pid: int) -> float | None:
    """utime+stime of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cpu_delta(a: dict[str, float | None], b: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (round(b[k] - a[k], 2) if a.get(k) is not None and b.get(k) is not None else None)  # type: ignore[operator]
            for k in b}


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine spent busy (from /proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


class Busy:
    """How many cores the rest of the machine used while we measured: the machine's busy
    CPU time minus our nodes' and this process's, over the wall time."""

    def __init__(self) -> None:
        self.t0, self.machine0, self.me0 = time.perf_counter(), machine_busy_s(), time.process_time()

    def others_cores(self, nodes_cpu_s: float) -> float:
        wall = time.perf_counter() - self.t0
        me = time.process_time() - self.me0
        return round((machine_busy_s() - self.machine0 - nodes_cpu_s - me) / wall, 2)


CpuProbe = Callable[[], dict[str, float | None]]  # node name -> CPU seconds so far


class Measured:
    """The measured part of a run: the load average before and after, the nodes' CPU
    seconds (from `cpu`) and the cores the rest of the machine used meanwhile."""

    def __init__(self, cpu: CpuProbe) -> None:
        self._cpu = cpu
        self.loadavg_before, self.cpu_before = loadavg(), cpu()
        self.busy = Busy()

    def end(self) -> dict[str, Any]:
        cpu1, la1 = self._cpu(), loadavg()
        node_cpu = cpu_delta(self.cpu_before, cpu1)
        return {"node_cpu_s": node_cpu,
                "other_processes_cores": self.busy.others_cores(sum(v for v in node_cpu.values() if v)),
                "loadavg_before": self.loadavg_before, "loadavg_after": la1}


def record_failure(run: Any, message: str) -> None:
    """Keep the first failure of a run (its `failed`, guarded by its `lock`, a
    `threading.Condition`) and wake every thread waiting on the lock."""
    with run.lock:
        run.failed = run.failed or message
        run.lock.notify_all()


def wait_quiet(max_wait: float, cores: float, window: float = 10.0) -> dict[str, Any]:
    """Wait (at most `max_wait` s) until the rest of the machine has used less than `cores`
    CPU cores for `window` seconds in a row; returns what was waited and seen."""
    t0 = time.perf_counter()
    quiet_since = None
    while True:
        b0, w0 = machine_busy_s(), time.perf_counter()
        time.sleep(1.0)
        last = (machine_busy_s() - b0) / (time.perf_counter() - w0)
        now = time.perf_counter()
        if last < cores:
            quiet_since = quiet_since or now - 1.0
            if now - quiet_since >= window:
                return {"waited_s": round(now - t0, 1), "quiet": True, "busy_cores_last_s": round(last, 2)}
        else:
            quiet_since = None
        if now - t0 >= max_wait:
            return {"waited_s": round(now - t0, 1), "quiet": False, "busy_cores_last_s": round(last, 2)}


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def source_root() -> Path:
    """The source tree whose `node` this process imports (the nodes run it)."""
    import node

    return Path(node.__file__).resolve().parent.parent


def source_label(root: Path) -> str:
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if commit:
            return f"{root} (git {commit}{', with uncommitted changes' if dirty else ''})"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{root} (not a git checkout)"


def emit(result: dict[str, Any], as_json: bool, report: Callable[[dict[str, Any]], None]) -> None:
    """One JSON object (`--json`), else the benchmark's own report."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        report(result)


# -- JSON-RPC ------------------------------------------------------------------------------
class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


class Rpc:
    """JSON-RPC over one keep-alive `http.client` connection.

    Not httpx: its per-request Python cost (about 0.3 ms here) made the load generator,
    with eight sender threads sharing one interpreter, the bottleneck of a run. One
    `send` per request (http.client joins headers and a bytes body), TCP_NODELAY, orjson.
    """

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = url
        self.path = parts.path or "/"
        self._host, self._port, self._timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self._conn: http.client.HTTPConnection | None = None
        self._id = 0

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            if self._conn is None:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
                conn.connect()
                assert conn.sock is not None
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._conn = conn
            try:
                self._conn.request(method, path, body, headers)
                response = self._conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()  # the server closed an idle keep-alive connection: once more
                if attempt:
                    raise
                continue
            except BaseException:
                self.close()
                raise
            return response.status, data
        raise AssertionError("unreachable")

    def _post(self, payload: object) -> Any:
        status, data = self._request("POST", self.path, orjson.dumps(payload))
        if status != 200:
            raise RuntimeError(f"HTTP {status} from {self.url}: {data[:200]!r}")
        return orjson.loads(data)

    def call(self, method: str, *params: object) -> Any:
        self._id += 1
        body = self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)})
        if "error" in body:
            raise RpcError(body["error"])
        return body["result"]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        payload = []
        for method, params in calls:
            self._id += 1
            payload.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        answers = self._post(payload)
        by_id = {a.get("id"): a for a in answers}
        return [by_id.get(p["id"], {"error": {"code": 0, "message": "no answer"}}) for p in payload]

    def health_status(self) -> tuple[int, Any] | None:
        """`GET /health`: (HTTP status, its JSON), or None if the node does not answer."""
        try:
            status, data = self._request("GET", self.path.rstrip("/") + "/health", None)
            return status, orjson.loads(data)
        except (OSError, http.client.HTTPException, orjson.JSONDecodeError):
            return None

    def health(self) -> dict[str, Any] | None:
        """The `/health` JSON whatever its HTTP status (503 while not ready), or None."""
        answer = self.health_status()
        return answer[1] if answer is not None and isinstance(answer[1], dict) else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def send_raw(rpc: Rpc, raws: Sequence[str]) -> list[dict[str, Any]]:
    """`eth_sendRawTransaction` of `raws` in one request (a batch if more than one): one
    answer each, `{"result": hash}` or `{"error": {...}}`."""
    if len(raws) == 1:
        try:
            return [{"result": rpc.call("eth_sendRawTransaction", raws[0])}]
        except RpcError as exc:
            return [{"error": exc.error}]
    return rpc.batch([("eth_sendRawTransaction", [raw]) for raw in raws])


def receipt_statuses(rpc: Rpc, numbers: Sequence[int]) -> dict[str, int]:
    """Transaction hash -> receipt status of every transaction in blocks `numbers`
    (`eth_getBlockReceipts`, batches of 16 blocks)."""
    out: dict[str, int] = {}
    for i in range(0, len(numbers), RECEIPT_BATCH):
        for answer in rpc.batch([("eth_getBlockReceipts", [hex(m)]) for m in numbers[i:i + RECEIPT_BATCH]]):
            for r in answer.get("result") or []:
                out[r["transactionHash"]] = int(r["status"], 16)
    return out


def wait_receipts(rpc: Rpc, hashes: Sequence[str], what: str, timeout: float = 120.0) -> list[dict[str, Any]]:
    """The receipts of `hashes` once all exist (`eth_getTransactionReceipt`, batches of
    100, every 50 ms), in their order; `what` names them if `timeout` passes first."""
    got: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(hashes):
        missing = [h for h in hashes if h not in got][:100]
        for h, answer in zip(missing, rpc.batch([("eth_getTransactionReceipt", [h]) for h in missing]),
                             strict=True):
            if answer.get("result"):
                got[h] = answer["result"]
        if len(got) < len(hashes):
            if time.monotonic() > deadline:
                raise SystemExit(f"{len(hashes) - len(got)} {what} not final in {timeout:.0f}s")
            time.sleep(0.05)
    return [got[h] for h in hashes]


def head_number(url: str) -> int:
    rpc = Rpc(url)
    try:
        return int(rpc.call("eth_blockNumber"), 16)
    finally:
        rpc.close()


def decode_round(extra_hex: str) -> int | None:
    """The QBFT round of a block, from its header's extraData (None if unreadable)."""
    from rxledger.core.types.headers import decode_extra

    try:
        return decode_extra(bytes.fromhex(extra_hex[2:])).round
    except Exception:  # noqa: BLE001 - informative only
        return None


# -- following blocks ----------------------------------------------------------------------
def follow_blocks(url: str, first_block: int, interval: float, stop: threading.Event,
                  on_block: Callable[[int, dict[str, Any], float], None],
                  after_pass: Callable[[int], bool] | None = None) -> None:
    """Hand each block from `first_block` on to `on_block(number, block, seen)` in order,
    `seen` the moment its answer arrived: one JSON-RPC batch of `eth_getBlockByNumber(n,
    false)` for the next 16 blocks per poll (one HTTP round trip however many are new),
    again at once when it found a block, else after `interval` seconds. Returns when
    `stop` is set or `after_pass(new blocks of this poll)` answers true; raises what the
    node or the connection raises."""
    rpc = Rpc(url)
    n = first_block
    try:
        while not stop.is_set():
            answers = rpc.batch([("eth_getBlockByNumber", [hex(m), False]) for m in range(n, n + LOOKAHEAD)])
            seen = time.perf_counter()
            new = 0
            for answer in answers:
                if "error" in answer:
                    raise RpcError(answer["error"])
                block = answer["result"]
                if block is None:
                    break
                on_block(n, block, seen)
                n += 1
                new += 1
            if after_pass is not None and after_pass(new):
                return
            if not new:
                stop.wait(interval)
    finally:
        rpc.close()


def follow_run(run: Any, url: str, first_block: int, interval: float, total: int,
               on_block: Callable[[int, dict[str, Any], float], None]) -> None:
    """The poller of a load run (its `lock`, `failed`, `done`, `finals`): `follow_blocks`
    until `total` transactions are final or, a poll finding nothing new, the run has
    failed; then, or on its own failure (recorded as the run's), it sets `run.done`."""
    def after_pass(new: int) -> bool:
        if run.finals >= total or (not new and run.failed):
            run.done.set()
            return True
        return False

    try:
        follow_blocks(url, first_block, interval, run.done, on_block, after_pass)
    except Exception as exc:  # noqa: BLE001 - reported
        record_failure(run, f"poller: {exc!r}")
        run.done.set()


def mark_final(run: Any, by_hash: dict[str, Any], block: dict[str, Any], number: int, seen: float,
               on_final: Callable[[Any], None]) -> int:
    """Under `run.lock`: each transaction of `block` that `by_hash` holds is final (its
    `final_at` = `seen`, its `block` = `number`, `on_final(tx)`, `run.finals` + 1); wakes the
    lock's waiters; returns how many of the block's transactions were ours."""
    ours = 0
    with run.lock:
        for h in block["transactions"]:
            t = by_hash.get(h)
            if t is None:
                continue
            ours += 1
            t.final_at, t.block = seen, number
            on_final(t)
            run.finals += 1
        run.lock.notify_all()
    return ours


# -- ports ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ports_free(base: int, count: int) -> bool:
    from network.init import node_ports

    for i in range(count):
        for port in node_ports(base, i):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    return False
    return True


def pick_base_port(count: int = 4) -> int:
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000)
        if ports_free(base, count):
            return base
    raise SystemExit("no free port range found")


# -- a dev node ----------------------------------------------------------------------------
def rxledger_command() -> list[str]:
    """The `rxledger` console command of this interpreter (its venv's script), or the same
    entry (`rxledger.cli.main`) run by this interpreter."""
    script = Path(sys.executable).parent / "rxledger"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from rxledger.cli import main; sys.exit(main(sys.argv[1:]))"]


# `--patch-tcp-nodelay` (bench/devchain_tps.py): run the CLI with its TCP sockets created as
# IPPROTO_TCP. asyncio sets TCP_NODELAY on accepted connections only when the listening
# socket's proto is IPPROTO_TCP; a socket made with proto 0 meets Nagle + delayed ACK
# (~40 ms a request: uvicorn's h11 protocol writes headers and body separately). The node
# has made its RPC socket so since; the patch stays a diagnostic for older commits.
_NODELAY_PATCH = """
import socket, sys
class _TcpSocket(socket.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and proto in (-1, 0) and type in (-1, socket.SOCK_STREAM) \\
                and family in (-1, socket.AF_INET, socket.AF_INET6):
            proto = socket.IPPROTO_TCP
        super().__init__(family, type, proto, fileno)
socket.socket = _TcpSocket
from rxledger.cli import main
sys.exit(main(sys.argv[1:]))
"""


def py_spy_record(path: str, gil: bool, rate: int) -> list[str]:
    """`py-spy record` writing `path` (a flamegraph if .svg, raw collapsed stacks for
    bench/pyspy_summary.py if .txt, else speedscope JSON); append `--pid N` or `-- cmd`."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    fmt = {".svg": "flamegraph", ".txt": "raw"}.get(Path(path).suffix, "speedscope")
    return [spy, "record", "--threads", "--rate", str(rate), "--format", fmt, "-o", path,
            *(["--gil"] if gil else [])]


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 60.0) -> None:
    """Until `GET /health` answers 200 (the node exiting first, or `timeout`, ends the run)."""
    rpc = Rpc(url, timeout=1.0)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"the node exited with {proc.returncode} before becoming healthy")
            answer = rpc.health_status()
            if answer is not None and answer[0] == 200:
                return
            rpc.close()
            time.sleep(0.1)
    finally:
        rpc.close()
    raise SystemExit(f"the node at {url} did not become healthy in {timeout:.0f}s")


class DevNode:
    """`rxledger node start --dev` on a free loopback port with a temporary LevelDB data
    dir (its log in node.log beside it), healthy when entered, stopped (SIGINT to its
    process group: uvicorn stops cleanly and py-spy, if any, writes its profile; SIGKILL
    after 60 s) and its directory removed (unless `keep`) when left; or, given `url`, a
    running node, neither started nor stopped."""

    def __init__(self, url: str | None = None, *, prefix: str = "rxledger-bench-", keep: bool = False,
                 py_spy: str | None = None, py_spy_gil: bool = False, patch_nodelay: bool = False) -> None:
        self.url = url
        self.prefix, self.keep = prefix, keep
        self.py_spy, self.py_spy_gil, self.patch_nodelay = py_spy, py_spy_gil, patch_nodelay
        self.tmp: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def started(self) -> bool:
        return self.proc is not None

    def __enter__(self) -> DevNode:
        if self.url is None:
            self.tmp = Path(tempfile.mkdtemp(prefix=self.prefix))
            port = free_port()
            self.url = f"http://127.0.0.1:{port}/"
            cmd = [sys.executable, "-c", _NODELAY_PATCH] if self.patch_nodelay else rxledger_command()
            cmd += ["node", "start", "--dev", "--data-dir", str(self.tmp / "data"), "--rpc-port", str(port),
                    "--log-level", "warning"]
            if self.py_spy:
                cmd = [*py_spy_record(self.py_spy, self.py_spy_gil, rate=200), "--", *cmd]
            with open(self.tmp / "node.log", "wb") as log:
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        try:
            wait_healthy(self.url, self.proc)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def node_pid(self) -> int | None:
        """The node process's id (under py-spy, py-spy's child), None for a running node."""
        if self.proc is None:
            return None
        if not self.py_spy:
            return self.proc.pid
        try:
            return int(subprocess.check_output(["pgrep", "-P", str(self.proc.pid)]).split()[0])
        except (subprocess.CalledProcessError, IndexError, ValueError):
            return None

    def close(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=60)
            except ProcessLookupError:
                self.proc.wait()
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
        if self.tmp is not None and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


# -- the 4-node network --------------------------------------------------------------------
@dataclass
class Net:
    dir: Path
    info: Any
    urls: list[str]
    names: list[str]
    pids: dict[str, int] = field(default_factory=dict)
    up_s: float | None = None
    first_final_s: float | None = None
    first_final_node: str | None = None
    all_rpc_s: float | None = None
    up_error: str | None = None


def init_net(net_dir: Path, base_port: int, settings: Any) -> Net:
    """`rxledger network init` of a 4-validator network in `net_dir` with `settings`
    (a `network.config.ConsensusSettings`)."""
    from network.init import init_network

    info = init_network(net_dir, base_port=base_port, consensus=settings, force=True)
    validators = [n for n in info.nodes if n.is_validator]
    return Net(net_dir, info, [n.rpc.rstrip("/") + "/" for n in validators], [n.name for n in validators])


def start_net(net: Net, timeout: float, watch: bool = True, node_log_level: str | None = None) -> threading.Thread:
    """Call `up(detach=True)` in a thread (its `watcher` attribute: a thread timing the
    first final block seen by any node, polling every `/health` every 20 ms); the nodes
    run in this process's working directory (`os.chdir(source_root())` first)."""
    from network.launcher import up

    t0 = time.perf_counter()
    done = threading.Event()

    def run_up() -> None:
        try:
            command = None
            if node_log_level:
                command = [*rxledger_command(), "node", "start", "--log-level", node_log_level]
            up(net.dir, detach=True, init_if_missing=False, timeout=timeout, out=io.StringIO(),
               node_command=command)
            net.up_s = time.perf_counter() - t0
        except BaseException as exc:  # noqa: BLE001 - reported
            net.up_error = f"{type(exc).__name__}: {exc}"
        finally:
            done.set()

    def watcher() -> None:
        rpcs = [Rpc(u, timeout=2.0) for u in net.urls]
        answered: set[int] = set()
        try:
            while True:
                last_pass = done.is_set()
                for i, rpc in enumerate(rpcs):
                    h = rpc.health()
                    if h is None:
                        continue
                    answered.add(i)
                    if len(answered) == len(rpcs) and net.all_rpc_s is None:
                        net.all_rpc_s = time.perf_counter() - t0
                    if net.first_final_s is None and isinstance(h.get("head"), int) and h["head"] >= 1:
                        net.first_final_s = time.perf_counter() - t0
                        net.first_final_node = net.names[i]
                if net.first_final_s is not None or last_pass:
                    return
                time.sleep(0.02)
        finally:
            for r in rpcs:
                r.close()

    t = threading.Thread(target=run_up, daemon=True)
    w = threading.Thread(target=watcher, daemon=True)
    t.start()
    if watch:
        w.start()
    t.watcher = w  # type: ignore[attr-defined]
    return t


def record_pids(net: Net) -> None:
    from network.launcher import running_nodes

    for n in running_nodes(net.dir):
        net.pids[n.name] = n.pid


def stop_net(net: Net) -> None:
    from network.launcher import down

    try:
        down(net.dir, out=io.StringIO())
    except Exception as exc:  # noqa: BLE001
        print(f"warning: down failed: {exc}", file=sys.stderr)


def cpu_of(net: Net) -> dict[str, float | None]:
    return {name: process_cpu_seconds(pid) for name, pid in net.pids.items()}


def heads_identical(net: Net, attempts: int = 10) -> dict[str, Any]:
    """The four nodes' /health head and headHash: identical? (retried while a block lands)."""
    rpcs = [Rpc(u, timeout=5.0) for u in net.urls]
    try:
        last: list[Any] = []
        for _ in range(attempts):
            last = [r.health() for r in rpcs]
            heads = {(h or {}).get("head") for h in last}
            hashes = {(h or {}).get("headHash") for h in last}
            if None not in heads and len(heads) == 1 and len(hashes) == 1:
                return {"identical": True, "head": last[0]["head"], "headHash": last[0]["headHash"]}
            time.sleep(0.3)
        out: dict[str, Any] = {"identical": False, "heads": {n: ((h or {}).get("head"), (h or {}).get("headHash"))
                                                             for n, h in zip(net.names, last, strict=True)}}
        numbers = [h["head"] for h in last if h and isinstance(h.get("head"), int)]
        if numbers:  # the chains may still agree below the newest head
            m = min(numbers)
            hashes_at = [(r.call("eth_getBlockByNumber", hex(m), False) or {}).get("hash") for r in rpcs]
            out["at_common_height"] = {"number": m, "identical": len(set(hashes_at)) == 1}
        return out
    finally:
        for r in rpcs:
            r.close()


def accounts_of(net: Net) -> list[tuple[bytes, bytes]]:
    """(address, private key) of network.json "accounts" that have a key (the dev accounts)."""
    raw = json.loads((net.dir / "network.json").read_text())
    out = []
    for a in raw["accounts"]:
        if a.get("privateKey"):
            out.append((bytes.fromhex(a["address"][2:]), bytes.fromhex(a["privateKey"].removeprefix("0x"))))
    return out


@dataclass
class RoutedTx:
    """A presigned transaction sent to one node of the network (its receiving node)."""

    index: int
    account: int
    nonce: int
    node: int
    raw: str
    hash: str
    sent_at: float = 0.0
    answered_at: float = 0.0
    final_at: float = 0.0  # seen in a block by the poller of its receiving node
    seen_any: float = 0.0  # seen in a block by any node's poller
    block: int = -1
    status: int | None = None
    error: str | None = None


class Observer:
    """One poller per node (`follow_blocks`); marks transactions final when their
    receiving node shows them."""

    def __init__(self, urls: list[str], first_block: int, interval: float) -> None:
        self.urls = urls
        self.interval = interval
        self.first_block = first_block
        self.cond = threading.Condition()
        self.txs: dict[str, RoutedTx] = {}
        self.blocks: list[dict[int, dict[str, Any]]] = [{} for _ in urls]  # per node: number -> block
        self.finals = 0
        self.failed: str | None = None
        self.on_final: Callable[[RoutedTx], None] | None = None  # called under `cond` with each newly final tx
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll, args=(i,), daemon=True) for i in range(len(urls))]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def watch(self, txs: list[RoutedTx]) -> None:
        with self.cond:
            for t in txs:
                self.txs[t.hash] = t

    def _poll(self, i: int) -> None:
        def on_block(n: int, block: dict[str, Any], seen: float) -> None:
            with self.cond:
                ours = 0
                for h in block["transactions"]:
                    t = self.txs.get(h)
                    if t is None:
                        continue
                    ours += 1
                    if not t.seen_any:
                        t.seen_any = seen
                    if t.node == i and not t.final_at:
                        t.final_at, t.block = seen, n
                        self.finals += 1
                        if self.on_final is not None:
                            self.on_final(t)
                self.blocks[i][n] = {"number": n, "hash": block["hash"], "seen": seen,
                                     "txs": len(block["transactions"]), "ours": ours,
                                     "miner": block["miner"], "round": decode_round(block["extraData"]),
                                     "timestamp": int(block["timestamp"], 16)}
                self.cond.notify_all()

        try:
            follow_blocks(self.urls[i], self.first_block, self.interval, self._stop, on_block)
        except Exception as exc:  # noqa: BLE001 - reported
            with self.cond:
                self.failed = self.failed or f"poller {i}: {exc!r}"
                self.cond.notify_all()

    def compare_chains(self) -> dict[str, Any]:
        """Block hashes the pollers saw: equal at every height all four saw?"""
        common = set.intersection(*(set(b) for b in self.blocks)) if self.blocks else set()
        bad = [m for m in sorted(common) if len({b[m]["hash"] for b in self.blocks}) != 1]
        spreads = sorted(max(b[m]["seen"] for b in self.blocks) - min(b[m]["seen"] for b in self.blocks)
                         for m in common)
        return {"heights_compared": len(common), "mismatched_heights": bad[:10],
                "identical": not bad and bool(common),
                "seen_spread_across_nodes_s": {"p50": round(percentile(spreads, 50), 3),
                                               "max": round(spreads[-1], 3) if spreads else None}}


def check_receipts(net: Net, txs: list[RoutedTx]) -> None:
    """Each transaction's receipt status from its receiving node (batched per block)."""
    for i, url in enumerate(net.urls):
        rpc = Rpc(url)
        try:
            statuses = receipt_statuses(rpc, sorted({t.block for t in txs if t.node == i and t.block >= 0}))
        finally:
            rpc.close()
        for t in txs:
            if t.node == i and t.hash in statuses:
                t.status = statuses[t.hash]
