"""Run RxLedger's Solidity contracts on the node's own execution engine, no node process.

`EvmHarness` holds an in-memory `Chain` on the dev genesis. `deploy()` deploys an
artifact; `transact()` signs a transaction with a development account, puts it alone in
a block at a chosen timestamp, commits the block and returns a `TxResult` (status, the
decoded return value or revert reason, the decoded events); `call()` is an `eth_call`
against the head. The revert reason of a transaction is taken from the same message run
as a call on the same parent state and block environment just before the block is built
(the receipt itself carries no revert data), and the harness checks that both agree.

`Abi` encodes calls and decodes results and logs with eth_abi from an artifact's ABI, so
the tests see the ABI exactly as any client does (topics, indexed arguments, tuples).

This module has a distinctive name because tests/ directories have no `__init__.py`;
test modules put its directory on `sys.path`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import rlp
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chaincode_py import NativeChaincodeHost
from node.chain import Chain
from node.genesis import dev_accounts, dev_genesis
from node.storage import MemoryStore
from rxledger.core.artifacts import load_artifact
from rxledger.core.errors import Reverted
from rxledger.core.types import Log, decode_transaction

PROPOSER = b"\x01" * 20
START_TIME = 1_700_000_000
TX_GAS = 2_000_000
DEPLOY_GAS = 8_000_000


def abi_type(param: dict[str, Any]) -> str:
    """The canonical type string of an ABI parameter (tuples spelled out)."""
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple'):]}"
    return kind


def _checksummed(value: Any) -> Any:
    """eth_abi decodes addresses in lower case; clients (web3) show them checksummed."""
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        return to_checksum_address(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_checksummed(v) for v in value)
    return value


@dataclass(frozen=True)
class Event:
    name: str
    args: dict[str, Any]
    address: bytes


class Abi:
    """Offline encoding and decoding for one contract ABI."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.abi = abi
        self.functions = {f["name"]: f for f in abi if f["type"] == "function"}
        self.constructor = next((f for f in abi if f["type"] == "constructor"), None)
        self.events: dict[bytes, dict[str, Any]] = {}
        self.event_by_name: dict[str, dict[str, Any]] = {}
        for ev in abi:
            if ev["type"] == "event":
                sig = f"{ev['name']}({','.join(abi_type(i) for i in ev['inputs'])})"
                self.events[keccak(text=sig)] = ev
                self.event_by_name[ev["name"]] = ev

    def signature(self, name: str) -> str:
        fn = self.functions[name]
        return f"{name}({','.join(abi_type(i) for i in fn['inputs'])})"

    def encode_call(self, name: str, args: tuple[Any, ...]) -> bytes:
        fn = self.functions[name]
        types = [abi_type(i) for i in fn["inputs"]]
        return keccak(text=self.signature(name))[:4] + abi_encode(types, list(args))

    def encode_constructor(self, args: tuple[Any, ...]) -> bytes:
        if self.constructor is None:
            assert not args
            return b""
        return abi_encode([abi_type(i) for i in self.constructor["inputs"]], list(args))

    def decode_output(self, name: str, data: bytes) -> Any:
        """None for no outputs, the value for one, a tuple for several."""
        outputs = self.functions[name]["outputs"]
        if not outputs:
            assert data == b"", data
            return None
        values = _checksummed(abi_decode([abi_type(o) for o in outputs], data))
        return values[0] if len(values) == 1 else tuple(values)

    def topic0(self, name: str) -> bytes:
        ev = self.event_by_name[name]
        return keccak(text=f"{name}({','.join(abi_type(i) for i in ev['inputs'])})")

    def decode_log(self, log: Log) -> Event | None:
        """The event of `log`, or None when it is not one of this ABI's."""
        if not log.topics or log.topics[0] not in self.events:
            return None
        ev = self.events[log.topics[0]]
        indexed = [i for i in ev["inputs"] if i["indexed"]]
        plain = [i for i in ev["inputs"] if not i["indexed"]]
        assert len(log.topics) == 1 + len(indexed), "topic count does not match the ABI"
        args: dict[str, Any] = {}
        for param, topic in zip(indexed, log.topics[1:], strict=True):
            args[param["name"]] = _checksummed(abi_decode([abi_type(param)], topic)[0])
        values = _checksummed(abi_decode([abi_type(p) for p in plain], log.data))
        for param, value in zip(plain, values, strict=True):
            args[param["name"]] = value
        ordered = {i["name"]: args[i["name"]] for i in ev["inputs"]}
        return Event(ev["name"], ordered, log.address)


