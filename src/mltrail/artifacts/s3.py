"""Artifacts in S3-compatible object storage (AWS S3, MinIO, moto), through boto3.

Keys under the store's prefix: ``sha256/ab/cd/<hex>`` holds committed artifacts, each
with object metadata ``sha256=<hex>``; ``tmp/<uuid>`` holds uploads in progress.

A put streams to ``tmp/<uuid>`` while hashing (one ``PutObject`` when the bytes fit in
one part, else a multipart upload, in parts of ``part_size`` bytes: memory stays at
one part whatever the size), then, once the digest is known, copies it server-side to
its final key with the ``sha256`` metadata, unless that key already exists, and
deletes the temporary object. Reads check that the metadata names the key's digest
and re-hash the bytes.

S3 offers no conditional copy, so two writers racing on the same new bytes may both
copy; both copies carry identical bytes and metadata, so nothing changes.

>>> store = S3ArtifactStore("models", "team-a/", client=None)
>>> store.url, store.key_of("ab" * 32)[:22]
('s3://models/team-a', 'team-a/sha256/ab/ab/ab')
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO

import boto3  # type: ignore[import-untyped]
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from mltrail.artifacts.digest import (
    CHUNK_SIZE,
    ArtifactInfo,
    check_range,
    digest_from_key,
    object_key,
    readinto,
    short_error,
    verified_chunks,
)
from mltrail.artifacts.store import ArtifactStore
from mltrail.errors import ConfigError, IntegrityError, NotFoundError, StorageError

__all__ = ["DEFAULT_PART_SIZE", "S3ArtifactStore", "make_client"]

DEFAULT_PART_SIZE = 8 << 20
"""Multipart upload part size: the memory a put holds; 10,000 parts allow 80 GiB."""

_MIN_PART_SIZE = 5 << 20  # S3 refuses smaller parts except the last
_MAX_PARTS = 10_000
_MISSING = frozenset({"404", "NoSuchKey"})

S3Client = Any
"""A boto3 S3 client; boto3 ships no type information."""


def make_client(
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
) -> S3Client:
    """A boto3 S3 client from explicit settings; those left None use boto3's default chain.

    A custom ``endpoint_url`` gets path-style addressing, which S3-compatible servers
    reached by host and port need.

    Raises:
        ConfigError: boto3 refuses the settings.
    """
    config = Config(s3={"addressing_style": "path"}) if endpoint_url else None
    try:
        return boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region_name,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            config=config,
        )
    except (BotoCoreError, ValueError) as exc:
        raise ConfigError(f"cannot configure the S3 client: {exc}") from exc


class S3ArtifactStore(ArtifactStore):
    """An `ArtifactStore` in an S3 bucket, under a key prefix.

    Args:
        bucket: the bucket name.
        prefix: a key prefix shared by all of this store's objects ("" for none).
        client: a boto3 S3 client (see `make_client`).
        part_size: bytes per multipart part, at least 5 MiB.

    Raises:
        ConfigError: ``part_size`` is below the S3 minimum.
    """

    def __init__(
        self, bucket: str, prefix: str, client: S3Client, *, part_size: int = DEFAULT_PART_SIZE
    ) -> None:
        if part_size < _MIN_PART_SIZE:
            raise ConfigError(f"S3 part size {part_size} is below the 5 MiB minimum")
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._client = client
        self._part_size = part_size

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self._bucket}/{self._prefix}".rstrip("/")

    def key_of(self, digest: str) -> str:
        """The object key of the artifact with ``digest`` (whether or not it exists).

        Raises:
            InvalidInputError: ``digest`` is malformed.
        """
        return self._key(object_key(digest))

    def put(self, stream: BinaryIO) -> ArtifactInfo:
        """Store the rest of ``stream``; see `ArtifactStore.put`.

        Side effects: writes and deletes ``tmp/<uuid>``, then creates the artifact's
        object unless it exists.
        """
        temp = self._key(f"tmp/{uuid.uuid4().hex}")
        with self._errors(f"cannot store an artifact in {self.url}"):
            try:
                info = self._upload(stream, temp)
                self._commit(temp, info.digest)
            finally:
                self._client.delete_object(Bucket=self._bucket, Key=temp)
        return info

    @contextmanager
    def open(self, digest: str) -> Iterator[Iterator[bytes]]:
        """Stream the artifact's bytes, verified; see `ArtifactStore.open`.

        Raises:
            IntegrityError: also, at once, when the object's ``sha256`` metadata is not
                ``digest``.
        """
        key = self.key_of(digest)
        with self._errors(f"cannot read artifact {digest}", f"artifact sha256:{digest}"):
            response = self._client.get_object(Bucket=self._bucket, Key=key)
        body = response["Body"]
        try:
            _check_metadata(response.get("Metadata", {}), digest)
            yield verified_chunks(self._read(body, digest), digest)
        finally:
            body.close()

    def read_range(self, digest: str, offset: int, size: int) -> bytes:
        """Bytes ``offset`` to ``offset + size`` of the artifact (one ranged
        ``GetObject``), unverified; see `ArtifactStore.read_range`."""
        key = self.key_of(digest)
        check_range(offset, size)
        with self._errors(f"cannot read artifact {digest}", f"artifact sha256:{digest}"):
            try:
                response = self._client.get_object(
                    Bucket=self._bucket, Key=key, Range=f"bytes={offset}-{offset + size - 1}"
                )
            except ClientError as exc:  # the object ends before the range starts
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    raise short_error(digest, offset, size) from exc
                raise
            with response["Body"] as body:
                data: bytes = body.read()
        if len(data) != size:
            raise short_error(digest, offset, size)
        return data

    def exists(self, digest: str) -> bool:
        """Whether the artifact's object exists (a ``HeadObject``)."""
        return self.stat(digest) is not None

    def stat(self, digest: str) -> int | None:
        """The artifact object's size, or None if there is none."""
        head = self._head(self.key_of(digest))
        return None if head is None else int(head["ContentLength"])

    def iter_digests(self) -> Iterator[str]:
        """Every committed digest, in key order; stray keys are skipped."""
        root = self._key("")
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors(f"cannot list artifacts in {self.url}"):
            for page in paginator.paginate(Bucket=self._bucket, Prefix=root + "sha256/"):
                for item in page.get("Contents", []):
                    digest = digest_from_key(item["Key"][len(root) :])
                    if digest is not None:
                        yield digest

    def _key(self, name: str) -> str:
        return f"{self._prefix}/{name}" if self._prefix else name

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            with self._errors(f"cannot stat {key} in {self.url}", key):
                head: dict[str, Any] = self._client.head_object(Bucket=self._bucket, Key=key)
        except NotFoundError:
            return None
        return head

    def _upload(self, stream: BinaryIO, key: str) -> ArtifactInfo:
        hasher = hashlib.sha256()
        part = memoryview(bytearray(self._part_size))
        filled = _read_part(stream, part, hasher)
        if filled < len(part):
            self._client.put_object(Bucket=self._bucket, Key=key, Body=bytes(part[:filled]))
            return ArtifactInfo(hasher.hexdigest(), filled)
        upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=key)["UploadId"]
        try:
            parts, size = self._upload_parts(stream, key, upload_id, part, hasher)
            self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with suppress(BotoCoreError, ClientError):  # keep the error that got us here
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id
                )
            raise
        return ArtifactInfo(hasher.hexdigest(), size)

    def _upload_parts(
        self, stream: BinaryIO, key: str, upload_id: str, part: memoryview, hasher: Any
    ) -> tuple[list[dict[str, Any]], int]:
        """Upload the full ``part`` already read, then the rest of ``stream``."""
        parts: list[dict[str, Any]] = []
        size, filled = 0, len(part)
        while filled:
            if len(parts) == _MAX_PARTS:
                raise StorageError(
                    f"artifact exceeds {_MAX_PARTS} parts of {self._part_size} bytes",
                    hint="open the store with a larger part_size",
                )
            number = len(parts) + 1
            response = self._client.upload_part(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=bytes(part[:filled]),
            )
            parts.append(_completed_part(number, response))
            size += filled
            filled = _read_part(stream, part, hasher) if filled == len(part) else 0
        return parts, size

    def _commit(self, temp: str, digest: str) -> None:
        final = self.key_of(digest)
        if self._head(final) is not None:
            return  # already stored: a re-put is a no-op and never overwrites
        # CopyObject handles up to 5 GiB; s3transfer switches to UploadPartCopy above.
        self._client.copy(
            {"Bucket": self._bucket, "Key": temp},
            self._bucket,
            final,
            ExtraArgs={"Metadata": {"sha256": digest}, "MetadataDirective": "REPLACE"},
            Config=TransferConfig(multipart_threshold=5 << 30, multipart_chunksize=1 << 30),
        )

    def _read(self, body: Any, digest: str) -> Iterator[bytes]:
        with self._errors(f"cannot read artifact sha256:{digest}"):
            yield from body.iter_chunks(CHUNK_SIZE)

    @contextmanager
    def _errors(self, action: str, missing: str | None = None) -> Iterator[None]:
        """The seam where botocore errors become `StorageError`.

        Args:
            action: what failed, for the message.
            missing: names the object whose absence is a `NotFoundError`, when it is.
        """
        try:
            yield
        except ClientError as exc:
            if missing is not None and _is_missing(exc):
                raise NotFoundError(f"{missing} is not in {self.url}") from exc
            raise StorageError(f"{action}: {exc}") from exc
        except (BotoCoreError, OSError) as exc:  # OSError: the caller's stream failed
            raise StorageError(f"{action}: {exc}") from exc


def _read_part(stream: BinaryIO, part: memoryview, hasher: Any) -> int:
    """Fill ``part`` from ``stream`` in `CHUNK_SIZE` steps, hashing; short only at the end."""
    filled = 0
    while filled < len(part):
        n = readinto(stream, part[filled : filled + CHUNK_SIZE])
        if not n:
            break
        hasher.update(part[filled : filled + n])
        filled += n
    return filled


def _completed_part(number: int, response: Mapping[str, Any]) -> dict[str, Any]:
    """The ``Parts`` entry for CompleteMultipartUpload, keeping any checksum S3 returned."""
    entry = {"ETag": response["ETag"], "PartNumber": number}
    for name, value in response.items():
        if name.startswith("Checksum") and name != "ChecksumType":
            entry[name] = value
    return entry


def _check_metadata(metadata: Mapping[str, str], digest: str) -> None:
    recorded = metadata.get("sha256")
    if recorded != digest:
        raise IntegrityError(
            f"artifact sha256:{digest} is corrupt: its object metadata records sha256:{recorded}",
            hint="the object was replaced outside mltrail; restore it from a replica "
            "or re-upload the original file",
        )


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _MISSING
