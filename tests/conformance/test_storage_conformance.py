"""Conformance suite every `KeyValueStore` backend must pass.

The `store` fixture is parametrized over all backends, so a behaviour tested
here is a behaviour the rest of the node may rely on regardless of backend.
A hypothesis state machine then checks each backend against a plain dict model
over random put/delete/batch sequences. LevelDB-only tests at the end cover
persistence across reopen, data-dir locking, and crash durability of synced
batches (a child process killed with SIGKILL mid-write).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from node.storage import (
    KeyValueStore,
    LevelDBStore,
    MemoryStore,
    StorageCorrupted,
    StorageError,
    WriteBatch,
    open_store,
)
from node.storage.leveldb import REMEDY

REPO_ROOT = Path(__file__).resolve().parents[2]

BACKENDS = ["memory", "leveldb"]


def _make_store(backend: str, directory: Path) -> KeyValueStore:
    if backend == "memory":
        return MemoryStore()
    return LevelDBStore(directory / "db")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    kv = _make_store(request.param, tmp_path)
    yield kv
    kv.close()


class _Boom(Exception):
    """Raised inside batch blocks to check they are rolled back."""


# --------------------------------------------------------------------------
# Basic reads and writes


def test_backend_satisfies_protocol(store: KeyValueStore) -> None:
    assert isinstance(store, KeyValueStore)
    with store.batch() as wb:
        assert isinstance(wb, WriteBatch)


def test_put_get_has_delete(store: KeyValueStore) -> None:
    store.put(b"alpha", b"1")
    assert store.get(b"alpha") == b"1"
    assert store.has(b"alpha")
    store.delete(b"alpha")
    assert store.get(b"alpha") is None
    assert not store.has(b"alpha")


def test_overwrite_replaces_value(store: KeyValueStore) -> None:
    store.put(b"k", b"old")
    store.put(b"k", b"new-and-longer")
    assert store.get(b"k") == b"new-and-longer"
    store.put(b"k", b"s")
    assert store.get(b"k") == b"s"
    assert list(store.iterate()) == [(b"k", b"s")]


def test_missing_key(store: KeyValueStore) -> None:
    assert store.get(b"nope") is None
    assert not store.has(b"nope")
    assert list(store.iterate()) == []


def test_delete_missing_key_is_not_an_error(store: KeyValueStore) -> None:
    store.delete(b"never-written")
    store.put(b"k", b"v")
    store.delete(b"k")
    store.delete(b"k")
    assert store.get(b"k") is None


def test_empty_value_is_distinct_from_missing(store: KeyValueStore) -> None:
    store.put(b"empty", b"")
    assert store.get(b"empty") == b""
    assert store.get(b"empty") is not None
    assert store.has(b"empty")
    assert list(store.iterate()) == [(b"empty", b"")]


def test_binary_keys_and_values(store: KeyValueStore) -> None:
    pairs = {
        b"": b"empty key",
        b"\x00": b"nul",
        b"\x00\x00": b"two nuls",
        b"a\x00b": b"embedded nul",
        b"\x7f": b"del",
        b"\x80": b"high bit",
        b"\xff": b"ff",
        b"\xff\xff": b"ffff",
        bytes(range(256)): bytes(range(255, -1, -1)),
    }
    for key, value in pairs.items():
        store.put(key, value)
    for key, value in pairs.items():
        assert store.get(key) == value
    # Ordering is by unsigned byte value, not by any text collation.
    assert list(store.iterate()) == sorted(pairs.items())


# --------------------------------------------------------------------------
# Iteration


def _fill(store: KeyValueStore, keys: list[bytes]) -> None:
    for key in keys:
        store.put(key, b"v:" + key)


def _expected(keys: list[bytes], prefix: bytes, reverse: bool) -> list[tuple[bytes, bytes]]:
    matching = sorted(k for k in set(keys) if k.startswith(prefix))
    if reverse:
        matching.reverse()
    return [(k, b"v:" + k) for k in matching]


PREFIX_KEYS = [
    b"",
    b"\x00",
    b"\x00\xff",
    b"a",
    b"a\x00",
    b"a\xff",
    b"a\xff\xff",
    b"ab",
    b"abc",
    b"abd",
    b"ac",
    b"b",
    b"\xfe",
    b"\xfe\xff",
    b"\xff",
    b"\xff\x00",
    b"\xff\xfe",
    b"\xff\xff",
    b"\xff\xff\xff",
]


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize(
    "prefix",
    [
        b"",  # everything
        b"a",  # the key b"a" itself is a prefix of the others
        b"ab",
        b"abc",  # exact key, no longer keys
        b"a\xff",  # increment of the prefix would carry
        b"\x00",
        b"\xfe",  # upper bound is b"\xff", which must be excluded
        b"\xff",  # no finite upper bound
        b"\xff\xff",
        b"\xff\xff\xff\xff",  # longer than any key: matches nothing
        b"zz",  # between keys: matches nothing
    ],
)
def test_prefix_iteration_order(store: KeyValueStore, prefix: bytes, reverse: bool) -> None:
    _fill(store, PREFIX_KEYS)
    assert list(store.iterate(prefix, reverse=reverse)) == _expected(PREFIX_KEYS, prefix, reverse)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize(
    ("keys", "prefix"),
    [
        ([b"a"], b"a"),
        ([b"a", b"b"], b"a"),
        ([b"abc", b"abd", b"abe"], b"abc"),
        ([b"\xff"], b"\xff"),
        ([b"\xfe", b"\xff"], b"\xfe"),
        ([b""], b""),
        ([b"", b"a"], b""),
    ],
)
def test_prefix_equal_to_only_matching_key(
    store: KeyValueStore, keys: list[bytes], prefix: bytes, reverse: bool
) -> None:
    # Regression: plyvel's reverse prefix iterator returns nothing when the
    # last key in range equals the prefix; the store must not inherit that.
    _fill(store, keys)
    assert list(store.iterate(prefix, reverse=reverse)) == _expected(keys, prefix, reverse)


def test_iterate_default_arguments(store: KeyValueStore) -> None:
    _fill(store, [b"b", b"a", b"c"])
    assert [k for k, _ in store.iterate()] == [b"a", b"b", b"c"]
    assert [k for k, _ in store.iterate(reverse=True)] == [b"c", b"b", b"a"]


def test_iteration_is_consistent_while_writing(store: KeyValueStore) -> None:
    keys = [b"p/%02d" % i for i in range(20)]
    _fill(store, keys)
    before = list(store.iterate(b"p/"))

    it = store.iterate(b"p/")
    seen = [next(it)]
    # Writes behind and ahead of the cursor, deletes of not-yet-seen keys and
    # overwrites must all be invisible to an iterator already in progress.
    store.put(b"p/00a", b"new behind")
    store.put(b"p/15a", b"new ahead")
    store.put(b"p/99", b"new at end")
    store.delete(b"p/05")
    store.delete(b"p/19")
    store.put(b"p/10", b"overwritten")
    with store.batch() as wb:
        wb.put(b"p/12", b"batch overwrite")
        wb.delete(b"p/13")
    seen.extend(it)
    assert seen == before

    # A fresh iterator sees the new state.
    after = dict(store.iterate(b"p/"))
    assert after[b"p/15a"] == b"new ahead"
    assert after[b"p/10"] == b"overwritten"
    assert b"p/05" not in after and b"p/13" not in after


def test_iterator_snapshot_is_taken_when_iterate_is_called(store: KeyValueStore) -> None:
    _fill(store, [b"a", b"b"])
    it = store.iterate()
    store.put(b"c", b"late")
    store.delete(b"a")
    assert list(it) == [(b"a", b"v:a"), (b"b", b"v:b")]


def test_reverse_iteration_consistent_while_writing(store: KeyValueStore) -> None:
    keys = [b"r/%d" % i for i in range(10)]
    _fill(store, keys)
    it = store.iterate(b"r/", reverse=True)
    first = next(it)
    for key in keys:
        store.delete(key)
    assert [first, *it] == _expected(keys, b"r/", reverse=True)
    assert list(store.iterate(b"r/")) == []


def test_early_abandoned_iterators_do_not_block_writes(store: KeyValueStore) -> None:
    _fill(store, [b"x%d" % i for i in range(5)])
    for _ in range(50):
        it = store.iterate(b"x")
        next(it)
        del it
    store.put(b"x9", b"still writable")
    assert store.get(b"x9") == b"still writable"


# --------------------------------------------------------------------------
# Batches


def test_successful_batch_applies_everything(store: KeyValueStore) -> None:
    store.put(b"gone", b"x")
    with store.batch() as wb:
        for i in range(100):
            wb.put(b"k%03d" % i, b"v%d" % i)
        wb.delete(b"gone")
    assert store.get(b"gone") is None
    assert len(list(store.iterate(b"k"))) == 100
    assert store.get(b"k042") == b"v42"


def test_unsynced_batch_applies_everything(store: KeyValueStore) -> None:
    with store.batch(sync=False) as wb:
        wb.put(b"a", b"1")
        wb.put(b"b", b"2")
    assert list(store.iterate()) == [(b"a", b"1"), (b"b", b"2")]


def test_failed_batch_applies_nothing(store: KeyValueStore) -> None:
    store.put(b"keep", b"original")
    store.put(b"also-keep", b"original")
    with pytest.raises(_Boom):
        with store.batch() as wb:
            wb.put(b"keep", b"changed")
            wb.put(b"new", b"value")
            wb.delete(b"also-keep")
            raise _Boom()
    assert list(store.iterate()) == [(b"also-keep", b"original"), (b"keep", b"original")]


def test_failed_batch_exception_is_not_wrapped(store: KeyValueStore) -> None:
    with pytest.raises(KeyError, match="original"):
        with store.batch() as wb:
            wb.put(b"a", b"b")
            raise KeyError("original")
    assert store.get(b"a") is None


def test_batch_writes_invisible_before_exit(store: KeyValueStore) -> None:
    store.put(b"existing", b"old")
    with store.batch() as wb:
        wb.put(b"existing", b"new")
        wb.put(b"fresh", b"v")
        wb.delete(b"existing")
        wb.put(b"existing", b"newer")
        assert store.get(b"existing") == b"old"
        assert store.get(b"fresh") is None
        assert not store.has(b"fresh")
        assert list(store.iterate()) == [(b"existing", b"old")]
    assert store.get(b"existing") == b"newer"
    assert store.get(b"fresh") == b"v"


def test_later_operation_on_same_key_wins(store: KeyValueStore) -> None:
    store.put(b"del-then-put", b"orig")
    store.put(b"put-then-del", b"orig")
    with store.batch() as wb:
        wb.put(b"put-put", b"first")
        wb.put(b"put-put", b"second")
        wb.delete(b"del-then-put")
        wb.put(b"del-then-put", b"revived")
        wb.put(b"put-then-del", b"temp")
        wb.delete(b"put-then-del")
        wb.put(b"new-then-del", b"temp")
        wb.delete(b"new-then-del")
    assert store.get(b"put-put") == b"second"
    assert store.get(b"del-then-put") == b"revived"
    assert store.get(b"put-then-del") is None
    assert store.get(b"new-then-del") is None


def test_empty_batch_is_fine(store: KeyValueStore) -> None:
    with store.batch():
        pass
    assert list(store.iterate()) == []


def test_batch_used_after_exit_raises(store: KeyValueStore) -> None:
    with store.batch() as wb:
        wb.put(b"a", b"1")
    with pytest.raises(StorageError):
        wb.put(b"b", b"2")
    with pytest.raises(StorageError):
        wb.delete(b"a")
    assert list(store.iterate()) == [(b"a", b"1")]


def test_concurrent_batches_from_threads(store: KeyValueStore) -> None:
    def writer(tid: int) -> None:
        for n in range(20):
            with store.batch(sync=False) as wb:
                for j in range(5):
                    wb.put(b"t%d/%02d/%d" % (tid, n, j), b"x")

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(list(store.iterate(b"t"))) == 4 * 20 * 5


# --------------------------------------------------------------------------
# Type validation and closed stores

NOT_BYTES: list[Any] = ["text", bytearray(b"ba"), memoryview(b"mv"), 7, None]


@pytest.mark.parametrize("bad", NOT_BYTES, ids=lambda v: type(v).__name__)
def test_non_bytes_raise_type_error(store: KeyValueStore, bad: Any) -> None:
    with pytest.raises(TypeError):
        store.get(bad)
    with pytest.raises(TypeError):
        store.has(bad)
    with pytest.raises(TypeError):
        store.put(bad, b"v")
    with pytest.raises(TypeError):
        store.put(b"k", bad)
    with pytest.raises(TypeError):
        store.delete(bad)
    with pytest.raises(TypeError):
        store.iterate(bad)
    with pytest.raises(TypeError):
        with store.batch() as wb:
            wb.put(bad, b"v")
    with pytest.raises(TypeError):
        with store.batch() as wb:
            wb.put(b"k", bad)
    with pytest.raises(TypeError):
        with store.batch() as wb:
            wb.delete(bad)
    assert list(store.iterate()) == []


def test_operations_after_close_raise_storage_error(store: KeyValueStore) -> None:
    store.put(b"k", b"v")
    store.close()
    store.close()  # closing twice is fine
    with pytest.raises(StorageError, match="closed"):
        store.get(b"k")
    with pytest.raises(StorageError, match="closed"):
        store.has(b"k")
    with pytest.raises(StorageError, match="closed"):
        store.put(b"k", b"v")
    with pytest.raises(StorageError, match="closed"):
        store.delete(b"k")
    with pytest.raises(StorageError, match="closed"):
        store.iterate()
    with pytest.raises(StorageError, match="closed"):
        with store.batch() as wb:
            wb.put(b"k", b"v")


def test_close_during_batch_block_raises_on_commit(store: KeyValueStore) -> None:
    with pytest.raises(StorageError, match="closed"):
        with store.batch() as wb:
            wb.put(b"k", b"v")
            store.close()


def test_storage_error_is_a_node_error() -> None:
    from node.storage import base
    from rxledger.core.errors import NodeError

    assert issubclass(StorageError, NodeError)
    assert base.StorageError is StorageError


# --------------------------------------------------------------------------
# Model-based test: each backend against a plain dict

KEYS = st.lists(st.sampled_from([0x00, 0x01, 0x61, 0xFE, 0xFF]), max_size=3).map(bytes)
VALUES = st.binary(max_size=4)
BATCH_OPS = st.lists(st.tuples(KEYS, st.none() | VALUES), max_size=8)


def _make_model_machine(backend: str) -> type[RuleBasedStateMachine]:
    class StoreMatchesDict(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.tmpdir = Path(tempfile.mkdtemp(prefix="kv-model-"))
            self.store = _make_store(backend, self.tmpdir)
            self.model: dict[bytes, bytes] = {}

        @rule(key=KEYS, value=VALUES)
        def put(self, key: bytes, value: bytes) -> None:
            self.store.put(key, value)
            self.model[key] = value

        @rule(key=KEYS)
        def delete(self, key: bytes) -> None:
            self.store.delete(key)
            self.model.pop(key, None)

        @rule(ops=BATCH_OPS, fail=st.booleans(), sync=st.booleans())
        def batch(self, ops: list[tuple[bytes, bytes | None]], fail: bool, sync: bool) -> None:
            try:
                with self.store.batch(sync=sync) as wb:
                    for key, value in ops:
                        if value is None:
                            wb.delete(key)
                        else:
                            wb.put(key, value)
                    if fail:
                        raise _Boom()
            except _Boom:
                return
            for key, value in ops:
                if value is None:
                    self.model.pop(key, None)
                else:
                    self.model[key] = value

        @rule(key=KEYS)
        def check_get(self, key: bytes) -> None:
            assert self.store.get(key) == self.model.get(key)
            assert self.store.has(key) == (key in self.model)

        @rule(prefix=KEYS, reverse=st.booleans())
        def check_iterate(self, prefix: bytes, reverse: bool) -> None:
            expected = sorted(
                ((k, v) for k, v in self.model.items() if k.startswith(prefix)),
                reverse=reverse,
            )
            assert list(self.store.iterate(prefix, reverse=reverse)) == expected

        def teardown(self) -> None:
            try:
                # Full iteration, then every stored key and each of its proper
                # prefixes as an iteration prefix: exact-key and nested-prefix
                # edges are where ordered stores go wrong.
                prefixes = {k[:i] for k in self.model for i in range(len(k) + 1)}
                for prefix in sorted(prefixes | {b""}):
                    for reverse in (False, True):
                        self.check_iterate(prefix, reverse)
            finally:
                self.store.close()
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    StoreMatchesDict.__name__ = f"StoreMatchesDict_{backend}"
    StoreMatchesDict.TestCase.settings = settings(
        max_examples=25, stateful_step_count=25, deadline=None
    )
    return StoreMatchesDict


TestMemoryStoreMatchesDictModel = _make_model_machine("memory").TestCase
TestLevelDBStoreMatchesDictModel = _make_model_machine("leveldb").TestCase


# --------------------------------------------------------------------------
# open_store


def test_open_store_none_gives_memory_store() -> None:
    kv = open_store(None)
    assert isinstance(kv, MemoryStore)
    kv.close()


def test_open_store_path_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "chaindata"
    kv = open_store(str(path))
    try:
        assert isinstance(kv, LevelDBStore)
        kv.put(b"k", b"v")
    finally:
        kv.close()
    assert path.is_dir()


# --------------------------------------------------------------------------
# LevelDB-only: persistence, locking, crash durability


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _spawn_child(code: str, *args: str) -> subprocess.Popen[bytes]:
    # bufsize=0 gives an unbuffered pipe, so select() on it sees every line.
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        cwd=REPO_ROOT,
        env=_child_env(),
    )


def _read_line(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> bytes:
    """Read one line from the child, failing the test instead of hanging."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([proc.stdout], [], [], max(remaining, 0))
        if not ready:
            proc.kill()
            pytest.fail(f"child produced no line within {timeout}s (got {line!r})")
        chunk = proc.stdout.read(1)
        if not chunk:
            proc.wait()
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"child exited early (rc={proc.returncode}): {stderr}")
        line += chunk
    return line


