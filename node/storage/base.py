"""The key-value storage contract every backend implements.

Everything above this layer (chain database, state trie, txpool persistence)
talks to a `KeyValueStore`: an ordered map from `bytes` keys to `bytes` values
with prefix iteration and atomic write batches. Two backends exist,
`node.storage.memory.MemoryStore` (tests, dev chains) and
`node.storage.leveldb.LevelDBStore` (production); both must pass the shared
conformance suite in `tests/conformance/test_storage_conformance.py`.

Contract summary:

* Keys and values are `bytes`; anything else raises `TypeError`. The empty
  value `b""` is a real value, distinct from a missing key (`get` -> `None`).
* `iterate(prefix, reverse=...)` yields `(key, value)` pairs whose key starts
  with `prefix`, ordered by raw key bytes. The view is fixed when `iterate` is
  called: writes made while the iterator is consumed are not seen.
* `batch(sync=...)` is a context manager yielding a `WriteBatch`. Its writes are
  invisible until the `with` block exits normally; then they are applied all or
  nothing (and fsynced when `sync=True`). If the block raises, nothing is
  applied and the exception propagates. Later operations on a key win.
* After `close()` every operation raises `StorageError`; closing twice is fine.

Backend failures surface as `StorageError` (re-exported here from
`rxledger.core.errors`), never as a backend-specific exception type. Two kinds have their own
subclasses because an operator acts on them differently: `StorageCorrupted` (the files
are damaged: restore from a backup or resync; the node never repairs a store itself)
and `StorageFull` (no space left on the device: free space and restart).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from rxledger.core.errors import StorageError

__all__ = [
    "BufferedWriteBatch",
    "KeyValueStore",
    "StorageCorrupted",
    "StorageError",
    "StorageFull",
    "WriteBatch",
    "prefix_upper_bound",
    "require_bytes",
]


class StorageCorrupted(StorageError):
    """The store's files are damaged (a checksum, size or file the database needs is wrong
    or missing). Nothing read from it can be trusted; the node refuses to start on it and
    stops writing if it is found while running."""


class StorageFull(StorageError):
    """A write failed because the device has no space left; nothing of that write is kept
    (batches are all or nothing), and the store accepts no further writes."""


@runtime_checkable
class WriteBatch(Protocol):
    """A set of writes that a `KeyValueStore.batch()` block applies atomically."""

    def put(self, key: bytes, value: bytes) -> None:
        """Queue `key = value`; replaces any earlier queued operation on `key`."""
        ...

    def delete(self, key: bytes) -> None:
        """Queue the removal of `key`; a missing key is not an error."""
        ...


@runtime_checkable
class KeyValueStore(Protocol):
    """An ordered `bytes -> bytes` map with prefix iteration and atomic batches."""

    def get(self, key: bytes) -> bytes | None:
        """Return the value stored under `key`, or `None` if there is none."""
        ...

    def has(self, key: bytes) -> bool:
        """Return whether `key` is present (an empty value counts as present)."""
        ...

    def put(self, key: bytes, value: bytes) -> None:
        """Store `value` under `key`. A single write; not necessarily fsynced."""
        ...

    def delete(self, key: bytes) -> None:
        """Remove `key`; deleting a missing key is not an error."""
        ...

    def iterate(
        self, prefix: bytes = b"", *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield every `(key, value)` whose key starts with `prefix`, sorted by key
        bytes (descending when `reverse`), from a snapshot taken at call time."""
        ...

    def batch(self, *, sync: bool = True) -> AbstractContextManager[WriteBatch]:
        """Return a context manager whose `WriteBatch` is applied atomically on
        normal exit (fsynced when `sync`), and discarded if the block raises."""
        ...

    def close(self) -> None:
        """Release the backend. Later operations raise `StorageError`."""
        ...


def require_bytes(name: str, value: object) -> bytes:
    """Return `value` if it is `bytes`, else raise `TypeError`.

    Only `bytes` is accepted, not `bytearray`/`memoryview`: a mutable buffer
    stored in the memory backend could be changed behind the store's back, and
    accepting it on one backend but not another would break conformance.
    """
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return value


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """Return the smallest key greater than every key starting with `prefix`.

    `None` means "no upper bound": the prefix is empty or all `0xff` bytes, so
    every key from `prefix` to the end of the keyspace matches.
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class BufferedWriteBatch:
    """A `WriteBatch` that records operations in order for a backend to apply.

    Both backends use it so they validate types identically, and so a batch
    used after its `with` block has ended fails loudly instead of silently
    dropping writes.
    """

    def __init__(self) -> None:
        # `None` as the value marks a delete; applying in order makes the last
        # operation on a key win, as the contract requires.
        self.ops: list[tuple[bytes, bytes | None]] = []
        self._finished = False

    def put(self, key: bytes, value: bytes) -> None:
        """Queue `key = value`."""
        self._check_open()
        self.ops.append((require_bytes("key", key), require_bytes("value", value)))

    def delete(self, key: bytes) -> None:
        """Queue the removal of `key`."""
        self._check_open()
        self.ops.append((require_bytes("key", key), None))

    def finish(self) -> None:
        """Mark the batch as ended (committed or discarded); further use fails."""
        self._finished = True

    def _check_open(self) -> None:
        if self._finished:
            raise StorageError("write batch used after its `with` block ended")
