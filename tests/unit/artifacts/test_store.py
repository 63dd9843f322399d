"""Choosing a store from its URL, and the digest rules every store shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from mltrail.artifacts.digest import ArtifactInfo, digest_from_key, object_key
from mltrail.artifacts.local import LocalArtifactStore
from mltrail.artifacts.s3 import S3ArtifactStore, make_client
from mltrail.artifacts.store import open_store
from mltrail.errors import ConfigError, InvalidInputError

DIGEST = "ab" + "cd" + "0" * 60


def test_file_url_opens_a_local_store(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())

    assert isinstance(store, LocalArtifactStore)
    assert store.root == tmp_path
    assert store.url == tmp_path.as_uri()


def test_file_url_may_name_localhost(tmp_path: Path) -> None:
    store = open_store(f"file://localhost{tmp_path}")

    assert isinstance(store, LocalArtifactStore)
    assert store.root == tmp_path


def test_plain_path_opens_a_local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert open_store(str(tmp_path / "a")).url == (tmp_path / "a").as_uri()
    assert open_store("relative/dir").url == (tmp_path / "relative" / "dir").as_uri()


def test_s3_url_opens_an_s3_store() -> None:
    store = open_store(
        "s3://models/team-a/",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        access_key_id="k",
        secret_access_key="s",
    )

    assert isinstance(store, S3ArtifactStore)
    assert store.url == "s3://models/team-a"
    assert store.key_of(DIGEST) == f"team-a/sha256/ab/cd/{DIGEST}"


def test_s3_url_without_prefix_uses_bare_keys() -> None:
    store = S3ArtifactStore("models", "", client=None)

    assert store.url == "s3://models"
    assert store.key_of(DIGEST) == f"sha256/ab/cd/{DIGEST}"


BAD_URLS = {
    "remote-file-host": "file://fileserver/share",
    "unknown-scheme": "ftp://host/path",
    "s3-without-bucket": "s3:///prefix",
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_unusable_urls_raise_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


def test_bad_endpoint_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="S3 client"):
        make_client(endpoint_url="not a url", region_name="us-east-1")


def test_part_size_below_the_s3_minimum_is_refused() -> None:
    with pytest.raises(ConfigError, match="5 MiB"):
        S3ArtifactStore("models", "", client=None, part_size=1 << 20)


def test_object_key_layout() -> None:
    assert object_key(DIGEST) == f"sha256/ab/cd/{DIGEST}"
    assert digest_from_key(object_key(DIGEST)) == DIGEST


@pytest.mark.parametrize(
    "key",
    [f"sha256/ab/ce/{DIGEST}", f"sha256/aa/cd/{DIGEST}", "sha256/ab/cd/notes.txt", f"tmp/{DIGEST}"],
    ids=["wrong-second-level", "wrong-first-level", "not-a-digest", "other-folder"],
)
def test_keys_outside_the_layout_name_no_digest(key: str) -> None:
    assert digest_from_key(key) is None


def test_artifact_info_checks_its_fields() -> None:
    with pytest.raises(InvalidInputError):
        ArtifactInfo("ABC", 1)
    with pytest.raises(InvalidInputError, match="negative"):
        ArtifactInfo(DIGEST, -1)
