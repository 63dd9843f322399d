"""Properties of `mltrail.artifacts.manifest`: the dict form round-trips, the identity does
not depend on the order files are given in, and the order is model-signing's order."""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from mltrail.artifacts.manifest import Manifest, ManifestFile, ModelSigningStatement
from mltrail.canonical import canonicalize, loads

# Path components mixing the characters that order differently by string and by component
# ("-" < "/" < "0" < "A" < "_" < "a"), plus a non-ASCII letter.
segments = st.text(alphabet="ab-_.A0é ", min_size=1, max_size=4).filter(
    lambda s: s not in (".", "..")
)
paths = st.lists(segments, min_size=1, max_size=3).map("/".join)
digests = st.binary(min_size=32, max_size=32).map(bytes.hex)
sizes = st.integers(min_value=0, max_value=2**53 - 1)


@st.composite
def file_lists(draw: st.DrawFn) -> list[ManifestFile]:
    unique = draw(st.lists(paths, unique=True, max_size=12))
    return [ManifestFile(p, draw(digests), draw(sizes)) for p in unique]


@given(file_lists())
def test_dict_form_round_trips(files: list[ManifestFile]) -> None:
    manifest = Manifest(tuple(files))

    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert Manifest.from_dict(loads(canonicalize(manifest.to_dict()))) == manifest


@given(st.data(), file_lists())
def test_digests_do_not_depend_on_file_order(
    data: st.DataObject, files: list[ManifestFile]
) -> None:
    shuffled = data.draw(st.permutations(files))

    original, permuted = Manifest(tuple(files)), Manifest(tuple(shuffled))

    assert permuted == original
    assert permuted.digest == original.digest
    assert permuted.model_signing_digest == original.model_signing_digest


@given(file_lists())
def test_files_are_in_pure_posix_path_order(files: list[ManifestFile]) -> None:
    manifest = Manifest(tuple(files))

    expected = sorted(files, key=lambda f: PurePosixPath(f.path))
    joined = b"".join(bytes.fromhex(f.digest) for f in expected)
    assert list(manifest.files) == expected
    assert manifest.model_signing_digest == hashlib.sha256(joined).hexdigest()


@given(file_lists())
def test_a_statement_made_from_a_manifest_matches_it(files: list[ManifestFile]) -> None:
    manifest = Manifest(tuple(files))
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": manifest.model_signing_digest}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
            "resources": [
                {"name": f.path, "algorithm": "sha256", "digest": f.digest} for f in manifest.files
            ],
        },
    }

    assert manifest.matches_model_signing_statement(ModelSigningStatement.from_dict(statement))
