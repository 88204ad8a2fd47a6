"""The dev node as a process: responsiveness, clean shutdown, data dir ownership, restart."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time

import httpx
from devnode import CHAIN_ID, DEPLOYER, account, free_port, make_web3, rpc_result, sign_and_send
from eth_utils import to_checksum_address

DEPLOYER_ACCT = account(DEPLOYER)


def test_json_rpc_round_trip_is_fast_on_a_kept_alive_connection(dev_node):
    """eth_chainId does no work: over one kept-alive HTTP connection (as web3.py and ethers
    use) a round trip must take a few milliseconds, not the ~40 ms of a Nagle / delayed-ACK
    stall (a response written in two segments on a socket without TCP_NODELAY)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    with httpx.Client(timeout=10) as client:
        for _ in range(3):
            assert client.post(dev_node.url, json=body).json()["result"] == hex(CHAIN_ID)
        timings = []
        for _ in range(25):
            start = time.perf_counter()
            client.post(dev_node.url, json=body).raise_for_status()
            timings.append(time.perf_counter() - start)
    median_ms = statistics.median(timings) * 1000
    assert median_ms < 20, (
        f"median JSON-RPC round trip {median_ms:.1f} ms on a kept-alive connection "
        f"(min {min(timings) * 1000:.1f} ms): responses are delayed, see TCP_NODELAY")


def _make_some_blocks(node, n: int = 3) -> None:
    w3 = make_web3(node.url)
    to = to_checksum_address(account(1).address)
    for _ in range(n):
        sign_and_send(w3, {"to": to, "value": 0, "gas": 21_000, "gasPrice": 0}, DEPLOYER_ACCT.private_key)


def test_sigterm_shuts_down_cleanly_and_restart_keeps_the_chain(node_factory, tmp_path):
    data_dir = tmp_path / "chain"
    node = node_factory(data_dir)
    _make_some_blocks(node)
    head = rpc_result(node.url, "eth_getBlockByNumber", ["latest", False])
    node.process.send_signal(signal.SIGTERM)
    code = node.process.wait(15)
    output = node.output()
    assert "Traceback" not in output, output[-3000:]
    # a graceful stop exits 0 (killed by the signal, -15, means the node's own shutdown,
    # which stops the block producer and closes the database, never ran)
    assert code == 0, f"exit code {code} on SIGTERM\n{output[-3000:]}"

    again = node_factory(data_dir)
    assert rpc_result(again.url, "eth_getBlockByNumber", ["latest", False]) == head
    _make_some_blocks(again, 1)
    assert int(rpc_result(again.url, "eth_blockNumber"), 16) == int(head["number"], 16) + 1


def test_sigint_shuts_down_without_a_traceback(node_factory, tmp_path):
    node = node_factory(tmp_path / "chain")
    node.process.send_signal(signal.SIGINT)  # Ctrl-C
    code = node.process.wait(15)
    output = node.output()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert code in (0, 130), f"exit code {code} on SIGINT\n{output[-3000:]}"


def test_a_second_node_on_the_same_data_dir_is_refused(dev_node):
    result = subprocess.run(
        [sys.executable, "-m", "rxledger", "node", "start", "--dev", "--data-dir", str(dev_node.data_dir),
         "--rpc-port", str(free_port())],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1, result
    assert "in use" in result.stderr or "lock" in result.stderr.lower(), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert dev_node.alive()
    assert rpc_result(dev_node.url, "eth_chainId") == hex(CHAIN_ID)


def test_a_taken_port_is_refused(dev_node, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rxledger", "node", "start", "--dev", "--data-dir", str(tmp_path / "other"),
         "--rpc-port", str(dev_node.port)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1, result
    assert "cannot listen" in result.stderr and str(dev_node.port) in result.stderr, result.stderr
    assert dev_node.alive()
