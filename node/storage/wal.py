"""The consensus write-ahead log's keyspace: what a validator signed or locked, above the head.

The QBFT runtime persists a record before the messages it covers leave the node (one
fsynced batch), reads the records above the head back on start, and prunes those at or
below a block once it is final. The key layout is this module's alone:

    W "wal" height (8 B BE) round (4 B BE) step (1 B) kind ("s" signed | "p" prepared) index (2 B BE)
                                                                    → the record's bytes

so records sort by (height, round, step) and, within one batch, in the order written. The
runtime hands records in and gets them back as `WalEntry` values; it knows no key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from node.storage.base import KeyValueStore, StorageError
from node.storage.chain_store import CONSENSUS

__all__ = ["WAL_PREFIX", "WalEntry", "decode_wal_key", "load_wal", "prune_wal", "save_wal", "wal_key", "wal_keys"]

WAL_PREFIX = CONSENSUS + b"wal"
_KINDS = {"signed": b"s", "prepared": b"p"}
_KEY_LENGTH = len(WAL_PREFIX) + 16


@dataclass(frozen=True, slots=True)
class WalEntry:
    """One stored record: `kind` is "signed" or "prepared"; `data` is opaque here."""

    kind: str
    height: int
    round: int
    step: int
    data: bytes


def wal_key(entry: WalEntry, index: int) -> bytes:
    """The key of the `index`-th record of one batch."""
    kind = _KINDS.get(entry.kind)
    if kind is None:
        raise ValueError(f"a WAL record is 'signed' or 'prepared', not {entry.kind!r}")
    return (WAL_PREFIX + entry.height.to_bytes(8, "big") + entry.round.to_bytes(4, "big")
            + bytes([entry.step]) + kind + index.to_bytes(2, "big"))


def decode_wal_key(key: bytes) -> tuple[int, int, int, str]:
    """(height, round, step, kind) from a key made by `wal_key`; a key of another length
    or kind (a corrupt store) raises `StorageError`."""
    at = len(WAL_PREFIX)
    if len(key) != _KEY_LENGTH or not key.startswith(WAL_PREFIX) or key[at + 13:at + 14] not in (b"s", b"p"):
        raise StorageError(f"corrupt consensus WAL key 0x{key.hex()}")
    height = int.from_bytes(key[at:at + 8], "big")
    round_ = int.from_bytes(key[at + 8:at + 12], "big")
    step = key[at + 12]
    kind = "signed" if key[at + 13:at + 14] == b"s" else "prepared"
    return height, round_, step, kind


def save_wal(store: KeyValueStore, entries: Iterable[WalEntry]) -> None:
    """Write `entries` in one fsynced batch (they are on disk when this returns)."""
    entries = list(entries)
    if not entries:
        return
    with store.batch(sync=True) as batch:
        for index, entry in enumerate(entries):
            batch.put(wal_key(entry, index), entry.data)


def load_wal(store: KeyValueStore, above: int) -> list[WalEntry]:
    """The records of heights above `above` (the head), in the order they were written."""
    entries = []
    for key, value in store.iterate(WAL_PREFIX):
        height, round_, step, kind = decode_wal_key(key)
        if height > above:
            entries.append(WalEntry(kind, height, round_, step, value))
    return entries


def prune_wal(store: KeyValueStore, through: int) -> None:
    """Delete the records of heights up to `through` (a final block): not fsynced, since a
    record left behind by a crash is below the head and ignored (and pruned next time)."""
    stale = [key for key, _ in store.iterate(WAL_PREFIX) if decode_wal_key(key)[0] <= through]
    if stale:
        with store.batch(sync=False) as batch:
            for key in stale:
                batch.delete(key)


def wal_keys(store: KeyValueStore) -> list[bytes]:
    """Every WAL key in the store (for inspection and tests)."""
    return [key for key, _ in store.iterate(WAL_PREFIX)]