def test_leveldb_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    kv = LevelDBStore(path)
    kv.put(b"single", b"1")
    kv.put(b"empty", b"")
    with kv.batch() as wb:
        wb.put(b"batched", b"2")
        wb.put(b"\x00\xff", b"binary")
    kv.delete(b"single")
    kv.close()

    reopened = LevelDBStore(path, create_if_missing=False)
    try:
        assert list(reopened.iterate()) == [
            (b"\x00\xff", b"binary"),
            (b"batched", b"2"),
            (b"empty", b""),
        ]
    finally:
        reopened.close()


def test_leveldb_missing_database_without_create(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(StorageError, match="absent") as info:
        LevelDBStore(path, create_if_missing=False)
    assert info.value.__cause__ is not None


def test_leveldb_second_open_in_same_process_raises(tmp_path: Path) -> None:
    path = tmp_path / "db"
    kv = LevelDBStore(path)
    try:
        with pytest.raises(StorageError, match="LOCK held") as info:
            LevelDBStore(path)
        assert str(path) in str(info.value)
        assert info.value.__cause__ is not None
    finally:
        kv.close()
    # Once closed, the lock is released and the directory can be reopened.
    LevelDBStore(path).close()


def test_leveldb_open_while_another_process_holds_lock(tmp_path: Path) -> None:
    path = tmp_path / "db"
    child = _spawn_child(
        """
        import sys
        from node.storage import LevelDBStore
        store = LevelDBStore(sys.argv[1])
        print("ready", flush=True)
        sys.stdin.read()  # hold the lock until the parent closes our stdin
        store.close()
        """,
        str(path),
    )
    try:
        assert _read_line(child) == b"ready\n"
        with pytest.raises(StorageError) as info:
            LevelDBStore(path)
        message = str(info.value)
        assert str(path) in message
        assert "in use by another process (LOCK held)" in message
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=15)


