"""Content-addressed artifacts and the manifests that make a model version.

`open_store` picks an `ArtifactStore` adapter from a URL; `Manifest` turns a directory into
the list of files (path → SHA-256, size) that identifies a version. The S3 adapter lives in
`mltrail.artifacts.s3` and is imported only when an ``s3://`` URL is opened.

>>> import tempfile
>>> store = open_store(tempfile.mkdtemp())
>>> store.read_bytes(store.put_bytes(b"x").digest)
b'x'
"""

from __future__ import annotations

from mltrail.artifacts.digest import ArtifactInfo, check_digest
from mltrail.artifacts.local import LocalArtifactStore
from mltrail.artifacts.manifest import Manifest, ManifestFile, ModelSigningStatement
from mltrail.artifacts.store import ArtifactStore, open_store

__all__ = [
    "ArtifactInfo",
    "ArtifactStore",
    "LocalArtifactStore",
    "Manifest",
    "ManifestFile",
    "ModelSigningStatement",
    "check_digest",
    "open_store",
]
