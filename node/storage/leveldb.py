"""LevelDB-backed `KeyValueStore` (via plyvel), the node's production backend.

Every plyvel failure is translated into `StorageError` naming the database path,
so callers never depend on plyvel's exception types.

Thread safety: LevelDB itself is safe for concurrent reads and writes, and plyvel
releases the GIL inside its calls, so closing the database in one thread while
another thread is inside a call could free the handle under it. Every operation,
including each step of an iterator, therefore registers as a user of the open
handle for the length of its one LevelDB call (a short lock around a counter), and
`close()` waits until no call is in flight. Calls never wait for each other: a read
runs while a block's fsynced batch is being written (holding one lock across the
call made every JSON-RPC read wait out the fsync of the block being committed).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import plyvel

from node.storage.base import (
    BufferedWriteBatch,
    StorageError,
    WriteBatch,
    prefix_upper_bound,
    require_bytes,
)

__all__ = ["LevelDBStore"]

# Tuning for a node workload: a cache large enough for hot trie nodes and
# headers, a write buffer that keeps compactions infrequent during sync, and
# bloom filters so lookups of missing keys (common in the trie) skip disk reads.
_LRU_CACHE_SIZE = 64 * 1024 * 1024
_WRITE_BUFFER_SIZE = 16 * 1024 * 1024
_BLOOM_FILTER_BITS = 10


def _describe(exc: BaseException) -> str:
    """Return plyvel's message as text (plyvel puts raw bytes in `args[0]`)."""
    if exc.args and isinstance(exc.args[0], bytes):
        return exc.args[0].decode("utf-8", errors="replace")
    return str(exc)


