"""Storage faults on a real dev node (issue 11, item 8): damaged LevelDB files, a full disk.

- A store made by a real node, then damaged (a truncated table file, flipped bytes in a
  table file, CURRENT or the MANIFEST missing), is refused at start: the node exits 1
  with one line naming the file, what is wrong and what the operator can do, and leaves
  every file as it was (no repair). `rxledger node check` says the same.
- A node whose disk fills under load (a 2 MB tmpfs the test mounts; CI runs as root)
  stops writing with a StorageFull naming "no space left on device", keeps answering
  reads of its last final block, and after a restart on a disk with space again has
  every block it reported final and goes on.
- A validator whose WAL write fails on a full disk sends nothing it did not persist.

SIGKILL during block commit is in test_crash_recovery.py (and the soak, storage_soak.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import plyvel
import pytest
from devnode import free_port, rpc_result, start_dev_node
from storage_load import Load, check_final_kept, presign, presign_load

from chaincode_py import NativeChaincodeHost
from node.config import NodeConfig
from node.consensus.qbft import QbftConfig
from node.genesis import GenesisConfig, derive_dev_key, dev_genesis
from node.runtime import NoPeers, load_wal
from node.service import NodeService
from node.storage import LevelDBStore, StorageCorrupted, StorageFull
from rxledger.core.crypto import private_key_to_address

REMEDY_WORDS = ("restore the data directory from a backup or snapshot", "resync")


def _run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rxledger", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _fingerprint(directory: Path, pattern: str) -> dict[str, str]:
    """Name → sha256 of the files matching `pattern`."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob(pattern))}


def _refused_start(data_dir: Path) -> str:
    """Start a dev node on `data_dir`; it must exit 1 without serving. Returns its output."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rxledger", "node", "start", "--dev", "--data-dir", str(data_dir),
         "--rpc-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the node started on a damaged store and kept running:\n{out}\n{err[-3000:]}")
    assert process.returncode == 1, f"exit {process.returncode}:\n{out}\n{err}"
    assert "Traceback" not in err, err
    return err


def _one_line_error(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("rxledger:")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def node_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data dir of a real dev node that made blocks under load, stopped, started again
    (reopening turns its write-ahead log into a table file) and stopped."""
    data_dir = tmp_path_factory.mktemp("made-by-a-node") / "data"
    node = start_dev_node(data_dir)
    try:
        load = Load(node.url, presign_load(node.url, 20)).start()
        deadline = time.monotonic() + 60
        while load.receipts() < 80:
            assert time.monotonic() < deadline, f"{load.refusals}\n{node.output()[-3000:]}"
            time.sleep(0.05)
        load.finish()
    finally:
        assert node.stop() in (0, -15)
    node = start_dev_node(data_dir)
    assert int(rpc_result(node.url, "eth_blockNumber"), 16) >= 1
    assert node.stop() in (0, -15)
    tables = sorted((data_dir / "chaindata").glob("*.ldb"))
    assert tables, sorted(os.listdir(data_dir / "chaindata"))
    return data_dir