def test_leveldb_iterator_after_close_raises_storage_error(tmp_path: Path) -> None:
    kv = LevelDBStore(tmp_path / "db")
    for i in range(5):
        kv.put(b"k%d" % i, b"v")
    it = kv.iterate()
    assert next(it) == (b"k0", b"v")
    kv.close()
    with pytest.raises(StorageError, match="closed"):
        next(it)


def test_leveldb_reads_go_on_while_a_synced_batch_is_written(tmp_path: Path) -> None:
    """A JSON-RPC read must not wait out the fsync of the block being committed: gets
    complete while another thread is inside a large synced batch write."""
    kv = LevelDBStore(tmp_path / "db")
    kv.put(b"hot", b"value")
    writing = threading.Event()
    stop = threading.Event()
    during: list[int] = []
    wrong: list[bytes | None] = []

    def reader() -> None:
        while not stop.is_set():
            if writing.is_set():
                value = kv.get(b"hot")
                if value != b"value":
                    wrong.append(value)
                if writing.is_set():  # started and finished inside the write
                    during.append(1)
            else:
                time.sleep(0)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        payload = b"x" * 4096
        for n in range(5):
            with kv.batch(sync=True) as wb:
                for j in range(1000):  # 4 MB: the write itself takes a while
                    wb.put(b"bulk/%d/%05d" % (n, j), payload)
                writing.set()  # the write happens as the block exits
            writing.clear()
    finally:
        stop.set()
        thread.join()
        kv.close()
    assert wrong == []
    assert len(during) >= 20, f"only {len(during)} reads completed during the writes"


