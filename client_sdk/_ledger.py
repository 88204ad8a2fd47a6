"""Contracts and transactions as flows: ABI encoding, calls, signed sends, finality.

The ABIs are the committed Solidity artifacts (`contracts/artifacts`), so the SDK speaks
to the native chaincode at the reserved addresses and to a Solidity deployment alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from client_sdk._errors import ClientError, NotFinal, NotFound, Refused, RpcError
from client_sdk._rpc import Call, Flow, Sleep
from rxledger.core import addresses as _addresses
from rxledger.core.artifacts import load_artifact

__all__ = [
    "ANCHOR_REGISTRY",
    "GOVERNANCE",
    "PRESCRIPTION_REGISTRY",
    "Contract",
    "DecodedEvent",
    "Signer",
    "call_flow",
    "send_flow",
    "send_transaction_flow",
]

METHOD_NOT_FOUND = -32601

# INTERFACES.md: the reserved addresses of the native chaincodes, the same on every chain
# (rxledger.core.addresses, shared with the node), as the 0x-hex the JSON-RPC speaks.
PRESCRIPTION_REGISTRY = "0x" + _addresses.PRESCRIPTION_REGISTRY.hex()
GOVERNANCE = "0x" + _addresses.GOVERNANCE.hex()
ANCHOR_REGISTRY = "0x" + _addresses.ANCHOR_REGISTRY.hex()


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind


@dataclass(frozen=True, slots=True)
class _Function:
    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Event:
    name: str
    topic: bytes
    params: tuple[tuple[str, str, bool], ...]  # (name, type, indexed)


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """One contract event with its place on the ledger."""

    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    transaction_hash: str
    log_index: int


class Contract:
    """A contract's ABI at an address: encode calls, decode results and events."""

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.address = to_checksum_address(address)
        self.functions: dict[str, _Function] = {}
        self.events: dict[str, _Event] = {}
        self._by_topic: dict[bytes, _Event] = {}
        for entry in load_artifact(name)["abi"]:
            if entry["type"] == "function":
                inputs = tuple(_abi_type(p) for p in entry["inputs"])
                signature = f"{entry['name']}({','.join(inputs)})"
                self.functions[entry["name"]] = _Function(
                    entry["name"], keccak(text=signature)[:4], inputs,
                    tuple(_abi_type(p) for p in entry.get("outputs", [])),
                )
            elif entry["type"] == "event":
                params = tuple((p["name"], _abi_type(p), bool(p["indexed"])) for p in entry["inputs"])
                signature = f"{entry['name']}({','.join(t for _, t, _ in params)})"
                event = _Event(entry["name"], keccak(text=signature), params)
                self.events[event.name] = event
                self._by_topic[event.topic] = event

    def encode(self, function: str, *args: Any) -> str:
        fn = self.functions[function]
        return "0x" + (fn.selector + abi_encode(list(fn.inputs), list(args))).hex()

    def decode(self, function: str, result: str) -> tuple[Any, ...]:
        fn = self.functions[function]
        try:
            return tuple(abi_decode(list(fn.outputs), bytes.fromhex(result[2:])))
        except Exception as exc:
            raise ClientError(f"{self.name}.{function}: cannot decode the node's answer: {exc}") from exc

    def topic(self, event: str) -> str:
        return "0x" + self.events[event].topic.hex()

    def decode_log(self, log: dict[str, Any]) -> DecodedEvent | None:
        """Decode a JSON-RPC log object of this contract; None for a foreign log."""
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        if not topics or log["address"].lower() != self.address.lower():
            return None
        event = self._by_topic.get(topics[0])
        if event is None:
            return None
        indexed = [(n, t) for n, t, i in event.params if i]
        plain = [(n, t) for n, t, i in event.params if not i]
        args: dict[str, Any] = {}
        for (name, kind), topic in zip(indexed, topics[1:], strict=True):
            (args[name],) = abi_decode([kind], topic)
        values = abi_decode([t for _, t in plain], bytes.fromhex(log["data"][2:]))
        args.update(zip((n for n, _ in plain), values, strict=True))
        return DecodedEvent(
            event.name, args, int(log["blockNumber"], 16), log["blockHash"],
            log["transactionHash"], int(log["logIndex"], 16),
        )


def call_flow(
    contract: Contract, function: str, *args: Any, sender: str | None = None, block: str = "latest"
) -> Flow[tuple[Any, ...]]:
    """An `eth_call` of a view (or a dry run of a transaction) decoded by the ABI."""
    request: dict[str, Any] = {"to": contract.address, "data": contract.encode(function, *args)}
    if sender is not None:
        request["from"] = sender
    result = yield Call("eth_call", (request, block))
    return contract.decode(function, result)


@dataclass
class Signer:
    """A signing account and the nonce it will use next (kept so a burst of sends from one
    process does not reuse a nonce the node's pending count has not seen yet).

    `account` is the local key the SDK signs with (sent with `eth_sendRawTransaction`);
    a signer without one (`Signer.via_web3`) names the default account of a `web3.Web3`
    whose signing middleware holds the key: the SDK sends `eth_sendTransaction` through
    that Web3 and its middleware signs.
    """

    account: LocalAccount | None
    next_nonce: int = -1
    chain_id: int | None = field(default=None)
    sender: str = ""

    @classmethod
    def from_key(cls, key: str | bytes) -> Signer:
        try:
            return cls(Account.from_key(key))
        except Exception as exc:
            raise ClientError(f"not a valid secp256k1 private key: {exc}") from exc

    @classmethod
    def via_web3(cls, address: str) -> Signer:
        """The default account of a Web3 whose middleware signs (see the class)."""
        try:
            return cls(None, sender=to_checksum_address(address))
        except Exception as exc:
            raise ClientError(f"not an account address: {address!r}") from exc

    @property
    def address(self) -> str:
        return str(self.account.address) if self.account is not None else self.sender


