"""The prescription token a patient carries from the hospital to the pharmacy.

JSON (`to_json`)::

    {"v": 1, "rxId": "0x…32 bytes", "salt": "<base64url, 32 bytes>",
     "doc": "<the canonical MedicationRequest, RFC 8785 text>"}

or, encrypted to one pharmacy, ``"enc"`` instead of ``"doc"``::

    "enc": {"alg": "X25519-HKDF-SHA256-A256GCM", "epk": "<base64url>", "iv": "<base64url>",
            "ct": "<base64url>"}

The document is sealed with AES-256-GCM under a key derived by HKDF-SHA256 from an X25519
exchange between a fresh ephemeral key (`epk`) and the pharmacy's public key; the rxId
is the associated data, so a ciphertext moved to another token does not open.

`to_compact()` is ``RXL1.`` + base64url(zlib(JSON)) for a QR code: a small MedicationRequest
fits a version-25 QR code; large documents should be sent encrypted or out of band.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import zlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from client_sdk._errors import ClientError, VerificationFailed
from client_sdk._json import load_json

__all__ = ["PrescriptionToken", "decode_token", "generate_pharmacy_key", "load_private_key",
           "load_public_key"]

VERSION = 1
COMPACT_PREFIX = "RXL1."
ALG = "X25519-HKDF-SHA256-A256GCM"
_HKDF_INFO = b"rxledger prescription token v1"
# A token read from outside: at most this many bytes (its JSON, and its compact form once
# inflated, so a small zlib bomb cannot fill memory) and objects nested this deep (a token
# is an object holding one object). A MedicationRequest is a few KB.
MAX_TOKEN_BYTES = 1024 * 1024
MAX_TOKEN_DEPTH = 2
# The document inside a token: FHIR resources nest a dozen levels at most.
MAX_DOCUMENT_DEPTH = 64


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: Any, field: str) -> bytes:
    if not isinstance(text, str):
        raise VerificationFailed(f"token field {field!r} must be a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise VerificationFailed(f"token field {field!r} is not base64url") from exc


def generate_pharmacy_key() -> tuple[bytes, bytes]:
    """A new X25519 key pair (private PEM, public PEM) for receiving encrypted tokens."""
    private = X25519PrivateKey.generate()
    return (
        private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
        private.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo),
    )


def load_private_key(pem: bytes) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ClientError(f"not a PEM private key: {exc}") from exc
    if not isinstance(key, X25519PrivateKey):
        raise ClientError("the pharmacy key must be an X25519 key")
    return key


def load_public_key(pem: bytes) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ClientError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, X25519PublicKey):
        raise ClientError("the pharmacy key must be an X25519 key")
    return key


def _derive(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=epk + recipient, info=_HKDF_INFO).derive(shared)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class PrescriptionToken:
    """rxId, salt and the canonical document (or the document sealed to a pharmacy)."""

    rx_id: bytes
    salt: bytes
    document: bytes | None = None
    sealed: dict[str, str] | None = None

    @property
    def rx_id_hex(self) -> str:
        return "0x" + self.rx_id.hex()

    @property
    def is_sealed(self) -> bool:
        return self.document is None

    def document_json(self) -> dict[str, Any]:
        if self.document is None:
            raise ClientError("the token's document is encrypted: open it with the pharmacy's key")
        parsed = load_json(self.document, "token's document", max_bytes=MAX_TOKEN_BYTES,
                           max_depth=MAX_DOCUMENT_DEPTH)
        if not isinstance(parsed, dict):
            raise VerificationFailed("the token's document is not a JSON object")
        return parsed

    def seal_to(self, pharmacy_public_key: X25519PublicKey | bytes) -> PrescriptionToken:
        """The same token with its document encrypted to one pharmacy."""
        if self.document is None:
            raise ClientError("the token is already sealed")
        recipient = (load_public_key(pharmacy_public_key)
                     if isinstance(pharmacy_public_key, bytes) else pharmacy_public_key)
        ephemeral = X25519PrivateKey.generate()
        epk = _raw(ephemeral.public_key())
        key = _derive(ephemeral.exchange(recipient), epk, _raw(recipient))
        iv = os.urandom(12)
        ct = AESGCM(key).encrypt(iv, self.document, self.rx_id)
        sealed = {"alg": ALG, "epk": _b64(epk), "iv": _b64(iv), "ct": _b64(ct)}
        return PrescriptionToken(self.rx_id, self.salt, None, sealed)

    def open_with(self, pharmacy_private_key: X25519PrivateKey | bytes) -> PrescriptionToken:
        """The token with its document decrypted (a plain token is returned as is)."""
        if self.sealed is None:
            return self
        private = (load_private_key(pharmacy_private_key)
                   if isinstance(pharmacy_private_key, bytes) else pharmacy_private_key)
        if self.sealed.get("alg") != ALG:
            raise VerificationFailed(f"unknown token encryption {self.sealed.get('alg')!r}")
        epk = _unb64(self.sealed.get("epk"), "enc.epk")
        iv = _unb64(self.sealed.get("iv"), "enc.iv")
        ct = _unb64(self.sealed.get("ct"), "enc.ct")
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(epk))
            key = _derive(shared, epk, _raw(private.public_key()))
            document = AESGCM(key).decrypt(iv, ct, self.rx_id)
        except (InvalidTag, ValueError) as exc:
            raise VerificationFailed(
                "the token's document does not open with this key (another pharmacy's, or tampered)"
            ) from exc
        return PrescriptionToken(self.rx_id, self.salt, document, None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "rxId": self.rx_id_hex, "salt": _b64(self.salt)}
        if self.document is not None:
            out["doc"] = self.document.decode()
        else:
            out["enc"] = dict(self.sealed or {})
        return out

    def to_compact(self) -> str:
        body = json.dumps(self.to_json(), separators=(",", ":")).encode()
        return COMPACT_PREFIX + _b64(zlib.compress(body, 9))


def _inflate(data: bytes) -> bytes:
    """zlib-inflate a compact token's body, refusing more than MAX_TOKEN_BYTES."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_TOKEN_BYTES + 1)
    except zlib.error as exc:
        raise VerificationFailed("the compact token is corrupt") from exc
    if len(out) > MAX_TOKEN_BYTES:
        raise VerificationFailed(f"the compact token inflates to more than {MAX_TOKEN_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise VerificationFailed("the compact token is corrupt (truncated, or bytes after its end)")
    return out


def decode_token(token: str | bytes | dict[str, Any] | PrescriptionToken) -> PrescriptionToken:
    """A token from its JSON (object or text) or its compact ``RXL1.`` form. Raises only
    `VerificationFailed` (naming what is wrong) for any malformed input."""
    if isinstance(token, PrescriptionToken):
        return token
    if isinstance(token, bytes):
        token = token.decode("utf-8", errors="replace")
    if isinstance(token, str):
        if len(token) > 4 * MAX_TOKEN_BYTES:  # before any copy of it is made
            raise VerificationFailed(f"the token is more than {MAX_TOKEN_BYTES} bytes")
        text = token.strip()
        data = text.encode("utf-8", errors="replace")
        if text.startswith(COMPACT_PREFIX):
            data = _inflate(_unb64(text[len(COMPACT_PREFIX):], "compact"))
        token = load_json(data, "token", max_bytes=MAX_TOKEN_BYTES, max_depth=MAX_TOKEN_DEPTH)
    if not isinstance(token, dict):
        raise VerificationFailed("a token is a JSON object")
    if token.get("v") != VERSION:
        raise VerificationFailed(f"unsupported token version {token.get('v')!r}")
    rx = token.get("rxId")
    if not isinstance(rx, str) or not rx.startswith("0x") or len(rx) != 66:
        raise VerificationFailed("token field 'rxId' must be 0x and 64 hex digits")
    try:
        rx_id = bytes.fromhex(rx[2:])
    except ValueError as exc:
        raise VerificationFailed("token field 'rxId' is not hex") from exc
    salt = _unb64(token.get("salt"), "salt")
    if len(salt) != 32:
        raise VerificationFailed("token field 'salt' must be 32 bytes")
    if "doc" in token:
        doc = token["doc"]
        if not isinstance(doc, str):
            raise VerificationFailed("token field 'doc' must be the canonical JSON text")
        try:
            encoded = doc.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate escaped in the JSON
            raise VerificationFailed(f"token field 'doc' is not valid text: {exc}") from None
        return PrescriptionToken(rx_id, salt, encoded, None)
    enc = token.get("enc")
    if not isinstance(enc, dict) or not all(isinstance(v, str) for v in enc.values()):
        raise VerificationFailed("a token needs 'doc' or 'enc'")
    return PrescriptionToken(rx_id, salt, None, {str(k): str(v) for k, v in enc.items()})
