"""The transaction pool: what is admitted, where it waits, and in what order it leaves.

Two parts per account, as geth's legacypool (core/txpool/legacypool):

- *pending*: the gap-free run of nonces starting at the account's nonce at the head. These
  are executable; only they go into blocks (`pending`), count for `has_executable` and
  `waiting_gas`, and end `next_nonce`.
- *queued*: transactions whose nonce leaves a gap after the pending run. They wait for the
  missing nonces (sent to another node and not gossiped here yet, or simply sent out of
  order) and are *promoted* to pending when the gap fills: by a new transaction, one that
  arrives by gossip, or a block that moves the head's nonce. A block can also make them
  *stale* (its nonce is used: dropped), and a pending transaction that leaves without being
  included (refused by execution, evicted) *demotes* the later ones to queued.

The head's nonce is read through `state_nonce` whenever the pool is asked (it changes on
commit, before the node calls `remove` and `prune`), so each account is re-settled against
it lazily: `_settle` drops what is stale and recomputes where the pending run ends.

Admission (`add`) checks, in order, and refuses with a message saying exactly why: size,
chain id and gas bounds, sender enrolment (permissioned chain), nonce not used, nonce not
beyond what the pool could ever hold for one account, funds, not already known, not
replacing a waiting nonce, then room: an executable transaction needs pending slots
(`global_slots`, with `account_slots` guaranteed to every account by evicting the tail of
the largest account), a gapped one room in its account's queue (`account_queue`; a lower
nonce evicts the account's highest queued one, as geth keeps the lowest) and in the global
queue (`global_queue`), and both parts together within `global_slots + global_queue`.
The transaction arrives already decoded with its sender recovered (`SignedTransaction`);
block building reuses that object, so each sender is recovered once per node.

Order (`pending`): per account by nonce; accounts take turns in the order their first
waiting transaction arrived.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rxledger.core.errors import InvalidTransaction, TxPoolRefused
from rxledger.core.types.transactions import SignedTransaction, validate_transaction

log = logging.getLogger("rxledger.txpool")

MAX_TX_SIZE = 128 * 1024  # as geth (txMaxSize): larger transactions are refused at the door
SLOT_SIZE = 32 * 1024  # as geth (txSlotSize): a transaction takes one slot per 32 KiB begun


def slots_of(stx: SignedTransaction) -> int:
    """The pool slots a transaction takes: one per 32 KiB of its wire form begun (geth numSlots)."""
    return max(1, -(-len(stx.raw) // SLOT_SIZE))


@dataclass(frozen=True)
class PoolLimits:
    """The pool's budgets (node.toml `[pool]`), each beside geth's and Besu's.

    ================  =======  ==========================  =====================================
    field             default  geth (legacypool)           Besu (layered pool)
    ================  =======  ==========================  =====================================
    global_slots      5120     GlobalSlots 5120            --tx-pool-max-prioritized 2000 (txs)
    account_slots     16       AccountSlots 16             (none: by sender score)
    account_queue     256      AccountQueue 64             --tx-pool-max-future-by-sender 200
    global_queue      4096     GlobalQueue 1024            --tx-pool-layer-max-capacity 12.5 MB
    max_tx_size       131072   txMaxSize 128 KiB           (RLP size limit of the network)
    ================  =======  ==========================  =====================================

    - `global_slots`: pending (executable, gap-free) transactions in all, in 32 KiB slots
      (`slots_of`: a typical transaction is one slot). A new executable transaction beyond
      it is refused ("txpool is full"), unless its account holds fewer than
      `account_slots` pending: then the highest nonces of the account holding the most
      pending (above `account_slots`) are evicted to make room, so a busy account cannot
      lock the others out (geth truncatePending keeps the same guarantee). 5120 slots hold
      several 30 M-gas blocks of transactions, and a client's burst of a few thousand.
    - `account_queue`: gapped transactions per account. Larger than geth's 64: here every
      sender is an enrolled, accountable member, and gaps come from clients that spread
      an account's nonces round-robin over the nodes faster than gossip runs (a burst of
      250 nonces of one account over four nodes leaves a node 3/4 of them gapped, 63 here
      with no gossip at all). A full queue refuses a gapped nonce above all its own (the
      message names the missing nonce) and evicts its highest one for a lower nonce.
    - `global_queue`: gapped transactions in all, in slots (geth counts this budget in
      transactions); 16 full accounts, as geth's 1024 / 64.
    - A nonce more than `global_slots + account_queue` ahead of the account's nonce at the
      head is refused at once ("nonce too high"): the pool could not hold the transactions
      between it and the head (geth has no such bound and lets it take a queue slot; Besu
      refuses a nonce `max-future-by-sender` ahead).

    - Pending and queued together never pass `global_slots + global_queue` slots (geth
      refuses, or evicts by price, past the same sum): promotion and demotion move
      transactions between the parts, so either part alone may run over its own limit.

    Memory held is therefore at most (5120 + 4096) × 32 KiB = 288 MiB of transactions; with
    typical transactions (an anchor call is about 200 bytes, one slot) about 2 MiB.
    """

    global_slots: int = 5120
    account_slots: int = 16
    account_queue: int = 256
    global_queue: int = 4096
    max_tx_size: int = MAX_TX_SIZE

    @property
    def nonce_window(self) -> int:
        """How far beyond the head's nonce a transaction's nonce may be."""
        return self.global_slots + self.account_queue


@dataclass
class _Account:
    """One sender's waiting transactions: `txs[base:end]` pending (all present), the rest queued."""

    base: int  # the account's nonce at the head when last settled
    end: int  # the first nonce >= base not waiting: [base, end) is the pending run
    txs: dict[int, SignedTransaction] = field(default_factory=dict)

    @property
    def pending_count(self) -> int:
        return self.end - self.base

    @property
    def queued_count(self) -> int:
        return len(self.txs) - (self.end - self.base)

    def is_pending(self, nonce: int) -> bool:
        return self.base <= nonce < self.end


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
        # sender → its transactions; OrderedDict keeps senders in arrival order.
        self._accounts: OrderedDict[bytes, _Account] = OrderedDict()
        self._by_hash: dict[bytes, SignedTransaction] = {}
        self._arrived: dict[bytes, float] = {}
        self._pending_slots = 0
        self._pending_gas = 0  # the gas limits of the pending transactions, summed
        self._pending_count = 0
        self._queued_slots = 0
        self._arrival = threading.Condition(self._lock)

    def __len__(self) -> int:
        """All waiting transactions, pending and queued."""
        return len(self._by_hash)

    @property
    def pending_count(self) -> int:
        """Executable transactions waiting (as of the last settlement with the head)."""
        return self._pending_count

    @property
    def queued_count(self) -> int:
        """Gapped transactions waiting for a missing nonce."""
        return len(self._by_hash) - self._pending_count

    @property
    def waiting_gas(self) -> int:
        """The gas limits of the executable transactions, summed (is there a full block?)."""
        return self._pending_gas

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> SignedTransaction | None:
        return self._by_hash.get(tx_hash)

    # -- admission -------------------------------------------------------------------------
    def add(self, stx: SignedTransaction) -> bytes:
        """Admit a transaction; returns its hash or raises `TxPoolRefused`/`InvalidTransaction`."""
        limits = self.limits
        if len(stx.raw) > limits.max_tx_size:
            raise TxPoolRefused(
                f"oversized transaction: {len(stx.raw)} bytes, the limit is {limits.max_tx_size}"
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
        if stx.nonce > state_nonce + limits.nonce_window:
            raise TxPoolRefused(
                f"nonce too high: transaction nonce {stx.nonce} is more than {limits.nonce_window} "
                f"ahead of account {sender_hex} (at {state_nonce}): the pool holds at most "
                f"{limits.global_slots} executable and {limits.account_queue} gapped transactions "
                "of an account"
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
            account = self._accounts.get(stx.sender)
            if account is None:
                account = _Account(base=state_nonce, end=state_nonce)
            else:
                # Under the lock the head may have moved since the read above: settle on it.
                self._settle(stx.sender, account, self.state_nonce(stx.sender))
                if stx.nonce < account.base:
                    raise TxPoolRefused(f"nonce too low: transaction nonce {stx.nonce}, account "
                                        f"{sender_hex} is at {account.base}")
            if stx.nonce in account.txs:
                raise TxPoolRefused(
                    f"replacement transaction refused: nonce {stx.nonce} of {sender_hex} is "
                    "already waiting (gas price is 0, so there is no fee bump to replace it)"
                )
            if stx.nonce == account.end:
                self._admit_executable(stx, account, sender_hex)
            else:
                self._admit_gapped(stx, account, sender_hex)
            self._accounts.setdefault(stx.sender, account)
            self._by_hash[stx.hash] = stx
            self._arrived[stx.hash] = time.monotonic()
            self._arrival.notify_all()
        return stx.hash

    def _admit_executable(self, stx: SignedTransaction, account: _Account, sender_hex: str) -> None:
        need = slots_of(stx)
        victims = self._pending_victims(stx.sender, account, need)
        if victims is None:
            raise TxPoolRefused(
                f"txpool is full: {self._pending_slots} of {self.limits.global_slots} slots of "
                f"executable transactions are taken, and account {sender_hex} already has "
                f"{account.pending_count} (each account is guaranteed {self.limits.account_slots}); "
                "try again after the next block"
            )
        self._check_total(sum(slots_of(v) for v in victims), need)
        for victim in victims:
            owner = self._accounts[victim.sender]
            self._unlink(owner, victim)
            owner.end = victim.nonce  # the tail goes; later nonces, if any, stay queued
            if not owner.txs:
                del self._accounts[victim.sender]
            log.info("evicted transaction 0x%s (nonce %d of 0x%s) for room in a full pool",
                     victim.hash.hex(), victim.nonce, victim.sender.hex())
        account.txs[stx.nonce] = stx
        self._count_pending(stx, +1)
        account.end += 1
        self._promote(account)

    def _admit_gapped(self, stx: SignedTransaction, account: _Account, sender_hex: str) -> None:
        need = slots_of(stx)
        victim = None
        if account.queued_count >= self.limits.account_queue:
            highest = max((n for n in account.txs if n > account.end), default=-1)
            if stx.nonce > highest:
                raise TxPoolRefused(
                    f"txpool is full for account {sender_hex}: {account.queued_count} transactions "
                    f"wait for the missing nonce {account.end} (at most {self.limits.account_queue} "
                    "gapped per account); send that nonce first"
                )
            victim = account.txs[highest]
        freed = slots_of(victim) if victim is not None else 0
        if self._queued_slots - freed + need > self.limits.global_queue:
            raise TxPoolRefused(
                f"txpool is full: {self._queued_slots} of {self.limits.global_queue} slots of gapped "
                f"transactions are taken; send the missing nonce {account.end} of {sender_hex} first"
            )
        self._check_total(freed, need)
        if victim is not None:
            self._unlink(account, victim)
            log.info("evicted queued transaction 0x%s (nonce %d of 0x%s) for the lower nonce %d",
                     victim.hash.hex(), victim.nonce, victim.sender.hex(), stx.nonce)
        account.txs[stx.nonce] = stx
        self._queued_slots += need

    def _check_total(self, freed: int, need: int) -> None:
        """Pending and queued together stay within global_slots + global_queue (promotion and
        demotion move transactions between the parts, so either part alone may overshoot)."""
        total = self._pending_slots + self._queued_slots
        limit = self.limits.global_slots + self.limits.global_queue
        if total - freed + need > limit:
            raise TxPoolRefused(
                f"txpool is full: {total} of {limit} slots are taken in all (executable and gapped); "
                "try again after the next block"
            )

    def _pending_victims(self, sender: bytes, account: _Account, need: int) -> list[SignedTransaction] | None:
        """The pending tails to evict so that `need` slots are free ([] if they are), or
        None when the pool is full and `account` has had its guaranteed share."""
        free = self.limits.global_slots - self._pending_slots
        if free >= need:
            return []
        if account.pending_count >= self.limits.account_slots:
            return None
        taken: dict[bytes, int] = {}
        victims: list[SignedTransaction] = []
        while free < need:
            owner, left = b"", 0  # the account holding the most pending, after the planned evictions
            for other, candidate in self._accounts.items():
                count = candidate.pending_count - taken.get(other, 0)
                if other != sender and count > left:
                    owner, left = other, count
            if left <= self.limits.account_slots:
                return None
            largest = self._accounts[owner]
            tail = largest.txs[largest.base + left - 1]
            victims.append(tail)
            taken[owner] = taken.get(owner, 0) + 1
            free += slots_of(tail)
        return victims

    # -- bookkeeping -----------------------------------------------------------------------
    def _count_pending(self, stx: SignedTransaction, sign: int) -> None:
        self._pending_slots += sign * slots_of(stx)
        self._pending_gas += sign * stx.gas
        self._pending_count += sign

    def _promote(self, account: _Account) -> None:
        """Move the queued transactions that now follow the pending run into it."""
        while account.end in account.txs:
            stx = account.txs[account.end]
            self._queued_slots -= slots_of(stx)
            self._count_pending(stx, +1)
            account.end += 1

    def _unlink(self, account: _Account, stx: SignedTransaction) -> None:
        """Forget one transaction (its account's `end` is the caller's to fix)."""
        if account.is_pending(stx.nonce):
            self._count_pending(stx, -1)
        else:
            self._queued_slots -= slots_of(stx)
        del account.txs[stx.nonce]
        self._by_hash.pop(stx.hash, None)
        self._arrived.pop(stx.hash, None)

    def _settle(self, sender: bytes, account: _Account, state_nonce: int, *, force: bool = False) -> None:
        """Bring an account in line with its nonce at the head: drop stale nonces, recount
        where the pending run ends (promoting or demoting), cap its queue."""
        if state_nonce == account.base and not force:
            return
        for nonce in [n for n in account.txs if n < state_nonce]:
            self._unlink(account, account.txs[nonce])
        for nonce in range(max(account.base, state_nonce), account.end):  # demote the old run
            if nonce in account.txs:
                stx = account.txs[nonce]
                self._count_pending(stx, -1)
                self._queued_slots += slots_of(stx)
        account.base = account.end = state_nonce
        self._promote(account)
        excess = account.queued_count - self.limits.account_queue
        if excess > 0:  # a demotion overfilled the queue: the highest nonces go (geth Cap)
            for nonce in sorted((n for n in account.txs if n > account.end), reverse=True)[:excess]:
                log.info("dropped queued transaction 0x%s (nonce %d of 0x%s): its account's queue is full",
                         account.txs[nonce].hash.hex(), nonce, sender.hex())
                self._unlink(account, account.txs[nonce])
        if not account.txs:
            self._accounts.pop(sender, None)

    def _settle_all(self) -> None:
        for sender, account in list(self._accounts.items()):
            self._settle(sender, account, self.state_nonce(sender))

    # -- what leaves -----------------------------------------------------------------------
    def pending(self, max_gas: int | None = None) -> list[SignedTransaction]:
        """Executable transactions, nonce-ordered per sender, senders round-robin."""
        with self._lock:
            self._settle_all()
            runs = [[a.txs[n] for n in range(a.base, a.end)] for a in self._accounts.values() if a.end > a.base]
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
        """Transactions that have waited more than `seconds` (oldest first, at most `limit`),
        queued ones included: a peer may be missing exactly those."""
        cutoff = time.monotonic() - seconds
        with self._lock:
            old = sorted((t, h) for h, t in self._arrived.items() if t < cutoff)[:limit]
            return [self._by_hash[h] for _, h in old]

    def has_executable(self) -> bool:
        """Whether some transaction could go into the next block (its nonce is due)."""
        with self._lock:
            self._settle_all()
            return self._pending_count > 0

    def next_nonce(self, sender: bytes) -> int:
        """The nonce after the sender's gapless run of waiting transactions."""
        # Read the state nonce under the lock: a commit updates the head before the pool
        # drops the block's transactions, so inside the lock the two agree.
        with self._lock:
            nonce = self.state_nonce(sender)
            account = self._accounts.get(sender)
            if account is None:
                return nonce
            self._settle(sender, account, nonce)
            return max(account.end, nonce)

    def remove(self, txs: Iterable[SignedTransaction]) -> None:
        """Drop transactions (included in a block, refused by execution). An account whose
        pending run loses a nonce the head has not passed has its later nonces demoted."""
        with self._lock:
            touched: dict[bytes, _Account] = {}
            for stx in txs:
                account = self._accounts.get(stx.sender)
                if account is not None and account.txs.get(stx.nonce) is stx:
                    self._unlink(account, stx)
                    touched[stx.sender] = account
            for sender, account in touched.items():
                self._settle(sender, account, self.state_nonce(sender), force=True)

    def prune(self) -> None:
        """Drop transactions whose nonce the state has passed and promote those now due
        (after a block commits)."""
        with self._lock:
            self._settle_all()

    def drop_senders(self, unwanted: Callable[[bytes], bool]) -> int:
        """Drop every waiting transaction, pending or queued, of the senders `unwanted`
        picks (an enrolment revoked); returns how many went."""
        with self._lock:
            dropped = 0
            for sender, account in list(self._accounts.items()):
                if unwanted(sender):
                    for stx in list(account.txs.values()):
                        self._unlink(account, stx)
                        dropped += 1
                    del self._accounts[sender]
            return dropped

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


__all__ = ["InvalidTransaction", "PoolLimits", "TxPool", "TxPoolRefused", "slots_of"]