def test_leveldb_close_waits_for_a_call_in_flight(tmp_path: Path) -> None:
    """close() must not free the handle under a call that is still running in another
    thread: it returns only after that call has finished, and later calls say closed."""
    kv = LevelDBStore(tmp_path / "db")
    kv.put(b"k", b"v")
    inside = threading.Event()
    events: list[str] = []

    class SlowHandle:  # the real handle, with a get that takes a while
        def __init__(self, db: Any) -> None:
            self.db = db

        def get(self, key: bytes, **options: Any) -> bytes | None:
            inside.set()
            time.sleep(0.3)
            value = self.db.get(key, **options)
            events.append("get finished")
            return value

        def close(self) -> None:
            events.append("handle closed")
            self.db.close()

    kv._db = SlowHandle(kv._db)
    got: list[bytes | None] = []
    reader = threading.Thread(target=lambda: got.append(kv.get(b"k")))
    reader.start()
    assert inside.wait(5)
    closer = threading.Thread(target=kv.close)
    closer.start()
    closer.join(timeout=10)
    reader.join(timeout=10)
    assert not closer.is_alive() and not reader.is_alive()
    assert got == [b"v"]
    assert events == ["get finished", "handle closed"]
    with pytest.raises(StorageError, match="closed"):
        kv.get(b"k")
    kv.close()  # a second close returns at once


