"""The contract every ArtifactStore adapter must meet, run against each adapter.

Each adapter supplies only a `make_store` factory returning a `Harness`: the store, a way
to corrupt what it holds behind its back (as a disk error or an operator would), a way to
list leftover temporary objects, and the options that reopen it from its URL.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from s3server import S3Server

from mltrail.artifacts.local import LocalArtifactStore
from mltrail.artifacts.s3 import S3ArtifactStore
from mltrail.artifacts.store import ArtifactStore, open_store
from mltrail.errors import IntegrityError, InvalidInputError, NotFoundError, StorageError

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LARGE_SIZE = 20 * 1000 * 1000  # above the S3 part size, so the upload is multipart


@dataclass
class Harness:
    """One adapter under test, with the back doors the contract needs."""

    store: ArtifactStore
    tamper: Callable[[str, bytes], None]
    leftovers: Callable[[], list[str]]
    options: dict[str, Any] = field(default_factory=dict)


MakeStore = Callable[[], Harness]


def _local(tmp_path: Path) -> MakeStore:
    def make() -> Harness:
        store = LocalArtifactStore(tmp_path / f"store-{uuid.uuid4().hex[:8]}")

        def tamper(digest: str, data: bytes) -> None:
            path = store.path_of(digest)
            path.chmod(0o644)
            path.write_bytes(data)

        def leftovers() -> list[str]:
            tmp = store.root / "tmp"
            return sorted(os.listdir(tmp)) if tmp.exists() else []

        return Harness(store, tamper, leftovers)

    return make


def _s3(server: S3Server) -> MakeStore:
    def make() -> Harness:
        client = server.client()
        prefix = server.new_prefix()
        store = S3ArtifactStore(server.bucket, prefix, client)

        def tamper(digest: str, data: bytes) -> None:
            # Keep the metadata, so only re-hashing the bytes can notice.
            client.put_object(
                Bucket=server.bucket,
                Key=store.key_of(digest),
                Body=data,
                Metadata={"sha256": digest},
            )

        def leftovers() -> list[str]:
            listed = client.list_objects_v2(Bucket=server.bucket, Prefix=f"{prefix}/tmp/")
            return [item["Key"] for item in listed.get("Contents", [])]

        return Harness(store, tamper, leftovers, server.options())

    return make


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """A factory of empty stores of one adapter kind."""
    if request.param == "local":
        return _local(tmp_path)
    return _s3(request.getfixturevalue("s3_server"))


class GeneratedStream(io.RawIOBase):
    """A read-only stream of ``size`` pseudo-random bytes made on the fly (constant memory)."""

    def __init__(self, size: int, seed: bytes = b"mltrail") -> None:
        self._left = size
        self._block = hashlib.sha256(seed).digest() * 2048  # 64 KiB
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._left, len(self._block) - self._offset)
        view[:n] = self._block[self._offset : self._offset + n]
        self._offset = (self._offset + n) % len(self._block)
        self._left -= n
        return n


class FailingStream(GeneratedStream):
    """A stream whose source fails once fewer than 4 MiB remain (a disk or network error)."""

    def readinto(self, buffer: Any) -> int:
        if self._left < 4 << 20:
            raise OSError("disk went away")
        return super().readinto(buffer)


class ReadOnlyStream:
    """A stream with ``read`` but no ``readinto``, as some file-like objects are."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(min(size, 1000) if size > 0 else size)


def _expected(size: int) -> tuple[str, int]:
    hasher = hashlib.sha256()
    stream = GeneratedStream(size)
    while chunk := stream.read(1 << 20):
        hasher.update(chunk)
    return hasher.hexdigest(), size


def _stream_digest(store: ArtifactStore, digest: str) -> str:
    hasher = hashlib.sha256()
    with store.open(digest) as chunks:
        for chunk in chunks:
            hasher.update(chunk)
    return hasher.hexdigest()


