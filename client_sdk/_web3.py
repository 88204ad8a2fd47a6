"""The SDK over a hospital's own `web3.Web3`: its provider, its middleware, its signer.

Every SDK class takes, where it takes a node's URL, a `web3.Web3` (or, for the asyncio
twins, a `web3.AsyncWeb3`) instead. Its flows (see `_rpc`) then run over that Web3:

- reads and waits (`eth_call`, `eth_getTransactionReceipt`, `eth_getLogs`, …) go through
  `w3.manager`, the request path of `w3.eth.call` and friends, so the Web3's provider
  (HTTP, WebSocket, IPC) and every middleware it holds see them. The SDK takes the
  answers in their JSON-RPC wire form (web3's result formatters are the layer above) and
  decodes them in the one place it decodes a node's answers, whichever the connection;
- blocks (`eth_getBlockByNumber`) go to `w3.provider` directly: QBFT's extraData is
  longer than 32 bytes, which web3's validation middleware refuses and its
  `ExtraDataToPOAMiddleware` renames, and the anchoring receipts rebuild headers from the
  raw fields (`rxledger.core.wire.header_from_rpc`). The Web3 given is left as it is;
- sending: given a private key, the SDK signs and sends raw, as over a URL; given none,
  it sends `eth_sendTransaction` from the Web3's `default_account` through the Web3, whose
  signing middleware (web3's `SignAndSendRawMiddlewareBuilder`) signs it. Such a Web3
  reads the latest block on every send, so the SDK injects `ExtraDataToPOAMiddleware`
  into it first if it is missing (the only change it makes to a Web3 it is given).

`Contracts` hands out the ledger's contracts as web3 contract objects.

Over a URL the SDK keeps its own JSON-RPC client (`Rpc`): for the flows' many small
requests it is the faster path (bench/sdk_web3.py; figures in docs/SDK.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from client_sdk._errors import ClientError, TransportError
from client_sdk._ledger import ANCHOR_REGISTRY, GOVERNANCE, PRESCRIPTION_REGISTRY, Signer
from client_sdk._rpc import AsyncRpc, Call, Rpc, answer
from rxledger.core.artifacts import load_artifact

if TYPE_CHECKING:
    from web3 import AsyncWeb3, Web3
    from web3.contract import Contract as Web3Contract

__all__ = [
    "AsyncWeb3Rpc", "Contracts", "Web3Rpc", "connect", "connect_async", "signer_for", "web3_of",
]

# Answered by the provider itself, past the middleware (see the module docstring).
_RAW_METHODS = frozenset({"eth_getBlockByNumber", "eth_getBlockByHash"})


def _params(call: Call) -> list[Any]:
    """The params as web3's request formatters take them: its ENS middleware reads a log
    filter's `address` as `address[]`, so one address goes as a list of one (the same
    filter to the node)."""
    if call.method == "eth_getLogs" and call.params and isinstance(call.params[0], dict):
        flt = call.params[0]
        if isinstance(flt.get("address"), str):
            return [{**flt, "address": [flt["address"]]}, *call.params[1:]]
    return list(call.params)


def _ensure_poa(w3: Any) -> None:
    """A Web3 that sends `eth_sendTransaction` reads the latest block in its middleware
    (gas price strategy, fee defaults), which fails on QBFT's long extraData unless
    `ExtraDataToPOAMiddleware` is in its onion: the SDK injects it, only if missing."""
    from web3.middleware import ExtraDataToPOAMiddleware

    if ExtraDataToPOAMiddleware not in w3.middleware_onion:
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)


def _describe(w3: Any) -> str:
    provider = w3.provider
    target = getattr(provider, "endpoint_uri", None) or getattr(provider, "ipc_path", None)
    name = type(provider).__name__
    return f"{name}({target})" if target else name


def _default_account(w3: Any) -> str | None:
    account = w3.eth.default_account
    return account if isinstance(account, str) and account else None


def _failure(call: Call, where: str, exc: Exception) -> ClientError:
    """An exception of web3 or its transport as the SDK's error."""
    from web3.exceptions import Web3RPCError

    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        try:
            answer(call, exc.rpc_response)
        except ClientError as error:
            return error
    if isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError):
        return TransportError(f"{call.method}: cannot reach the node through {where}: {exc}")
    if type(exc).__module__.split(".")[0] in ("requests", "aiohttp", "websockets"):
        return TransportError(f"{call.method}: cannot reach the node through {where}: {exc}")
    return ClientError(f"{call.method}: the Web3 ({where}) refused or failed: {exc}")


class Web3Rpc(Rpc):
    """Drive the SDK's flows over a blocking `web3.Web3` (see the module docstring).

    `chain_id`, if given, is the chain the caller means: the first request asks the node
    its chain id and refuses to go on (`ClientError`) if it is another.
    """

    def __init__(self, w3: Web3, *, chain_id: int | None = None) -> None:
        # Not Rpc.__init__: no HTTP client of our own; `request` and `run` are Rpc's.
        self.w3 = w3
        self.url = _describe(w3)
        self._expect_chain(chain_id)

    def close(self) -> None:
        """The Web3 is the caller's: nothing to close."""

    def _send(self, call: Call) -> Any:
        try:
            if call.method == "eth_sendTransaction":
                _ensure_poa(self.w3)
            if call.method in _RAW_METHODS:
                return answer(call, self.w3.provider.make_request(call.method, list(call.params)))  # type: ignore[arg-type]
            return self.w3.manager.request_blocking(call.method, _params(call))  # type: ignore[arg-type]
        except ClientError:
            raise
        except Exception as exc:
            raise _failure(call, self.url, exc) from exc


