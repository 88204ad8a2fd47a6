"""Validator set changes by vote on a running consortium, walked by the light client.

`network add-node` issues a fifth node of hospital-a; it starts, is voted in by the four
validators (`qbft_proposeValidatorVote`, naming its organisation: a vote that names none
is refused in a network that binds validators to organisations), syncs and seals. Then
three of the five vote the regulator out: within one block of the vote taking effect
every validator has closed its connection to the regulator's node, and refuses it
afterwards. Blocks keep coming throughout, and the light client accepts every header
from genesis to the head across both changes.
"""

from __future__ import annotations

import threading
import time

from netharness import Net, extra_validators, record, wait_until

from network.init import add_node
from rxledger.core.light_client import TrustedState, verify_header

NEW = "hospital-a-2"
REMOVED = "regulator"


class HeadWatch:
    """Polls one node's head in a thread; the longest time between two new heads."""

    def __init__(self, net: Net, name: str) -> None:
        self.net, self.name = net, name
        self.stop = threading.Event()
        self.changes: list[tuple[float, int]] = []
        self.errors = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = -1
        while not self.stop.wait(0.1):
            try:
                head = self.net.head(self.name)
            except Exception:
                self.errors += 1
                continue
            if head != last:
                self.changes.append((time.monotonic(), head))
                last = head

    def __enter__(self) -> HeadWatch:
        self.started = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.ended = time.monotonic()

    def longest_gap(self) -> float:
        times = [self.started, *(t for t, _ in self.changes[1:]), self.ended]
        return max(b - a for a, b in zip(times, times[1:], strict=False))


def _peer_names(net: Net, name: str) -> set[str]:
    return {p["name"] for p in (net.health(name) or {}).get("peers", [])}


def _log_line(net: Net, name: str, *parts: str, timeout: float = 20.0) -> str:
    """Wait for a line of `name`'s node.log containing every one of `parts`."""
    def find() -> str | None:
        for line in net.log_text(name).splitlines():
            if all(p in line for p in parts):
                return line
        return None

    return wait_until(find, timeout, f"a line with {parts} in {net.log_path(name)}")


def _first_block_with(net: Net, viewer: str, size: int, after: int = 0) -> int:
    head = net.head(viewer)
    for number in range(after, head + 1):
        if len(extra_validators(net.header(viewer, number))) == size:
            return number
    raise AssertionError(f"no block with {size} validators on {viewer} up to {head}")


