"""The node's HTTP face: Ethereum JSON-RPC on `POST /` (single and batch), `GET /health`.

Each request's failure stays in its own answer: a body over the size limit is refused
before it is read whole (HTTP 413), invalid JSON is -32700, a malformed request object
-32600, an unknown method -32601, bad params -32602, refusals -32000 with a readable
message, a reverted call 3 with the revert data. An unexpected exception in a method is
logged with its traceback and answered -32603 without leaking internals; the server goes
on serving. Notifications (no `id`) get no answer (HTTP 204 when nothing is left to
answer), nor does a client that left before its body was read.

The methods (`node.rpc.methods`) talk to `NodeService` only.

Method bodies are synchronous. Cheap ones (`INLINE_METHODS`: sending a transaction,
reading a block, a receipt, the head) are answered on the event loop: handing them to
the threadpool cost more than running them (a queue, a thread wake-up and two GIL
hand-offs per request). Calls that execute the EVM or scan ranges (eth_call,
eth_estimateGas, eth_getLogs, state reads, ...) still run in the threadpool, so one slow
call does not stall the event loop.

`POST /` is served by a plain ASGI endpoint in front of the FastAPI application (which
keeps `GET /health` and the docs), with no per-request Request/Response objects. Bodies
are decoded by `node.rpc.decode.decode_request` alone (size, nesting and value count
checked before anything recursive); answers are encoded with orjson.

Administrative methods (group `admin` in `node.rpc.methods.METHOD_GROUPS`) are answered
only where node.toml says `[rpc] admin = true`; elsewhere -32601 says how to enable them.

`GET /health` is HTTP 200 with `"status": "ok"`, or 503 with the reason in `status`
(consensus stopped, storage failed, syncing far behind): see `NodeService.status`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from node.rpc.decode import RequestDecodeError, decode_request
from node.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    RpcError,
    to_rpc_error,
)
from node.rpc.methods import ADMIN, METHOD_GROUPS, METHODS
from node.service import NodeService
from rxledger.core.errors import NodeError

log = logging.getLogger("rxledger.rpc")


def _error(id_: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": error.to_json()}


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


def handle_one(node: NodeService, request: Any) -> dict[str, Any] | None:
    """Answer one JSON-RPC request object (None for a notification)."""
    if not isinstance(request, dict):
        return _error(None, RpcError(INVALID_REQUEST, "invalid request: expected a JSON object"))
    id_ = request.get("id")
    if not _valid_id(id_):
        return _error(None, RpcError(INVALID_REQUEST, "invalid request: id must be a string, number or null"))
    if request.get("jsonrpc") != "2.0":
        return _error(id_, RpcError(INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"'))
    method = request.get("method")
    if not isinstance(method, str):
        return _error(id_, RpcError(INVALID_REQUEST, "invalid request: method must be a string"))
    params = request.get("params", [])
    if params is None:
        params = []
    if not isinstance(params, list):
        return _error(id_, RpcError(INVALID_REQUEST, "invalid request: params must be an array"))
    fn = METHODS.get(method)
    if fn is None:
        return _error(id_, RpcError(METHOD_NOT_FOUND, f"the method {method} does not exist/is not available"))
    if METHOD_GROUPS[method] == ADMIN and not node.config.rpc_admin:
        return _error(id_, RpcError(METHOD_NOT_FOUND, (
            f"the method {method} is not available: it is an administrative method, and administrative "
            "methods are disabled on this node; enable them with `admin = true` in the [rpc] table of "
            "its node.toml (the dev chain enables them)")))
    try:
        result = fn(node, params)
    except RpcError as exc:
        return _error(id_, exc)
    except NodeError as exc:
        return _error(id_, to_rpc_error(exc))
    except Exception:
        log.exception("internal error in %s", method)
        return _error(id_, RpcError(INTERNAL_ERROR, f"internal error while handling {method}"))
    if "id" not in request:
        return None  # notification
    return {"jsonrpc": "2.0", "id": id_, "result": result}


def handle_payload(node: NodeService, payload: Any) -> Any:
    if isinstance(payload, list):
        if not payload:
            return _error(None, RpcError(INVALID_REQUEST, "invalid request: empty batch"))
        if len(payload) > node.config.max_batch_requests:
            return _error(None, RpcError(
                INVALID_REQUEST,
                f"batch too large: {len(payload)} requests, the limit is {node.config.max_batch_requests}",
            ))
        answers = [a for a in (handle_one(node, item) for item in payload) if a is not None]
        return answers or None
    return handle_one(node, payload)


# Methods answered on the event loop: no EVM execution, no scan of many blocks or of state.
INLINE_METHODS = frozenset({
    "web3_clientVersion", "eth_chainId", "net_version", "net_listening", "eth_blockNumber",
    "eth_syncing", "eth_accounts", "eth_gasPrice", "eth_maxPriorityFeePerGas",
    "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getBlockTransactionCountByNumber",
    "eth_getBlockTransactionCountByHash", "eth_sendRawTransaction", "eth_getTransactionByHash",
    "eth_getTransactionByBlockNumberAndIndex", "eth_getTransactionByBlockHashAndIndex",
    "eth_getTransactionReceipt", "qbft_getValidatorsByBlockNumber", "qbft_getPendingVotes",
})
INLINE_BATCH_LIMIT = 100  # a larger batch of cheap calls goes to the threadpool


def runs_inline(payload: Any) -> bool:
    """Whether `payload` is answered on the event loop: only cheap methods (or requests
    answered with an error before any method runs)."""
    if isinstance(payload, list):
        return len(payload) <= INLINE_BATCH_LIMIT and all(_is_inline(item) for item in payload)
    return _is_inline(payload)


def _is_inline(request: Any) -> bool:
    if not isinstance(request, dict):
        return True
    method = request.get("method")
    return method in INLINE_METHODS or method not in METHODS


def encode_json(answer: Any) -> bytes:
    """JSON of an answer (compact; non-ASCII as UTF-8)."""
    try:
        return orjson.dumps(answer)
    except TypeError:  # integers beyond 64 bits, lone surrogates
        return json.dumps(answer, separators=(",", ":")).encode()


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class JsonRpcEndpoint:
    """ASGI: `POST /` answered here, everything else by `app` (FastAPI)."""

    def __init__(self, app: FastAPI, node: NodeService) -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        limit = self.node.config.max_request_bytes
        try:
            body = await self._read_body(scope, receive, limit)
        except _Disconnected:
            return  # nobody to answer
        if body is None:
            await _respond(send, 413, _too_large(limit))
            return
        config = self.node.config
        try:
            payload = decode_request(body, max_depth=config.max_json_depth, max_values=config.max_json_values)
        except RequestDecodeError as exc:
            await _respond(send, 200, _starlette_json(_error(None, exc)))
            return
        if runs_inline(payload):
            answer = handle_payload(self.node, payload)
        else:
            answer = await run_in_threadpool(handle_payload, self.node, payload)
        if answer is None:
            await _respond(send, 204, None)
            return
        await _respond(send, 200, encode_json(answer))

    @staticmethod
    async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
        """The body, or None once it exceeds `limit` bytes (reading stops there)."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


