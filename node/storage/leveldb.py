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

Faults (issue 11, docs/RELIABILITY.md). The node never repairs a store (LevelDB's
`RepairDB` keeps what it can read and silently drops the rest, final blocks included):

* damaged files are refused with `StorageCorrupted`, a message naming the file and
  what is wrong, and what the operator can do (restore a backup or snapshot, or resync).
  Before opening, CURRENT and the MANIFEST it names must exist (with CURRENT missing,
  LevelDB would create an empty database in the directory and delete its table files).
  The database is opened with `paranoid_checks` (LevelDB refuses a damaged MANIFEST or
  write-ahead log, and missing table files, instead of skipping them), and every read
  verifies block checksums, so damage found while running is a `StorageCorrupted` on
  that read, never wrong bytes. `check()` verifies, at start, that every table file the
  MANIFEST lists has its recorded size and a table footer, and (`full`) reads every
  block of every table through LevelDB with checksums verified.
* a write that fails for lack of space is a `StorageFull`; after any failed write the
  store refuses further writes (LevelDB's log may hold a partial record, which is
  harmless at its end, where recovery treats it as the torn tail of a crash, but would
  be corruption if more records followed it). Reads go on.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import plyvel

from node.storage.base import (
    BufferedWriteBatch,
    StorageCorrupted,
    StorageError,
    StorageFull,
    WriteBatch,
    prefix_upper_bound,
    require_bytes,
)

__all__ = ["LevelDBStore", "StoreCheck"]

# Tuning for a node workload: a cache large enough for hot trie nodes and
# headers, a write buffer that keeps compactions infrequent during sync, and
# bloom filters so lookups of missing keys (common in the trie) skip disk reads.
_LRU_CACHE_SIZE = 64 * 1024 * 1024
_WRITE_BUFFER_SIZE = 16 * 1024 * 1024
_BLOOM_FILTER_BITS = 10


# What an operator can do about a damaged store (said in every StorageCorrupted).
REMEDY = (
    "RxLedger does not repair a damaged store (a repair keeps what it can read and drops "
    "the rest, final blocks included): stop the node, then restore the data directory from a "
    "backup or snapshot, or move it aside and resync the node from its peers"
)
_NO_SPACE = "no space left on device"

# LevelDB's file names (filename.cc): numbered table files (.ldb, formerly .sst) and
# write-ahead logs (.log); CURRENT names the live MANIFEST-NNNNNN.
_DATA_FILE = re.compile(r"[0-9]+\.(?:ldb|sst|log)")
_MANIFEST = re.compile(r"MANIFEST-[0-9]+")
# A live table in the `leveldb.sstables` property (version_set.cc, Version::DebugString):
# " <file number>:<file size>[<smallest key> .. <largest key>]", one line per table.
_SSTABLE_LINE = re.compile(rb"^ ([0-9]+):([0-9]+)\[", re.MULTILINE)
# Every table file ends with a 48-byte footer whose last 8 bytes are this number,
# little-endian (table/format.h, kTableMagicNumber).
_TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
_FOOTER_SIZE = 48


