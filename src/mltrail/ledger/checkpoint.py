"""Checkpoints (C2SP tlog-checkpoint) in signed notes (C2SP signed-note, Ed25519), and cosignatures.

A checkpoint body names the log (origin), its size and its RFC 6962 root hash. The log signs
the body as a signed note; witnesses add cosignature lines (C2SP tlog-cosignature, type 0x04)
that also commit to a timestamp. The module is pure: no clock, no files, no randomness except
`NoteSigner.generate`.

>>> log = NoteSigner.from_seed("example.com/log", bytes(32))
>>> body = Checkpoint("example.com/log", 1, bytes(32)).to_text()
>>> note = sign_note(body, log)
>>> Checkpoint.from_text(open_note(note, [log.verifier_key])).size
1
>>> witness = NoteSigner.from_seed("example.com/witness", bytes(range(32)))
>>> cosigned = note + cosign(body, witness, timestamp=1679315147)
>>> verify_cosignature(cosigned, cosigner_verifier_key(witness))
1679315147

Specs: https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note@v1.0.0,
https://c2sp.org/tlog-cosignature. The module covers three closely tied formats, which is
why it runs a little past the usual length.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mltrail.errors import FormatError, InvalidInputError, VerificationError

__all__ = [
    "COSIGNATURE_TYPE",
    "ED25519_TYPE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteSignature",
    "NoteSigner",
    "Verifier",
    "cosign",
    "cosignature_message",
    "cosigner_verifier_key",
    "open_note",
    "parse_cosigner_key",
    "parse_verifier_key",
    "sign_note",
    "split_note",
    "verify_cosignature",
]

ED25519_TYPE = 0x01  # signed-note §Signature types: Ed25519 over the note text
COSIGNATURE_TYPE = 0x04  # signed-note §Signature types: tlog-cosignature/v1, Ed25519
MAX_SIGNATURES = 100  # signed-note §Format: MUST accept at least 16; Go's sumdb/note caps at 100

_SIG_PREFIX = "\u2014 "  # signed-note §Format: em dash, space
_COSIGNATURE_HEADER = "cosignature/v1\n"  # tlog-cosignature §Ed25519 signed message
_MAX_SIZE = 2**64 - 1  # tree sizes are uint64 everywhere else in the ecosystem
_MAX_TIMESTAMP = 2**63 - 1  # tlog-cosignature §Format: MUST NOT exceed 2^63 - 1
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")  # tlog-checkpoint §Note text 2: no leading zeroes
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")


# --- text and encoding rules -------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    """Decode standard base64 (RFC 4648 §4), refusing any spelling but the canonical one.

    Refusing non-canonical padding bits keeps every signed byte meaningful: two spellings of
    one signature would otherwise both verify.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise FormatError(f"{what} is not valid base64: {text!r}") from exc
    if _b64(raw) != text:
        raise FormatError(f"{what} is not canonical base64: {text!r}")
    return raw


