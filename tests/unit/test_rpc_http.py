"""node.rpc.http: the writes of one event-loop turn reach the socket as one write, in
order, and closing writes what is buffered first (a real socket pair and transport)."""

from __future__ import annotations

import asyncio
import socket

from node.rpc.http import CoalescingTransport


class Counting:
    """The real transport, counting the writes that reach it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.transport.write(data)

    def __getattr__(self, name: str):
        return getattr(self.transport, name)


async def _run() -> tuple[list[bytes], bytes]:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    counting = Counting(transport)
    coalescing = CoalescingTransport(counting, loop)  # type: ignore[arg-type]
    coalescing.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    coalescing.write(b"{}")
    await asyncio.sleep(0)  # the turn ends: one write
    await asyncio.sleep(0)
    coalescing.write(b"tail")
    coalescing.close()  # buffered bytes go first
    theirs.settimeout(5)
    received = b""
    while chunk := await loop.run_in_executor(None, theirs.recv, 4096):
        received += chunk
    theirs.close()
    return counting.writes, received


def test_one_turns_writes_are_one_write_and_close_flushes_first() -> None:
    writes, received = asyncio.run(_run())
    assert writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"tail"]
    assert received == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}tail"
