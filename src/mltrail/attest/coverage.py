"""Whether an attestation is about a model version.

A statement is about a version when one of its subjects is the version's manifest
digest, or, for an OpenSSF model-signing v1.0 statement (which names the model by the
digest of its files' digests, not by our manifest), when the resources it lists are
exactly the manifest's files: same paths, same SHA-256s.

>>> from mltrail.attest.intoto import ResourceDescriptor, Statement
>>> s = Statement([ResourceDescriptor(name="m", digest={"sha256": "ab" * 32})], "https://x")
>>> covers_version(s, "ab" * 32, None), covers_version(s, "cd" * 32, None)
(True, False)
"""

from __future__ import annotations

from mltrail.artifacts.manifest import MODEL_SIGNING_PREDICATE_TYPE, Manifest, ModelSigningStatement
from mltrail.attest.intoto import Statement, matches_subject
from mltrail.errors import FormatError

__all__ = ["covers_version"]


def covers_version(statement: Statement, manifest_digest: str, manifest: Manifest | None) -> bool:
    """True when ``statement`` is about the version with this manifest (see module docstring)."""
    if matches_subject(statement, manifest_digest):
        return True
    if manifest is None or statement.predicate_type != MODEL_SIGNING_PREDICATE_TYPE:
        return False
    try:
        signed = ModelSigningStatement.from_dict(statement.to_dict())
    except FormatError:
        return False
    return manifest.matches_model_signing_statement(signed)