@dataclass(frozen=True, slots=True)
class StoreCheck:
    """What `LevelDBStore.check` verified."""

    tables: int  # live table files
    table_bytes: int  # their total size
    keys: int | None  # keys read with checksums verified (None: a quick check)
    seconds: float


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
        # The first write that failed: later writes are refused with it (module docstring).
        self._write_failure: StorageError | None = None
        self._check_files_before_open()
        try:
            self._db: Any = plyvel.DB(
                self.path,
                create_if_missing=create_if_missing,
                paranoid_checks=True,
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
            value: bytes | None = db.get(key, verify_checksums=True)
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
        db = self._enter_writer()
        try:
            db.put(key, value)
        except (plyvel.Error, OSError, RuntimeError) as exc:
            raise self._write_error("put", exc) from exc
        finally:
            self._leave()

    def delete(self, key: bytes) -> None:
        """Remove `key` if present."""
        require_bytes("key", key)
        db = self._enter_writer()
        try:
            db.delete(key)
        except (plyvel.Error, OSError, RuntimeError) as exc:
            raise self._write_error("delete", exc) from exc
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
                    raw = db.iterator(prefix=prefix, verify_checksums=True)
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
                        raw = db.iterator(reverse=True, verify_checksums=True)
                    else:
                        raw = db.iterator(stop=upper, reverse=True, verify_checksums=True)
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
        db = self._enter_writer()
        try:
            raw = db.write_batch(sync=sync)
            for key, value in wb.ops:
                if value is None:
                    raw.delete(key)
                else:
                    raw.put(key, value)
            raw.write()
        except (plyvel.Error, OSError, RuntimeError) as exc:
            raise self._write_error("write batch", exc) from exc
        finally:
            self._leave()

    def check(self, *, full: bool = True) -> StoreCheck:
        """Verify the store's table files; raise `StorageCorrupted` naming what is wrong.

        Always: every table file the MANIFEST lists exists, has the size the MANIFEST
        records (a truncated or extended file is found here; LevelDB itself would only
        find it when a read reaches the damaged part) and ends with a table footer. With
        `full`, every key and value is also read through LevelDB with block checksums
        verified (flipped bytes anywhere in a table), without filling the block cache.
        A full check reads the whole store: 0.4-4 s for 470 MB in 1.5 M keys on a busy
        2-core machine (measured for issue 11; a store of many GB can take minutes).
        """
        started = time.monotonic()
        tables = self._live_tables()
        for number, size in tables:
            try:
                self._check_table_file(number, size)
            except StorageCorrupted:
                # A compaction running since the listing may have replaced and deleted
                # the file: only a table that is still live is damaged (tables never
                # change once written).
                if (number, size) in self._live_tables():
                    raise
        keys = self._scan_checksums(tables) if full else None
        return StoreCheck(len(tables), sum(size for _, size in tables), keys,
                          time.monotonic() - started)

    def _live_tables(self) -> list[tuple[int, int]]:
        """(file number, size in bytes) of every table the current MANIFEST lists."""
        db = self._enter()
        try:
            listing = db.get_property(b"leveldb.sstables")
        except (plyvel.Error, OSError, RuntimeError) as exc:
            raise self._op_error("check", exc) from exc
        finally:
            self._leave()
        if listing is None:
            raise StorageError(f"database at {self.path}: LevelDB does not list its table files")
        return [(int(n), int(size)) for n, size in _SSTABLE_LINE.findall(listing)]

    def _table_path(self, number: int) -> str:
        for suffix in (".ldb", ".sst"):  # LevelDB reads either (filename.cc)
            path = os.path.join(self.path, f"{number:06d}{suffix}")
            if os.path.exists(path):
                return path
        raise StorageCorrupted(
            f"the database at {self.path} is damaged: table file {number:06d}.ldb, listed in "
            f"its MANIFEST, is missing. {REMEDY}"
        )

    def _check_table_file(self, number: int, size: int) -> None:
        path = self._table_path(number)
        name = os.path.basename(path)
        try:
            with open(path, "rb") as f:
                actual = os.fstat(f.fileno()).st_size
                if actual == size and size >= _FOOTER_SIZE:
                    f.seek(size - len(_TABLE_MAGIC))
                    magic = f.read(len(_TABLE_MAGIC))
        except FileNotFoundError as exc:  # deleted since _table_path looked
            raise StorageCorrupted(f"table file {path}, listed in its MANIFEST, is missing. {REMEDY}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read table file {path}: {exc.strerror}") from exc
        if actual != size:
            what = "truncated" if actual < size else "extended"
            raise StorageCorrupted(
                f"the database at {self.path} is damaged: table file {name} is {actual} bytes, "
                f"but its MANIFEST records {size} (the file was {what}). {REMEDY}"
            )
        if size < _FOOTER_SIZE or magic != _TABLE_MAGIC:
            raise StorageCorrupted(
                f"the database at {self.path} is damaged: table file {name} does not end with "
                f"a LevelDB table footer (its last bytes were overwritten). {REMEDY}"
            )

    def _scan_checksums(self, tables: list[tuple[int, int]]) -> int:
        """Read every key and value with checksums verified; the number of keys read."""
        count = 0
        last: bytes | None = None
        db = self._enter()
        try:
            # Keys only: LevelDB still reads and verifies each whole block, and Python
            # makes no value objects. fill_cache=False: the scan does not evict hot blocks.
            for key in db.iterator(include_value=False, verify_checksums=True, fill_cache=False):
                last = key
                count += 1
        except plyvel.CorruptionError as exc:
            # LevelDB's message does not say which file; with few tables, name them all.
            after = "the first key" if last is None else f"key 0x{last.hex()}"
            names = [f"{n:06d}.ldb" for n, _ in tables]
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise StorageCorrupted(
                f"the database at {self.path} is damaged: a block of a table file ({shown}) "
                f"read after {after} fails its check: {_describe(exc)}. {REMEDY}"
            ) from exc
        except (plyvel.Error, OSError, RuntimeError) as exc:
            raise self._op_error("check", exc) from exc
        finally:
            self._leave()
        return count

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

    def _enter_writer(self) -> Any:
        """`_enter` for a write: refused once a write has failed (module docstring)."""
        failure = self._write_failure
        if failure is not None:
            raise type(failure)(
                f"database at {self.path} refuses writes after an earlier write failed: {failure}"
            )
        return self._enter()

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

    def _check_files_before_open(self) -> None:
        """Refuse a data directory whose CURRENT or MANIFEST is missing (module docstring)."""
        try:
            names = set(os.listdir(self.path))
        except FileNotFoundError:
            return  # a new database
        except OSError as exc:
            raise StorageError(f"cannot read the database directory {self.path}: {exc.strerror}") from exc
        data = sorted(n for n in names if _DATA_FILE.fullmatch(n))
        if "CURRENT" not in names:
            if data:
                shown = ", ".join(data[:3]) + (", …" if len(data) > 3 else "")
                raise StorageCorrupted(
                    f"the database at {self.path} is damaged: its CURRENT file is missing, but "
                    f"the directory holds {len(data)} table and log files ({shown}); opening it "
                    f"would start an empty database and delete them. {REMEDY}"
                )
            return  # LevelDB was interrupted creating it: nothing was ever written
        try:
            with open(os.path.join(self.path, "CURRENT"), "rb") as f:
                current = f.read(256)
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}/CURRENT: {exc.strerror}") from exc
        manifest = current.decode("ascii", errors="replace").removesuffix("\n")
        if not _MANIFEST.fullmatch(manifest) or not current.endswith(b"\n"):
            raise StorageCorrupted(
                f"the database at {self.path} is damaged: its CURRENT file does not name a "
                f"MANIFEST (it holds {current[:64]!r}). {REMEDY}"
            )
        if manifest not in names:
            raise StorageCorrupted(
                f"the database at {self.path} is damaged: its MANIFEST file {manifest} (named by "
                f"CURRENT) is missing, so the list of its table files is lost. {REMEDY}"
            )

    def _open_error(self, exc: BaseException) -> StorageError:
        detail = _describe(exc)
        lowered = detail.lower()
        if isinstance(exc, plyvel.CorruptionError):
            return StorageCorrupted(
                f"the database at {self.path} is damaged; LevelDB cannot open it: {detail}. {REMEDY}"
            )
        if _NO_SPACE in lowered:
            return StorageFull(
                f"cannot open database at {self.path}: no space left on device ({detail}); "
                f"free space on the disk, then start the node again"
            )
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
        detail = _describe(exc)
        if isinstance(exc, plyvel.CorruptionError):
            return StorageCorrupted(
                f"{action} failed on database at {self.path}: the database is damaged "
                f"({detail}). {REMEDY}"
            )
        if _NO_SPACE in detail.lower():
            return StorageFull(
                f"{action} failed on database at {self.path}: no space left on device "
                f"({detail}); nothing of this write was kept and the store accepts no more "
                f"writes: free space on the disk, then restart the node"
            )
        return StorageError(f"{action} failed on database at {self.path}: {detail}")

    def _write_error(self, action: str, exc: BaseException) -> StorageError:
        error = self._op_error(action, exc)
        if self._db is not None:  # a write after close() is not a failed write
            self._write_failure = error
        return error