def send_transaction_flow(
    signer: Signer, to: str, data: str, *, gas: int, gas_price: int, nonce: int
) -> Flow[str]:
    """Send one transaction (signed here, or by the Web3's middleware); its hash."""
    assert signer.chain_id is not None
    if signer.account is None:
        tx = {"from": signer.address, "to": to, "data": data, "value": 0, "gas": gas,
              "gasPrice": gas_price, "nonce": nonce, "chainId": signer.chain_id}
        try:
            return str((yield Call("eth_sendTransaction", (tx,))))
        except RpcError as exc:
            if exc.code != METHOD_NOT_FOUND:
                raise
            raise ClientError(
                f"the Web3's default account {signer.address} has no signer: the node was asked "
                "to sign (eth_sendTransaction) and cannot; add web3's "
                "SignAndSendRawMiddlewareBuilder.build(account) or give the SDK the key"
            ) from exc
    signed = signer.account.sign_transaction(
        {"to": to, "data": data, "value": 0, "gas": gas,  # type: ignore[dict-item]
         "gasPrice": gas_price, "nonce": nonce, "chainId": signer.chain_id}
    )
    return str((yield Call("eth_sendRawTransaction", ("0x" + bytes(signed.raw_transaction).hex(),))))


def _reason_of_failed(tx: dict[str, Any], receipt: dict[str, Any]) -> Flow[str]:
    """Replay a failed transaction as a call against the latest state to learn its revert
    reason (receipts carry none; native chaincode keeps the head's state only). A
    transaction that failed because one before it used up what it needed (the
    double-dispense race) reverts the same way there."""
    try:
        yield Call("eth_call", (tx, "latest"))
    except Refused as refused:
        return refused.reason
    except RpcError as exc:
        return f"reverted in block {int(receipt['blockNumber'], 16)} ({exc.message})"
    return (f"reverted in block {int(receipt['blockNumber'], 16)}; a replay on the latest state "
            "succeeds, so what it needed changed since")


def send_flow(
    signer: Signer,
    contract: Contract,
    function: str,
    *args: Any,
    gas: int | None = None,
    timeout: float = 60.0,
    poll: float = 0.05,
) -> Flow[dict[str, Any]]:
    """Sign and send a transaction, wait until it is final, return its receipt.

    A refusal the node can foresee (permission, a revert in `eth_estimateGas`) raises
    `Refused` before anything is sent; a transaction that is final but failed raises
    `Refused` with its revert reason and hash; no receipt within `timeout` raises
    `NotFinal`.
    """
    data = contract.encode(function, *args)
    tx: dict[str, Any] = {"from": signer.address, "to": contract.address, "data": data}
    if signer.chain_id is None:
        signer.chain_id = int((yield Call("eth_chainId")), 16)
    pending = int((yield Call("eth_getTransactionCount", (signer.address, "pending"))), 16)
    nonce = max(pending, signer.next_nonce)
    if gas is None:
        estimate = int((yield Call("eth_estimateGas", (tx, "latest"))), 16)
        gas = estimate + estimate // 4 + 10_000
    gas_price = int((yield Call("eth_gasPrice")), 16)
    tx_hash = yield from send_transaction_flow(
        signer, contract.address, data, gas=gas, gas_price=gas_price, nonce=nonce)
    signer.next_nonce = nonce + 1
    receipt = yield from wait_receipt_flow(tx_hash, timeout=timeout, poll=poll)
    if int(receipt["status"], 16) != 1:
        reason = yield from _reason_of_failed(tx, receipt)
        raise Refused(reason, tx_hash=tx_hash)
    return receipt


def wait_receipt_flow(tx_hash: str, *, timeout: float = 60.0, poll: float = 0.05) -> Flow[dict[str, Any]]:
    """Poll for a transaction's receipt (QBFT: a receipt means final)."""
    waited = 0.0
    while True:
        receipt = yield Call("eth_getTransactionReceipt", (tx_hash,))
        if receipt is not None:
            return dict(receipt)
        if waited >= timeout:
            raise NotFinal(tx_hash, waited)
        yield Sleep(poll)
        waited += poll


def logs_flow(
    contract: Contract, event: str, topics: Sequence[str | Sequence[str] | None] = (),
    from_block: int = 0, to_block: str | int = "latest",
) -> Flow[list[DecodedEvent]]:
    """Every `event` of `contract` matching the indexed `topics` (None = any), decoded."""
    flt = {
        "address": contract.address,
        "topics": [contract.topic(event), *topics],
        "fromBlock": hex(from_block),
        "toBlock": to_block if isinstance(to_block, str) else hex(to_block),
    }
    logs = yield Call("eth_getLogs", (flt,))
    decoded = [contract.decode_log(log) for log in logs]
    return [d for d in decoded if d is not None]


def block_flow(number: int | str) -> Flow[dict[str, Any]]:
    tag = number if isinstance(number, str) else hex(number)
    block = yield Call("eth_getBlockByNumber", (tag, False))
    if block is None:
        raise NotFound(f"block {number} does not exist")
    return dict(block)