def test_put_then_read_round_trip(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store().store
    data = b"model weights \x00\xff" * 1000

    info = store.put_bytes(data)

    assert info.digest == hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    assert store.read_bytes(info.digest) == data
    assert _stream_digest(store, info.digest) == info.digest
    assert store.exists(info.digest)
    assert store.stat(info.digest) == len(data)
    store.verify(info.digest)
    got = store.get(info.digest, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    assert got == info


def test_put_file_and_put_stream_without_readinto(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store().store
    source = tmp_path / "weights.bin"
    source.write_bytes(b"abc" * 5000)

    from_file = store.put_file(source)
    from_stream = store.put(ReadOnlyStream(b"abc" * 5000))  # type: ignore[arg-type]

    assert from_file == from_stream
    assert store.read_bytes(from_file.digest) == b"abc" * 5000


def test_put_file_missing_raises_storage_error(make_store: MakeStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no-such-file"):
        make_store().store.put_file(tmp_path / "no-such-file")


def test_failed_put_leaves_nothing_behind(make_store: MakeStore) -> None:
    harness = make_store()

    with pytest.raises(StorageError, match="disk went away"):
        harness.store.put(FailingStream(12 << 20))  # type: ignore[arg-type]

    assert list(harness.store.iter_digests()) == []
    assert harness.leftovers() == []


def test_reput_is_a_noop(make_store: MakeStore) -> None:
    harness = make_store()
    first = harness.store.put_bytes(b"same bytes")

    second = harness.store.put_bytes(b"same bytes")

    assert second == first
    assert list(harness.store.iter_digests()) == [first.digest]
    assert harness.leftovers() == []


def test_reput_never_overwrites_what_is_stored(make_store: MakeStore) -> None:
    harness = make_store()
    info = harness.store.put_bytes(b"original")
    harness.tamper(info.digest, b"corrupted")

    harness.store.put_bytes(b"original")

    with pytest.raises(IntegrityError):
        harness.store.verify(info.digest)


def test_empty_artifact(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store().store

    info = store.put_bytes(b"")

    assert (info.digest, info.size) == (EMPTY_SHA256, 0)
    assert store.read_bytes(EMPTY_SHA256) == b""
    assert store.stat(EMPTY_SHA256) == 0
    store.get(EMPTY_SHA256, tmp_path / "empty")
    assert (tmp_path / "empty").read_bytes() == b""


def test_large_artifact_streams_in_and_out(make_store: MakeStore, tmp_path: Path) -> None:
    harness = make_store()
    expected = _expected(LARGE_SIZE)

    info = harness.store.put(GeneratedStream(LARGE_SIZE))  # type: ignore[arg-type]

    assert (info.digest, info.size) == expected
    assert harness.store.stat(info.digest) == LARGE_SIZE
    assert _stream_digest(harness.store, info.digest) == info.digest
    harness.store.get(info.digest, tmp_path / "large.bin")
    assert (tmp_path / "large.bin").stat().st_size == LARGE_SIZE
    assert harness.leftovers() == []


@pytest.mark.parametrize(
    "read",
    [
        lambda store, digest, dest: store.read_bytes(digest),
        lambda store, digest, dest: store.verify(digest),
        lambda store, digest, dest: store.get(digest, dest),
        lambda store, digest, dest: _stream_digest(store, digest),
    ],
    ids=["read_bytes", "verify", "get", "open"],
)
def test_tampering_is_detected_on_every_read(
    make_store: MakeStore, tmp_path: Path, read: Callable[[ArtifactStore, str, Path], object]
) -> None:
    harness = make_store()
    info = harness.store.put_bytes(b"trusted weights")
    harness.tamper(info.digest, b"evil weights!!!")
    actual = hashlib.sha256(b"evil weights!!!").hexdigest()

    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(IntegrityError) as raised:
        read(harness.store, info.digest, out / "dest")

    assert os.listdir(out) == []  # get() left neither the file nor its partial

    assert info.digest in raised.value.message
    assert actual in raised.value.message


def test_streaming_read_raises_only_after_the_last_chunk(make_store: MakeStore) -> None:
    harness = make_store()
    info = harness.store.put_bytes(b"x" * 100)
    harness.tamper(info.digest, b"y" * 100)
    received = []

    with pytest.raises(IntegrityError), harness.store.open(info.digest) as chunks:
        for chunk in chunks:
            received.append(chunk)

    assert b"".join(received) == b"y" * 100


def test_get_leaves_existing_destination_untouched_on_failure(
    make_store: MakeStore, tmp_path: Path
) -> None:
    harness = make_store()
    info = harness.store.put_bytes(b"good")
    harness.tamper(info.digest, b"bad!")
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "model.bin"
    dest.write_bytes(b"previous")

    with pytest.raises(IntegrityError):
        harness.store.get(info.digest, dest)

    assert dest.read_bytes() == b"previous"
    assert os.listdir(out) == ["model.bin"]


def test_get_into_missing_directory_raises_storage_error(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store().store
    info = store.put_bytes(b"data")

    with pytest.raises(StorageError, match="no-such-dir"):
        store.get(info.digest, tmp_path / "no-such-dir" / "out")


@pytest.mark.parametrize(
    "call",
    [
        lambda store, digest, dest: store.read_bytes(digest),
        lambda store, digest, dest: store.verify(digest),
        lambda store, digest, dest: store.get(digest, dest),
        lambda store, digest, dest: store.open(digest).__enter__(),
        lambda store, digest, dest: store.read_range(digest, 0, 1),
    ],
    ids=["read_bytes", "verify", "get", "open", "read_range"],
)
def test_missing_digest_raises_not_found(
    make_store: MakeStore, tmp_path: Path, call: Callable[[ArtifactStore, str, Path], object]
) -> None:
    store = make_store().store
    missing = hashlib.sha256(b"never stored").hexdigest()

    with pytest.raises(NotFoundError, match=missing):
        call(store, missing, tmp_path / "dest")

    assert not store.exists(missing)
    assert store.stat(missing) is None
    assert not (tmp_path / "dest").exists()


def test_read_range_reads_exactly_the_bytes_asked(make_store: MakeStore) -> None:
    store = make_store().store
    data = bytes(range(256)) * 40
    digest = store.put_bytes(data).digest

    for offset, size in [(0, 1), (0, len(data)), (255, 2), (4000, 240), (len(data) - 1, 1)]:
        assert store.read_range(digest, offset, size) == data[offset : offset + size]


@pytest.mark.parametrize("offset", [10, 11, 200], ids=["overhang", "at-end", "past-end"])
def test_read_range_past_the_end_is_an_integrity_error(make_store: MakeStore, offset: int) -> None:
    store = make_store().store
    digest = store.put_bytes(b"0123456789a").digest

    with pytest.raises(IntegrityError, match=f"ends before bytes {offset}"):
        store.read_range(digest, offset, 2)


@pytest.mark.parametrize(("offset", "size"), [(-1, 2), (0, 0), (3, -4)])
def test_read_range_refuses_what_is_not_a_range(
    make_store: MakeStore, offset: int, size: int
) -> None:
    store = make_store().store
    digest = store.put_bytes(b"0123456789").digest

    with pytest.raises(InvalidInputError, match="not a range to read"):
        store.read_range(digest, offset, size)


BAD_DIGESTS = {
    "path-traversal": "../etc/passwd",
    "traversal-64-chars": "../" + "a" * 61,
    "uppercase": "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
    "short": "e3b0c442",
    "long": EMPTY_SHA256 + "0",
    "prefixed": "sha256:" + EMPTY_SHA256,
    "trailing-newline": EMPTY_SHA256 + "\n",
    "non-hex": "g" * 64,
    "empty": "",
    "absolute": "/" + "a" * 63,
}

METHODS = {
    "open": lambda store, digest, dest: store.open(digest).__enter__(),
    "read_bytes": lambda store, digest, dest: store.read_bytes(digest),
    "get": lambda store, digest, dest: store.get(digest, dest),
    "exists": lambda store, digest, dest: store.exists(digest),
    "stat": lambda store, digest, dest: store.stat(digest),
    "verify": lambda store, digest, dest: store.verify(digest),
    "read_range": lambda store, digest, dest: store.read_range(digest, 0, 1),
}


@pytest.mark.parametrize("digest", BAD_DIGESTS.values(), ids=BAD_DIGESTS.keys())
@pytest.mark.parametrize("method", METHODS.values(), ids=METHODS.keys())
def test_malformed_digest_is_rejected(
    make_store: MakeStore,
    tmp_path: Path,
    method: Callable[[ArtifactStore, str, Path], object],
    digest: str,
) -> None:
    with pytest.raises(InvalidInputError, match="not a SHA-256 digest"):
        method(make_store().store, digest, tmp_path / "dest")


def test_iter_digests_lists_every_artifact(make_store: MakeStore) -> None:
    store = make_store().store
    assert list(store.iter_digests()) == []
    digests = {store.put_bytes(bytes([i]) * i).digest for i in range(5)}

    listed = list(store.iter_digests())

    assert sorted(listed) == sorted(digests)
    assert listed == sorted(listed)


def test_url_reopens_the_same_store(make_store: MakeStore) -> None:
    harness = make_store()
    info = harness.store.put_bytes(b"reopen me")

    reopened = open_store(harness.store.url, **harness.options)

    assert reopened.url == harness.store.url
    assert reopened.read_bytes(info.digest) == b"reopen me"


# Adapter-specific checks that the shared contract cannot express.


@pytest.mark.s3
@pytest.mark.parametrize(
    "metadata",
    [{}, {"sha256": "0" * 64}],
    ids=["missing-metadata", "wrong-metadata"],
)
def test_s3_object_metadata_must_name_the_key(
    s3_server: S3Server, metadata: dict[str, str]
) -> None:
    client = s3_server.client()
    store = S3ArtifactStore(s3_server.bucket, s3_server.new_prefix(), client)
    info = store.put_bytes(b"payload")
    client.put_object(
        Bucket=s3_server.bucket, Key=store.key_of(info.digest), Body=b"payload", Metadata=metadata
    )

    with pytest.raises(IntegrityError, match="object metadata records"):
        store.read_bytes(info.digest)


@pytest.mark.s3
def test_s3_commit_records_the_digest_as_metadata(s3_server: S3Server) -> None:
    client = s3_server.client()
    store = S3ArtifactStore(s3_server.bucket, s3_server.new_prefix(), client)

    info = store.put_bytes(b"payload")

    head = client.head_object(Bucket=s3_server.bucket, Key=store.key_of(info.digest))
    assert head["Metadata"] == {"sha256": info.digest}


@pytest.mark.s3
def test_s3_missing_bucket_raises_storage_error(s3_server: S3Server) -> None:
    store = S3ArtifactStore("no-such-bucket", "", s3_server.client())

    with pytest.raises(StorageError):
        store.put_bytes(b"x")
    with pytest.raises(StorageError):
        store.read_bytes(EMPTY_SHA256)
    with pytest.raises(StorageError):
        list(store.iter_digests())


@pytest.mark.s3
def test_s3_failed_multipart_upload_is_aborted(s3_server: S3Server) -> None:
    client = s3_server.client()
    prefix = s3_server.new_prefix()
    store = S3ArtifactStore(s3_server.bucket, prefix, client, part_size=5 << 20)

    with pytest.raises(StorageError, match="disk went away"):
        store.put(FailingStream(12 << 20))  # type: ignore[arg-type]

    uploads = client.list_multipart_uploads(Bucket=s3_server.bucket, Prefix=prefix)
    assert uploads.get("Uploads", []) == []


@pytest.mark.s3
def test_s3_iter_digests_skips_stray_keys(s3_server: S3Server) -> None:
    client = s3_server.client()
    prefix = s3_server.new_prefix()
    store = S3ArtifactStore(s3_server.bucket, prefix, client)
    info = store.put_bytes(b"real")
    for stray in ("sha256/00/00/notes.txt", f"sha256/00/00/{'11' * 32}"):
        client.put_object(Bucket=s3_server.bucket, Key=f"{prefix}/{stray}", Body=b"")

    assert list(store.iter_digests()) == [info.digest]


@pytest.mark.s3
def test_s3_too_many_parts_is_refused_and_aborted(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10,000 real parts would be 50 GB; lower the S3 limit so three parts exceed it.
    monkeypatch.setattr("mltrail.artifacts.s3._MAX_PARTS", 2)
    client = s3_server.client()
    prefix = s3_server.new_prefix()
    store = S3ArtifactStore(s3_server.bucket, prefix, client, part_size=5 << 20)

    with pytest.raises(StorageError, match="exceeds 2 parts"):
        store.put(GeneratedStream(15 << 20))  # type: ignore[arg-type]

    uploads = client.list_multipart_uploads(Bucket=s3_server.bucket, Prefix=prefix)
    assert uploads.get("Uploads", []) == []
    assert list(store.iter_digests()) == []


def test_local_committed_files_are_read_only(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")

    info = store.put_bytes(b"frozen")

    assert store.path_of(info.digest).stat().st_mode & 0o777 == 0o444
    assert os.listdir(store.root / "tmp") == []


def test_local_iter_digests_skips_stray_files(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    info = store.put_bytes(b"real")
    stray = store.root / "sha256" / "00" / "00"
    stray.mkdir(parents=True)
    (stray / "notes.txt").write_text("not an artifact")
    (stray / ("11" * 32)).write_text("misplaced: its prefix is not 00/00")

    assert list(store.iter_digests()) == [info.digest]


def test_local_unreadable_layout_raises_storage_error(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    digest = hashlib.sha256(b"x").hexdigest()
    blocker = store.root / "sha256" / digest[:2]
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"a file where a directory belongs")

    with pytest.raises(StorageError, match="cannot stat"):
        store.stat(digest)
    with pytest.raises(StorageError, match="cannot read"):
        store.read_bytes(digest)


def test_local_unwritable_root_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    store = LocalArtifactStore(blocker / "store")

    with pytest.raises(StorageError, match="cannot store"):
        store.put_bytes(b"x")
