"""Helpers for the tests of `network/`: free loopback ports and the fake node command."""

from __future__ import annotations

import random
import socket
import sys
from pathlib import Path

from network.init import P2P_PORT_OFFSET

FAKE_NODE = [sys.executable, str(Path(__file__).with_name("fake_node.py"))]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(count: int = 8) -> int:
    """A base port whose `count` RPC ports and p2p ports are all free on loopback."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 40000 - count)
        if all(_free(base + i) and _free(base + P2P_PORT_OFFSET + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range found")
