"""In-memory `KeyValueStore` for tests and throwaway dev chains.

Data lives in a sorted map (`sortedcontainers.SortedDict` when available, a
plain dict sorted on demand otherwise) guarded by one `threading.RLock`, because
the node calls storage both from its asyncio loop and from worker threads.
Nothing is persisted; `sync=True` on a batch is accepted and has no effect.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from node.storage.base import (
    BufferedWriteBatch,
    StorageError,
    WriteBatch,
    prefix_upper_bound,
    require_bytes,
)

try:
    from sortedcontainers import SortedDict
except ImportError:  # pragma: no cover - sortedcontainers ships with py-evm's deps
    SortedDict = None

__all__ = ["MemoryStore"]


class MemoryStore:
    """A thread-safe, ordered, in-memory `bytes -> bytes` store."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # SortedDict gives O(log n) range queries; the fallback dict is sorted
        # on every iterate(), which is fine for the small data sets of tests.
        self._data: Any = SortedDict() if SortedDict is not None else {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._data)} keys"
        return f"<MemoryStore {state}>"

    def get(self, key: bytes) -> bytes | None:
        """Return the value under `key`, or `None`."""
        require_bytes("key", key)
        with self._lock:
            self._check_open()
            value: bytes | None = self._data.get(key)
            return value

    def has(self, key: bytes) -> bool:
        """Return whether `key` is present."""
        require_bytes("key", key)
        with self._lock:
            self._check_open()
            return key in self._data

    def put(self, key: bytes, value: bytes) -> None:
        """Store `value` under `key`."""
        require_bytes("key", key)
        require_bytes("value", value)
        with self._lock:
            self._check_open()
            self._data[key] = value

    def delete(self, key: bytes) -> None:
        """Remove `key` if present."""
        require_bytes("key", key)
        with self._lock:
            self._check_open()
            self._data.pop(key, None)

    def iterate(
        self, prefix: bytes = b"", *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield `(key, value)` pairs under `prefix` in key order.

        The matching pairs are copied under the lock when `iterate` is called,
        so the caller sees a consistent snapshot even if it (or another thread)
        writes while consuming the iterator. The copy costs O(matches), which is
        acceptable for a test backend.
        """
        require_bytes("prefix", prefix)
        with self._lock:
            self._check_open()
            snapshot = self._matching_items(prefix, reverse)
        return iter(snapshot)

    @contextmanager
    def batch(self, *, sync: bool = True) -> Iterator[WriteBatch]:
        """Collect writes and apply them atomically when the block exits normally.

        `sync` is accepted for interface compatibility; memory has nothing to
        fsync.
        """
        with self._lock:
            self._check_open()
        wb = BufferedWriteBatch()
        try:
            yield wb
        finally:
            # Runs on both paths: if the body raised, the exception continues
            # after this and the queued ops are simply dropped.
            wb.finish()
        with self._lock:
            # Re-check: the store may have been closed while the block ran.
            self._check_open()
            # Applying under the lock with pre-validated ops cannot fail halfway,
            # so readers see either none or all of the batch.
            for key, value in wb.ops:
                if value is None:
                    self._data.pop(key, None)
                else:
                    self._data[key] = value

    def close(self) -> None:
        """Drop all data; later operations raise `StorageError`."""
        with self._lock:
            self._closed = True
            self._data.clear()

    def _matching_items(self, prefix: bytes, reverse: bool) -> list[tuple[bytes, bytes]]:
        upper = prefix_upper_bound(prefix)
        if SortedDict is not None and isinstance(self._data, SortedDict):
            keys = self._data.irange(
                minimum=prefix, maximum=upper, inclusive=(True, False), reverse=reverse
            )
        else:  # pragma: no cover - only without sortedcontainers
            keys = sorted((k for k in self._data if k.startswith(prefix)), reverse=reverse)
        return [(key, self._data[key]) for key in keys]

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("memory store is closed")