def test_leveldb_close_while_threads_read_and_write(tmp_path: Path) -> None:
    """Closing while other threads read, iterate and write: each call either completes or
    raises StorageError("closed"), and close returns."""
    kv = LevelDBStore(tmp_path / "db")
    for i in range(100):
        kv.put(b"k%03d" % i, b"v" * 100)
    outcomes: list[str] = []
    started = threading.Barrier(5)

    def worker(kind: int) -> None:
        started.wait()
        try:
            while True:
                if kind == 0:
                    with kv.batch(sync=True) as wb:
                        wb.put(b"w", b"x" * 1000)
                elif kind == 1:
                    list(kv.iterate(b"k"))
                elif kv.get(b"k050") != b"v" * 100:
                    outcomes.append("wrong value")
                    return
        except StorageError as exc:
            outcomes.append("closed" if "closed" in str(exc) else f"other: {exc}")

    threads = [threading.Thread(target=worker, args=(k % 3,)) for k in range(4)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.05)
    closer = threading.Thread(target=kv.close)
    closer.start()
    closer.join(timeout=10)
    for t in threads:
        t.join(timeout=10)
    assert not closer.is_alive() and not any(t.is_alive() for t in threads)
    assert outcomes == ["closed"] * 4


CRASH_CHILD = """
import sys
from node.storage import LevelDBStore

store = LevelDBStore(sys.argv[1])
keys_per_batch = int(sys.argv[2])
value = b"x" * 512
n = 0
while True:
    with store.batch(sync=True) as wb:
        for j in range(keys_per_batch):
            wb.put(b"batch/%08d/%04d" % (n, j), value)
        wb.put(b"meta/last", b"%d" % n)
    # Only reported after the batch's sync write has returned.
    print(n, flush=True)
    n += 1
"""


