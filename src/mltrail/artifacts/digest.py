"""SHA-256 digests of artifacts: validation, storage keys, and hashing while bytes stream.

Every artifact store shares these helpers, so that "a digest" means the same thing
(64 lowercase hex characters, nothing else) and the same key layout everywhere, and so
that every read is hashed the same way.

>>> import io
>>> info = copy_hashing(io.BytesIO(b"hello"), io.BytesIO())
>>> info.digest[:16], info.size
('2cf24dba5fb0a30e', 5)
>>> object_key(info.digest)[:20]
'sha256/2c/f2/2cf24db'
>>> b"".join(verified_chunks([b"hel", b"lo"], info.digest))
b'hello'
>>> check_digest("../x")
Traceback (most recent call last):
...
mltrail.errors.InvalidInputError: '../x' is not a SHA-256 digest (64 lowercase hex characters)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from mltrail.errors import IntegrityError, InvalidInputError

__all__ = [
    "CHUNK_SIZE",
    "ArtifactInfo",
    "check_digest",
    "check_range",
    "copy_hashing",
    "digest_from_key",
    "hash_file",
    "mismatch_error",
    "object_key",
    "read_chunks",
    "readinto",
    "short_error",
    "verified_chunks",
]

CHUNK_SIZE = 1 << 20
"""Bytes read per step when hashing a stream: large enough to run near `sha256sum`."""

_DIGEST = re.compile(r"[0-9a-f]{64}")
_KEY = re.compile(r"sha256/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})")


class _Sink(Protocol):
    def write(self, data: memoryview, /) -> object: ...


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """What a store knows about one stored artifact.

    Args:
        digest: SHA-256 of the content, 64 lowercase hex characters.
        size: content length in bytes.

    Raises:
        InvalidInputError: the digest is malformed or the size negative.
    """

    digest: str
    size: int

    def __post_init__(self) -> None:
        check_digest(self.digest)
        if self.size < 0:
            raise InvalidInputError(f"artifact size {self.size} is negative")


def check_digest(digest: object) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters.

    Digests become file names and object keys, so anything else (``../x``, uppercase,
    a prefix like ``sha256:``) is refused before it can reach a path.

    Raises:
        InvalidInputError: ``digest`` is not a string of 64 lowercase hex characters.
    """
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise InvalidInputError(
            f"{digest!r} is not a SHA-256 digest (64 lowercase hex characters)",
            hint="pass the bare hex digest, without a 'sha256:' prefix",
        )
    return digest


def object_key(digest: str) -> str:
    """The key of an artifact inside a store: ``sha256/ab/cd/<hex>``.

    Raises:
        InvalidInputError: ``digest`` is malformed.
    """
    check_digest(digest)
    return f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"


def digest_from_key(key: str) -> str | None:
    """The digest a key of the ``sha256/ab/cd/<hex>`` layout names, or None for other keys."""
    match = _KEY.fullmatch(key)
    if match is None or match[3][:2] != match[1] or match[3][2:4] != match[2]:
        return None
    return match[3]


def mismatch_error(expected: str, actual: str) -> IntegrityError:
    """The error for stored bytes whose hash is not the digest they are stored under."""
    return IntegrityError(
        f"artifact sha256:{expected} is corrupt: its stored bytes hash to sha256:{actual}",
        hint="restore the artifact from a replica or re-upload the original file; "
        "do not use the corrupt copy",
    )


def check_range(offset: int, size: int) -> None:
    """Refuse a byte range that is empty or starts before the artifact does."""
    if offset < 0 or size < 1:
        raise InvalidInputError(
            f"byte range at {offset} of {size} bytes is not a range to read",
            hint="give an offset >= 0 and a size >= 1",
        )


def short_error(digest: str, offset: int, size: int) -> IntegrityError:
    """The error for an artifact that ends before a range it should hold."""
    return IntegrityError(
        f"artifact sha256:{digest} ends before bytes {offset}..{offset + size}, which the "
        "registry recorded in it",
        hint="the artifact is truncated; restore it from a replica, then run `mltrail verify`",
    )


def copy_hashing(source: BinaryIO, sink: _Sink | None = None) -> ArtifactInfo:
    """Read ``source`` to its end in `CHUNK_SIZE` steps, hashing it and copying to ``sink``.

    Memory stays constant: one preallocated buffer is filled with ``readinto`` when the
    source offers it (no copy per chunk), else with ``read``.

    Args:
        source: a blocking binary stream, read from its current position.
        sink: where the bytes go (a file, an upload buffer); None only hashes.

    Returns:
        The SHA-256 and length of what was read.
    """
    hasher = hashlib.sha256()
    view = memoryview(bytearray(CHUNK_SIZE))
    size = 0
    while n := readinto(source, view):
        chunk = view[:n]
        hasher.update(chunk)
        if sink is not None:
            sink.write(chunk)
        size += n
    return ArtifactInfo(hasher.hexdigest(), size)


def readinto(source: BinaryIO, view: memoryview) -> int:
    """Fill the start of ``view`` from ``source``; return the byte count, 0 at its end.

    Uses the stream's ``readinto`` (no copy) when it has one, else ``read``.
    """
    method = getattr(source, "readinto", None)
    if method is not None:
        return int(method(view))
    data = source.read(len(view))
    view[: len(data)] = data
    return len(data)


def hash_file(path: Path) -> ArtifactInfo:
    """SHA-256 and size of a file, read in `CHUNK_SIZE` steps.

    Raises:
        OSError: the file cannot be read (callers translate it at their seam).
    """
    with path.open("rb", buffering=0) as stream:
        return copy_hashing(stream)


def read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """Yield fresh ``bytes`` of up to `CHUNK_SIZE` from ``stream`` until it ends."""
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def verified_chunks(chunks: Iterable[bytes], digest: str) -> Iterator[bytes]:
    """Pass ``chunks`` through while hashing them; raise at the end if they are not ``digest``.

    The check runs after the last chunk and before the iterator finishes, so a caller
    that commits only once iteration ends never commits corrupt bytes.

    Raises:
        IntegrityError: the concatenated chunks do not hash to ``digest``.
    """
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk
    actual = hasher.hexdigest()
    if actual != digest:
        raise mismatch_error(digest, actual)
