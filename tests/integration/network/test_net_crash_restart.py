"""A validator SIGKILLed mid-run (manifest network/manifests/kill-restart.toml): the other
three keep finalising; restarted with `rxledger node start --config`, it catches up by
block sync and its commit seal is in a block decided after its return."""

from __future__ import annotations

from netharness import Net
from netmanifest import load_manifest, run_manifest

MANIFEST = "kill-restart"


def test_killed_validator_blocks_continue_restarted_catches_up_and_signs(net: Net) -> None:
    manifest = load_manifest(MANIFEST)
    results = run_manifest(net, manifest)
    by_what = {r.what: r for r in results}
    # Blocks were final while it was down, so it came back behind and caught up by sync.
    killed_at = by_what["kill"].details["heads"]["pharmacy-a"]
    target = by_what["caught-up"].details["target"]
    assert killed_at + 2 <= target, f"killed at head {killed_at}, the others reached only {target}"
    print(f"killed at head {killed_at}, caught up to {target} by block sync")
    sealed_in = by_what["signs"].details["sealed_in"]
    assert "pharmacy-a" in sealed_in and sealed_in["pharmacy-a"] > by_what["signs"].details["after"]
    # It runs as our subprocess now (not `up`'s), with its log appended to node.log.
    assert net.managed["pharmacy-a"].process.poll() is None
    assert "test harness: starting pharmacy-a" in net.log_text("pharmacy-a")