class LevelDBStore:
    """A `KeyValueStore` persisted in a LevelDB directory at `path`."""

    def __init__(self, path: str | os.PathLike[str], *, create_if_missing: bool = True) -> None:
        self.path = os.fspath(path)
        # Reentrant: the garbage collector may finish an abandoned iterator (whose clean-up
        # takes the lock) while this thread holds it.
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)  # close() waits here for _users == 0
        self._users = 0
        self._closed = threading.Event()  # set once the handle is freed
        try:
            self._db: Any = plyvel.DB(
                self.path,
                create_if_missing=create_if_missing,
                lru_cache_size=_LRU_CACHE_SIZE,
                write_buffer_size=_WRITE_BUFFER_SIZE,
                bloom_filter_bits=_BLOOM_FILTER_BITS,
            )
        except (plyvel.Error, OSError) as exc:
            raise self._open_error(exc) from exc

    def __repr__(self) -> str:
        state = "closed" if self._db is None else "open"
        return f"<LevelDBStore {self.path!r} {state}>"

    def get(self, key: bytes) -> bytes | None:
        """Return the value under `key`, or `None`."""
        require_bytes("key", key)
        db = self._enter()
        try:
            value: bytes | None = db.get(key)
        except (plyvel.Error, OSError, RuntimeError) as exc:
            raise self._op_error("get", exc) from exc
        finally:
            self._leave()
        return value

    def has(self, key: bytes) -> bool:
        """Return whether `key` is present."""
        return self.get(key) is not None

    def put(self, key: bytes, value: bytes) -> None:
        """Store `value` under `key` (not fsynced; use a batch for durability)."""
        require_bytes("key", key)
        require_bytes("value", value)
        db = self._enter()
        try:
            db.put(key, value)
        except (plyvel.Error, OSError, RuntimeError) as exc:
            raise self._op_error("put", exc) from exc
        finally:
            self._leave()

    def delete(self, key: bytes) -> None:
        """Remove `key` if present."""
        require_bytes("key", key)
        db = self._enter()
        try:
            db.delete(key)
        except (plyvel.Error, OSError, RuntimeError) as exc:
            raise self._op_error("delete", exc) from exc
        finally:
            self._leave()

    def iterate(
        self, prefix: bytes = b"", *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield `(key, value)` pairs under `prefix` in key order.

        The plyvel iterator is created here, not lazily on first `next()`, so
        its implicit LevelDB snapshot is taken when `iterate` is called.
        """
        require_bytes("prefix", prefix)
        db = self._enter()
        try:
            try:
                if not reverse:
                    raw = db.iterator(prefix=prefix)
                else:
                    # Not `iterator(prefix=..., reverse=True)`: plyvel 1.5.1
                    # yields nothing in reverse when the last key in range
                    # equals the start key (e.g. prefix b"a" with only key
                    # b"a" stored), because its initial reverse positioning
                    # treats an inclusive start as exclusive. Bounding only the
                    # top and stopping at the first key outside the prefix
                    # (see _iter_steps) avoids that code path.
                    upper = prefix_upper_bound(prefix)
                    if upper is None:
                        raw = db.iterator(reverse=True)
                    else:
                        raw = db.iterator(stop=upper, reverse=True)
            except (plyvel.Error, OSError, RuntimeError) as exc:
                raise self._op_error("iterate", exc) from exc
        finally:
            self._leave()
        return self._iter_steps(raw, prefix)

    def _iter_steps(self, raw: Any, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        # Each step is one call on the open handle, so close() cannot free the
        # database mid-step; close() invalidates the plyvel iterator and the next
        # step then fails with a StorageError.
        try:
            while True:
                self._enter()
                try:
                    item: tuple[bytes, bytes] = next(raw)
                except StopIteration:
                    return
                except (plyvel.Error, OSError, RuntimeError) as exc:
                    raise self._op_error("iterate", exc) from exc
                finally:
                    self._leave()
                # Reverse iterators are only bounded above; keys below the
                # prefix range end the iteration. (A no-op check going forward.)
                if not item[0].startswith(prefix):
                    return
                yield item
        finally:
            # Free the LevelDB iterator (and its snapshot) promptly when the
            # caller stops early, instead of waiting for garbage collection.
            with self._lock:
                if self._db is not None:
                    raw.close()

    @contextmanager
    def batch(self, *, sync: bool = True) -> Iterator[WriteBatch]:
        """Collect writes and commit them atomically when the block exits normally.

        Operations are buffered in a `BufferedWriteBatch` and written as one
        LevelDB write batch (atomic by LevelDB's design) after the block ends;
        with `sync=True` the write is fsynced before this returns. This is the
        same all-or-nothing behaviour as plyvel's `write_batch(transaction=True)`,
        done by hand so the caller's block holds nothing open on the database.
        """
        self._open_db()
        wb = BufferedWriteBatch()
        try:
            yield wb
        finally:
            # On an exception this is all that runs: the ops are dropped.
            wb.finish()
        db = self._enter()
        try:
            raw = db.write_batch(sync=sync)
            for key, value in wb.ops:
                if value is None:
                    raw.delete(key)
                else:
                    raw.put(key, value)
            raw.write()
        except (plyvel.Error, OSError, RuntimeError) as exc:
            raise self._op_error("write batch", exc) from exc
        finally:
            self._leave()

    def close(self) -> None:
        """Close the database once no call is in flight; later operations raise
        `StorageError`. A second call returns once the first has closed it."""
        with self._lock:
            db, self._db = self._db, None  # no new call starts from here on
            if db is not None:
                while self._users:
                    self._idle.wait()
        if db is None:
            self._closed.wait()
            return
        try:
            db.close()
        except (plyvel.Error, OSError, RuntimeError) as exc:
            raise self._op_error("close", exc) from exc
        finally:
            self._closed.set()

    def _enter(self) -> Any:
        """The open handle, counted as in use until `_leave`."""
        with self._lock:
            db = self._db
            if db is not None:
                self._users += 1
                return db
        raise StorageError(f"database at {self.path} is closed")

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                self._idle.notify_all()

    def _open_db(self) -> Any:
        db = self._db
        if db is None:
            raise StorageError(f"database at {self.path} is closed")
        return db

    def _open_error(self, exc: BaseException) -> StorageError:
        detail = _describe(exc)
        lowered = detail.lower()
        if "lock" in lowered and "already held by process" in lowered:
            # LevelDB tracks its own locks per process: this process has the
            # same directory open through another handle.
            return StorageError(
                f"database at {self.path} is already open in this process (LOCK held): {detail}"
            )
        if "lock" in lowered and (
            "resource temporarily unavailable" in lowered or "already held" in lowered
        ):
            return StorageError(
                f"database at {self.path} is in use by another process (LOCK held): {detail}"
            )
        return StorageError(f"cannot open database at {self.path}: {detail}")

    def _op_error(self, action: str, exc: BaseException) -> StorageError:
        return StorageError(f"{action} failed on database at {self.path}: {_describe(exc)}")
