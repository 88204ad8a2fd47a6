"""Differential harness: every step runs on the Solidity contract AND the native chaincode.

One in-memory dev chain holds both engines: the native chaincodes at 0x…1001-1003 (from
genesis) and the Solidity contracts deployed at ordinary addresses with the same
development setup. A `TwinContract` is the Solidity contract with its native twin.
`TwinHarness` (an `EvmHarness`) sends each transaction to a twin to both engines, in the
SAME block (same timestamp, same number), and requires identical results:

- the dry run (eth_call on the head): identical return data, or identical revert data;
- the receipts: identical status, and identical logs (topics and data; the emitting
  address mapped Solidity → native);
- views: identical return data or revert data.

Return data and revert data are compared byte for byte after replacing the Solidity
contracts' addresses with their native twins' (only `governance()` returns one). It then
hands back the Solidity result, so the scenario functions of test_contracts_solidity.py
run unchanged and check the behaviour of both.

The distinctive module name: tests/ directories have no __init__.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaincode_py import NativeChaincodeHost

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts"))

from solidity_harness import PROPOSER, TX_GAS, Contract, EvmHarness, TxResult  # noqa: E402

from node.chain import Chain  # noqa: E402
from node.execution.executor import decode_revert_reason  # noqa: E402
from node.genesis import GenesisConfig  # noqa: E402
from node.storage import MemoryStore  # noqa: E402
from rxledger.core.addresses import (
    ANCHOR_REGISTRY,
    GOVERNANCE,
    PRESCRIPTION_REGISTRY,  # noqa: E402
)
from rxledger.core.errors import Reverted  # noqa: E402
from rxledger.core.types import Log  # noqa: E402

NATIVE = {"PrescriptionRegistry": PRESCRIPTION_REGISTRY, "Governance": GOVERNANCE,
          "AnchorRegistry": ANCHOR_REGISTRY}


@dataclass
class TwinContract(Contract):
    native: Contract | None = None


@dataclass(frozen=True)
class Outcome:
    """What a call gives: return data, or revert data (with `reverted`)."""

    reverted: bool
    data: bytes


class Mismatch(AssertionError):
    pass


class TwinHarness(EvmHarness):
    """An `EvmHarness` that runs twin contracts on both engines and compares."""

    def __init__(self, genesis: GenesisConfig | None = None) -> None:
        super().__init__()
        if genesis is not None:
            self.chain = Chain(MemoryStore(), genesis, NativeChaincodeHost)
        self.address_map: dict[bytes, bytes] = {}  # Solidity address -> native address
        self.steps = 0  # compared steps (transactions and calls)

    def twin(self, solidity: Contract) -> TwinContract:
        native = self.attach(solidity.name, NATIVE[solidity.name])
        self.address_map[solidity.address] = native.address
        return TwinContract(solidity.name, solidity.address, solidity.abi, native)

    # -- normalisation -----------------------------------------------------------------------
    def _map_data(self, data: bytes) -> bytes:
        for sol, nat in self.address_map.items():
            data = data.replace(sol.rjust(32, b"\x00"), nat.rjust(32, b"\x00"))
        return data

    def _map_log(self, log: Log) -> Log:
        return Log(self.address_map.get(log.address, log.address), log.topics, log.data)

    # -- raw calls ------------------------------------------------------------------------------
    def raw_call(self, to: bytes, data: bytes, *, sender: bytes, timestamp: int | None = None,
                 value: int = 0, gas: int | None = None) -> Outcome:
        env = self.chain.env_for(self.chain.head, self.now if timestamp is None else timestamp, PROPOSER)
        try:
            out = self.chain.executor.call(self.chain.head.state_root, env, sender=sender, to=to,
                                           data=data, value=value, gas=gas)
        except Reverted as exc:
            return Outcome(True, exc.data)
        return Outcome(False, out.output)

    def compare_call(self, contract: TwinContract, data: bytes, *, sender: bytes,
                     timestamp: int | None = None, value: int = 0) -> Outcome:
        """eth_call `data` on both engines; they must agree. Returns the Solidity outcome."""
        assert contract.native is not None
        sol = self.raw_call(contract.address, data, sender=sender, timestamp=timestamp, value=value)
        nat = self.raw_call(contract.native.address, data, sender=sender, timestamp=timestamp, value=value)
        self.steps += 1
        if Outcome(sol.reverted, self._map_data(sol.data)) != nat:
            raise Mismatch(f"{contract.name} call 0x{data.hex()} from 0x{sender.hex()}: "
                           f"Solidity {sol}, native {nat}")
        return sol

    def _compare_receipts(self, label: str, sol: Any, nat: Any) -> None:
        self.steps += 1
        if sol.status != nat.status:
            raise Mismatch(f"{label}: status Solidity {sol.status}, native {nat.status}")
        if tuple(self._map_log(log) for log in sol.logs) != nat.logs:
            raise Mismatch(f"{label}: logs differ\nSolidity {sol.logs}\nnative   {nat.logs}")

    # -- EvmHarness API ------------------------------------------------------------------------
    def transact(self, contract: Contract, fn: str, *args: Any, sender: int,
                 timestamp: int | None = None) -> TxResult:
        if not isinstance(contract, TwinContract):
            return super().transact(contract, fn, *args, sender=sender, timestamp=timestamp)
        assert contract.native is not None
        self.now = self.now + 1 if timestamp is None else timestamp
        data = contract.abi.encode_call(fn, args)
        sender_address = self.addresses[sender]
        dry = self.compare_call(contract, data, sender=sender_address)
        output: Any = None
        reason: str | None = None
        if dry.reverted:
            reason = decode_revert_reason(dry.data)
        else:
            output = contract.abi.decode_output(fn, dry.data)
        results = self._twin_block([(contract, data, sender)], self.now)
        sol, nat, block = results[0]
        self._compare_receipts(f"{contract.name}.{fn}{args}", sol, nat)
        assert sol.status == (0 if dry.reverted else 1), "the transaction and its dry run disagree"
        events = self._decode_events(sol.logs)
        return TxResult(sol.status, output, reason, events, sol.logs, block.number, self.now)

    def _twin_block(self, calls: list[tuple[TwinContract, bytes, int]], timestamp: int) -> list[Any]:
        """One block: the Solidity transactions in order, then the native ones in order."""
        stxs = []
        try:
            for target in ("sol", "native"):
                for contract, data, sender in calls:
                    assert contract.native is not None
                    to = contract.address if target == "sol" else contract.native.address
                    stxs.append(self._signed(sender, to, data, TX_GAS))
                    self._pending[sender] = self._pending.get(sender, 0) + 1
        finally:
            self._pending.clear()
        block, execution = self.chain.build_block(stxs, timestamp=timestamp, proposer=PROPOSER)
        assert not execution.skipped, execution.skipped
        assert len(execution.receipts) == 2 * len(calls)
        self.chain.commit_block(block, execution)
        n = len(calls)
        return [(execution.receipts[i], execution.receipts[n + i], block) for i in range(n)]

    def block(self, calls: list[tuple[Contract, str, tuple[Any, ...], int]],
              timestamp: int | None = None) -> list[TxResult]:
        if not all(isinstance(c, TwinContract) for c, _fn, _args, _sender in calls):
            return super().block(calls, timestamp)
        self.now = self.now + 1 if timestamp is None else timestamp
        encoded = [(c, c.abi.encode_call(fn, args), sender) for c, fn, args, sender in calls]
        twins: list[tuple[TwinContract, bytes, int]] = [
            (c, data, sender) for c, data, sender in encoded if isinstance(c, TwinContract)]
        results = self._twin_block(twins, self.now)
        out = []
        for (contract, fn, args, _sender), (sol, nat, block) in zip(calls, results, strict=True):
            self._compare_receipts(f"{contract.name}.{fn}{args}", sol, nat)
            out.append(TxResult(sol.status, None, None, self._decode_events(sol.logs), sol.logs,
                                block.number, self.now))
        return out

    def call(self, contract: Contract, fn: str, *args: Any, sender: int | None = None,
             timestamp: int | None = None) -> Any:
        if not isinstance(contract, TwinContract):
            return super().call(contract, fn, *args, sender=sender, timestamp=timestamp)
        sender_address = self.addresses[sender] if sender is not None else b"\x00" * 20
        sol = self.compare_call(contract, contract.abi.encode_call(fn, args), sender=sender_address,
                                timestamp=timestamp)
        if sol.reverted:
            reason = decode_revert_reason(sol.data)
            raise Reverted(f"execution reverted: {reason}" if reason else "execution reverted",
                           sol.data, reason)
        return contract.abi.decode_output(fn, sol.data)
