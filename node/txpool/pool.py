"""The transaction pool: what is admitted, and in what order it leaves.

Admission (`add`) checks, in order, and refuses with a message saying exactly why:
size, chain id and gas bounds, sender enrolment (permissioned chain), nonce not used,
nonce not too far ahead, not already known, not replacing a pending nonce, pool space.
The transaction arrives already decoded with its sender recovered (`SignedTransaction`);
block building reuses that object, so each sender is recovered once per node.

Order (`pending`): per sender by nonce, only a gapless run starting at the account's
state nonce; senders take turns in the order their first waiting transaction arrived.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from node.errors import InvalidTransaction, TxPoolRefused
from node.types.transactions import SignedTransaction, validate_transaction

MAX_TX_SIZE = 128 * 1024  # as geth: larger transactions are refused at the door


@dataclass(frozen=True)
class PoolLimits:
    max_transactions: int = 20_000
    max_per_sender: int = 1_000
    max_nonce_gap: int = 64
    max_tx_size: int = MAX_TX_SIZE


class TxPool:
    """Thread-safe pool of transactions waiting for a block."""

    def __init__(
        self,
        *,
        chain_id: int,
        block_gas_limit: int,
        state_nonce: Callable[[bytes], int],
        is_enrolled: Callable[[bytes], bool],
        limits: PoolLimits | None = None,
        state_balance: Callable[[bytes], int] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.block_gas_limit = block_gas_limit
        self.state_nonce = state_nonce
        self.is_enrolled = is_enrolled
        self.state_balance = state_balance
        self.limits = limits or PoolLimits()
        self._lock = threading.Lock()
        # sender → {nonce: tx}; OrderedDict keeps senders in arrival order.
        self._by_sender: OrderedDict[bytes, dict[int, SignedTransaction]] = OrderedDict()
        self._by_hash: dict[bytes, SignedTransaction] = {}
        self._arrived: dict[bytes, float] = {}
        self._gas = 0  # the gas limits of the waiting transactions, summed
        self._arrival = threading.Condition(self._lock)

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def waiting_gas(self) -> int:
        """The gas limits of all waiting transactions, summed (is there a full block?)."""
        return self._gas

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> SignedTransaction | None:
        return self._by_hash.get(tx_hash)

    def add(self, stx: SignedTransaction) -> bytes:
        """Admit a transaction; returns its hash or raises `TxPoolRefused`/`InvalidTransaction`."""
        if len(stx.raw) > self.limits.max_tx_size:
            raise TxPoolRefused(
                f"oversized transaction: {len(stx.raw)} bytes, the limit is {self.limits.max_tx_size}"
            )
        validate_transaction(stx, chain_id=self.chain_id, block_gas_limit=self.block_gas_limit)
        sender_hex = "0x" + stx.sender.hex()
        if not self.is_enrolled(stx.sender):
            raise TxPoolRefused(
                f"sender {sender_hex} is not enrolled on this permissioned chain; "
                "an organisation admin must enrol the account first"
            )
        state_nonce = self.state_nonce(stx.sender)
        if stx.nonce < state_nonce:
            raise TxPoolRefused(
                f"nonce too low: transaction nonce {stx.nonce}, account {sender_hex} is at {state_nonce}"
            )
        if stx.nonce > state_nonce + self.limits.max_nonce_gap:
            raise TxPoolRefused(
                f"nonce too high: transaction nonce {stx.nonce} is more than "
                f"{self.limits.max_nonce_gap} ahead of account {sender_hex} (at {state_nonce})"
            )
        # Value and fees must be covered at the head, as geth checks after the nonce (most
        # transactions here move no value at gas price 0: no state read for them).
        cost = stx.tx.value + stx.gas * stx.tx.max_fee_per_gas
        if cost and self.state_balance is not None:
            balance = self.state_balance(stx.sender)
            if balance < cost:
                raise TxPoolRefused(
                    f"insufficient funds: account {sender_hex} has {balance} wei, the transaction "
                    f"needs {cost} (value + gas × price)"
                )
        with self._lock:
            if stx.hash in self._by_hash:
                raise TxPoolRefused(f"already known: transaction 0x{stx.hash.hex()} is waiting")
            queue = self._by_sender.get(stx.sender, {})
            if stx.nonce in queue:
                raise TxPoolRefused(
                    f"replacement transaction refused: nonce {stx.nonce} of {sender_hex} is "
                    "already waiting (gas price is 0, so there is no fee bump to replace it)"
                )
            if len(queue) >= self.limits.max_per_sender:
                raise TxPoolRefused(
                    f"txpool is full for sender {sender_hex}: {len(queue)} transactions waiting"
                )
            if len(self._by_hash) >= self.limits.max_transactions:
                raise TxPoolRefused(f"txpool is full: {len(self._by_hash)} transactions waiting")
            queue[stx.nonce] = stx
            self._by_sender[stx.sender] = queue
            self._by_hash[stx.hash] = stx
            self._arrived[stx.hash] = time.monotonic()
            self._gas += stx.gas
            self._arrival.notify_all()
        return stx.hash

    def pending(self, max_gas: int | None = None) -> list[SignedTransaction]:
        """Executable transactions, nonce-ordered per sender, senders round-robin."""
        with self._lock:
            runs: list[list[SignedTransaction]] = []
            for sender, queue in self._by_sender.items():
                nonce = self.state_nonce(sender)
                run = []
                while nonce in queue:
                    run.append(queue[nonce])
                    nonce += 1
                if run:
                    runs.append(run)
        out: list[SignedTransaction] = []
        gas = 0
        depth = 0
        while runs:
            still = []
            for run in runs:
                if depth < len(run):
                    tx = run[depth]
                    if max_gas is not None and gas + tx.gas > max_gas:
                        continue  # this sender's later nonces must wait for the next block
                    gas += tx.gas
                    out.append(tx)
                    still.append(run)
            runs = still
            depth += 1
        return out

    def waiting_longer_than(self, seconds: float, limit: int = 1000) -> list[SignedTransaction]:
        """Transactions that have waited more than `seconds` (oldest first, at most `limit`)."""
        cutoff = time.monotonic() - seconds
        with self._lock:
            old = sorted((t, h) for h, t in self._arrived.items() if t < cutoff)[:limit]
            return [self._by_hash[h] for _, h in old]

    def has_executable(self) -> bool:
        """Whether some transaction could go into the next block (its nonce is due)."""
        with self._lock:
            return any(self.state_nonce(sender) in queue for sender, queue in self._by_sender.items())

    def next_nonce(self, sender: bytes) -> int:
        """The nonce after the sender's gapless run of waiting transactions."""
        # Read the state nonce under the lock: a commit updates the head before the pool
        # drops the block's transactions, so inside the lock the two agree.
        with self._lock:
            nonce = self.state_nonce(sender)
            queue = self._by_sender.get(sender, {})
            while nonce in queue:
                nonce += 1
        return nonce

    def remove(self, txs: list[SignedTransaction]) -> None:
        """Drop transactions (included in a block, or refused by execution)."""
        with self._lock:
            for stx in txs:
                self._drop(stx)

    def prune(self) -> None:
        """Drop transactions whose nonce the state has passed (after a block commits)."""
        with self._lock:
            for sender in list(self._by_sender):
                nonce = self.state_nonce(sender)
                for stx in [t for n, t in self._by_sender[sender].items() if n < nonce]:
                    self._drop(stx)

    def _drop(self, stx: SignedTransaction) -> None:
        queue = self._by_sender.get(stx.sender)
        if queue is not None and queue.get(stx.nonce) is stx:
            del queue[stx.nonce]
            if not queue:
                del self._by_sender[stx.sender]
        if self._by_hash.pop(stx.hash, None) is not None:
            self._gas -= stx.gas
        self._arrived.pop(stx.hash, None)

    def wait_for_transactions(self, timeout: float) -> bool:
        """Block the calling thread until the pool is non-empty or `timeout` passes."""
        with self._arrival:
            if self._by_hash:
                return True
            self._arrival.wait(timeout)
            return bool(self._by_hash)

    def wake(self) -> None:
        """Wake threads blocked in `wait_for_transactions` (for shutdown)."""
        with self._arrival:
            self._arrival.notify_all()


__all__ = ["InvalidTransaction", "PoolLimits", "TxPool", "TxPoolRefused"]
