"""Artifacts in a local directory: the embedded default store.

Layout under the root: ``sha256/ab/cd/<hex>`` holds committed artifacts (read-only
files), ``tmp/`` holds uploads in progress. A put streams into ``tmp/<uuid>.partial``
while hashing, fsyncs it, then hard-links it to its final name: ``link(2)`` fails rather
than replace an existing file, so a commit can never overwrite, and two writers racing
on the same bytes both succeed. The new directory entries are fsynced too, so a
committed artifact survives a crash. The root must be on a filesystem with hard links.

>>> import tempfile
>>> store = LocalArtifactStore(Path(tempfile.mkdtemp()))
>>> info = store.put_bytes(b"hello")
>>> store.path_of(info.digest).relative_to(store.root).as_posix()[:20]
'sha256/2c/f2/2cf24db'
>>> list(store.iter_digests()) == [info.digest]
True
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from mltrail.artifacts.digest import (
    ArtifactInfo,
    check_range,
    copy_hashing,
    digest_from_key,
    mismatch_error,
    object_key,
    read_chunks,
    short_error,
    verified_chunks,
)
from mltrail.artifacts.store import ArtifactStore
from mltrail.errors import NotFoundError, StorageError

__all__ = ["LocalArtifactStore"]

_READ_ONLY = 0o444


class LocalArtifactStore(ArtifactStore):
    """An `ArtifactStore` in a directory on the local filesystem.

    Args:
        root: the store's directory; created on the first put.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root).absolute()
        self._prefix = f"{self._root}{os.sep}"  # for plain-string paths on the hot paths

    @property
    def root(self) -> Path:
        """The store's directory."""
        return self._root

    @property
    def url(self) -> str:
        """``file://`` URL of the root."""
        return self._root.as_uri()

    def path_of(self, digest: str) -> Path:
        """Where the artifact with ``digest`` lives (whether or not it exists).

        Raises:
            InvalidInputError: ``digest`` is malformed.
        """
        return self._root / object_key(digest)

    def put(self, stream: BinaryIO) -> ArtifactInfo:
        """Store the rest of ``stream``; see `ArtifactStore.put`.

        Side effects: writes and removes a file under ``tmp/``, creates the artifact's
        directories and a read-only file, and fsyncs them.
        """
        with _os_errors(f"cannot store an artifact in {self._root}"):
            tmp_dir = self._root / "tmp"
            _ensure_dir(tmp_dir)
            partial = tmp_dir / f"{uuid.uuid4().hex}.partial"
            try:
                info = _write_partial(stream, partial)
                _commit(partial, self.path_of(info.digest))
            finally:
                partial.unlink(missing_ok=True)
        return info

    def read_bytes(self, digest: str) -> bytes:
        """The whole artifact, verified; see `ArtifactStore.read_bytes`. One read and one
        hash, without the chunk stream: a version's manifest is read on every registration."""
        with self._file(digest) as stream, _os_errors(f"cannot read artifact sha256:{digest}"):
            data = stream.read()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise mismatch_error(digest, actual)
        return data

    def read_range(self, digest: str, offset: int, size: int) -> bytes:
        """Bytes ``offset`` to ``offset + size`` of the artifact, unverified; see
        `ArtifactStore.read_range`."""
        check_range(offset, size)
        with self._file(digest) as stream, _os_errors(f"cannot read artifact sha256:{digest}"):
            stream.seek(offset)
            data = stream.read(size)
        if len(data) != size:
            raise short_error(digest, offset, size)
        return data

    @contextmanager
    def open(self, digest: str) -> Iterator[Iterator[bytes]]:
        """Stream the artifact's bytes, verified at the end; see `ArtifactStore.open`."""
        with self._file(digest) as stream:
            yield verified_chunks(_guarded(read_chunks(stream), digest), digest)

    def _file(self, digest: str) -> BinaryIO:
        """The artifact's file, open for reading.

        Raises:
            NotFoundError: there is none.
            StorageError: it cannot be opened.
        """
        try:
            return open(self._prefix + object_key(digest), "rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"artifact sha256:{digest} is not in {self.url}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read artifact sha256:{digest}: {exc}") from exc

    def exists(self, digest: str) -> bool:
        """Whether the artifact's file exists."""
        return self.stat(digest) is not None

    def stat(self, digest: str) -> int | None:
        """The artifact file's size, or None if there is none."""
        try:
            return os.stat(self._prefix + object_key(digest)).st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat artifact sha256:{digest}: {exc}") from exc

    def iter_digests(self) -> Iterator[str]:
        """Every committed digest, in sorted order; stray files are skipped."""
        base = self._root / "sha256"
        with _os_errors(f"cannot list artifacts in {self._root}"):
            for first in _names(base):
                for second in _names(base / first):
                    for name in _names(base / first / second):
                        digest = digest_from_key(f"sha256/{first}/{second}/{name}")
                        if digest is not None:
                            yield digest


@contextmanager
def _os_errors(action: str) -> Iterator[None]:
    """The seam where filesystem errors become `StorageError`."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"{action}: {exc}") from exc


def _guarded(chunks: Iterator[bytes], digest: str) -> Iterator[bytes]:
    with _os_errors(f"cannot read artifact sha256:{digest}"):
        yield from chunks


def _write_partial(stream: BinaryIO, partial: Path) -> ArtifactInfo:
    """Copy ``stream`` into a new read-only file while hashing it, and fsync the file."""
    with partial.open("xb") as out:
        info = copy_hashing(stream, out)
        out.flush()
        os.fchmod(out.fileno(), _READ_ONLY)
        os.fsync(out.fileno())
    return info


def _commit(partial: Path, final: Path) -> None:
    """Give ``partial`` its final name unless that name exists; never replace a file."""
    _ensure_dir(final.parent)
    try:
        os.link(partial, final)
    except FileExistsError:
        return  # already stored (a re-put, or a concurrent put of the same bytes)
    _fsync_dir(final.parent)


def _ensure_dir(directory: Path) -> None:
    """Create ``directory`` and missing parents, fsyncing each new entry's parent."""
    if directory.is_dir():
        return
    _ensure_dir(directory.parent)
    with suppress(FileExistsError):
        directory.mkdir()
    _fsync_dir(directory.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _names(directory: Path) -> list[str]:
    """Sorted entry names of ``directory``, or none if it does not exist."""
    try:
        return sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
