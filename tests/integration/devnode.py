"""Run a real `rxledger node start --dev` process for integration tests.

`start_dev_node(data_dir)` starts the node as its own process on a free port and waits
until `GET /health` answers; `DevNode.stop()` ends it (SIGTERM, then SIGKILL), and
`DevNode.kill()` SIGKILLs it at once (crash tests). Starting again on the same data dir
is `start_dev_node(node.data_dir)`.

`rpc(url, method, params)` sends one raw JSON-RPC request and returns the whole response
JSON (so tests can look at `error` as well as `result`).

This module has a distinctive name (not `helpers`) because tests/ directories have no
`__init__.py` and pytest's default import mode puts them on `sys.path`.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from node.genesis import DevAccount, dev_accounts

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CHAIN_ID = 2024

_ids = itertools.count(1)


def free_port() -> int:
    """A port nothing listens on right now (bind port 0 on 127.0.0.1, then release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class DevNode:
    """A running dev node process."""

    url: str
    data_dir: Path
    process: subprocess.Popen
    port: int
    log_path: Path
    _log_file: Any = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait, then SIGKILL if it has not ended; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._close_log()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL at once (a crash): nothing gets a chance to flush or close."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def rpc(self, method: str, params: list[Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        return rpc(self.url, method, params, **kwargs)

    def result(self, method: str, params: list[Any] | None = None) -> Any:
        return rpc_result(self.url, method, params)

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url + "health", timeout=5).json()


def start_dev_node(data_dir: Path, port: int | None = None, *,
                   timeout: float = READY_TIMEOUT, extra_args: list[str] | None = None) -> DevNode:
    """Start `rxledger node start --dev` on `data_dir` (new or existing) and wait until ready.

    Fails the test with the process output if it exits or does not answer in `timeout`.
    """
    import pytest

    data_dir = Path(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        log_path = data_dir.parent / f"{data_dir.name}-node-{chosen}-{int(time.time() * 1000)}.log"
        log_file = open(log_path, "wb")  # noqa: SIM115 - closed by DevNode.stop()/kill()
        process = subprocess.Popen(
            [sys.executable, "-m", "rxledger", "node", "start", "--dev",
             "--data-dir", str(data_dir), "--rpc-port", str(chosen), *(extra_args or [])],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        node = DevNode(f"http://127.0.0.1:{chosen}/", data_dir, process, chosen, log_path, log_file)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                out = node.output()
                node._close_log()
                if "cannot listen" in out and attempt + 1 < attempts:
                    break  # the free port was taken meanwhile: try another one
                pytest.fail(f"dev node exited with code {process.returncode} before it was ready:\n{out}")
            try:
                answer = httpx.get(node.url + "health", timeout=2)
                if answer.status_code == 200 and "head" in answer.json():
                    return node
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                node.stop()
                pytest.fail(f"dev node did not answer GET /health within {timeout}s:\n{node.output()}")
            time.sleep(0.1)
    raise AssertionError("unreachable")


def rpc(url: str, method: str, params: list[Any] | None = None, *, id: Any = None,
        timeout: float = 30.0) -> dict[str, Any]:
    """One raw JSON-RPC request; returns the full response JSON (result or error)."""
    body = {"jsonrpc": "2.0", "id": next(_ids) if id is None else id, "method": method,
            "params": [] if params is None else params}
    answer = httpx.post(url, json=body, timeout=timeout)
    return answer.json()


def rpc_result(url: str, method: str, params: list[Any] | None = None) -> Any:
    """The result of a JSON-RPC call; fails with the error object if there is one."""
    answer = rpc(url, method, params)
    assert "error" not in answer, f"{method}{params} answered an error: {answer['error']}"
    return answer["result"]


def post_raw(url: str, content: bytes | str, *, timeout: float = 30.0) -> httpx.Response:
    """POST an arbitrary body as application/json (for malformed-request tests)."""
    return httpx.post(url, content=content, headers={"content-type": "application/json"},
                      timeout=timeout)


def account(index: int) -> DevAccount:
    return dev_accounts()[index]


DEPLOYER = 9


def wait_for_receipt(url: str, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll eth_getTransactionReceipt until the transaction's block is final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = rpc_result(url, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        time.sleep(0.05)
    raise AssertionError(f"no receipt for {tx_hash} within {timeout}s")


# -- web3.py -----------------------------------------------------------------------------------
def make_web3(url: str):
    """web3.py against the node, with the proof-of-authority extraData middleware (QBFT)."""
    from web3 import Web3
    from web3.middleware import ExtraDataToPOAMiddleware

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def counter_artifact() -> dict[str, Any]:
    from rxledger.core.artifacts import load_artifact

    return load_artifact("Counter")


def sign_and_send(w3, tx: dict[str, Any], private_key: bytes, *, wait: bool = True):
    """Sign `tx` (nonce filled from the pending count if missing), send it, and wait for
    its receipt if `wait`; returns the receipt, or the hash when not waiting."""
    from eth_account import Account

    sender = Account.from_key(private_key).address
    tx = dict(tx)
    tx.setdefault("nonce", w3.eth.get_transaction_count(sender, "pending"))
    tx.setdefault("chainId", CHAIN_ID)
    signed = Account.sign_transaction(tx, private_key)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    if not wait:
        return tx_hash
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)


def deploy_counter(w3, initial: int = 5, private_key: bytes | None = None):
    """Deploy Counter(initial) from the deployer (dev account 9); returns (contract, receipt)."""
    from eth_account import Account

    key = private_key or account(DEPLOYER).private_key
    sender = Account.from_key(key).address
    artifact = counter_artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor(initial).build_transaction({
        "from": sender, "nonce": w3.eth.get_transaction_count(sender, "pending"),
        "chainId": CHAIN_ID,
    })
    receipt = sign_and_send(w3, tx, key)
    assert receipt["status"] == 1, f"Counter deployment failed: {receipt}"
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"]), receipt