class _Disconnected(Exception):
    """The client went away before its request was read."""


def _too_large(limit: int) -> bytes:
    return _starlette_json(_error(None, RpcError(INVALID_REQUEST, f"request body too large: the limit is {limit} bytes")))


def _starlette_json(content: Any) -> bytes:
    """The body Starlette's JSONResponse gives `content` (what these errors always were)."""
    return bytes(JSONResponse(content).body)


async def _respond(send: Send, status: int, body: bytes | None) -> None:
    headers = [] if body is None else [(b"content-length", str(len(body)).encode()),
                                       (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body or b""})


def create_app(node: NodeService) -> JsonRpcEndpoint:
    """The ASGI application serving `node`: JSON-RPC on `POST /`, FastAPI for the rest."""
    app = FastAPI(title="RxLedger node", version="0.1.0", docs_url="/docs", redoc_url=None)

    @app.get("/health")
    async def health() -> JSONResponse:
        """The node's view of itself and the network (what `rxledger node status` prints):
        HTTP 200 when `status` is "ok", else 503 with the reason in `status`, so a load
        balancer's or an orchestrator's probe can act on it."""
        status = node.status()
        return JSONResponse(status, status_code=200 if status["status"] == "ok" else 503)

    return JsonRpcEndpoint(app, node)
