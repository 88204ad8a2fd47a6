"""Fixtures that run a real dev node process (see devnode.py for the helpers).

- `dev_node` (module scope): a fresh one-validator dev chain in a temporary data dir,
  stopped (SIGTERM, then SIGKILL) after the module's tests.
- `node_factory` (function scope): start nodes on chosen data dirs, e.g. to restart on
  an existing one; every node it started is stopped at teardown.
- `w3` (module scope): web3.py connected to `dev_node`, PoA middleware injected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from devnode import DevNode, make_web3, rpc, start_dev_node

__all__ = ["rpc"]


@pytest.fixture(scope="module")
def dev_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNode]:
    node = start_dev_node(tmp_path_factory.mktemp("devnode") / "data")
    try:
        yield node
    finally:
        code = node.stop()
        # A clean shutdown on SIGTERM is part of the node's contract; report it if not.
        if code not in (0, -15):
            print(f"dev node exited with {code} on SIGTERM:\n{node.output()[-4000:]}")


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[..., DevNode]]:
    started: list[DevNode] = []

    def start(data_dir: Path | None = None, **kwargs) -> DevNode:
        node = start_dev_node(data_dir if data_dir is not None else tmp_path / "data", **kwargs)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture(scope="module")
def w3(dev_node: DevNode):
    return make_web3(dev_node.url)