def test_fifth_validator_voted_in_then_one_voted_out_blocks_continue_light_client_accepts_all(net: Net) -> None:
    settings = net.consensus
    originals = list(net.validator_names)
    assert len(originals) == 4 and REMOVED in originals
    watcher = "hospital-b"  # a validator throughout

    with HeadWatch(net, watcher) as watch:
        # -- a fifth node, issued by hospital-a's CA, started before anyone trusts it ----------
        info = add_node(net.dir, org="hospital-a", name=NEW)
        net.reload()
        new_address = net.address(NEW)
        net.start(NEW)
        assert new_address not in net.validators(watcher)

        # -- voted in by the four ---------------------------------------------------------------
        refused = net.rpc(originals[0], "qbft_proposeValidatorVote", [new_address, True])
        assert "name the new validator's organisation" in refused["error"]["message"], refused
        voted = time.monotonic()
        for name in originals:
            assert net.call(name, "qbft_proposeValidatorVote", [new_address, True, "hospital-a"]) is True
            assert net.call(name, "qbft_getPendingVotes") == {new_address: True}
        wait_until(lambda: len(net.validators(watcher)) == 5, 60.0, "five validators on " + watcher)
        record("validator change: votes sent -> 5 validators", f"{time.monotonic() - voted:.2f} s")
        assert set(net.validators(watcher)) == {net.address(n) for n in [*originals, NEW]}
        added_at = _first_block_with(net, watcher, 5)
        # The vote is spent once in effect (each drops it when it next proposes).
        wait_until(lambda: all(net.call(n, "qbft_getPendingVotes") == {} for n in originals), 30.0,
                   "the pending votes to clear")

        # -- the new validator syncs and seals --------------------------------------------------
        target = net.head(watcher)
        wait_until(lambda: net.head(NEW) >= target, 60.0, f"{NEW} to sync to block {target}")
        assert net.block_hash(NEW, target) == net.block_hash(watcher, target)
        sealed_by_new: list[int] = []

        def new_seal() -> bool:
            head = net.head(watcher)
            for number in range(max(added_at, target) + 1, head + 1):
                if number not in sealed_by_new and new_address in net.seal_signers(watcher, number):
                    sealed_by_new.append(number)
            return bool(sealed_by_new)

        wait_until(new_seal, 60.0, f"a commit seal of {NEW}")
        assert net.health(NEW)["validator"] == new_address  # type: ignore[index]

        # -- three of five vote the regulator out ----------------------------------------------
        removed_address = net.address(REMOVED)
        voters = ["hospital-b", "pharmacy-a", NEW]  # 3 > 5 / 2, the new validator among them
        for name in voters:
            assert net.call(name, "qbft_proposeValidatorVote", [removed_address, False]) is True
        wait_until(lambda: len(net.validators(watcher)) == 4, 60.0, "four validators again")
        remaining = {net.address(n) for n in originals if n != REMOVED} | {new_address}
        assert set(net.validators(watcher)) == remaining
        removed_at = _first_block_with(net, watcher, 4, after=added_at)
        # Within one block of the vote taking effect (block removed_at is the first the
        # regulator does not seal), every validator has closed its connection to it.
        others = [n for n in net.names if n != REMOVED]
        for name in others:
            line = _log_line(net, name, "dropping peer", REMOVED, "is no longer a validator")
            assert f"after block {removed_at - 1}" in _log_line(net, name, removed_address[2:].lower(),
                                                                "is no longer a validator after block"), line
            wait_until(lambda name=name: REMOVED not in _peer_names(net, name), 10.0,
                       f"{name} to show no connection to {REMOVED}")

        # -- blocks keep coming on the new set: a transaction to each validator is final --------
        validators_now = [n for n in net.names if n != REMOVED]
        receipts = net.confirm_transactions(validators_now, validators_now)
        last = max(int(r["blockNumber"], 16) for r in receipts.values())
        assert last > removed_at
        for number in range(removed_at, last + 1):
            assert removed_address not in net.seal_signers(watcher, number)
        # The regulator's node still runs and redials; it is refused, and stays apart.
        assert net.is_running(REMOVED)
        _log_line(net, watcher, "refused", REMOVED, "is no longer a validator")
        assert all(REMOVED not in _peer_names(net, name) for name in others)

    gap = watch.longest_gap()
    record("validator changes: longest wait for a new block on " + watcher, f"{gap:.2f} s")
    assert gap <= 2 * settings.max_round_timeout, f"no new block for {gap:.1f} s during the changes"
    assert watch.changes[-1][1] - watch.changes[0][1] >= 10

    # -- the light client walks every header from genesis across both changes -----------------
    head = net.head(watcher)
    headers = [net.header(watcher, n) for n in range(head + 1)]
    assert "0x" + headers[0].hash.hex() == "0x" + net.info.genesis_hash.hex()
    trusted = TrustedState.from_genesis(headers[0])
    sizes = []
    for header in headers[1:]:
        trusted = verify_header(trusted, header)
        sizes.append(len(extra_validators(header)))
    assert trusted.height == head
    assert sizes[added_at - 1] == 5 and sizes[added_at - 2] == 4
    assert sizes[removed_at - 1] == 4 and sizes[removed_at - 2] == 5
    assert set(extra_validators(headers[-1])) == remaining
    assert info.name == NEW
