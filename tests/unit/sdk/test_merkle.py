"""RFC 6962 Merkle trees: the Certificate Transparency reference vectors, a straightforward
recursive reference (the RFC's definitions, transcribed), and path folding that rejects
every wrong index, size, leaf, root or path."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sdk._merkle import (
    audit_path,
    audit_paths,
    leaf_hash,
    merkle_root,
    node_hash,
    root_from_path,
    tree_levels,
)

# Test data of transparency-dev/merkle (testonly/constants.go, proof/verify_test.go): the
# entries, MTH of the first n of them, and inclusion proofs (leaf index, tree size, path).
ENTRIES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


# -- the reference: RFC 6962 §2.1, transcribed ----------------------------------------------
def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return hashlib.sha256(b"\x01" + ref_root(leaves[:k]) + ref_root(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return ref_path(m, leaves[:k]) + [ref_root(leaves[k:])]
    return ref_path(m - k, leaves[k:]) + [ref_root(leaves[:k])]


def test_reference_roots() -> None:
    for n, root in enumerate(ROOTS):
        assert merkle_root(ENTRIES[:n]) == root, n


def test_reference_inclusion_proofs() -> None:
    leaves = [leaf_hash(e) for e in ENTRIES]
    for index, size, path in INCLUSION:
        expected = tuple(bytes.fromhex(p) for p in path)
        levels = tree_levels(leaves[:size])
        assert audit_paths(levels)[index] == expected
        assert audit_path(levels, index) == expected
        assert root_from_path(index, size, leaves[index], expected) == ROOTS[size]


def test_hash_prefixes() -> None:
    assert leaf_hash(b"") == ROOTS[1]
    assert node_hash(leaf_hash(ENTRIES[0]), leaf_hash(ENTRIES[1])) == ROOTS[2]


def test_no_leaves_is_an_error() -> None:
    with pytest.raises(ValueError):
        tree_levels([])


def test_every_size_to_130_matches_the_reference() -> None:
    for n in range(1, 131):
        leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(n)]
        levels = tree_levels(leaves)
        root = levels[-1][0]
        assert root == ref_root(leaves)
        paths = audit_paths(levels)
        assert len(paths) == n
        for i in range(n):
            assert list(paths[i]) == ref_path(i, leaves), (n, i)
            assert root_from_path(i, n, leaves[i], paths[i]) == root


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=130))
def test_hypothesis_against_the_reference(entries: list[bytes]) -> None:
    leaves = [leaf_hash(e) for e in entries]
    levels = tree_levels(leaves)
    assert levels[-1][0] == ref_root(leaves) == merkle_root(entries)
    for i, path in enumerate(audit_paths(levels)):
        assert list(path) == ref_path(i, leaves)
        assert root_from_path(i, len(leaves), leaves[i], path) == levels[-1][0]


def _rejects(index: int, size: int, leaf: bytes, path: tuple[bytes, ...], root: bytes) -> bool:
    try:
        return root_from_path(index, size, leaf, path) != root
    except ValueError:
        return True


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=130), st.data())
def test_wrong_index_size_leaf_or_path_fails(n: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(n)]
    levels = tree_levels(leaves)
    root = levels[-1][0]
    paths = audit_paths(levels)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    path = paths[i]
    # Another index, inside or outside the tree.
    j = data.draw(st.integers(min_value=-1, max_value=n + 2).filter(lambda j: j != i))
    assert _rejects(j, n, leaves[i], path, root)
    # Another size: a path of the wrong length for it is rejected. (A size with the same
    # shape for this leaf, e.g. leaf 0 of 3 and of 4, folds alike: the anchored
    # (root, size) pair binds the size, see tests/integration/test_anchoring.py.)
    m = data.draw(st.integers(min_value=0, max_value=2 * n + 2).filter(lambda m: m != n))
    if i >= m or len(ref_path(i, [b""] * m)) != len(path):
        with pytest.raises(ValueError):
            root_from_path(i, m, leaves[i], path)
    # Another leaf, a flipped bit anywhere in the path, a path too long or too short.
    assert _rejects(i, n, leaf_hash(b"other"), path, root)
    if path:
        k = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        flipped = bytearray(path[k])
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert _rejects(i, n, leaves[i], path[:k] + (bytes(flipped),) + path[k + 1:], root)
        assert _rejects(i, n, leaves[i], path[:-1], root)
    assert _rejects(i, n, leaves[i], path + (root,), root)
    assert _rejects(i, n, leaves[i], (root,) + path, root)


def test_index_outside_the_tree_names_it() -> None:
    with pytest.raises(ValueError, match="outside a tree of size 3"):
        root_from_path(3, 3, leaf_hash(b""), ())
    with pytest.raises(ValueError, match="too long"):
        root_from_path(0, 1, leaf_hash(b""), (leaf_hash(b""),))
    with pytest.raises(ValueError, match="too short"):
        root_from_path(0, 2, leaf_hash(b""), ())
