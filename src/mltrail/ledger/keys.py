"""Signing-key files: Go's note private-key encoding, kept private to the owner (mode 0600).

A key file holds one line, ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || seed)``, the
encoding of golang.org/x/mod/sumdb/note (not part of C2SP), so Go tools can read our keys.

>>> import pathlib, tempfile
>>> from mltrail.ledger.checkpoint import NoteSigner
>>> signer = NoteSigner.from_seed("example.com/log", bytes(32))
>>> path = pathlib.Path(tempfile.mkdtemp()) / "log.key"
>>> save_signer(path, signer)
>>> load_signer(path).verifier_key == signer.verifier_key
True
>>> render_private_key(signer).startswith("PRIVATE+KEY+example.com/log+")
True
"""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

from mltrail.errors import ConfigError, FormatError
from mltrail.ledger.checkpoint import ED25519_TYPE, NoteSigner

__all__ = ["load_signer", "parse_private_key", "render_private_key", "save_signer"]

_PREFIX = "PRIVATE+KEY+"
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")


def render_private_key(signer: NoteSigner) -> str:
    """Encode a signer as ``PRIVATE+KEY+name+hexkeyid+base64(0x01||seed)``: secret."""
    encoded = base64.b64encode(bytes([ED25519_TYPE]) + signer.seed).decode("ascii")
    return f"{_PREFIX}{signer.name}+{signer.key_id.hex()}+{encoded}"


def parse_private_key(skey: str) -> NoteSigner:
    """Decode Go's private-key encoding into a signer.

    Raises:
        FormatError: if the text is malformed, not Ed25519, or its key ID does not match
            the public key the seed derives.
    """
    # The name holds no '+' (signed-note §Format), so the first two '+' after the prefix
    # end the name and the key ID; the base64 may hold '+'.
    name, sep1, rest = skey.removeprefix(_PREFIX).partition("+")
    key_id, sep2, encoded = rest.partition("+")
    if not (skey.startswith(_PREFIX) and sep1 and sep2 and _HEX_KEY_ID.fullmatch(key_id)):
        raise FormatError("private key is not PRIVATE+KEY+name+hexkeyid+base64key")
    raw = _b64decode(encoded)
    if len(raw) != 33 or raw[0] != ED25519_TYPE:
        raise FormatError(f"private key for {name!r} is not an Ed25519 (0x01) 32-byte seed")
    signer = NoteSigner.from_seed(name, raw[1:])
    # The key ID hashes the public key: only after deriving it can we check it.
    if signer.key_id.hex() != key_id:
        raise FormatError(f"private key for {name!r} has key ID {key_id}, the seed gives another")
    return signer


def _b64decode(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise FormatError("private key material is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError("private key material is not canonical base64")
    return raw


def save_signer(path: str | os.PathLike[str], signer: NoteSigner) -> None:
    """Write a new key file readable by its owner only.

    Side effects: creates ``path`` with mode 0600 (fewer bits under a strict umask).

    Raises:
        ConfigError: if ``path`` exists (never overwritten) or cannot be written.
    """
    path = Path(path)
    data = (render_private_key(signer) + "\n").encode("utf-8")
    try:
        # O_EXCL: never replace (or follow a symlink to) an existing key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    except FileExistsError as exc:
        raise ConfigError(
            f"refusing to overwrite the existing key file {path}",
            hint="move the old key away first, or choose another path",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot write key file {path}: {exc.strerror}") from exc


def load_signer(path: str | os.PathLike[str]) -> NoteSigner:
    """Read a key file written by `save_signer` (or by Go's note tooling).

    Raises:
        ConfigError: if the file is missing, unreadable, open to group or others, or
            does not hold a valid private key.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            _check_private(path, os.fstat(file.fileno()).st_mode)
            data = file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from exc
    try:
        return parse_private_key(data.decode("utf-8").removesuffix("\n"))
    except (UnicodeDecodeError, FormatError) as exc:
        raise ConfigError(
            f"key file {path} does not hold a valid note private key: {exc}",
            hint="restore the key file from backup",
        ) from exc


def _check_private(path: Path, mode: int) -> None:
    if stat.S_IMODE(mode) & 0o077:
        raise ConfigError(
            f"key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); refusing to use it",
            hint=f"chmod 600 {path}",
        )
