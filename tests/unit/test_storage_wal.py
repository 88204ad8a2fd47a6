"""The consensus WAL keyspace (`node.storage.wal`) on a real LevelDB store: the key layout
is the one data directories already hold, records come back above the head in the order
written, pruning removes those at or below a final block, and a corrupt key is named."""

from __future__ import annotations

import pytest

from node.storage.leveldb import LevelDBStore
from node.storage.wal import (
    WAL_PREFIX,
    WalEntry,
    decode_wal_key,
    load_wal,
    prune_wal,
    save_wal,
    wal_key,
    wal_keys,
)
from rxledger.core.errors import StorageError


@pytest.fixture
def store(tmp_path):
    db = LevelDBStore(tmp_path / "chaindata")
    yield db
    db.close()


def test_the_key_layout_is_the_one_existing_data_directories_hold() -> None:
    # W "wal" height (8 B) round (4 B) step (1 B) kind (s | p) index (2 B), big-endian
    key = wal_key(WalEntry("signed", 1, 2, 3, b"x"), 4)
    assert key == b"Wwal" + bytes(7) + b"\x01" + bytes(3) + b"\x02" + b"\x03" + b"s" + b"\x00\x04"
    assert wal_key(WalEntry("prepared", 1, 2, 3, b"x"), 0)[-3:] == b"p\x00\x00"
    assert decode_wal_key(key) == (1, 2, 3, "signed")
    with pytest.raises(ValueError, match="'signed' or 'prepared'"):
        wal_key(WalEntry("other", 1, 0, 1, b""), 0)


def test_records_come_back_above_the_head_in_the_order_written_and_prune_below(store, tmp_path) -> None:
    first = [WalEntry("signed", 5, 0, 1, b"proposal"), WalEntry("prepared", 5, 0, 2, b"certificate")]
    save_wal(store, first)
    later = [WalEntry("signed", 6, 1, 2, b"prepare"), WalEntry("signed", 4, 0, 3, b"old commit")]
    save_wal(store, later)
    assert load_wal(store, above=4) == first + later[:1]
    assert load_wal(store, above=5) == later[:1]
    store.close()
    reopened = LevelDBStore(tmp_path / "chaindata")  # on disk: fsynced batches
    try:
        assert load_wal(reopened, above=4) == first + later[:1]
        prune_wal(reopened, through=5)
        assert load_wal(reopened, above=0) == later[:1]
        assert len(wal_keys(reopened)) == 1
        save_wal(reopened, [])  # nothing to write: no batch
        assert len(wal_keys(reopened)) == 1
    finally:
        reopened.close()


def test_a_corrupt_wal_key_is_refused_naming_it(store) -> None:
    bad = WAL_PREFIX + b"\x00" * 5
    store.put(bad, b"junk")
    with pytest.raises(StorageError, match=f"corrupt consensus WAL key 0x{bad.hex()}"):
        load_wal(store, above=0)
    with pytest.raises(StorageError, match="corrupt consensus WAL key"):
        decode_wal_key(WAL_PREFIX + bytes(13) + b"x" + bytes(2))  # a kind that is neither s nor p
