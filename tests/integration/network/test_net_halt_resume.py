"""Two of four validators down (manifest network/manifests/halt-resume.toml): below
quorum nothing is final and the survivors do not fork; back, blocks resume within one
capped round timeout plus a small slack."""

from __future__ import annotations

from netharness import Net
from netmanifest import load_manifest, run_manifest

MANIFEST = "halt-resume"


def test_two_of_four_down_halts_without_fork_and_resumes_within_capped_round_timeout(net: Net) -> None:
    manifest = load_manifest(MANIFEST)
    results = run_manifest(net, manifest)
    halt = next(r for r in results if r.what == "halt")
    assert halt.details["seconds"] >= 3 * manifest.consensus.round_timeout
    resume = [r for r in results if r.what == "progress"][-1]
    bound = manifest.consensus.max_round_timeout + 4.0
    assert resume.bound == bound
    assert resume.elapsed <= bound, f"resumed after {resume.elapsed:.2f} s, bound {bound:.2f} s"
    print(f"resume after two of four returned: {resume.elapsed:.2f} s (bound {bound:.2f} s)")
    same = [r for r in results if r.what == "same-chain"]
    assert same[0].details["heads"] and len(set(same[0].details["heads"].values())) == 1
    assert same[-1].details["height"] > same[0].details["height"]