def _check_text(text: str, what: str) -> None:
    """signed-note §Format: valid UTF-8 with no ASCII control characters but newline."""
    bad = _CONTROL.search(text)
    if bad is not None:
        raise FormatError(f"{what} contains the control character U+{ord(bad.group()):04X}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FormatError(f"{what} is not valid UTF-8 (it holds a lone surrogate)") from exc


def _check_line(line: str, what: str) -> None:
    """tlog-checkpoint §Note text: every line is non-empty and holds no newline."""
    if not isinstance(line, str) or not line or "\n" in line:
        raise FormatError(f"{what} must be a non-empty single line, got {line!r}")
    _check_text(line, what)


def _check_key_name(name: str) -> None:
    """signed-note §Format: key names are non-empty, with no Unicode spaces and no '+'."""
    if not isinstance(name, str) or not name or "+" in name or any(c.isspace() for c in name):
        raise FormatError(f"key name {name!r} must be non-empty, without spaces or '+'")
    _check_text(name, f"key name {name!r}")


def _key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """signed-note §Signatures: SHA-256(key name || 0x0A || signature type || public key)[:4]."""
    material = name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key
    return hashlib.sha256(material).digest()[:4]


def _decode_note(note: str | bytes) -> str:
    if isinstance(note, str):
        return note
    try:
        return note.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError("note is not valid UTF-8") from exc


# --- checkpoint body ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A C2SP tlog-checkpoint body: origin, tree size, root hash and optional extension lines.

    Raises:
        FormatError: on construction, if a field breaks tlog-checkpoint §Note text.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin")
        if type(self.size) is not int or not 0 <= self.size <= _MAX_SIZE:
            raise FormatError(f"checkpoint size must be an integer in [0, 2^64), got {self.size!r}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != 32:
            raise FormatError(f"checkpoint root hash must be 32 bytes, got {self.root_hash!r}")
        if not isinstance(self.extensions, tuple):
            raise FormatError("checkpoint extensions must be a tuple of lines")
        for line in self.extensions:
            _check_line(line, "checkpoint extension line")

    def to_text(self) -> str:
        """The note text: origin, decimal size, base64 root, extension lines, each ending in LF."""
        lines = [self.origin, str(self.size), _b64(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (the text of an opened note, without signatures).

        Raises:
            FormatError: unless ``text`` is exactly what `to_text` would write.
        """
        if not isinstance(text, str) or not text.endswith("\n"):
            raise FormatError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError(f"checkpoint needs origin, size and root lines, got {len(lines)}")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise FormatError(f"checkpoint size {size!r} is not a decimal without leading zeroes")
        return cls(origin, int(size), _b64decode(root, "checkpoint root hash"), tuple(extensions))


# --- keys --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verifier:
    """A public key that checks note signatures of one type (0x01 notes, 0x04 cosignatures).

    Raises:
        FormatError: on construction, for a bad name, key length or signature type.
    """

    name: str
    public_key: bytes
    sig_type: int = ED25519_TYPE

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise FormatError(f"Ed25519 public key for {self.name!r} must be 32 bytes")
        if self.sig_type not in (ED25519_TYPE, COSIGNATURE_TYPE):
            raise FormatError(f"signature type {self.sig_type!r} is not supported")

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID that prefixes this key's signatures."""
        return _key_id(self.name, self.sig_type, self.public_key)

    @property
    def verifier_key(self) -> str:
        """The text form ``name+hexkeyid+base64(type||pub)`` (signed-note §Verifier keys)."""
        encoded = _b64(bytes([self.sig_type]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check an Ed25519 signature over ``message``.

        Raises:
            VerificationError: if the signature does not verify.
        """
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature as exc:
            raise VerificationError(
                f"signature by {self.name}+{self.key_id.hex()} does not verify; "
                "refusing the signed data"
            ) from exc


def _parse_vkey(vkey: str, sig_type: int) -> Verifier:
    # signed-note §Verifier keys: split on the first two '+' only, base64 may contain '+'.
    name, sep1, rest = vkey.partition("+")
    key_id, sep2, encoded = rest.partition("+")
    if not (sep1 and sep2 and _HEX_KEY_ID.fullmatch(key_id)):
        raise FormatError(f"verifier key {vkey!r} is not name+hexkeyid+base64key")
    raw = _b64decode(encoded, f"verifier key {vkey!r}")
    if not raw or raw[0] != sig_type:
        raise FormatError(f"verifier key {vkey!r} is not of signature type 0x{sig_type:02x}")
    verifier = Verifier(name, raw[1:], sig_type)
    if verifier.key_id.hex() != key_id:
        raise FormatError(f"verifier key {vkey!r} has key ID {key_id}, the key gives another")
    return verifier


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse an Ed25519 (type 0x01) note verifier key ``name+hexkeyid+base64(0x01||pub)``.

    Raises:
        FormatError: if the key is malformed, of another type, or its key ID does not match.
    """
    return _parse_vkey(vkey, ED25519_TYPE)


class NoteSigner:
    """An Ed25519 note signing key with its key name (signed-note §Ed25519 signatures).

    Build one with `from_seed` or `generate`; `repr` never shows the seed.
    """

    __slots__ = ("_key", "_name", "_public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_key_name(name)
        self._name = name
        self._key = private_key
        self._public_key = private_key.public_key().public_bytes_raw()

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        """Build the signer for a 32-byte Ed25519 seed (RFC 8032 §5.1.5 private key).

        Raises:
            FormatError: if the seed is not 32 bytes or the name is not a valid key name.
        """
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise FormatError(f"Ed25519 seed for {name!r} must be 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """Create a signer with a fresh random key (reads the OS random source)."""
        return cls(name, Ed25519PrivateKey.generate())

    @property
    def name(self) -> str:
        """The key name written on every signature line."""
        return self._name

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public_key

    @property
    def seed(self) -> bytes:
        """The raw 32-byte Ed25519 seed: secret, handle with care."""
        return self._key.private_bytes_raw()

    @property
    def verifier(self) -> Verifier:
        """The matching type 0x01 verifier."""
        return Verifier(self._name, self._public_key)

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID of this key's note signatures."""
        return self.verifier.key_id

    @property
    def verifier_key(self) -> str:
        """The text form ``name+hexkeyid+base64(0x01||pub)`` to hand to verifiers."""
        return self.verifier.verifier_key

    def sign(self, message: bytes) -> bytes:
        """Return the raw 64-byte Ed25519 signature of ``message`` (deterministic)."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"NoteSigner({self.verifier_key!r})"


# --- signed notes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: ``— <key name> base64(key ID || signature)`` and its newline."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.key_id) != 4 or not self.signature:
            raise FormatError(f"signature by {self.name!r} needs a 4-byte key ID and a signature")

    def to_line(self) -> str:
        """Render the signature line, newline included."""
        return f"{_SIG_PREFIX}{self.name} {_b64(self.key_id + self.signature)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line, newline included.

        Raises:
            FormatError: if the line is not in signed-note §Signatures form.
        """
        if not line.startswith(_SIG_PREFIX) or not line.endswith("\n"):
            raise FormatError(f"note signature line {line!r} is malformed")
        name, sep, encoded = line[len(_SIG_PREFIX) : -1].partition(" ")
        raw = _b64decode(encoded, f"signature by {name!r}")
        if not sep or len(raw) < 5:
            raise FormatError(f"note signature line {line!r} is malformed")
        return cls(name, raw[:4], raw[4:])


def split_note(note: str | bytes) -> tuple[str, tuple[NoteSignature, ...]]:
    """Split a signed note into its text and signature lines, verifying nothing.

    The text is untrusted until `open_note` verified it (signed-note: the text MUST be
    ignored unless a trusted key signed it).

    Raises:
        FormatError: if the note is not in signed-note §Format.
    """
    note = _decode_note(note)
    _check_text(note, "note")
    # signed-note §Format: the text is separated from the signatures by the last empty line.
    split = note.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise FormatError("note does not end with a newline-terminated signature line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    return text, tuple(NoteSignature.from_line(line + "\n") for line in lines)


def sign_note(text: str, *signers: NoteSigner) -> str:
    """Sign ``text`` with every signer and return the signed note (deterministic).

    Raises:
        FormatError: if ``text`` does not end in a newline or holds control characters.
        InvalidInputError: if no signer is given.
    """
    if not signers:
        raise InvalidInputError("sign_note needs at least one signer")
    if not isinstance(text, str) or not text.endswith("\n"):
        raise FormatError("note text must end with a newline")
    _check_text(text, "note text")
    message = text.encode("utf-8")
    lines = [NoteSignature(s.name, s.key_id, s.sign(message)).to_line() for s in signers]
    return text + "\n" + "".join(lines)


def _index_verifiers(verifier_keys: Iterable[str]) -> dict[tuple[str, bytes], Verifier]:
    if isinstance(verifier_keys, str | bytes):
        raise InvalidInputError("verifier_keys must be a collection of keys, not one string")
    known: dict[tuple[str, bytes], Verifier] = {}
    for vkey in verifier_keys:
        verifier = parse_verifier_key(vkey)
        if known.setdefault((verifier.name, verifier.key_id), verifier) != verifier:
            raise FormatError(f"two verifier keys share name and key ID: {vkey!r}")
    return known


def open_note(note: str | bytes, verifier_keys: Iterable[str]) -> str:
    """Verify a signed note and return its text.

    Signatures from unknown keys are ignored; a signature from a known key (same name and
    key ID) must verify, or the whole note is refused (signed-note §Signatures).

    Args:
        note: the signed note, as text or UTF-8 bytes.
        verifier_keys: trusted Ed25519 verifier keys (``name+hexkeyid+base64``).

    Returns:
        The note text, final newline included, without the blank line and signatures.

    Raises:
        FormatError: if the note or a verifier key is malformed.
        VerificationError: if a known key's signature fails, or none is present.
    """
    known = _index_verifiers(verifier_keys)
    text, signatures = split_note(note)
    message = text.encode("utf-8")
    verified = 0
    for signature in signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is not None:
            verifier.verify(message, signature.signature)
            verified += 1
    if not verified:
        names = ", ".join(sorted(v.verifier_key for v in known.values())) or "none"
        raise VerificationError(f"note has no signature from a trusted key (trusted: {names})")
    return text


# --- cosignatures ------------------------------------------------------------------------------


def cosignature_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes a type 0x04 cosigner signs (tlog-cosignature §Ed25519 signed message).

    Raises:
        FormatError: if ``checkpoint_text`` is not a checkpoint body.
        InvalidInputError: if ``timestamp`` is outside [0, 2^63 - 1].
    """
    Checkpoint.from_text(checkpoint_text)
    if type(timestamp) is not int or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise InvalidInputError(f"cosignature timestamp {timestamp!r} is not in [0, 2^63 - 1]")
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n{checkpoint_text}".encode()


def cosigner_verifier_key(signer: NoteSigner) -> str:
    """The type 0x04 verifier key ``name+hexkeyid+base64(0x04||pub)`` of a cosigner."""
    return Verifier(signer.name, signer.public_key, COSIGNATURE_TYPE).verifier_key


def parse_cosigner_key(vkey: str) -> Verifier:
    """Parse a cosigner verifier key (tlog-cosignature §Format: vkey with type 0x04).

    Raises:
        FormatError: if the key is malformed, of another type, or its key ID does not match.
    """
    return _parse_vkey(vkey, COSIGNATURE_TYPE)


def cosign(checkpoint_text: str, signer: NoteSigner, timestamp: int) -> str:
    """Cosign a checkpoint body as a witness and return the signature line to append.

    Args:
        checkpoint_text: the checkpoint body the witness checked (no signature lines).
        signer: the witness key; its key ID here is derived with type 0x04.
        timestamp: POSIX seconds at which the witness vouches for the checkpoint.

    Raises:
        FormatError: if ``checkpoint_text`` is not a checkpoint body.
        InvalidInputError: if ``timestamp`` is outside [0, 2^63 - 1].
    """
    message = cosignature_message(checkpoint_text, timestamp)
    # tlog-cosignature §Format: timestamped_signature = u64 big-endian timestamp || sig.
    payload = timestamp.to_bytes(8, "big") + signer.sign(message)
    key_id = _key_id(signer.name, COSIGNATURE_TYPE, signer.public_key)
    return NoteSignature(signer.name, key_id, payload).to_line()


def _verify_cosignature_line(text: str, signature: NoteSignature, verifier: Verifier) -> int:
    if len(signature.signature) != 8 + 64:
        raise VerificationError(f"cosignature by {verifier.name} is not timestamp || Ed25519")
    timestamp = int.from_bytes(signature.signature[:8], "big")
    if timestamp > _MAX_TIMESTAMP:
        raise VerificationError(f"cosignature by {verifier.name} has timestamp above 2^63 - 1")
    verifier.verify(cosignature_message(text, timestamp), signature.signature[8:])
    return timestamp


def verify_cosignature(note: str | bytes, cosigner_key: str) -> int:
    """Check the cosignature of one witness on a signed checkpoint note.

    Only the cosigner's lines are looked at; the log's own signature is `open_note`'s job.

    Args:
        note: a checkpoint note carrying the witness's cosignature line.
        cosigner_key: the witness's type 0x04 verifier key.

    Returns:
        The latest timestamp the witness cosigned the checkpoint at.

    Raises:
        FormatError: if the note, its body or the key is malformed.
        VerificationError: if the witness did not cosign, or its cosignature fails.
    """
    verifier = parse_cosigner_key(cosigner_key)
    text, signatures = split_note(note)
    mine = [s for s in signatures if (s.name, s.key_id) == (verifier.name, verifier.key_id)]
    if not mine:
        raise VerificationError(f"checkpoint has no cosignature by {verifier.verifier_key}")
    return max(_verify_cosignature_line(text, s, verifier) for s in mine)
