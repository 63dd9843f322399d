"""The artifact store port: content-addressed bytes, hashed on the way in and on every read.

An artifact lives under its SHA-256 (``sha256/ab/cd/<hex>``). `ArtifactStore.put` hashes
the bytes while they stream to a temporary name and commits them under the digest only
once it is known; putting the same bytes again is a no-op and nothing is ever
overwritten. Every read hashes again and raises `IntegrityError` if the bytes changed.

Adapters: `LocalArtifactStore` (a directory, `local.py`) and `S3ArtifactStore` (S3
protocol, `s3.py`). `open_store` picks one from a URL.

>>> import tempfile
>>> store = open_store(tempfile.mkdtemp())
>>> info = store.put_bytes(b"weights")
>>> store.read_bytes(info.digest)
b'weights'
>>> with store.open(info.digest) as chunks:
...     b"".join(chunks)
b'weights'
>>> store.stat("0" * 64) is None
True
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from mltrail.artifacts.digest import ArtifactInfo
from mltrail.errors import ConfigError, StorageError

__all__ = ["ArtifactInfo", "ArtifactStore", "open_store"]


class ArtifactStore(Protocol):
    """Where artifact bytes live, addressed by their SHA-256.

    Adapters implement `url`, `put`, `open`, `read_range`, `exists`, `stat` and
    `iter_digests`; they subclass this protocol explicitly to inherit the other methods,
    which are written in terms of those (PEP 544 allows default implementations on a
    protocol).

    Every method that takes a digest raises `InvalidInputError` for anything that is
    not 64 lowercase hex characters, before touching storage.
    """

    @property
    def url(self) -> str:
        """The URL `open_store` accepts to open this store again."""
        ...

    def put(self, stream: BinaryIO) -> ArtifactInfo:
        """Store the rest of ``stream`` under its SHA-256.

        The bytes are hashed while they stream, in constant memory, to a temporary name;
        they are committed under ``sha256/ab/cd/<hex>`` only once the digest is known.
        If that address already holds the artifact, the upload is discarded: a re-put is
        a no-op and nothing is ever overwritten.

        Raises:
            StorageError: the store could not be written.
        """
        ...

    def open(self, digest: str) -> AbstractContextManager[Iterator[bytes]]:
        """Stream an artifact's bytes, verified.

        The iterator raises `IntegrityError` after the last chunk if the bytes do not hash
        to ``digest``, so consume it to the end before trusting (committing) what it gave.

        Raises:
            NotFoundError: no artifact has that digest.
            IntegrityError: the stored bytes do not match the digest (at the end).
            StorageError: the store could not be read.
        """
        ...

    def read_range(self, digest: str, offset: int, size: int) -> bytes:
        """``size`` bytes of an artifact from ``offset``: one record of a prediction batch.

        The bytes are not checked against ``digest`` (that takes the whole artifact); the
        caller checks them against a digest of their own, as a prediction's record is
        checked against its leaf in the batch's tree.

        Raises:
            NotFoundError: no artifact has that digest.
            IntegrityError: the artifact ends before ``offset + size``.
            StorageError: the store could not be read.
        """
        ...

    def exists(self, digest: str) -> bool:
        """Whether an artifact is stored under ``digest`` (its bytes are not re-hashed)."""
        ...

    def stat(self, digest: str) -> int | None:
        """The stored size of the artifact in bytes, or None if it is absent."""
        ...

    def iter_digests(self) -> Iterator[str]:
        """Every digest stored, for reconciliation against the ledger and orphan sweeps."""
        ...

    def put_bytes(self, data: bytes) -> ArtifactInfo:
        """Store ``data`` under its SHA-256; see `put`."""
        return self.put(io.BytesIO(data))

    def put_file(self, path: Path) -> ArtifactInfo:
        """Store the file at ``path`` under its SHA-256; see `put`.

        Raises:
            StorageError: ``path`` cannot be read, or the store written.
        """
        try:
            with Path(path).open("rb", buffering=0) as stream:
                return self.put(stream)
        except OSError as exc:  # adapters raise StorageError for their own side
            raise StorageError(f"cannot read {path} to store it: {exc}") from exc

    def read_bytes(self, digest: str) -> bytes:
        """The whole artifact in memory, verified; prefer `open` or `get` for large ones.

        Raises:
            NotFoundError: no artifact has that digest.
            IntegrityError: the stored bytes do not match the digest.
        """
        with self.open(digest) as chunks:
            return b"".join(chunks)

    def verify(self, digest: str) -> None:
        """Re-hash the stored artifact.

        Raises:
            NotFoundError: no artifact has that digest.
            IntegrityError: the stored bytes do not match the digest.
        """
        with self.open(digest) as chunks:
            for _ in chunks:
                pass

    def get(self, digest: str, dest: Path) -> ArtifactInfo:
        """Download an artifact to ``dest``, which appears only once the bytes are verified.

        The bytes go to a temporary file beside ``dest`` that is fsynced and renamed over
        ``dest`` after the digest matched; on any failure ``dest`` is left untouched.

        Raises:
            NotFoundError: no artifact has that digest.
            IntegrityError: the stored bytes do not match the digest.
            StorageError: ``dest`` cannot be written, or the store read.
        """
        dest = Path(dest)
        partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
        try:
            with self.open(digest) as chunks:
                size = _write_synced(partial, chunks)
            os.replace(partial, dest)
        except OSError as exc:
            raise StorageError(f"cannot write artifact sha256:{digest} to {dest}: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return ArtifactInfo(digest, size)


def _write_synced(path: Path, chunks: Iterator[bytes]) -> int:
    """Write ``chunks`` to a new file at ``path`` and fsync it; return the byte count."""
    size = 0
    with path.open("xb") as out:
        for chunk in chunks:
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size


def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
) -> ArtifactStore:
    """Open the artifact store a URL names.

    ``file:///abs/path`` or a plain path opens a `LocalArtifactStore`;
    ``s3://bucket/prefix`` opens an `S3ArtifactStore`. S3 settings come only from these
    arguments; any left None falls back to boto3's own default chain.

    Args:
        url: where the artifacts live.
        endpoint_url: an S3-compatible endpoint (MinIO, moto), for ``s3://`` only.
        region_name: the S3 region.
        access_key_id: S3 credentials; all three or none.
        secret_access_key: S3 credentials.
        session_token: S3 credentials.

    Raises:
        ConfigError: the URL has an unknown scheme, a remote ``file://`` host, or no bucket.
    """
    parts = urlsplit(url)
    if parts.scheme == "s3":
        from mltrail.artifacts.s3 import S3ArtifactStore, make_client

        if not parts.netloc:
            raise ConfigError(f"artifact store URL {url!r} names no bucket; use s3://bucket/prefix")
        client = make_client(
            endpoint_url=endpoint_url,
            region_name=region_name,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
        )
        return S3ArtifactStore(parts.netloc, unquote(parts.path), client)
    from mltrail.artifacts.local import LocalArtifactStore

    return LocalArtifactStore(_local_root(url))


def _local_root(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"artifact store URL {url!r} names a remote host; use file:///path")
        return Path(unquote(parts.path)).absolute()
    if parts.scheme and len(parts.scheme) > 1:  # one letter is a Windows drive
        raise ConfigError(
            f"artifact store URL {url!r} has unsupported scheme {parts.scheme!r}",
            hint="use file:///absolute/path, a plain directory path, or s3://bucket/prefix",
        )
    return Path(url).absolute()
