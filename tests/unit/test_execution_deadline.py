"""The RPC call deadline (eth_call/eth_estimateGas, [limits] rpc_evm_timeout): py-evm
cannot be interrupted from outside, so calls run on a state whose jumps, calls and
creates check the deadline; block execution never does (its outcome must not depend on
time). Real executor over the dev genesis state."""

from __future__ import annotations

import time

import pytest

from chaincode_py import NativeChaincodeHost
from node.config import NodeConfig
from node.execution.evm import CallDeadlineExceeded, _DeadlineChecked
from node.execution.executor import BlockEnv, CallTimeout
from node.genesis import dev_accounts, dev_genesis
from node.service import NodeService
from rxledger.core.errors import ExecutionError

LOOP = bytes.fromhex("5b5f56")  # JUMPDEST PUSH0 JUMP, run as creation code: loops by jumping
# No jump: one CALL (to our own address, which has no code yet), then STOP.
CALL_ONCE = bytes.fromhex("5f5f5f5f5f" + "30" + "5a" + "f1" + "00")  # PUSH0 x5 ADDRESS GAS CALL STOP


@pytest.fixture(scope="module")
def service() -> NodeService:
    return NodeService(NodeConfig(data_dir=None), dev_genesis(), chaincode=NativeChaincodeHost)


def env(service: NodeService) -> BlockEnv:
    head = service.chain.head
    return BlockEnv(head.number + 1, head.timestamp, head.coinbase, head.gas_limit, head.mix_hash)


def sender() -> bytes:
    address = dev_accounts()[9].address
    return address if isinstance(address, bytes) else bytes.fromhex(address[2:])


def test_a_call_past_its_deadline_stops_with_call_timeout(service: NodeService) -> None:
    executor, root = service.chain.executor, service.chain.head.state_root
    started = time.monotonic()
    with pytest.raises(CallTimeout):
        executor.call(root, env(service), sender=sender(), to=b"", data=LOOP, gas=30_000_000,
                      deadline=started + 0.2)
    with pytest.raises(CallTimeout):  # estimate_gas: its whole search shares the deadline
        executor.estimate_gas(root, env(service), sender=sender(), to=b"", data=LOOP, cap=30_000_000,
                              deadline=time.monotonic() + 0.2)


def test_a_call_out_of_gas_is_not_a_timeout(service: NodeService) -> None:
    executor, root = service.chain.executor, service.chain.head.state_root
    with pytest.raises(ExecutionError, match="OutOfGas") as info:
        executor.call(root, env(service), sender=sender(), to=b"", data=LOOP, gas=100_000,
                      deadline=time.monotonic() + 3600)
    assert not isinstance(info.value, CallTimeout)


def test_calls_check_the_deadline_at_call_opcodes_too(service: NodeService) -> None:
    executor, root = service.chain.executor, service.chain.head.state_root
    with pytest.raises(CallTimeout):  # a deadline already past: the first CALL stops it
        executor.call(root, env(service), sender=sender(), to=b"", data=CALL_ONCE, gas=1_000_000,
                      deadline=time.monotonic() - 1)
    result = executor.call(root, env(service), sender=sender(), to=b"", data=CALL_ONCE, gas=1_000_000,
                           deadline=time.monotonic() + 3600)
    assert result == executor.call(root, env(service), sender=sender(), to=b"", data=CALL_ONCE, gas=1_000_000)


def test_block_execution_never_checks_a_deadline(service: NodeService) -> None:
    from eth.exceptions import VMError
    from eth.vm import opcode_values

    executor, root = service.chain.executor, service.chain.head.state_root
    block_state, _ = executor.open_state(root, env(service))
    call_state, _ = executor.open_state(root, env(service), deadline=time.monotonic())
    jump = opcode_values.JUMP
    assert not isinstance(block_state.computation_class.opcodes[jump], _DeadlineChecked)
    assert isinstance(call_state.computation_class.opcodes[jump], _DeadlineChecked)
    # Not a py-evm VMError: those end one frame and let its caller go on.
    assert not issubclass(CallDeadlineExceeded, VMError)
