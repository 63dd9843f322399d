"""DSSE envelopes: sign and verify a typed payload with Ed25519 or ECDSA P-256.

Implements the Dead Simple Signing Envelope v1 (secure-systems-lab/dsse, ``protocol.md``
and ``envelope.md``). The signature covers the Pre-Authentication Encoding (PAE) of the
payload type and the payload bytes, never the JSON around them, so the envelope's
serialisation does not matter and the payload type cannot be swapped.

Keys are ``cryptography`` key objects: ``Ed25519PrivateKey``/``Ed25519PublicKey`` or
``EllipticCurvePrivateKey``/``EllipticCurvePublicKey`` on P-256 (SHA-256).

>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> key = Ed25519PrivateKey.from_private_bytes(bytes(32))
>>> pae("text/plain", b"hello")
b'DSSEv1 10 text/plain 5 hello'
>>> envelope = sign_envelope("text/plain", b"hello", key)
>>> verify_envelope(envelope, [key.public_key()])
b'hello'
>>> envelope["signatures"][0]["keyid"] == key_id(key.public_key())
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from mltrail.errors import FormatError, InvalidInputError, VerificationError

__all__ = [
    "DETERMINISTIC_ECDSA",
    "PrivateKey",
    "PublicKey",
    "key_id",
    "load_public_key",
    "pae",
    "public_key_pem",
    "sign_envelope",
    "verify_envelope",
]

PublicKey: TypeAlias = Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey: TypeAlias = Ed25519PrivateKey | ec.EllipticCurvePrivateKey

_KEY_HINT = "use an Ed25519 key or an ECDSA key on curve P-256 (secp256r1)"
_STD_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URL_B64 = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def _ecdsa_signing_algorithm() -> tuple[ec.ECDSA, bool]:
    # RFC 6979 deterministic nonces where the installed cryptography (>= 44, OpenSSL >= 3.2)
    # supports them: no dependence on the RNG at signing time, reproducible signatures.
    try:
        return ec.ECDSA(hashes.SHA256(), deterministic_signing=True), True
    except (TypeError, UnsupportedAlgorithm):
        return ec.ECDSA(hashes.SHA256()), False


_ECDSA_SIGN, DETERMINISTIC_ECDSA = _ecdsa_signing_algorithm()
_ECDSA_VERIFY = ec.ECDSA(hashes.SHA256())


class _Envelope(NamedTuple):
    payload_type: str
    payload: bytes
    signatures: list[bytes]


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding, the exact bytes a DSSE signature covers.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, where LEN is the length in
    bytes (the UTF-8 encoding for the type) as ASCII decimal (DSSE protocol.md).

    Args:
        payload_type: the media type of the payload, e.g. ``application/vnd.in-toto+json``.
        payload: the serialised body.

    Returns:
        The bytes to sign or verify.

    Raises:
        InvalidInputError: ``payload_type`` cannot be encoded as UTF-8 (a lone surrogate).
    """
    type_bytes = _utf8(payload_type, "payloadType")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign_envelope(
    payload_type: str, payload: bytes, private_key: PrivateKey, keyid: str | None = None
) -> dict[str, Any]:
    """Sign ``payload`` and wrap it in a DSSE JSON envelope.

    Ed25519 signatures are the raw 64 bytes; ECDSA P-256 signatures are DER-encoded, as
    the DSSE reference implementations write them, and use RFC 6979 deterministic nonces
    when the installed ``cryptography`` supports them (see ``DETERMINISTIC_ECDSA``).

    Args:
        payload_type: the media type of the payload.
        payload: the serialised body to sign.
        private_key: an Ed25519 or ECDSA P-256 private key.
        keyid: the hint stored beside the signature; defaults to ``key_id`` of the public
            key. It is not signed and verifiers must not trust it.

    Returns:
        ``{"payloadType": ..., "payload": base64, "signatures": [{"keyid", "sig"}]}``
        with standard, padded base64.

    Raises:
        InvalidInputError: an argument has the wrong type, or the key is not Ed25519 or
            P-256.
    """
    if not isinstance(payload_type, str) or not isinstance(payload, bytes | bytearray):
        raise InvalidInputError("sign_envelope needs a str payload_type and bytes payload")
    if keyid is not None and not isinstance(keyid, str):
        raise InvalidInputError(f"keyid must be a string, not {type(keyid).__name__}")
    signature = _sign(private_key, pae(payload_type, bytes(payload)))
    return {
        "payloadType": payload_type,
        "payload": _b64encode(bytes(payload)),
        "signatures": [
            {
                "keyid": key_id(private_key.public_key()) if keyid is None else keyid,
                "sig": _b64encode(signature),
            }
        ],
    }


