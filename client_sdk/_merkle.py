"""Merkle trees of RFC 6962 / RFC 9162 (Certificate Transparency), SHA-256.

For entries d(0) … d(n-1) (here: 32-byte record hashes)::

    leaf hash   = SHA-256(0x00 ‖ d(i))
    node hash   = SHA-256(0x01 ‖ left ‖ right)
    MTH(D[n])   = node hash of MTH(D[0:k]) and MTH(D[k:n]), k the largest power of two < n

The RFC's recursive split at the largest power of two below n gives the same tree as
building level by level from the leaves, pairing neighbours and carrying a lone last node
up unchanged (no hash): `tree_levels` builds it that way, in one pass per level, and
`audit_paths` derives every leaf's audit path from the levels at once, top down (each
node's path is its sibling and its parent's path), not n walks from the root. `root_from_path` is RFC 9162
§2.1.3.2's verification algorithm: it folds a path into the root it implies, rejecting an
index outside the tree and a path of the wrong length for the tree's size.

The empty tree (root SHA-256 of nothing) is defined by the RFC but never anchored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

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

    Top down, one level at a time: the path of node j of level k is its sibling (node
    j ^ 1) followed by the path of its parent (node j >> 1 of level k + 1); a lone last
    node, carried up unchanged, has no sibling and takes its parent's path as it is. That
    is one tuple per node of the tree (2n) built in list comprehensions, not n walks.
    """
    paths: list[tuple[bytes, ...]] = [()]
    for level in reversed(levels[:-1]):
        m = len(level)
        even = m - (m & 1)
        siblings = [b""] * even
        siblings[0::2] = level[1:even:2]
        siblings[1::2] = level[0:even:2]
        parents = [p for p in paths for _ in (0, 1)]
        below = [(s, *p) for s, p in zip(siblings, parents, strict=False)]
        if m & 1:
            below.append(paths[-1])
        paths = below
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
