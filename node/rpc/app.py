"""The node's HTTP face: Ethereum JSON-RPC on `POST /` (single and batch), `GET /health`.

Every request is answered, never crashes the node: a body over the size limit is refused
before it is read whole (HTTP 413), invalid JSON is -32700, a malformed request object
-32600, an unknown method -32601, bad params -32602, refusals -32000 with a readable
message, a reverted call 3 with the revert data. Unexpected exceptions are logged with
their traceback and answered -32603 without leaking internals.

Method bodies are synchronous (execution is CPU-bound Python) and run in the threadpool,
so one slow call does not stall the event loop.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from node.errors import NodeError
from node.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    to_rpc_error,
)
from node.rpc.methods import METHODS
from node.service import NodeService

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


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds `limit` bytes (reading stops there)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(node: NodeService) -> FastAPI:
    """The FastAPI application serving `node`."""
    app = FastAPI(title="RxLedger node", version="0.1.0", docs_url="/docs", redoc_url=None)

    @app.post("/")
    async def jsonrpc(request: Request) -> Response:
        limit = node.config.max_request_bytes
        body = await _read_body(request, limit)
        if body is None:
            return JSONResponse(
                _error(None, RpcError(INVALID_REQUEST, f"request body too large: the limit is {limit} bytes")),
                status_code=413,
            )
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return JSONResponse(_error(None, RpcError(PARSE_ERROR, f"parse error: invalid JSON ({exc})")))
        answer = await run_in_threadpool(handle_payload, node, payload)
        if answer is None:
            return Response(status_code=204)
        return Response(json.dumps(answer, separators=(",", ":")), media_type="application/json")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and the node's view of the network (what `rxledger node status` prints)."""
        return node.status()

    return app
