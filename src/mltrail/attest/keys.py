"""Signing keys of people and services (Ed25519 or ECDSA P-256) in PEM files, mode 0600.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "alice.key"
>>> key = generate_key("ed25519")
>>> save_private_key(path, key)
>>> oct(path.stat().st_mode & 0o777), type(load_private_key(path)).__name__
('0o600', 'Ed25519PrivateKey')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mltrail.errors import ConfigError, InvalidInputError

__all__ = ["generate_key", "load_private_key", "save_private_key"]

KINDS = ("ed25519", "p256")


def generate_key(kind: str = "ed25519") -> Any:
    """A new private key: ``ed25519`` or ``p256`` (ECDSA on NIST P-256)."""
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise InvalidInputError(f"key type {kind!r} is not supported; use one of {KINDS}")


def save_private_key(path: Path, key: Any) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM to a new file with mode 0600 (never overwrites)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"key file {path} already exists; refusing to overwrite it") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


def load_private_key(path: Path) -> Any:
    """Read a PEM private key, refusing files that others can read.

    Raises:
        ConfigError: missing, unreadable, too permissive, or not an Ed25519/P-256 key.
    """
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise ConfigError(
            f"key file {path} is readable by others (mode {oct(mode & 0o777)})",
            hint=f"chmod 600 {path}",
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"key file {path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"key file {path} holds a {type(key).__name__}; use Ed25519 or P-256")
    return key