@dataclass
class Contract:
    name: str
    address: bytes
    abi: Abi

    @property
    def checksum(self) -> str:
        return to_checksum_address(self.address)


@dataclass
class TxResult:
    status: int
    output: Any = None
    reason: str | None = None
    events: list[Event] = field(default_factory=list)
    logs: tuple[Log, ...] = ()
    block_number: int = 0
    timestamp: int = 0

    def event_names(self) -> list[str]:
        return [e.name for e in self.events]


class EvmHarness:
    """An in-memory dev chain with deploy / transact / call helpers."""

    def __init__(self, start_time: int = START_TIME) -> None:
        self.chain = Chain(MemoryStore(), dev_genesis(), NativeChaincodeHost)
        self.signers = [Account.from_key(a.private_key) for a in dev_accounts()]
        self.addresses = [a.address for a in dev_accounts()]
        self.now = start_time
        self.abis: dict[bytes, Abi] = {}
        self.last_deploy_events: list[Event] = []
        self._pending: dict[int, int] = {}  # transactions of a block being assembled

    # -- accounts and time -----------------------------------------------------------------
    def address(self, index: int) -> str:
        """The checksummed address of account `index` (0-9: the development accounts)."""
        return to_checksum_address(self.addresses[index])

    def add_signer(self, private_key: bytes) -> int:
        """Add an account (not enrolled by anything); returns its index."""
        account = Account.from_key(private_key)
        self.signers.append(account)
        self.addresses.append(bytes.fromhex(account.address[2:]))
        return len(self.signers) - 1

    def advance(self, seconds: int) -> int:
        """Move the clock used by the next block and call; returns the new time."""
        self.now += seconds
        return self.now

    def _signed(self, sender: int, to: bytes | None, data: bytes, gas: int) -> Any:
        account = self.signers[sender]
        nonce = self.chain.state_nonce(self.addresses[sender]) + self._pending.get(sender, 0)
        tx: dict[str, Any] = dict(nonce=nonce, gasPrice=0, gas=gas, value=0, data=data,
                                  chainId=self.chain.chain_id)
        if to is not None:
            tx["to"] = to_checksum_address(to)
        return decode_transaction(bytes(account.sign_transaction(tx).raw_transaction))

    def _run_block(self, stx: Any, timestamp: int) -> tuple[Any, Any]:
        block, execution = self.chain.build_block([stx], timestamp=timestamp, proposer=PROPOSER)
        assert not execution.skipped, execution.skipped
        assert len(execution.receipts) == 1
        self.chain.commit_block(block, execution)
        return block, execution.receipts[0]

    def _decode_events(self, logs: tuple[Log, ...]) -> list[Event]:
        events = []
        for log in logs:
            abi = self.abis.get(log.address)
            event = abi.decode_log(log) if abi else None
            assert event is not None, f"log of an unknown event: {log}"
            events.append(event)
        return events

    # -- deploy / transact / call ----------------------------------------------------------
    def deploy(self, name: str, *args: Any, sender: int = 9) -> Contract:
        artifact = load_artifact(name)
        abi = Abi(artifact["abi"])
        code = bytes.fromhex(artifact["bytecode"][2:]) + abi.encode_constructor(args)
        sender_address = self.addresses[sender]
        nonce = self.chain.state_nonce(sender_address)
        stx = self._signed(sender, None, code, DEPLOY_GAS)
        address = keccak(rlp.encode([sender_address, nonce]))[12:]
        self.abis[address] = abi
        self.now += 1
        _block, receipt = self._run_block(stx, self.now)
        assert receipt.status == 1, f"deploying {name} failed"
        assert self.chain.executor.get_code(self.chain.head.state_root, address)
        self.last_deploy_events = self._decode_events(receipt.logs)
        return Contract(name, address, abi)

    def attach(self, name: str, address: bytes) -> Contract:
        """A contract with artifact `name`'s ABI at `address` (e.g. a native chaincode's
        reserved address, for differential tests)."""
        abi = Abi(load_artifact(name)["abi"])
        self.abis[address] = abi
        return Contract(name, address, abi)

    def deploy_status(self, name: str, *args: Any, sender: int = 9) -> int:
        """Deploy and return the receipt's status (a reverting constructor gives 0; the
        receipt carries no revert data and a create cannot be dry-run as a call)."""
        artifact = load_artifact(name)
        code = bytes.fromhex(artifact["bytecode"][2:]) + Abi(artifact["abi"]).encode_constructor(args)
        self.now += 1
        _block, receipt = self._run_block(self._signed(sender, None, code, DEPLOY_GAS), self.now)
        return int(receipt.status)

    def transact(self, contract: Contract, fn: str, *args: Any, sender: int,
                 timestamp: int | None = None) -> TxResult:
        """Send `fn(args)` from dev account `sender` in a block of its own."""
        self.now = self.now + 1 if timestamp is None else timestamp
        data = contract.abi.encode_call(fn, args)
        sender_address = self.addresses[sender]
        env = self.chain.env_for(self.chain.head, self.now, PROPOSER)
        output: Any = None
        reason: str | None = None
        reverted = False
        try:
            result = self.chain.executor.call(self.chain.head.state_root, env, sender=sender_address,
                                              to=contract.address, data=data, gas=TX_GAS)
            output = contract.abi.decode_output(fn, result.output)
        except Reverted as exc:
            reverted, reason = True, exc.reason
        stx = self._signed(sender, contract.address, data, TX_GAS)
        block, receipt = self._run_block(stx, self.now)
        assert receipt.status == (0 if reverted else 1), "the transaction and its dry run disagree"
        assert block.header.timestamp == self.now
        events = self._decode_events(receipt.logs)
        return TxResult(receipt.status, output, reason, events, receipt.logs, block.number, self.now)

    def block(self, calls: list[tuple[Contract, str, tuple[Any, ...], int]],
              timestamp: int | None = None) -> list[TxResult]:
        """Several transactions `(contract, fn, args, sender)` in one block, in order.

        Results carry status and events; no output or reason (the dry run of a later
        transaction would not see the earlier ones): ask `call()` afterwards.
        """
        self.now = self.now + 1 if timestamp is None else timestamp
        stxs = []
        try:
            for contract, fn, args, sender in calls:
                stxs.append(self._signed(sender, contract.address, contract.abi.encode_call(fn, args), TX_GAS))
                self._pending[sender] = self._pending.get(sender, 0) + 1
        finally:
            self._pending.clear()
        block, execution = self.chain.build_block(stxs, timestamp=self.now, proposer=PROPOSER)
        assert not execution.skipped, execution.skipped
        self.chain.commit_block(block, execution)
        return [TxResult(r.status, None, None, self._decode_events(r.logs), r.logs, block.number, self.now)
                for r in execution.receipts]

    def call(self, contract: Contract, fn: str, *args: Any, sender: int | None = None,
             timestamp: int | None = None) -> Any:
        """eth_call of a view on the head; raises `Reverted`."""
        env = self.chain.env_for(self.chain.head, self.now if timestamp is None else timestamp, PROPOSER)
        sender_address = self.addresses[sender] if sender is not None else b"\x00" * 20
        result = self.chain.executor.call(self.chain.head.state_root, env, sender=sender_address,
                                          to=contract.address, data=contract.abi.encode_call(fn, args))
        return contract.abi.decode_output(fn, result.output)