def test_leveldb_synced_batches_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "db"
    keys_per_batch = 200
    report_before_kill = 15
    child = _spawn_child(CRASH_CHILD, str(path), str(keys_per_batch))
    reported: list[int] = []
    try:
        while len(reported) < report_before_kill:
            reported.append(int(_read_line(child)))
    finally:
        # SIGKILL at an arbitrary point, most likely in the middle of a batch.
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=15)
    assert child.returncode == -signal.SIGKILL
    assert reported == list(range(report_before_kill))

    kv = LevelDBStore(path, create_if_missing=False)
    try:
        counts: dict[int, int] = {}
        for key, value in kv.iterate(b"batch/"):
            batch_no = int(key.split(b"/")[1])
            counts[batch_no] = counts.get(batch_no, 0) + 1
            assert value == b"x" * 512
        last = kv.get(b"meta/last")
    finally:
        kv.close()

    # Every batch the child reported as committed is there...
    assert set(reported) <= set(counts)
    # ...no batch is partially present (including any committed but not yet
    # reported when the kill landed)...
    partial = {n: c for n, c in counts.items() if c != keys_per_batch}
    assert partial == {}
    # ...and batches were committed in order, the marker matching the newest.
    assert sorted(counts) == list(range(len(counts)))
    assert last == b"%d" % max(counts)