@pytest.fixture
def copy(node_store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(node_store, target)
    return target


def _largest_table(data_dir: Path) -> Path:
    return max((data_dir / "chaindata").glob("*.ldb"), key=lambda p: p.stat().st_size)


def _assert_refused(data_dir: Path, *fragments: str, before_open: bool = False) -> str:
    """The start and `node check` both refuse, naming `fragments`, and repair nothing: every
    table file is left as it was. A store refused `before_open` is not touched at all;
    otherwise LevelDB's own open has run, which writes a new MANIFEST and turns its log
    into a table file (its normal recovery: nothing is dropped)."""
    pattern = "*" if before_open else "*.ldb"
    before = _fingerprint(data_dir / "chaindata", pattern)
    line = _one_line_error(_refused_start(data_dir))
    assert line.startswith("rxledger: cannot start the node: the database at "), line
    for fragment in (*fragments, *REMEDY_WORDS):
        assert fragment in line, f"{fragment!r} not in: {line}"
    checked = _run_cli("node", "check", "--data-dir", str(data_dir))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    check_line = _one_line_error(checked.stderr)
    for fragment in fragments:
        assert fragment in check_line, f"{fragment!r} not in: {check_line}"
    after = _fingerprint(data_dir / "chaindata", pattern)
    if before_open:
        assert after == before, "a store refused before opening must be left as it was"
    else:
        assert {k: v for k, v in after.items() if k in before} == before, "table files changed"
    return line


def test_an_intact_store_made_by_a_node_starts_and_checks_clean(copy: Path, node_factory) -> None:
    checked = _run_cli("node", "check", "--data-dir", str(copy))
    assert checked.returncode == 0, checked.stderr
    assert f"database at {copy / 'chaindata'} is intact" in checked.stdout
    node = node_factory(copy)
    assert int(rpc_result(node.url, "eth_blockNumber"), 16) >= 1


def test_a_truncated_table_file_is_refused_at_start(copy: Path) -> None:
    table = _largest_table(copy)
    size = table.stat().st_size
    os.truncate(table, size // 2)
    _assert_refused(copy, f"table file {table.name} is {size // 2} bytes", f"records {size}", "truncated")


def test_a_table_file_missing_its_last_bytes_is_refused_at_start(copy: Path) -> None:
    table = _largest_table(copy)
    size = table.stat().st_size
    os.truncate(table, size - 10)
    _assert_refused(copy, f"table file {table.name}", "truncated")


def test_flipped_bytes_in_a_table_file_are_refused_at_start(copy: Path) -> None:
    table = _largest_table(copy)
    with open(table, "r+b") as f:  # inside the first data block: size and footer stay right
        f.seek(64)
        data = f.read(16)
        f.seek(64)
        f.write(bytes(b ^ 0xFF for b in data))
    _assert_refused(copy, "is damaged", table.name, "checksum mismatch")


def test_a_missing_current_file_is_refused_at_start_and_nothing_is_deleted(copy: Path) -> None:
    # LevelDB alone would create an empty database here and delete the table files: the
    # node would start a new chain at block 0 over the old one.
    (copy / "chaindata" / "CURRENT").unlink()
    tables = sorted(p.name for p in (copy / "chaindata").glob("*.ldb"))
    _assert_refused(copy, "CURRENT file is missing", tables[0], before_open=True)
    assert sorted(p.name for p in (copy / "chaindata").glob("*.ldb")) == tables


def test_a_missing_manifest_is_refused_at_start(copy: Path) -> None:
    manifest = (copy / "chaindata" / "CURRENT").read_text().strip()
    (copy / "chaindata" / manifest).unlink()
    _assert_refused(copy, f"MANIFEST file {manifest}", "is missing", before_open=True)


def test_a_missing_table_file_is_refused_at_start(copy: Path) -> None:
    table = _largest_table(copy)
    table.unlink()
    _assert_refused(copy, "missing files", table.name)


# -- a full disk ----------------------------------------------------------------------------------
def _mount_tmpfs(mount: Path, size: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for the test (needs root, as CI runs), unmounted after it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    _mount_tmpfs(mount, "2m")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_stops_the_node_cleanly_with_its_last_final_block_intact(small_disk: Path,
                                                                             node_factory) -> None:
    # The data dir is the mount itself: the node's own log goes beside it, off the small disk.
    node = node_factory(small_disk)
    # 4 accounts x 150 transactions of 4 KB: about twice what the disk holds.
    load = Load(node.url, presign_load(node.url, 150, data_size=4000)).start()
    deadline = time.monotonic() + 180
    while node.health()["status"] == "ok":
        assert time.monotonic() < deadline, f"the disk never filled: {load.refusals}\n{node.output()[-3000:]}"
        assert node.alive(), node.output()[-3000:]
        time.sleep(0.1)
    load.finish()
    assert not load.refusals, load.refusals
    seen = load.seen
    assert seen.receipts, "blocks were final before the disk filled"

    # Consensus stopped on a StorageFull naming the cause; the node itself goes on.
    output = node.output()
    assert "consensus stopped: " in output and "no space left on device" in output, output[-3000:]
    assert node.alive()
    answer = httpx.get(node.url + "health", timeout=5)
    health = answer.json()
    # Probes can act on it: 503 with the reason.
    assert answer.status_code == 503, health
    assert health["status"].startswith("storage failed: ") and "no space left on device" in health["status"], health
    # It keeps answering reads: its head, the last block and that block's receipts.
    head = int(rpc_result(node.url, "eth_blockNumber"), 16)
    assert head >= seen.highest() >= 1
    assert health["head"] == head
    last = rpc_result(node.url, "eth_getBlockByNumber", [hex(head), False])
    assert last is not None and int(last["number"], 16) == head
    for tx_hash in last["transactions"]:
        receipt = rpc_result(node.url, "eth_getTransactionReceipt", [tx_hash])
        assert receipt is not None and receipt["blockHash"] == last["hash"]
    check_final_kept(node.url, seen)
    # ... and writes nothing more: the head stays where it is.
    time.sleep(1.0)
    assert int(rpc_result(node.url, "eth_blockNumber"), 16) == head
    assert node.stop() in (0, -15)
    assert "Traceback" not in output.split("consensus stopped: ", 1)[0], output[-3000:]

    # Space again: the node opens (its store passes the full check) with every final block.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    node = node_factory(small_disk)
    assert check_final_kept(node.url, seen) >= head
    block = rpc_result(node.url, "eth_getBlockByNumber", [hex(head), False])
    assert block["hash"] == last["hash"]
    # and goes on
    more = Load(node.url, presign_load(node.url, 2)).start()
    deadline = time.monotonic() + 60
    while more.receipts() < 8:
        assert time.monotonic() < deadline, f"{more.refusals}\n{node.output()[-3000:]}"
        time.sleep(0.05)
    more.finish()
    assert int(rpc_result(node.url, "eth_blockNumber"), 16) > head


def test_a_full_disk_is_storage_full_then_writes_are_refused_and_the_store_reopens_whole(
        small_disk: Path) -> None:
    """On the store itself: synced batches until the disk is full. The failing one is a
    StorageFull and none of it is kept; reads go on; later writes are refused even once
    there is space (LevelDB's log may end in a partial record); reopened with space, every
    batch that returned is there, whole, and writes go on."""
    path = small_disk / "db"
    kv = LevelDBStore(path)
    value = b"\x5a" * 1000
    committed = 0
    try:
        with pytest.raises(StorageFull, match="no space left on device") as info:
            while True:
                with kv.batch(sync=True) as wb:
                    for j in range(64):
                        wb.put(b"batch/%06d/%02d" % (committed, j), value)
                committed += 1
        assert "free space on the disk, then restart the node" in str(info.value)
        assert committed > 10
        assert kv.get(b"batch/%06d/00" % (committed - 1)) == value
        assert kv.get(b"batch/%06d/00" % committed) is None  # nothing of the failed batch
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        with pytest.raises(StorageFull, match="refuses writes after an earlier write failed"):
            kv.put(b"later", b"x")
    finally:
        kv.close()
    kv = LevelDBStore(path)
    try:
        kv.check()
        counts: dict[int, int] = {}
        for key, stored in kv.iterate(b"batch/"):
            counts[int(key.split(b"/")[1])] = counts.get(int(key.split(b"/")[1]), 0) + 1
            assert stored == value
        assert counts == {n: 64 for n in range(committed)}
        kv.put(b"later", b"x")
        assert kv.get(b"later") == b"x"
    finally:
        kv.close()


class Capture(NoPeers):
    """A transport that records what a validator would have sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def broadcast(self, data: bytes) -> None:
        self.sent.append(data)

    def send(self, peer: bytes, data: bytes) -> None:
        self.sent.append(data)



def _fill(mount: Path) -> Path:
    """Write a file until the device is full; returns it."""
    filler = mount / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_validator_whose_wal_write_fails_sends_nothing(small_disk: Path) -> None:
    """The signed PROPOSAL must be persisted before it is sent: on a full disk the WAL
    write fails (StorageFull), consensus stops, and nothing was sent."""
    keys = sorted((derive_dev_key(400 + i) for i in range(4)), key=private_key_to_address)
    me = keys[0]  # the lowest address proposes round 0 at height 1
    genesis = GenesisConfig(chain_id=2024, validators=tuple(private_key_to_address(k) for k in keys),
                            enrolments=dev_genesis().enrolments)
    service = NodeService(NodeConfig(data_dir=small_disk), genesis, validator_key=me, chaincode=NativeChaincodeHost)
    try:
        filler = _fill(small_disk)
        transport = Capture()
        runtime = service.start_consensus(
            QbftConfig(block_period=0, empty_block_period=None, round_timeout=30.0), transport=transport)
        # 20 KB of call data: the PROPOSAL's WAL record needs new pages of the full disk.
        service.submit_raw_transaction(presign(5, 0, 1, data_size=20_000)[0])
        deadline = time.monotonic() + 30
        while runtime.failed is None:
            assert time.monotonic() < deadline, "consensus did not stop"
            time.sleep(0.02)
        assert isinstance(runtime.failed, StorageFull), repr(runtime.failed)
        assert "no space left on device" in str(runtime.failed)
        assert transport.sent == []
        assert service.chain.head.number == 0  # reads go on
    finally:
        service.close()
    filler.unlink()
    reopened = NodeService(NodeConfig(data_dir=small_disk), genesis, validator_key=me, chaincode=NativeChaincodeHost)
    try:
        assert load_wal(reopened.chain) == []  # nothing was persisted, and nothing was sent
    finally:
        reopened.close()


def _four_validators() -> tuple[list[bytes], GenesisConfig]:
    keys = sorted((derive_dev_key(400 + i) for i in range(4)), key=private_key_to_address)
    return keys, GenesisConfig(chain_id=2024, validators=tuple(private_key_to_address(k) for k in keys),
                               enrolments=dev_genesis().enrolments)


def test_damage_found_while_validating_a_proposal_stops_consensus(tmp_path: Path) -> None:
    """A validator whose store turns out damaged while it runs (the table block holding
    the state root fails its checksum when the proposal is executed) stops consensus with
    StorageCorrupted: it does not call a valid proposal invalid and go on."""
    keys, genesis = _four_validators()
    base = tmp_path / "base"
    made = NodeService(NodeConfig(data_dir=base), genesis, chaincode=NativeChaincodeHost)
    with made.store.batch() as batch:
        # Keys the node never reads, sorted between the chain's records and the EVM state
        # ("s"), so that the state's table block holds no record read at start.
        for i in range(64):
            batch.put(b"r-unread/%02d" % i, bytes(200))
    made.close()
    LevelDBStore(base / "chaindata").close()  # reopening turns the log into one table file
    shutil.copytree(base, tmp_path / "proposer")
    shutil.copytree(base, tmp_path / "validator")
    config = QbftConfig(block_period=0, empty_block_period=None, round_timeout=30.0)

    proposer = NodeService(NodeConfig(data_dir=tmp_path / "proposer"), genesis, validator_key=keys[0], chaincode=NativeChaincodeHost)
    try:
        state_root = proposer.chain.head.state_root
        sent = Capture()
        proposer.start_consensus(config, transport=sent)
        proposer.submit_raw_transaction(presign(5, 0, 1)[0])
        deadline = time.monotonic() + 30
        while not sent.sent:
            assert time.monotonic() < deadline, "the proposer proposed nothing"
            time.sleep(0.02)
        proposal = sent.sent[0]
    finally:
        proposer.close()

    chaindata = tmp_path / "validator" / "chaindata"
    (table,) = chaindata.glob("*.ldb")
    db = plyvel.DB(str(chaindata))
    try:  # where the data block holding the state root node starts in the (only) table
        offset = db.approximate_size(b"", b"s" + state_root)
    finally:
        db.close()
    with open(table, "r+b") as f:
        f.seek(offset + 8)
        data = f.read(16)
        f.seek(offset + 8)
        f.write(bytes(b ^ 0xFF for b in data))

    # Opened without the start-up check: the damage is found while running.
    validator = NodeService(NodeConfig(data_dir=tmp_path / "validator"), genesis, validator_key=keys[1],
                            store=LevelDBStore(chaindata), chaincode=NativeChaincodeHost)
    try:
        runtime = validator.start_consensus(config, transport=Capture())
        runtime.deliver(proposal)
        deadline = time.monotonic() + 30
        while runtime.failed is None:
            assert time.monotonic() < deadline, "consensus went on over a damaged store"
            time.sleep(0.02)
        assert isinstance(runtime.failed, StorageCorrupted), repr(runtime.failed)
        assert "checksum mismatch" in str(runtime.failed)
        assert validator.chain.head.number == 0  # nothing was written
    finally:
        validator.close()
