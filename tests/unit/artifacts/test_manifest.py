"""Manifests: determinism, path safety, and compatibility with OpenSSF model-signing v1.0."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mltrail.artifacts.local import LocalArtifactStore
from mltrail.artifacts.manifest import (
    MEDIA_TYPE,
    Manifest,
    ManifestFile,
    ModelSigningStatement,
    check_relative_path,
)
from mltrail.errors import FormatError, InvalidInputError, NotFoundError, StorageError

SHA_A = hashlib.sha256(b"a").hexdigest()
SHA_B = hashlib.sha256(b"b").hexdigest()


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return _tree(
        tmp_path / "model",
        {"config.json": b"{}", "weights/part-1.bin": b"\x00" * 10, "weights/part-2.bin": b""},
    )


@pytest.fixture
def signed(vectors: Path) -> tuple[Path, bytes, dict[str, Any]]:
    """The tiny model, the bundle model_signing made for it, and the bundle's statement."""
    folder = vectors / "model_signing"
    bundle = (folder / "tiny-model.sig.json").read_bytes()
    statement = json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))
    return folder / "tiny-model", bundle, statement


# Determinism and identity


def test_from_directory_lists_files_with_digest_and_size(model: Path) -> None:
    manifest = Manifest.from_directory(model)

    assert manifest.files == (
        ManifestFile("config.json", hashlib.sha256(b"{}").hexdigest(), 2),
        ManifestFile("weights/part-1.bin", hashlib.sha256(b"\x00" * 10).hexdigest(), 10),
        ManifestFile("weights/part-2.bin", hashlib.sha256(b"").hexdigest(), 0),
    )
    assert manifest.size == 12


def test_digest_is_independent_of_location_and_creation_order(tmp_path: Path) -> None:
    files = {"b.bin": b"2", "a/x.bin": b"1", "c.txt": b"3"}
    first = _tree(tmp_path / "one", files)
    second = _tree(tmp_path / "elsewhere" / "two", dict(reversed(list(files.items()))))

    assert Manifest.from_directory(first) == Manifest.from_directory(second)
    assert Manifest.from_directory(first).digest == Manifest.from_directory(second).digest


def test_digest_is_sha256_of_canonical_json(model: Path) -> None:
    manifest = Manifest.from_directory(model)
    canonical = json.dumps(manifest.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    assert manifest.digest == hashlib.sha256(canonical).hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "config.json").write_bytes(b"{ }"),
        lambda root: (root / "config.json").rename(root / "config2.json"),
        lambda root: (root / "extra").write_bytes(b""),
        lambda root: (root / "weights" / "part-2.bin").unlink(),
    ],
    ids=["content", "rename", "added", "removed"],
)
def test_any_change_changes_the_digest(model: Path, change: Callable[[Path], object]) -> None:
    before = Manifest.from_directory(model).digest

    change(model)

    assert Manifest.from_directory(model).digest != before


def test_model_signing_digest_ignores_names_but_digest_does_not() -> None:
    # Why a manifest's identity is not the model-signing subject digest: the subject
    # digest covers only the ordered file digests, so an order-preserving rename keeps it.
    original = Manifest((ManifestFile("a.bin", SHA_A, 1), ManifestFile("b.bin", SHA_B, 1)))
    renamed = Manifest((ManifestFile("a2.bin", SHA_A, 1), ManifestFile("b2.bin", SHA_B, 1)))

    assert renamed.model_signing_digest == original.model_signing_digest
    assert renamed.digest != original.digest