def verify_envelope(envelope: Mapping[str, Any], public_keys: Iterable[PublicKey]) -> bytes:
    """Verify a DSSE envelope against trusted keys and return its payload.

    The envelope is accepted when at least one of its signatures verifies over
    ``pae(payloadType, payload)`` with at least one of ``public_keys`` (DSSE protocol.md,
    verification steps). ``keyid`` hints are ignored: every signature is tried against
    every key, so a missing or wrong hint cannot lock out a valid signature or let in an
    invalid one. ECDSA signatures are accepted DER-encoded or as raw ``r || s`` (64 bytes).
    Base64 fields may be standard or URL-safe, padded or not (DSSE envelope.md).

    Args:
        envelope: the parsed JSON envelope.
        public_keys: the trusted Ed25519 and ECDSA P-256 public keys.

    Returns:
        The verified payload bytes. Check the payload type before using them.

    Raises:
        FormatError: the envelope is malformed (a missing field, a value of the wrong
            type, invalid base64).
        InvalidInputError: a key is not an Ed25519 or P-256 public key.
        VerificationError: no signature verifies with any of the keys (including when the
            envelope has no signatures or no keys were given).
    """
    parsed = _parse_envelope(envelope)
    keys = [_check_public_key(key) for key in public_keys]
    if not keys:
        raise VerificationError(
            "no trusted public keys were given, so the envelope cannot be verified",
            hint="pass the signer's public key(s)",
        )
    if not parsed.signatures:
        raise VerificationError("the DSSE envelope carries no signatures")
    message = pae(parsed.payload_type, parsed.payload)
    if any(_verifies(key, sig, message) for sig in parsed.signatures for key in keys):
        return parsed.payload
    raise VerificationError(
        f"none of the {len(parsed.signatures)} signature(s) on the DSSE envelope "
        f"(payloadType {parsed.payload_type!r}) verifies with the {len(keys)} trusted key(s)"
    )


def key_id(public_key: PublicKey) -> str:
    """A stable identifier for a public key, used as the envelope's ``keyid`` hint.

    Ed25519: lowercase hex SHA-256 of the 32 raw public key bytes (as in the
    securesystemslib cross-language DSSE fixtures). ECDSA P-256: lowercase hex SHA-256 of
    the DER-encoded SubjectPublicKeyInfo.

    Raises:
        InvalidInputError: the key is not an Ed25519 or P-256 public key.
    """
    key = _check_public_key(public_key)
    if isinstance(key, Ed25519PublicKey):
        material = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        material = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return hashlib.sha256(material).hexdigest()


def load_public_key(pem_or_raw: bytes | str) -> PublicKey:
    """Load an Ed25519 or P-256 public key.

    Accepts a PEM ``PUBLIC KEY`` (bytes or str), a DER SubjectPublicKeyInfo, 32 raw
    Ed25519 bytes, or an SEC 1 P-256 point (65 bytes uncompressed or 33 compressed).

    Raises:
        FormatError: the bytes are none of these, or hold another kind of key.
    """
    data = pem_or_raw.encode("utf-8") if isinstance(pem_or_raw, str) else bytes(pem_or_raw)
    try:
        key = _decode_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise FormatError(f"cannot load public key: {exc}", hint=_KEY_HINT) from exc
    try:
        return _check_public_key(key)
    except InvalidInputError as exc:
        raise FormatError(exc.message, hint=_KEY_HINT) from exc


def public_key_pem(key: PublicKey | PrivateKey) -> str:
    """The SubjectPublicKeyInfo PEM of a public key (or of a private key's public half).

    Raises:
        InvalidInputError: the key is not an Ed25519 or P-256 key.
    """
    if isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        key = key.public_key()
    public = _check_public_key(key)
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _decode_public_key(data: bytes) -> Any:
    if data.lstrip().startswith(b"-----BEGIN"):
        return serialization.load_pem_public_key(data.strip())
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    if (len(data), data[:1]) in {(65, b"\x04"), (33, b"\x02"), (33, b"\x03")}:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
    return serialization.load_der_public_key(data)


