"""uvicorn's httptools protocol with each response sent in one `send`.

uvicorn writes a response's status line and headers as soon as the application starts
the response, and the body as a second write: two system calls and two TCP segments per
JSON-RPC answer, and on loopback each write also runs the receiving side's network stack
while the interpreter lock is held. A profile of the dev node under one transaction per
request put a seventh of the node's interpreter time in those writes.

`CoalescingHttpToolsProtocol` hands uvicorn's protocol a transport whose writes made in
one turn of the event loop are joined and written once at the end of that turn (the
headers and body of an answer come from one `await` chain, so they share a turn). Order
is kept, and closing writes what is buffered first. Everything else is the transport's.
No library offers this; it is a wrapper of a few lines around uvicorn's own protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol", "CoalescingTransport"]


class CoalescingTransport:
    """Joins the writes of one event-loop turn into one write on `transport`."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, ...
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
