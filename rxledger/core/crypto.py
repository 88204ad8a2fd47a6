"""Hashing and secp256k1 helpers used everywhere in the node.

keccak256: we measured both eth-hash backends (bench/keccak_backends.py, figures in
docs/PERFORMANCE.md): safe-pysha3 hashes a 32-byte input ~4.8x faster than pycryptodome,
and trie nodes and hashes are nearly all small inputs. eth-hash's auto backend picks
pycryptodome first when both are installed (web3 pulls it in), so `install_keccak_backend`
points the process-wide eth-hash hasher (used by py-evm, trie, eth-utils) at pysha3 once,
explicitly, instead of relying on the ETH_HASH_BACKEND environment variable.

Signatures use eth-keys with the coincurve backend (libsecp256k1), ~20x faster than
the pure-Python backend for recovery.
"""

from __future__ import annotations

from functools import lru_cache

import coincurve
import eth_hash.auto
from eth_hash.backends import pysha3 as _pysha3
from eth_keys.backends.coincurve import CoinCurveECCBackend
from eth_keys.datatypes import PrivateKey
from eth_keys.main import KeyAPI

keccak256 = _pysha3.keccak256

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2

keys = KeyAPI(CoinCurveECCBackend())


def install_keccak_backend() -> None:
    """Make every eth-hash user in this process (py-evm, trie, eth-utils) use pysha3."""
    eth_hash.auto.keccak.hasher = _pysha3.keccak256  # type: ignore[assignment]


install_keccak_backend()


def recover_address(message_hash: bytes, v: int, r: int, s: int) -> bytes:
    """Return the 20-byte address that signed `message_hash` (v is the y parity, 0 or 1).

    Calls coincurve directly: eth-keys' object layer costs as much as the recovery.
    Raises ValueError for an unrecoverable signature.
    """
    if v not in (0, 1) or not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise ValueError("signature values out of range")
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])
    public = coincurve.PublicKey.from_signature_and_message(signature, message_hash, hasher=None)
    return keccak256(public.format(compressed=False)[1:])[12:]


@lru_cache(maxsize=64)
def _signing_key(private_key: bytes) -> coincurve.PrivateKey:
    # Building a key derives its public key (~40 µs); validators sign with one key.
    return coincurve.PrivateKey(private_key)


def sign_hash(message_hash: bytes, private_key: bytes) -> tuple[int, int, int]:
    """Sign a 32-byte hash (RFC 6979, deterministic); returns (y_parity, r, s) with low s."""
    sig = _signing_key(private_key).sign_recoverable(message_hash, hasher=None)
    return sig[64], int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")


def encode_signature(v: int, r: int, s: int) -> bytes:
    """65 bytes r ‖ s ‖ v, the layout of Besu's commit seals."""
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def decode_signature(sig: bytes) -> tuple[int, int, int]:
    """Inverse of `encode_signature`; raises ValueError on a malformed signature."""
    if len(sig) != 65:
        raise ValueError(f"signature must be 65 bytes, got {len(sig)}")
    v = sig[64]
    if v not in (0, 1):
        raise ValueError(f"signature recovery id must be 0 or 1, got {v}")
    return v, int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")


def private_key_to_address(private_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a private key."""
    return PrivateKey(private_key).public_key.to_canonical_address()