def test_from_directory_puts_each_file_into_the_store(model: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")

    manifest = Manifest.from_directory(model, store)

    assert manifest == Manifest.from_directory(model)
    assert sorted(store.iter_digests()) == sorted({f.digest for f in manifest.files})
    for entry in manifest.files:
        assert store.read_bytes(entry.digest) == (model / entry.path).read_bytes()


def test_git_paths_are_skipped_by_default_like_model_signing(model: Path) -> None:
    _tree(model, {".gitattributes": b"*", ".git/HEAD": b"ref", "sub/.gitignore": b"x"})

    default = [f.path for f in Manifest.from_directory(model).files]
    everything = [f.path for f in Manifest.from_directory(model, exclude=()).files]

    assert ".gitattributes" not in default and ".git/HEAD" not in default
    assert "sub/.gitignore" in default  # model_signing skips these only at the top
    assert {".gitattributes", ".git/HEAD"} <= set(everything)


def test_exclude_replaces_the_default(model: Path) -> None:
    _tree(model, {".gitignore": b"x"})

    paths = [f.path for f in Manifest.from_directory(model, exclude=["weights"]).files]

    assert paths == [".gitignore", "config.json"]


# Path safety


BAD_PATHS = {
    "empty": "",
    "absolute": "/etc/passwd",
    "parent": "../escape",
    "inner-parent": "weights/../../escape",
    "dot": "./config.json",
    "inner-dot": "weights/./a",
    "trailing-slash": "weights/",
    "double-slash": "weights//a",
    "backslash": "weights\\a",
    "nul": "a\x00b",
    "just-dotdot": "..",
}


@pytest.mark.parametrize("path", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_bad_paths_are_rejected(path: str) -> None:
    with pytest.raises(InvalidInputError, match="not a relative POSIX path"):
        check_relative_path(path)
    with pytest.raises(InvalidInputError):
        ManifestFile(path, SHA_A, 1)
    with pytest.raises(FormatError):
        Manifest.from_dict(
            {"mediaType": MEDIA_TYPE, "files": [{"path": path, "sha256": SHA_A, "size": 1}]}
        )


def test_symlink_escaping_the_directory_is_rejected(model: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"private key")
    (model / "leak").symlink_to(secret)

    with pytest.raises(InvalidInputError, match="outside"):
        Manifest.from_directory(model)


def test_relative_symlink_climbing_out_is_rejected(model: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.bin").write_bytes(b"x")
    (model / "weights" / "up").symlink_to(Path("..") / ".." / "outside.bin")

    with pytest.raises(InvalidInputError, match="outside"):
        Manifest.from_directory(model)


def test_symlink_to_a_file_inside_is_hashed_under_its_own_name(model: Path) -> None:
    (model / "alias.json").symlink_to("config.json")

    manifest = Manifest.from_directory(model)

    alias = next(f for f in manifest.files if f.path == "alias.json")
    assert alias.digest == hashlib.sha256(b"{}").hexdigest()


@pytest.mark.parametrize(
    "make",
    [
        lambda root: (root / "linked-dir").symlink_to("weights"),
        lambda root: (root / "dangling").symlink_to("no-such-file"),
        lambda root: os.mkfifo(root / "pipe"),
        lambda root: ((root / "x").symlink_to("y"), (root / "y").symlink_to("x")),
    ],
    ids=["symlink-to-directory", "dangling-symlink", "fifo", "symlink-loop"],
)
def test_entries_that_are_not_regular_files_are_rejected(
    model: Path, make: Callable[[Path], object]
) -> None:
    make(model)

    with pytest.raises(InvalidInputError):
        Manifest.from_directory(model)


def test_missing_root_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        Manifest.from_directory(tmp_path / "nope")


def test_root_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")

    with pytest.raises(InvalidInputError, match="not a directory"):
        Manifest.from_directory(tmp_path / "file")
    with pytest.raises(NotFoundError):
        Manifest.from_directory(tmp_path / "file" / "sub")


def test_root_that_is_a_symlink_loop_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")

    with pytest.raises((InvalidInputError, StorageError)):
        Manifest.from_directory(tmp_path / "a")


def test_unreadable_file_raises_storage_error(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, which ignores permission bits, so the OS refusal is faked at the
    # module's one filesystem seam.
    def refuse(path: Path) -> object:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("mltrail.artifacts.manifest.hash_file", refuse)

    with pytest.raises(StorageError, match=r"config\.json: Permission denied"):
        Manifest.from_directory(model)


def test_duplicate_paths_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="twice"):
        Manifest((ManifestFile("a", SHA_A, 1), ManifestFile("a", SHA_B, 1)))


# The dict form


def test_to_dict_known_answer() -> None:
    manifest = Manifest((ManifestFile("b", SHA_B, 1), ManifestFile("a", SHA_A, 1)))

    assert manifest.to_dict() == {
        "mediaType": "application/vnd.mltrail.manifest.v1+json",
        "files": [
            {"path": "a", "sha256": SHA_A, "size": 1},
            {"path": "b", "sha256": SHA_B, "size": 1},
        ],
    }


def test_unknown_top_level_fields_survive_a_round_trip() -> None:
    data = {"mediaType": MEDIA_TYPE, "files": [], "createdBy": {"tool": "future"}}

    manifest = Manifest.from_dict(data)

    assert manifest.to_dict() == data
    assert manifest.digest != Manifest(()).digest


def _entry(**fields: object) -> dict[str, object]:
    return {"mediaType": MEDIA_TYPE, "files": [{"path": "a", "sha256": SHA_A, "size": 1, **fields}]}


BAD_DICTS: dict[str, object] = {
    "not-an-object": ["files"],
    "wrong-media-type": {"mediaType": "application/json", "files": []},
    "no-media-type": {"files": []},
    "files-not-a-list": {"mediaType": MEDIA_TYPE, "files": {}},
    "entry-not-an-object": {"mediaType": MEDIA_TYPE, "files": ["a"]},
    "entry-extra-field": _entry(mode=420),
    "size-bool": _entry(size=True),
    "size-negative": _entry(size=-1),
    "size-string": _entry(size="1"),
    "digest-uppercase": _entry(sha256=SHA_A.upper()),
    "duplicate-path": {
        "mediaType": MEDIA_TYPE,
        "files": [{"path": "a", "sha256": SHA_A, "size": 1}] * 2,
    },
}


@pytest.mark.parametrize("data", BAD_DICTS.values(), ids=BAD_DICTS.keys())
def test_malformed_dicts_raise_format_error(data: Any) -> None:
    with pytest.raises(FormatError):
        Manifest.from_dict(data)


# OpenSSF model-signing v1.0 compatibility (known answer from the real tool)


def test_known_answer_subject_digest_matches_model_signing(
    signed: tuple[Path, bytes, dict[str, Any]],
) -> None:
    model, _, statement = signed

    manifest = Manifest.from_directory(model)

    assert manifest.model_signing_digest == statement["subject"][0]["digest"]["sha256"]
    assert manifest.model_signing_digest == (
        "e5c155dfe9a0a6e8d19600bf01ac350d8f64e841e6131de53d87220c87b5943f"
    )


def test_known_answer_resources_match_in_model_signing_order(
    signed: tuple[Path, bytes, dict[str, Any]],
) -> None:
    model, _, statement = signed

    manifest = Manifest.from_directory(model)

    assert [(f.path, f.digest) for f in manifest.files] == [
        (r["name"], r["digest"]) for r in statement["predicate"]["resources"]
    ]
    paths = [f.path for f in manifest.files]
    assert paths.index("a/b.txt") < paths.index("a-b.txt")  # component order, not string order


def test_known_answer_bundle_matches(signed: tuple[Path, bytes, dict[str, Any]]) -> None:
    model, bundle, _ = signed

    manifest = Manifest.from_directory(model)

    assert manifest.matches_model_signing_bundle(bundle)
    assert manifest.matches_model_signing_bundle(bundle.decode())
    assert manifest.matches_model_signing_bundle(json.loads(bundle))
    parsed = ModelSigningStatement.from_bundle(bundle)
    assert parsed.name == "tiny-model"
    assert parsed.subject_digest == manifest.model_signing_digest


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "weights.bin").write_bytes(b"retrained"),
        lambda root: (root / "config.json").rename(root / "config2.json"),
        lambda root: (root / "extra.txt").write_bytes(b""),
        lambda root: (root / "empty.txt").unlink(),
    ],
    ids=["content", "rename", "added", "removed"],
)
def test_changed_model_does_not_match_the_bundle(
    signed: tuple[Path, bytes, dict[str, Any]], tmp_path: Path, change: Callable[[Path], object]
) -> None:
    model, bundle, _ = signed
    copied = Path(shutil.copytree(model, tmp_path / "tiny-model"))

    change(copied)

    assert not Manifest.from_directory(copied).matches_model_signing_bundle(bundle)


