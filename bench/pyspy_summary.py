"""Summarise a py-spy collapsed-stack profile (`py-spy record --format raw`, or
`bench/devchain_tps.py --py-spy FILE.txt`): samples per thread, and the top functions by
self and inclusive samples, leaving out start-up (module imports).

Run:  .venv/bin/python bench/pyspy_summary.py FILE.txt [--top 25] [--thread NAME]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

_IDLE = ("Condition.wait", "Event.wait", "Queue.get", "EpollSelector.select", "Thread.join",
         "Lock.acquire")


# Where a sample's time goes, by the first marker found in its stack (in this order).
CATEGORIES = (
    ("producer: validator-set walk (Chain.next_validators)", "Chain.next_validators"),
    ("producer: native fast path (apply_native_transaction)", "apply_native_transaction"),
    ("producer: EVM execution (apply_transaction)", "apply_transaction"),
    ("producer: state root + trie persist", "BaseState.persist"),
    ("producer: tx/receipt roots", "ordered_trie_root"),
    ("producer: commit (LevelDB batch, listeners, pool prune)", "Chain.commit_block"),
    ("producer: other block building (header, tally, session)", "Chain.build_block"),
    ("producer: QBFT proposal and messages (dev chain)", "QbftNode."),
    ("producer: txpool.pending (state nonces)", "TxPool.pending"),
    ("producer: other", "DevProducer"),
    ("RPC sendRaw: decode + sender recovery", "decode_transaction"),
    ("RPC sendRaw: already-final check (locate_transaction)", "locate_transaction"),
    ("RPC sendRaw: txpool admission (state nonce, pool lock)", "TxPool.add"),
    ("RPC: other method bodies (blocks, receipts, ...)", "handle_payload"),
    ("HTTP/ASGI: uvicorn + FastAPI + JSON on the event loop", "Server.run"),
    ("RPC threadpool: other", "WorkerThread.run"),
)


def category(frames: list[str]) -> str:
    for label, marker in CATEGORIES:
        if any(marker in f for f in frames):
            return label
    return "other"


def frame_name(frame: str) -> str:
    """'fn (path/file.py:12)' → 'fn (path/file.py)', so lines of one function add up."""
    return re.sub(r":\d+\)$", ")", frame)


def load(path: str) -> list[tuple[str, list[str], int]]:
    out = []
    with open(path) as f:
        for line in f:
            line = line.rstrip()
            if not line:
                continue
            stack, count = line.rsplit(" ", 1)
            frames = stack.split(";")
            thread = re.sub(r"^thread \(\d+\)(: )?", "", frames[0]) or "main"
            thread = re.sub(r" \d+$", "", thread)
            out.append((thread, frames[1:], int(count)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise a py-spy raw profile")
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", help="only threads whose name contains this")
    parser.add_argument("--lines", action="store_true", help="keep line numbers in frame names")
    args = parser.parse_args(argv)

    stacks = load(args.file)
    startup = sum(n for _, fr, n in stacks if any("_find_and_load" in f for f in fr))
    stacks = [(t, fr, n) for t, fr, n in stacks if not any("_find_and_load" in f for f in fr)]
    if args.thread:
        stacks = [(t, fr, n) for t, fr, n in stacks if args.thread in t]
    name = (lambda f: f) if args.lines else frame_name
    threads: Counter[str] = Counter()
    busy: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    cats: Counter[str] = Counter()
    total = 0
    for thread, frames, n in stacks:
        idle = bool(frames) and frames[-1].split(" (")[0] in _IDLE
        threads[thread] += n
        if idle:
            continue
        busy[thread] += n
        total += n
        cats[category(frames)] += n
        if frames:
            self_[name(frames[-1])] += n
        for f in {name(f) for f in frames}:
            incl[f] += n
    print(f"{args.file}: {total} busy samples (start-up imports left out: {startup}; "
          "waits in Condition.wait/select/queue counted as idle)")
    print("\nsamples per thread (busy / all):")
    groups: Counter[str] = Counter()
    groups_all: Counter[str] = Counter()
    for t, n in threads.items():
        key = "AnyIO worker threads (RPC handlers)" if "AnyIO worker" in t else t
        groups[key] += busy[t]
        groups_all[key] += n
    for t, n in groups.most_common():
        print(f"  {n:7d} / {groups_all[t]:7d}  {100 * n / max(total, 1):5.1f}%  {t}")
    print("\nwhere the busy samples go:")
    for label, n in sorted(cats.items(), key=lambda kv: -kv[1]):
        print(f"  {n:7d}  {100 * n / max(total, 1):5.1f}%  {label}")
    print(f"\ntop {args.top} by self samples:")
    for f, n in self_.most_common(args.top):
        print(f"  {n:7d}  {100 * n / max(total, 1):5.1f}%  {f}")
    print(f"\ntop {args.top} by inclusive samples:")
    for f, n in incl.most_common(args.top):
        print(f"  {n:7d}  {100 * n / max(total, 1):5.1f}%  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
