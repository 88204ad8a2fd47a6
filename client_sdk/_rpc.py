"""JSON-RPC transport, written once for sync and async callers.

The SDK's operations are *flows*: generators that yield what they need from the node
(`Call`, a JSON-RPC request, or `Sleep`, a pause while waiting for finality) and return
their result. `Rpc.run` drives a flow with httpx's blocking client and `AsyncRpc.run`
with its async client, so every operation exists in both worlds from one piece of logic
and can be tested without sockets through httpx's transport seam (`transport=`).

`Rpc` stays the connection behind a URL although the SDK also runs over web3.py
(`client_sdk._web3`): on one dev node it issued 10.1 prescriptions/s against 8.4/s over
`Web3(HTTPProvider)` and read 182 against 94 prescriptions/s (bench/sdk_web3.py, figures
and machine in docs/SDK.md).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from eth_abi.abi import decode as abi_decode

from client_sdk._errors import ClientError, Refused, RpcError, TransportError

__all__ = ["AsyncRpc", "Call", "Flow", "Rpc", "Sleep", "answer", "decode_revert"]

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8545"
EXECUTION_REVERTED = 3
SERVER_ERROR = -32000
_ERROR_SELECTOR = bytes.fromhex("08c379a0")
# eth_sendTransaction: a Web3 whose signing middleware turns it into a raw send.
_REFUSING_METHODS = ("eth_sendRawTransaction", "eth_sendTransaction", "eth_estimateGas")


@dataclass(frozen=True, slots=True)
class Call:
    """One JSON-RPC request; the flow receives its `result`."""

    method: str
    params: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause the flow (it receives None)."""

    seconds: float


Op = Call | Sleep
Flow = Generator[Op, Any, T]


def decode_revert(data: Any) -> str | None:
    """The reason string of Solidity's ``Error(string)`` revert data, else None."""
    if not isinstance(data, str) or not data.startswith("0x"):
        return None
    try:
        raw = bytes.fromhex(data[2:])
    except ValueError:
        return None
    if raw[:4] != _ERROR_SELECTOR:
        return None
    try:
        (reason,) = abi_decode(["string"], raw[4:])
    except Exception:
        return None
    return str(reason)


def _request_body(call: Call, request_id: int) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": call.method, "params": list(call.params)}
    ).encode()


def _result(call: Call, response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise TransportError(
            f"{call.method}: the node answered HTTP {response.status_code}: {response.text[:200]}"
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise TransportError(f"{call.method}: the node's answer is not JSON") from exc
    return answer(call, body)


def answer(call: Call, body: Any) -> Any:
    """The result of a decoded JSON-RPC response, or the SDK error its `error` stands for."""
    if not isinstance(body, Mapping):
        raise TransportError(f"{call.method}: the node's answer is not a JSON-RPC response")
    error = body.get("error")
    if error is not None:
        if not isinstance(error, Mapping):
            raise TransportError(f"{call.method}: the node's error is not a JSON-RPC error object")
        code = int(error.get("code", 0))
        message = str(error.get("message", ""))
        data = error.get("data")
        if code == EXECUTION_REVERTED:
            raise Refused(decode_revert(data) or message)
        if code == SERVER_ERROR and call.method in _REFUSING_METHODS:
            # The txpool's refusals (nonce, permission, …) carry their reason as the message.
            raise Refused(message)
        raise RpcError(code, message, data)
    if "result" not in body:
        raise TransportError(f"{call.method}: the node's answer has neither result nor error")
    return body["result"]


class _ChainCheck:
    """The chain a connection's caller means (`chain_id`, None = any): its first request
    asks the node's chain id and refuses to go on if it is another."""

    url: str
    chain_id: int | None
    _checked: bool

    def _expect_chain(self, chain_id: int | None) -> None:
        self.chain_id = chain_id
        self._checked = chain_id is None

    def _check_chain(self, found: Any) -> None:
        assert self.chain_id is not None
        try:
            actual = int(found, 16)
        except (TypeError, ValueError) as exc:
            raise TransportError(f"eth_chainId: the node's answer {found!r} is not a chain id") from exc
        if actual != self.chain_id:
            raise ClientError(
                f"the node at {self.url} serves chain {actual}, not chain {self.chain_id}: "
                "it is another network's node"
            )
        self._checked = True


def _drive(flow: Flow[T], request: Any) -> T:
    try:
        op = next(flow)
        while True:
            if isinstance(op, Call):
                try:
                    value = request(op.method, *op.params)
                except Exception as exc:
                    op = flow.throw(exc)
                    continue
                op = flow.send(value)
            else:
                time.sleep(op.seconds)
                op = flow.send(None)
    except StopIteration as stop:
        return stop.value


class Rpc(_ChainCheck):
    """A blocking JSON-RPC client of one node (`chain_id`: see `_ChainCheck`)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        chain_id: int | None = None,
    ) -> None:
        self.url = url
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self._ids = itertools.count(1)
        self._expect_chain(chain_id)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Rpc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: Call) -> Any:
        try:
            response = self._http.post(
                self.url, content=_request_body(call, next(self._ids)),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise TransportError(f"{call.method}: cannot reach the node at {self.url}: {exc}") from exc
        return _result(call, response)

    def request(self, method: str, *params: Any) -> Any:
        if not self._checked:
            self._check_chain(self._send(Call("eth_chainId")))
        return self._send(Call(method, params))

    def run(self, flow: Flow[T]) -> T:
        """Drive a flow to its result."""
        return _drive(flow, self.request)


class AsyncRpc(_ChainCheck):
    """The asyncio JSON-RPC client of one node; the same flows as `Rpc`."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        chain_id: int | None = None,
    ) -> None:
        self.url = url
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._ids = itertools.count(1)
        self._expect_chain(chain_id)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRpc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, call: Call) -> Any:
        try:
            response = await self._http.post(
                self.url, content=_request_body(call, next(self._ids)),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise TransportError(f"{call.method}: cannot reach the node at {self.url}: {exc}") from exc
        return _result(call, response)

    async def request(self, method: str, *params: Any) -> Any:
        if not self._checked:
            self._check_chain(await self._send(Call("eth_chainId")))
        return await self._send(Call(method, params))

    async def run(self, flow: Flow[T]) -> T:
        try:
            op = next(flow)
            while True:
                if isinstance(op, Call):
                    try:
                        value = await self.request(op.method, *op.params)
                    except Exception as exc:
                        op = flow.throw(exc)
                        continue
                    op = flow.send(value)
                else:
                    await asyncio.sleep(op.seconds)
                    op = flow.send(None)
        except StopIteration as stop:
            return stop.value
