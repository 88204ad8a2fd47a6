"""The native fast path: a transaction to a chaincode address, applied without py-evm.

A transaction whose `to` is a reserved chaincode address (0x…1001-1003) runs no EVM
bytecode: py-evm hands the call to the chaincode session through a precompile entry
(`node.execution.evm._chaincode_entry`). Everything else py-evm does for such a
transaction is bookkeeping — build a message and a computation, buy gas, bump the
nonce, open journal checkpoints, settle the refund and the (zero) fee, touch the
coinbase and the callee — and it cost four times the chaincode call itself. This module
does that bookkeeping directly on the state, step for step as py-evm's Prague
transaction executor does it, so the state root, the receipt (status, cumulative gas,
logs, bloom) and the return or revert data are byte-identical:

1. Validation (py-evm: `validate_frontier_transaction`, London's and Cancun's checks):
   nonce equal to the account's, balance covering `gas · max fee` and
   `value + gas · price`. A transaction this module is not sure about returns None and
   the executor gives it to py-evm, which accepts it or refuses it with its own message:
   a wrong nonce, too little balance, gas below the intrinsic gas or the calldata floor,
   another chain id, a nonce at 2^64-1.
2. Buy gas (`gas · price` from the sender) and increment the sender's nonce.
3. The call: the chaincode session with `gas - intrinsic gas`, as the precompile entry
   calls it. Gas used is the chaincode's, at most what the message has. On success the
   value moves to the callee (py-evm moves it first and undoes it on failure; chaincode
   cannot read balances, so the order is not observable) and the callee is touched; on
   revert or exceptional halt nothing of the call remains, the revert data is the output.
4. Finalisation (py-evm: `finalize_computation`, Prague's calldata floor): gas used is
   `gas - remaining + floor` (chaincode makes no refunds), the unused gas is refunded at
   the price paid, the coinbase credited `gas used · tip` (zero on our chain: the
   coinbase is only touched), then EIP-161: a touched account that is empty is deleted.

`tests/conformance/test_native_fast_path_hypothesis.py` runs random native transactions
(and EVM ones between them) through this path and through py-evm and requires identical
state roots, receipts and outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.execution.chaincode import BlockInfo, ChaincodeCall, ChaincodeSession
from node.execution.evm import RxLedgerState
from rxledger.core.types.receipts import Log
from rxledger.core.types.transactions import (
    DynamicFeeTransaction,
    LegacyTransaction,
    SignedTransaction,
    calldata_floor_gas,
)

UINT64_MAX = 2**64 - 1
BASE_FEE = 0  # our blocks' base fee (node.execution.executor opens every state with it)


@dataclass(frozen=True, slots=True)
class NativeOutcome:
    """What a transaction applied by the fast path produced."""

    success: bool
    gas_used: int  # as the receipt counts it (with the calldata floor)
    logs: tuple[Log, ...]
    output: bytes  # return data, or revert data


def _prices(stx: SignedTransaction) -> tuple[int, int, int] | None:
    """(max fee per gas, effective gas price, coinbase tip per gas), as London defines
    them for our zero base fee; None for a transaction type we leave to py-evm."""
    tx = stx.tx
    if isinstance(tx, LegacyTransaction):
        return tx.gas_price, tx.gas_price, tx.gas_price
    if isinstance(tx, DynamicFeeTransaction):
        max_fee, priority = tx.max_fee_per_gas, tx.max_priority_fee_per_gas
        return (max_fee, min(max_fee, priority + BASE_FEE), min(max_fee - BASE_FEE, priority))
    return None  # pragma: no cover - decode_transaction accepts types 0 and 2 only


def apply_native_transaction(
    state: RxLedgerState, session: ChaincodeSession, stx: SignedTransaction, chain_id: int,
    block: BlockInfo,
) -> NativeOutcome | None:
    """Apply `stx` (to a chaincode address) to `state` and `session` as py-evm would.

    Returns None, having changed nothing, when the transaction is one py-evm must judge
    (see the module docstring); the caller then applies it through py-evm.
    """
    tx = stx.tx
    prices = _prices(stx)
    if prices is None or tx.chain_id != chain_id or tx.nonce >= UINT64_MAX:
        return None
    max_fee, price, tip = prices
    gas, value, sender, to = tx.gas, tx.value, stx.sender, tx.to
    intrinsic = stx.intrinsic_gas
    floor_gas = calldata_floor_gas(tx)
    if gas < intrinsic or gas < floor_gas or max_fee < BASE_FEE:
        return None
    nonce, balance = state.account_nonce_balance(sender)
    if (nonce != tx.nonce or balance < gas * price + value or balance < gas * max_fee):
        return None

    # Buy gas, increment the nonce.
    balance -= gas * price
    state.set_nonce_balance(sender, nonce + 1, balance)

    message_gas = gas - intrinsic
    result = session.call(ChaincodeCall(
        address=to, sender=sender, origin=sender, value=value, data=tx.data, gas=message_gas,
        is_static=False, block=block,
    ))
    remaining = message_gas - min(result.gas_used, message_gas)
    success = not result.reverted
    if success and value:
        _nonce, balance = state.account_nonce_balance(sender)
        state.set_nonce_balance(sender, _nonce, balance - value)
        to_nonce, to_balance = state.account_nonce_balance(to)
        state.set_nonce_balance(to, to_nonce, to_balance + value)

    # Refund, fee, EIP-161.
    floor = max(floor_gas - (gas - remaining), 0)
    refund = (remaining - floor) * price
    if refund:
        _nonce, balance = state.account_nonce_balance(sender)
        state.set_nonce_balance(sender, _nonce, balance + refund)
    gas_used = gas - remaining + floor
    fee = gas_used * tip
    coinbase = block.coinbase
    if fee:
        cb_nonce, cb_balance = state.account_nonce_balance(coinbase)
        state.set_nonce_balance(coinbase, cb_nonce, cb_balance + fee)
    state.clear_if_empty(coinbase)
    if success:
        state.clear_if_empty(to)
    logs = tuple(result.logs) if success else ()
    return NativeOutcome(success, gas_used, logs, result.output)
