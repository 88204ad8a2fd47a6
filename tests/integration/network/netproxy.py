"""A loopback TCP proxy per directed peer link, so a test can cut and heal links.

`rxledger network init` writes each node's `[[peers]]` with the peers' real p2p ports.
`LinkProxy.install(net_dir, info)` gives every directed link (a → b: what `a` dials to
reach `b`) its own listening port on 127.0.0.1, forwarding to `b`'s real p2p port, and
rewrites each node.toml so that its `[[peers]]` entries name those ports. The bytes are
forwarded untouched (the TLS session is end to end between the two nodes; the proxy sees
ciphertext only). A node accepts its peers' connections on its own real port, which only
the proxies dial.

`cut(a, b)` closes the live connections of both directions of the link and refuses new
ones (accepted, then closed at once: the dialler's TLS handshake fails and it backs off
as it would against an unreachable peer) until `heal(a, b)`. `disconnect(a)` cuts every
link of `a`; `partition(groups)` cuts every link between two groups; `heal_all()` heals
everything.

Written with asyncio streams (the standard library; a forwarding loop is a few lines and
no maintained Python package offers a controllable per-link TCP proxy). The proxy runs
on its own event loop in a daemon thread; the methods above are thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from network.layout import NetworkInfo

Link = tuple[str, str]  # (dialler, dialled)


class LinkProxy:
    def __init__(self) -> None:
        self.ports: dict[Link, int] = {}  # proxy port of each directed link
        self.targets: dict[Link, int] = {}  # the dialled node's real p2p port
        self.cut_links: set[frozenset[str]] = set()
        self.connections: dict[frozenset[str], set[asyncio.StreamWriter]] = {}
        self.forwarded = 0  # connections forwarded so far (for the report)
        self.refused = 0  # connections refused on a cut link
        self._servers: list[asyncio.AbstractServer] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="link-proxy", daemon=True)
        self._thread.start()

    # -- set-up ------------------------------------------------------------------------------
    def install(self, info: NetworkInfo) -> None:
        """Listen for every directed link between the nodes of `info` and point each
        node.toml's [[peers]] ports at the proxies."""
        real = {n.name: n.p2p_port for n in info.nodes}
        for a in real:
            for b in real:
                if a != b:
                    self.ports[(a, b)] = self._run(self._listen((a, b)))
                    self.targets[(a, b)] = real[b]
        for node in info.nodes:
            rewrite_peer_ports(Path(node.config), {b: self.ports[(node.name, b)] for b in real if b != node.name})

    async def _listen(self, link: Link) -> int:
        server = await asyncio.start_server(lambda r, w: self._accepted(link, r, w), "127.0.0.1", 0)
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    # -- forwarding --------------------------------------------------------------------------
    async def _accepted(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = frozenset(link)
        if key in self.cut_links:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.targets[link])
        except OSError:
            writer.transport.abort()
            return
        if key in self.cut_links:  # cut while we connected
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self.forwarded += 1
        live = self.connections.setdefault(key, set())
        live.update((writer, up_writer))
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            live.discard(writer)
            live.discard(up_writer)
            writer.transport.abort()
            up_writer.transport.abort()

    # -- control (thread-safe) ---------------------------------------------------------------
    def cut(self, a: str, b: str) -> None:
        self._run(self._cut([frozenset((a, b))]))

    def heal(self, a: str, b: str) -> None:
        self._run(self._heal([frozenset((a, b))]))

    def disconnect(self, name: str, others: Iterable[str]) -> list[frozenset[str]]:
        links = [frozenset((name, o)) for o in others if o != name]
        self._run(self._cut(links))
        return links

    def partition(self, groups: Sequence[Sequence[str]]) -> list[frozenset[str]]:
        links = [frozenset((a, b)) for i, g in enumerate(groups) for h in groups[i + 1:] for a in g for b in h]
        self._run(self._cut(links))
        return links

    def heal_links(self, links: Iterable[frozenset[str]]) -> None:
        self._run(self._heal(list(links)))

    def heal_all(self) -> None:
        self._run(self._heal(list(self.cut_links)))

    async def _cut(self, links: list[frozenset[str]]) -> None:
        for key in links:
            self.cut_links.add(key)
            for writer in list(self.connections.get(key, ())):
                writer.transport.abort()

    async def _heal(self, links: list[frozenset[str]]) -> None:
        for key in links:
            self.cut_links.discard(key)

    def close(self) -> None:
        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            for live in self.connections.values():
                for writer in list(live):
                    writer.transport.abort()

        with contextlib.suppress(Exception):
            self._run(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(10)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()


_SECTION = re.compile(r"^\s*\[\[?([^\]]+)\]\]?\s*$")
_NAME = re.compile(r'^\s*name\s*=\s*"([^"]+)"\s*$')
_PORT = re.compile(r"^(\s*port\s*=\s*)(\d+)(.*)$")


def rewrite_peer_ports(config: Path, ports: dict[str, int]) -> None:
    """Set the port of each [[peers]] entry of node.toml `config` to `ports[name]`.

    A line edit, so the file keeps its comments and layout; checked by reading it back.
    """
    import tomllib

    lines = config.read_text().splitlines(keepends=True)
    section, peer, port_line = "", None, None
    out: list[str] = []

    def flush() -> None:
        if section == "peers" and peer is not None and port_line is not None and peer in ports:
            match = _PORT.match(out[port_line])
            assert match is not None
            out[port_line] = f"{match.group(1)}{ports[peer]}{match.group(3)}\n"

    for line in lines:
        if (m := _SECTION.match(line)) is not None:
            flush()
            section, peer, port_line = m.group(1).strip(), None, None
        elif section == "peers" and (m := _NAME.match(line)) is not None:
            peer = m.group(1)
        elif section == "peers" and _PORT.match(line):
            port_line = len(out)
        out.append(line)
    flush()
    config.write_text("".join(out))
    written = {p["name"]: p["port"] for p in tomllib.loads(config.read_text()).get("peers", [])}
    for name, port in ports.items():
        assert written.get(name) == port, f"{config}: peer {name} port is {written.get(name)}, wanted {port}"