# --------------------------------------------------------------------------
# LevelDB-only: damaged files are refused, never repaired (issue 11, item 8)


def _store_with_tables(path: Path, keys: int = 2000) -> list[Path]:
    """A closed LevelDB store holding `keys` keys in table files (reopening it turns its
    write-ahead log into a table); returns the table files."""
    kv = LevelDBStore(path)
    with kv.batch() as wb:
        for i in range(keys):
            wb.put(b"key/%06d" % i, b"value-%06d" % i * 8)
    kv.close()
    LevelDBStore(path).close()
    tables = sorted(path.glob("*.ldb"))
    assert tables
    return tables


def _flip(path: Path, offset: int, length: int = 16) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(length)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def test_leveldb_check_passes_on_an_intact_store(tmp_path: Path) -> None:
    tables = _store_with_tables(tmp_path / "db")
    kv = LevelDBStore(tmp_path / "db")
    try:
        result = kv.check()
    finally:
        kv.close()
    assert result.tables == len(tables)
    assert result.table_bytes == sum(t.stat().st_size for t in tables)
    assert result.keys == 2000


def test_leveldb_flipped_bytes_in_a_table_are_storage_corrupted_on_read(tmp_path: Path) -> None:
    """Reads verify checksums: damage found while running is an error, never wrong bytes."""
    (table,) = _store_with_tables(tmp_path / "db")
    _flip(table, 64)  # inside the first data block (key/000000 ...)
    kv = LevelDBStore(tmp_path / "db")
    try:
        with pytest.raises(StorageCorrupted, match="checksum mismatch") as info:
            kv.get(b"key/000000")
        assert REMEDY in str(info.value)
        with pytest.raises(StorageCorrupted, match="checksum mismatch"):
            list(kv.iterate(b"key/"))
        with pytest.raises(StorageCorrupted, match=f"{table.name}.*checksum mismatch"):
            kv.check()
        assert kv.check(full=False).keys is None  # sizes and footers are right
    finally:
        kv.close()


