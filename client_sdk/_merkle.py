"""Merkle trees of RFC 6962 / RFC 9162 (Certificate Transparency), SHA-256.

For entries d(0) … d(n-1) (here: 32-byte record hashes)::

    leaf hash   = SHA-256(0x00 ‖ d(i))
    node hash   = SHA-256(0x01 ‖ left ‖ right)
    MTH(D[n])   = node hash of MTH(D[0:k]) and MTH(D[k:n]), k the largest power of two < n

The RFC's recursive split at the largest power of two below n gives the same tree as
building level by level from the leaves, pairing neighbours and carrying a lone last node
up unchanged (no hash): `tree_levels` builds it that way, in one pass per level, and
`audit_paths` reads every leaf's audit path off the levels at once (one list per level
expanded and transposed, not n walks from the root). `root_from_path` is RFC 9162
§2.1.3.2's verification algorithm: it folds a path into the root it implies, rejecting an
index outside the tree and a path of the wrong length for the tree's size.

The empty tree (root SHA-256 of nothing) is defined by the RFC but never anchored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import chain, repeat

__all__ = [
    "audit_path",
    "audit_paths",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "root_from_path",
    "tree_levels",
]

_sha256 = hashlib.sha256
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 ‖ data): the hash of one tree entry."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): an interior node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _next_level(level: list[bytes]) -> list[bytes]:
    sha = _sha256
    prefix = NODE_PREFIX
    up = [sha(prefix + a + b).digest() for a, b in zip(level[0::2], level[1::2], strict=False)]
    if len(level) & 1:
        up.append(level[-1])  # a lone last node is carried up unchanged
    return up


def tree_levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree over `leaf_hashes`, leaves first, the root's level last.

    Raises ValueError for no leaves.
    """
    if not leaf_hashes:
        raise ValueError("a Merkle tree needs at least one leaf")
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        levels.append(_next_level(levels[-1]))
    return levels


def merkle_root(entries: Sequence[bytes]) -> bytes:
    """MTH(entries): the root over the entries (leaf hashes are taken here). The empty
    list's root is SHA-256 of nothing, as the RFC defines it."""
    if not entries:
        return _sha256(b"").digest()
    sha = _sha256
    return tree_levels([sha(LEAF_PREFIX + d).digest() for d in entries])[-1][0]


def audit_paths(levels: Sequence[Sequence[bytes]]) -> list[tuple[bytes, ...]]:
    """The audit path of every leaf (leaf to root, RFC 6962 PATH order), all at once.

    At level k the sibling of leaf i's ancestor is node (i >> k) ^ 1 of that level, or
    nothing when that ancestor is a lone last node carried up. Each level's siblings are
    laid out once per node and repeated over the 2^k leaves under it, and the columns are
    transposed into per-leaf tuples; only the leaves under a carried node are then
    filtered for the missing entries.
    """
    n = len(levels[0])
    columns: list[list[bytes | None]] = []
    first_carried = n  # the first leaf with a missing sibling at some level
    for k, level in enumerate(levels[:-1]):
        m = len(level)
        siblings: list[bytes | None] = [None] * m
        even = m - (m & 1)
        siblings[0:even:2] = level[1:even:2]
        siblings[1:even:2] = level[0:even:2]
        if m & 1:
            first_carried = min(first_carried, (m - 1) << k)
        if k == 0:
            columns.append(siblings)
        else:
            width = 1 << k
            column = list(chain.from_iterable(repeat(s, width) for s in siblings))
            del column[n:]
            columns.append(column)
    if not columns:
        return [()]
    paths: list[tuple[bytes, ...]] = list(zip(*columns, strict=True))
    for i in range(first_carried, n):
        paths[i] = tuple(p for p in paths[i] if p is not None)
    return paths


def audit_path(levels: Sequence[Sequence[bytes]], index: int) -> tuple[bytes, ...]:
    """The audit path of one leaf (for a single proof; use `audit_paths` for all)."""
    path = []
    for k, level in enumerate(levels[:-1]):
        sibling = (index >> k) ^ 1
        if sibling < len(level):
            path.append(level[sibling])
    return tuple(path)


def root_from_path(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root that `path` proves leaf hash `leaf` at `index` of a tree of `size` under
    (RFC 9162 §2.1.3.2). Raises ValueError when the index is outside the tree or the
    path's length does not fit the tree; comparing the result with the expected root is
    the caller's step."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    sha = _sha256
    prefix = NODE_PREFIX
    for p in path:
        if sn == 0:
            raise ValueError(f"the audit path is too long for leaf {index} of a tree of size {size}")
        if fn & 1 or fn == sn:
            r = sha(prefix + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha(prefix + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError(f"the audit path is too short for leaf {index} of a tree of size {size}")
    return r