def test_statement_listing_resources_out_of_order_still_matches(
    signed: tuple[Path, bytes, dict[str, Any]],
) -> None:
    # model_signing accepts any listed order whose subject digest is consistent with it.
    model, _, statement = signed
    shuffled = copy.deepcopy(statement)
    resources = list(reversed(shuffled["predicate"]["resources"]))
    shuffled["predicate"]["resources"] = resources
    joined = b"".join(bytes.fromhex(r["digest"]) for r in resources)
    shuffled["subject"][0]["digest"]["sha256"] = hashlib.sha256(joined).hexdigest()

    parsed = ModelSigningStatement.from_dict(shuffled)

    assert Manifest.from_directory(model).matches_model_signing_statement(parsed)


def _mutated(statement: dict[str, Any], mutate: Callable[[dict[str, Any]], object]) -> Any:
    changed = copy.deepcopy(statement)
    mutate(changed)
    return changed


STATEMENT_MUTATIONS: dict[str, Callable[[dict[str, Any]], object]] = {
    "wrong-type": lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"),
    "old-predicate": lambda s: s.update(predicateType="https://model_signing/Digests/v0.1"),
    "two-subjects": lambda s: s.update(subject=s["subject"] * 2),
    "subject-digest-uppercase": lambda s: s["subject"][0]["digest"].update(
        sha256=s["subject"][0]["digest"]["sha256"].upper()
    ),
    "inconsistent-subject": lambda s: s["subject"][0]["digest"].update(sha256="0" * 64),
    "shards": lambda s: s["predicate"]["serialization"].update(method="shards"),
    "blake2": lambda s: s["predicate"]["serialization"].update(hash_type="blake2b"),
    "resource-algorithm": lambda s: s["predicate"]["resources"][0].update(algorithm="sha512"),
    "resource-escapes": lambda s: s["predicate"]["resources"][0].update(name="../evil"),
    "resource-duplicate": lambda s: s["predicate"]["resources"].append(
        s["predicate"]["resources"][0]
    ),
    "resources-missing": lambda s: s["predicate"].pop("resources"),
}


@pytest.mark.parametrize("mutate", STATEMENT_MUTATIONS.values(), ids=STATEMENT_MUTATIONS.keys())
def test_malformed_statements_raise_format_error(
    signed: tuple[Path, bytes, dict[str, Any]], mutate: Callable[[dict[str, Any]], object]
) -> None:
    with pytest.raises(FormatError):
        ModelSigningStatement.from_dict(_mutated(signed[2], mutate))


def _bundle(envelope: dict[str, Any]) -> bytes:
    return json.dumps({"mediaType": "x", "dsseEnvelope": envelope}).encode()


BAD_BUNDLES = {
    "not-json": b"{",
    "no-envelope": b"{}",
    "wrong-payload-type": _bundle({"payloadType": "text/plain", "payload": ""}),
    "bad-base64": _bundle({"payloadType": "application/vnd.in-toto+json", "payload": "!!"}),
    "payload-not-object": _bundle(
        {"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(b"[]").decode()}
    ),
}


@pytest.mark.parametrize("bundle", BAD_BUNDLES.values(), ids=BAD_BUNDLES.keys())
def test_malformed_bundles_raise_format_error(bundle: bytes) -> None:
    with pytest.raises(FormatError):
        Manifest(()).matches_model_signing_bundle(bundle)