def test_leveldb_check_names_a_truncated_table(tmp_path: Path) -> None:
    (table,) = _store_with_tables(tmp_path / "db")
    size = table.stat().st_size
    os.truncate(table, size - 1)
    kv = LevelDBStore(tmp_path / "db")
    try:
        with pytest.raises(StorageCorrupted) as info:
            kv.check(full=False)
    finally:
        kv.close()
    assert f"table file {table.name} is {size - 1} bytes, but its MANIFEST records {size}" in str(info.value)
    assert "truncated" in str(info.value) and REMEDY in str(info.value)


def test_leveldb_check_names_a_table_whose_footer_was_overwritten(tmp_path: Path) -> None:
    (table,) = _store_with_tables(tmp_path / "db")
    _flip(table, table.stat().st_size - 8, 8)
    kv = LevelDBStore(tmp_path / "db")
    try:
        with pytest.raises(StorageCorrupted, match=f"table file {table.name} does not end with a LevelDB table footer"):
            kv.check(full=False)
    finally:
        kv.close()


def test_leveldb_missing_current_is_refused_and_no_file_is_touched(tmp_path: Path) -> None:
    path = tmp_path / "db"
    tables = _store_with_tables(path)
    (path / "CURRENT").unlink()
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(StorageCorrupted, match="CURRENT file is missing") as info:
        LevelDBStore(path)
    assert tables[0].name in str(info.value)
    assert sorted(p.name for p in path.iterdir()) == before
    assert all(t.exists() for t in tables)


def test_leveldb_interrupted_creation_without_current_opens(tmp_path: Path) -> None:
    """LevelDB writes MANIFEST-000001 before CURRENT when it creates a database: a crash
    in between leaves no data at all, so that directory is opened (created again)."""
    path = tmp_path / "db"
    LevelDBStore(path).close()
    for name in os.listdir(path):
        if name != "MANIFEST-000001" and not name.startswith(("LOCK", "LOG")):
            (path / name).unlink()
    kv = LevelDBStore(path)
    try:
        kv.put(b"k", b"v")
        assert kv.get(b"k") == b"v"
    finally:
        kv.close()


def test_leveldb_missing_or_unnamed_manifest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    _store_with_tables(path)
    manifest = (path / "CURRENT").read_text().strip()
    (path / "CURRENT").write_text("garbage\n")
    with pytest.raises(StorageCorrupted, match="CURRENT file does not name a MANIFEST"):
        LevelDBStore(path)
    (path / "CURRENT").write_text(manifest + "\n")
    (path / manifest).unlink()
    with pytest.raises(StorageCorrupted, match=f"MANIFEST file {manifest} .* is missing"):
        LevelDBStore(path)


def test_leveldb_missing_table_file_is_refused_at_open(tmp_path: Path) -> None:
    (table,) = _store_with_tables(tmp_path / "db")
    table.unlink()
    with pytest.raises(StorageCorrupted, match=f"missing files.*{table.name}"):
        LevelDBStore(tmp_path / "db")


def test_open_store_refuses_a_damaged_store_and_releases_it(tmp_path: Path) -> None:
    (table,) = _store_with_tables(tmp_path / "db")
    _flip(table, 64)
    with pytest.raises(StorageCorrupted, match="checksum mismatch"):
        open_store(tmp_path / "db")
    # closed again: the lock is free (a quick check still opens it)
    LevelDBStore(tmp_path / "db").close()