class AsyncWeb3Rpc(AsyncRpc):
    """`Web3Rpc` for a `web3.AsyncWeb3` (the asyncio twins)."""

    def __init__(self, w3: AsyncWeb3[Any], *, chain_id: int | None = None) -> None:
        self.w3 = w3
        self.url = _describe(w3)
        self._expect_chain(chain_id)

    async def aclose(self) -> None:
        """The Web3 is the caller's: nothing to close."""

    async def _send(self, call: Call) -> Any:
        try:
            if call.method == "eth_sendTransaction":
                _ensure_poa(self.w3)
            if call.method in _RAW_METHODS:
                response = await self.w3.provider.make_request(call.method, list(call.params))
                return answer(call, response)
            return await self.w3.manager.coro_request(call.method, _params(call))  # type: ignore[arg-type]
        except ClientError:
            raise
        except Exception as exc:
            raise _failure(call, self.url, exc) from exc


def _is_web3(obj: Any, cls_name: str) -> bool:
    return any(c.__name__ == cls_name and c.__module__.startswith("web3") for c in type(obj).__mro__)


def _same_chain(rpc: Rpc | AsyncRpc, chain_id: int | None) -> None:
    """A caller's `chain_id` applies to an `Rpc` it made too: checked on its first request,
    or refused at once when the `Rpc` was made for another chain."""
    if chain_id is None:
        return
    if rpc.chain_id is None:
        rpc._expect_chain(chain_id)
    elif rpc.chain_id != chain_id:
        raise ValueError(f"the connection was made for chain {rpc.chain_id}, not chain {chain_id}")


def connect(rpc: Any, *, chain_id: int | None = None) -> Rpc:
    """The blocking driver for what a caller passed as the connection: a URL (the SDK's
    own client), an `Rpc` (as it is) or a `web3.Web3`."""
    if isinstance(rpc, str):
        return Rpc(rpc, chain_id=chain_id)
    if isinstance(rpc, Rpc):
        _same_chain(rpc, chain_id)
        return rpc
    if _is_web3(rpc, "Web3"):
        return Web3Rpc(rpc, chain_id=chain_id)
    raise TypeError(f"a connection is a node's URL, an Rpc or a web3.Web3, not {type(rpc).__name__}")


def connect_async(rpc: Any, *, chain_id: int | None = None) -> AsyncRpc:
    """`connect` for the asyncio twins: a URL, an `AsyncRpc` or a `web3.AsyncWeb3`."""
    if isinstance(rpc, str):
        return AsyncRpc(rpc, chain_id=chain_id)
    if isinstance(rpc, AsyncRpc):
        _same_chain(rpc, chain_id)
        return rpc
    if _is_web3(rpc, "AsyncWeb3"):
        return AsyncWeb3Rpc(rpc, chain_id=chain_id)
    raise TypeError(
        f"an asyncio connection is a node's URL, an AsyncRpc or a web3.AsyncWeb3, not {type(rpc).__name__}"
    )


def signer_for(key: str | bytes | Signer | None, rpc: Rpc | AsyncRpc) -> Signer | None:
    """Who signs: the key given (the SDK signs), else the default account of a Web3
    connection (its middleware signs), else nobody (read-only)."""
    if isinstance(key, Signer):
        return key
    if key is not None:
        return Signer.from_key(key)
    if isinstance(rpc, Web3Rpc | AsyncWeb3Rpc):
        account = _default_account(rpc.w3)
        if account is not None:
            return Signer.via_web3(account)
    return None


def _http_web3(url: str) -> Web3:
    from web3 import HTTPProvider, Web3

    return Web3(HTTPProvider(url))


@dataclass(frozen=True)
class Contracts:
    """The ledger's contracts as web3 contract objects, for whoever wants web3's API:

        contracts = Contracts.of(w3)
        contracts.prescriptions.functions.getPrescription(rx_id).call()

    The ABIs are the committed artifacts; the addresses the reserved ones of the native
    chaincode unless given (a Solidity deployment).
    """

    prescriptions: Web3Contract
    governance: Web3Contract
    anchors: Web3Contract

    @classmethod
    def of(
        cls, w3: Web3 | str, *, prescriptions: str = PRESCRIPTION_REGISTRY,
        governance: str = GOVERNANCE, anchors: str = ANCHOR_REGISTRY,
    ) -> Contracts:
        """The contracts over a Web3 (or a node's URL, through web3's `HTTPProvider`)."""
        web3 = _http_web3(w3) if isinstance(w3, str) else w3

        def contract(name: str, address: str) -> Web3Contract:
            return web3.eth.contract(
                address=web3.to_checksum_address(address), abi=load_artifact(name)["abi"]
            )

        return cls(
            contract("PrescriptionRegistry", prescriptions),
            contract("Governance", governance),
            contract("AnchorRegistry", anchors),
        )


def web3_of(rpc: Rpc | AsyncRpc) -> Web3 | str:
    """The Web3 behind a connection, or the URL of the SDK's own client."""
    if isinstance(rpc, Web3Rpc):
        return rpc.w3
    return rpc.url

