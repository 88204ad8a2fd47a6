"""Key-value storage layer: the bottom of the node's persistence stack.

The chain database (`chain_store`), the consensus write-ahead log (`wal`), the EVM
state and the native chaincode state all store raw `bytes` in one `KeyValueStore`
(see `node.storage.base` for the full contract): ordered keys, prefix iteration over
a consistent snapshot, and atomic, optionally fsynced write batches. Backends:

* `MemoryStore` - in-process, nothing persisted; for tests and dev chains.
* `LevelDBStore` - LevelDB via plyvel; the production backend.

Backend failures (I/O errors, a data dir locked by another node, use after
close) are raised as `StorageError`; damaged files as its subclass `StorageCorrupted`,
a full disk as `StorageFull`. `open_store` picks the backend from a data directory
setting and checks the files of an existing LevelDB store before the node uses it.
"""

from __future__ import annotations

import os

from node.storage.base import (
    KeyValueStore,
    StorageCorrupted,
    StorageError,
    StorageFull,
    WriteBatch,
)
from node.storage.leveldb import LevelDBStore, StoreCheck
from node.storage.memory import MemoryStore

__all__ = [
    "KeyValueStore",
    "LevelDBStore",
    "MemoryStore",
    "StorageCorrupted",
    "StorageError",
    "StorageFull",
    "StoreCheck",
    "WriteBatch",
    "open_store",
]


def open_store(path: str | os.PathLike[str] | None, *, full_check: bool = True) -> KeyValueStore:
    """Open the store for a data directory: `None` gives a fresh `MemoryStore`,
    anything else a `LevelDBStore` at `path` (parent directories are created).

    A LevelDB store is checked before it is returned (`LevelDBStore.check`, with every
    block's checksum when `full_check`); a damaged one raises `StorageCorrupted` and is
    left closed and untouched."""
    if path is None:
        return MemoryStore()
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create parent directory {parent} for database at {path}: {exc}"
        ) from exc
    store = LevelDBStore(path)
    try:
        store.check(full=full_check)
    except BaseException:
        store.close()
        raise
    return store