def _check_public_key(key: object) -> PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        _check_curve(key.curve)
        return key
    raise InvalidInputError(
        f"expected an Ed25519 or ECDSA P-256 public key, got {type(key).__name__}",
        hint=_KEY_HINT,
    )


def _check_curve(curve: ec.EllipticCurve) -> None:
    if not isinstance(curve, ec.SECP256R1):
        raise InvalidInputError(
            f"ECDSA keys must use curve P-256 (secp256r1), not {curve.name}", hint=_KEY_HINT
        )


def _sign(private_key: PrivateKey, message: bytes) -> bytes:
    if isinstance(private_key, Ed25519PrivateKey):
        return private_key.sign(message)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        _check_curve(private_key.curve)
        return private_key.sign(message, _ECDSA_SIGN)
    raise InvalidInputError(
        f"expected an Ed25519 or ECDSA P-256 private key, got {type(private_key).__name__}",
        hint=_KEY_HINT,
    )


def _verifies(key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(signature, message)
        else:
            _verify_ecdsa(key, signature, message)
    except InvalidSignature:
        return False
    return True


def _verify_ecdsa(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> None:
    # DSSE leaves the ECDSA encoding to the implementation: Go and securesystemslib write
    # DER, the spec's own test vector is raw r || s. A 64-byte value is tried both ways;
    # either way the curve equation, not the encoding, decides.
    try:
        key.verify(signature, message, _ECDSA_VERIFY)
    except InvalidSignature:
        if len(signature) != 64:
            raise
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        key.verify(encode_dss_signature(r, s), message, _ECDSA_VERIFY)


def _parse_envelope(envelope: object) -> _Envelope:
    if not isinstance(envelope, Mapping):
        raise FormatError(f"a DSSE envelope must be a JSON object, not {type(envelope).__name__}")
    payload_type = _required_str(envelope, "payloadType", "DSSE envelope")
    if not _is_utf8(payload_type):
        raise FormatError("DSSE envelope payloadType is not valid Unicode (lone surrogate)")
    payload = _b64decode(_required_str(envelope, "payload", "DSSE envelope"), "payload")
    entries = envelope.get("signatures")
    if not isinstance(entries, list):
        raise FormatError("DSSE envelope field 'signatures' must be a list of objects")
    return _Envelope(payload_type, payload, [_parse_signature(entry) for entry in entries])


def _parse_signature(entry: object) -> bytes:
    if not isinstance(entry, Mapping):
        raise FormatError("each DSSE signature must be a JSON object with a 'sig' field")
    keyid = entry.get("keyid", "")
    if not isinstance(keyid, str):
        raise FormatError(f"DSSE signature 'keyid' must be a string, not {keyid!r}")
    return _b64decode(_required_str(entry, "sig", "DSSE signature"), "sig")


def _required_str(mapping: Mapping[Any, Any], field: str, where: str) -> str:
    if field not in mapping:
        raise FormatError(f"{where} is missing the required field {field!r}")
    value = mapping[field]
    if not isinstance(value, str):
        raise FormatError(f"{where} field {field!r} must be a string, not {type(value).__name__}")
    return value


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, field: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (DSSE envelope.md)."""
    if _STD_B64.fullmatch(text):
        alphabet = b"+/"
    elif _URL_B64.fullmatch(text):
        alphabet = b"-_"
    else:
        raise FormatError(f"DSSE field {field!r} is not valid base64")
    unpadded = text.rstrip("=")
    padded = unpadded + "=" * (-len(unpadded) % 4)
    if len(unpadded) % 4 == 1 or text not in (unpadded, padded):
        raise FormatError(f"DSSE field {field!r} is not valid base64 (bad length or padding)")
    try:
        return base64.b64decode(padded.encode("ascii"), altchars=alphabet, validate=True)
    except binascii.Error as exc:
        raise FormatError(f"DSSE field {field!r} is not valid base64: {exc}") from exc


def _utf8(text: str, field: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{field} is not encodable as UTF-8: {exc}") from exc


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
