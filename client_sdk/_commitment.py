"""Commitments, pseudonyms and prescription ids: what replaces patient data on the ledger.

- **Canonical form**: RFC 8785 (JCS) via the `rfc8785` package. JCS normalises numbers
  (``6.0`` becomes ``6``), so the SDK hashes, stores and hands out exactly the canonical
  bytes, never the caller's original text.
- **Commitment**: SHA-256(salt ‖ canonical bytes) with a fresh 32-byte random salt per
  document. The salt stays off the ledger, in the prescription token; without it a
  commitment reveals nothing, even about a guessable document.
- **Patient pseudonym**: HMAC-SHA256(consortium key, "rxledger/patient/v1|" ‖ patient
  key). Keyed, never a plain hash: a plain hash of a patient number is reversed by
  hashing every possible number, in microseconds each. The key is the consortium's
  (`--consortium-key-file`); dev chains use the public `DEV_CONSORTIUM_KEY`.
- **Prescription id**: HMAC-SHA256(consortium key, "rxledger/rx/v1|" ‖ canonical bytes).
  Deterministic, so a retried `issue` of the same MedicationRequest is refused as a
  duplicate instead of creating a second prescription. Not the request's business
  identifier alone: real systems (and HL7's own examples) reuse one identifier across
  different requests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

import rfc8785

from client_sdk._errors import InvalidFhir

__all__ = [
    "DEV_CONSORTIUM_KEY",
    "canonical_bytes",
    "commitment",
    "new_salt",
    "patient_pseudonym",
    "prescription_id",
]

#: The development consortium key (public, like the development accounts: dev chains only).
DEV_CONSORTIUM_KEY = hashlib.sha256(
    b"rxledger development consortium key - public, for dev chains only"
).digest()

SALT_BYTES = 32


def canonical_bytes(resource: dict[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON of a resource."""
    try:
        return rfc8785.dumps(resource)
    except Exception as exc:  # rfc8785 raises its own errors for NaN, huge ints, …
        raise InvalidFhir("(document)", f"cannot be canonicalised (RFC 8785): {exc}") from exc


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def commitment(salt: bytes, canonical: bytes) -> bytes:
    return hashlib.sha256(salt + canonical).digest()


def _check_key(key: bytes) -> None:
    if len(key) < 16:
        raise ValueError("the consortium key must be at least 16 bytes")


def patient_pseudonym(consortium_key: bytes, patient_key: str) -> bytes:
    _check_key(consortium_key)
    message = b"rxledger/patient/v1|" + patient_key.encode()
    return hmac.new(consortium_key, message, hashlib.sha256).digest()


def prescription_id(consortium_key: bytes, canonical: bytes) -> bytes:
    _check_key(consortium_key)
    return hmac.new(consortium_key, b"rxledger/rx/v1|" + canonical, hashlib.sha256).digest()
