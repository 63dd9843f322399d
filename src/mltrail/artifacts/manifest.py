"""A model or dataset directory as a manifest: relative path → SHA-256 and size, per file.

A model version's identity is its manifest. `Manifest.digest` is the SHA-256 of the
manifest's RFC 8785 canonical JSON (`Manifest.to_dict`), so it binds every path, digest
and size. `Manifest.model_signing_digest` is the digest OpenSSF model-signing v1.0
(the ``model_signing`` package) puts in the subject of the statement it signs, so a
bundle signed with ``model_signing`` can be checked against a registered version with
`Manifest.matches_model_signing_bundle`.

The model-signing v1.0 subject digest (``method: files``, ``hash_type: sha256``),
confirmed by signing ``tests/vectors/model_signing/tiny-model`` with model-signing 1.1.1:

1. Walk the model directory; every regular file is one resource. Its name is its path
   relative to the model directory, in POSIX form. By default ``.git``, ``.github``,
   ``.gitattributes`` and ``.gitignore`` at the top are skipped (`MODEL_SIGNING_IGNORED`).
2. Each resource's digest is the SHA-256 of the file's bytes.
3. Resources are sorted by path *components* (``PurePosixPath`` order, i.e. comparing
   ``tuple(name.split("/"))``), not by the path string: ``a/b.txt`` sorts before
   ``a-b.txt`` although ``"-" < "/"``.
4. The subject digest is SHA-256 over the concatenation of the raw 32-byte resource
   digests in that order (no names, no sizes, no separators, not the hex text).
5. The DSSE payload (type ``application/vnd.in-toto+json``) is an in-toto Statement v1,
   predicate type ``https://model_signing/signature/v1.0``, one subject (name: the
   directory's name; digest: ``{"sha256": <step 4>}``), and predicate
   ``{"serialization": {...}, "resources": [{"name", "algorithm": "sha256", "digest"}]}``
   listing the resources in step-3 order.

Because step 4 leaves names out, two directories with the same bytes under different
names share a subject digest; that is why a manifest's own identity is `Manifest.digest`,
and why `Manifest.matches_model_signing_bundle` compares the resource list, names
included. ``model_signing`` skips the contents of symlinked directories and, with
``allow_symlinks``, hashes a symlinked file under the link's name; `Manifest.from_directory`
does the same for files and refuses directory symlinks rather than leave files out.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> _ = (root / "config.json").write_bytes(b"{}")
>>> m = Manifest.from_directory(root)
>>> [(f.path, f.size) for f in m.files]
[('config.json', 2)]
>>> Manifest.from_dict(m.to_dict()) == m
True
>>> m.model_signing_digest == hashlib.sha256(bytes.fromhex(m.files[0].digest)).hexdigest()
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mltrail.artifacts.digest import check_digest, hash_file
from mltrail.artifacts.store import ArtifactStore
from mltrail.canonical import canonicalize, loads
from mltrail.errors import FormatError, InvalidInputError, NotFoundError, StorageError

__all__ = [
    "MEDIA_TYPE",
    "MODEL_SIGNING_IGNORED",
    "MODEL_SIGNING_PREDICATE_TYPE",
    "Manifest",
    "ManifestFile",
    "ModelSigningStatement",
    "check_relative_path",
]

MEDIA_TYPE = "application/vnd.mltrail.manifest.v1+json"
MODEL_SIGNING_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
MODEL_SIGNING_IGNORED = (".git", ".gitattributes", ".github", ".gitignore")
"""Top-level paths ``model_signing`` skips by default; `Manifest.from_directory` too."""

_IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_T = TypeVar("_T")


def check_relative_path(path: object) -> str:
    """Return ``path`` if it is a normalized relative POSIX path that stays inside its root.

    Raises:
        InvalidInputError: ``path`` is empty, absolute, has ``.``, ``..`` or empty
            components, or contains a backslash or NUL.
    """
    if (
        not isinstance(path, str)
        or not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise InvalidInputError(
            f"manifest path {path!r} is not a relative POSIX path inside the directory",
            hint="use paths like 'weights/model.safetensors', without '..', '.' or a leading '/'",
        )
    return path


def _path_order(path: str) -> tuple[str, ...]:
    """Sort key of ``PurePosixPath(path)``, the order model-signing lists resources in."""
    return tuple(path.split("/"))


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """One file of a manifest.

    Args:
        path: relative POSIX path inside the directory.
        digest: SHA-256 of the file's bytes, 64 lowercase hex characters.
        size: length of the file in bytes.

    Raises:
        InvalidInputError: any field is malformed.
    """

    path: str
    digest: str
    size: int

    def __post_init__(self) -> None:
        check_relative_path(self.path)
        check_digest(self.digest)
        if type(self.size) is not int or self.size < 0:
            raise InvalidInputError(f"size of {self.path!r} must be a non-negative integer")


@dataclass(frozen=True, slots=True)
class Manifest:
    """The files of a model or dataset, kept sorted by path as model-signing sorts them.

    Args:
        files: the files, in any order.
        unrecognized: top-level fields of a newer format version, kept for `to_dict`.

    Raises:
        InvalidInputError: two files share a path.
    """

    files: tuple[ManifestFile, ...]
    unrecognized: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.files, key=lambda f: _path_order(f.path)))
        for before, after in itertools.pairwise(ordered):
            if before.path == after.path:
                raise InvalidInputError(f"manifest lists {before.path!r} twice")
        object.__setattr__(self, "files", ordered)
        object.__setattr__(self, "unrecognized", dict(self.unrecognized))

    @property
    def digest(self) -> str:
        """The manifest's identity: SHA-256 of its canonical JSON (`to_dict`)."""
        return hashlib.sha256(canonicalize(self.to_dict())).hexdigest()

    @property
    def model_signing_digest(self) -> str:
        """The subject digest model-signing v1.0 computes: SHA-256 of the sorted raw digests."""
        return _subject_digest(f.digest for f in self.files)

    @property
    def size(self) -> int:
        """Total bytes of all files."""
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"mediaType", "files": [{"path", "sha256", "size"}]}``."""
        files = [{"path": f.path, "sha256": f.digest, "size": f.size} for f in self.files]
        return {**self.unrecognized, "mediaType": MEDIA_TYPE, "files": files}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Parse `to_dict` output; unknown top-level fields are kept.

        Raises:
            FormatError: the media type, a field or a path is wrong.
        """
        if _get(data, "mediaType", str, "manifest") != MEDIA_TYPE:
            raise FormatError(f"manifest mediaType is not {MEDIA_TYPE!r}")
        entries = _get(data, "files", list, "manifest")
        unknown = {k: v for k, v in data.items() if k not in ("mediaType", "files")}
        with _format_errors("invalid manifest"):
            return cls(tuple(_file_from_dict(entry) for entry in entries), unknown)

    @classmethod
    def from_directory(
        cls,
        root: Path,
        store: ArtifactStore | None = None,
        *,
        exclude: Iterable[str] = MODEL_SIGNING_IGNORED,
    ) -> Manifest:
        """Hash every regular file under ``root``, optionally putting each into ``store``.

        Symlinks to files inside ``root`` are hashed under the link's name; symlinks that
        leave ``root``, point at directories, or dangle are refused, as are special files.

        Args:
            root: the model or dataset directory.
            store: if given, each file is also stored (side effect: `ArtifactStore.put_file`).
            exclude: relative paths (files or directories) to skip; defaults to what
                model-signing skips (`MODEL_SIGNING_IGNORED`); ``()`` keeps everything.

        Raises:
            NotFoundError: ``root`` does not exist.
            InvalidInputError: ``root`` is not a directory, or holds a refused entry.
            StorageError: a file cannot be read, or the store written.
        """
        skip = frozenset(check_relative_path(p) for p in exclude)
        try:
            real = _real_dir(Path(root))
            return cls(tuple(_hashed(rel, p, store) for rel, p in _walk(real, real, (), skip)))
        except OSError as exc:  # the one seam for filesystem errors while reading the tree
            where = exc.filename or root
            raise StorageError(f"cannot read {where}: {exc.strerror or exc}") from exc

    def matches_model_signing_statement(self, statement: ModelSigningStatement) -> bool:
        """Whether ``statement`` lists exactly these files (names and SHA-256s)."""
        ours = [(f.path, f.digest) for f in self.files]
        return sorted(statement.resources, key=lambda r: _path_order(r[0])) == ours

    def matches_model_signing_bundle(self, bundle: bytes | str | Mapping[str, Any]) -> bool:
        """Whether a model-signing v1.0 Sigstore bundle covers exactly these files.

        Only digests are compared; the bundle's signature is NOT verified here.

        Raises:
            FormatError: the bundle is not a model-signing v1.0 ``files``/``sha256`` bundle.
        """
        return self.matches_model_signing_statement(ModelSigningStatement.from_bundle(bundle))


@dataclass(frozen=True, slots=True)
class ModelSigningStatement:
    """What a model-signing v1.0 in-toto statement says about a model.

    Args:
        name: the subject name (the signed directory's name; informative only).
        subject_digest: the subject's SHA-256 over the resources' digests.
        resources: ``(name, sha256)`` per resource, in the statement's order.
    """

    name: str
    subject_digest: str
    resources: tuple[tuple[str, str], ...]

    @classmethod
    def from_dict(cls, statement: Mapping[str, Any]) -> ModelSigningStatement:
        """Parse a statement, checking that its subject digest matches its resources.

        Raises:
            FormatError: not an in-toto v1 statement with a model-signing v1.0
                ``files``/``sha256`` predicate, or internally inconsistent.
        """
        if _get(statement, "_type", str, "statement") != _IN_TOTO_STATEMENT_TYPE:
            raise FormatError(f"statement _type is not {_IN_TOTO_STATEMENT_TYPE!r}")
        if _get(statement, "predicateType", str, "statement") != MODEL_SIGNING_PREDICATE_TYPE:
            raise FormatError(f"statement predicateType is not {MODEL_SIGNING_PREDICATE_TYPE!r}")
        subjects = _get(statement, "subject", list, "statement")
        if len(subjects) != 1:
            raise FormatError(f"statement has {len(subjects)} subjects, expected 1")
        digests = _get(subjects[0], "digest", dict, "subject")
        predicate = _get(statement, "predicate", dict, "statement")
        _check_serialization(_get(predicate, "serialization", dict, "predicate"))
        with _format_errors("invalid model-signing statement"):
            result = cls(
                _get(subjects[0], "name", str, "subject"),
                check_digest(_get(digests, "sha256", str, "subject digest")),
                tuple(_resource(r) for r in _get(predicate, "resources", list, "predicate")),
            )
        result._check_consistent()
        return result

    @classmethod
    def from_bundle(cls, bundle: bytes | str | Mapping[str, Any]) -> ModelSigningStatement:
        """Extract and parse the statement in a Sigstore bundle's DSSE envelope.

        Raises:
            FormatError: the bundle, its envelope or its statement is malformed.
        """
        document = bundle if isinstance(bundle, Mapping) else loads(bundle)
        envelope = _get(document, "dsseEnvelope", dict, "bundle")
        if _get(envelope, "payloadType", str, "dsseEnvelope") != _IN_TOTO_PAYLOAD_TYPE:
            raise FormatError(f"DSSE payloadType is not {_IN_TOTO_PAYLOAD_TYPE!r}")
        try:
            payload = base64.b64decode(
                _get(envelope, "payload", str, "dsseEnvelope"), validate=True
            )
        except binascii.Error as exc:
            raise FormatError(f"DSSE payload is not valid base64: {exc}") from exc
        statement = loads(payload)
        if not isinstance(statement, dict):
            raise FormatError("DSSE payload is not a JSON object")
        return cls.from_dict(statement)

    def _check_consistent(self) -> None:
        # model_signing hashes the digests in listed order and refuses a mismatch
        # (signing.dsse_payload_to_manifest), and a name may appear only once.
        names = [name for name, _ in self.resources]
        if len(set(names)) != len(names):
            raise FormatError("statement lists a resource name twice")
        actual = _subject_digest(digest for _, digest in self.resources)
        if actual != self.subject_digest:
            raise FormatError(
                f"statement is inconsistent: subject digest is sha256:{self.subject_digest} "
                f"but its resources hash to sha256:{actual}"
            )


def _subject_digest(digests: Iterable[str]) -> str:
    hasher = hashlib.sha256()
    for digest in digests:
        hasher.update(bytes.fromhex(digest))
    return hasher.hexdigest()


def _get(obj: object, key: str, kind: type[_T], where: str) -> _T:
    """``obj[key]`` if ``obj`` is a JSON object and the value has type ``kind``."""
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise FormatError(f"{where} field {key!r} must be a JSON {kind.__name__}")
    return value


@contextmanager
def _format_errors(what: str) -> Iterator[None]:
    """Report an invalid value inside a parsed document as that document's `FormatError`."""
    try:
        yield
    except FormatError:
        raise
    except InvalidInputError as exc:
        raise FormatError(f"{what}: {exc.message}") from exc


def _file_from_dict(entry: object) -> ManifestFile:
    if isinstance(entry, Mapping) and set(entry) != {"path", "sha256", "size"}:
        raise FormatError(
            f"manifest file entry has fields {sorted(entry)}; expected path, sha256, size"
        )
    return ManifestFile(
        _get(entry, "path", str, "file entry"),
        _get(entry, "sha256", str, "file entry"),
        _get(entry, "size", int, "file entry"),
    )


def _check_serialization(serialization: Mapping[str, Any]) -> None:
    method = serialization.get("method")
    hash_type = serialization.get("hash_type")
    if method != "files" or hash_type != "sha256":
        raise FormatError(
            f"model-signing serialization {method!r}/{hash_type!r} is not supported; "
            "expected 'files'/'sha256'",
            hint="sign with `model_signing sign` using the default file serialization",
        )


def _resource(resource: object) -> tuple[str, str]:
    if _get(resource, "algorithm", str, "resource") != "sha256":
        raise FormatError("resource algorithm is not 'sha256'")
    name = check_relative_path(_get(resource, "name", str, "resource"))
    return name, check_digest(_get(resource, "digest", str, "resource"))


def _real_dir(root: Path) -> Path:
    try:
        real = root.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NotFoundError(f"directory {root} does not exist") from exc
    except RuntimeError as exc:  # Python < 3.13 reports a symlink loop this way
        raise InvalidInputError(f"{root} is a symlink loop") from exc
    if not real.is_dir():
        raise InvalidInputError(f"{root} is not a directory")
    return real


def _walk(
    directory: Path, root: Path, parts: tuple[str, ...], skip: frozenset[str]
) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative POSIX path, path)`` for each regular file below ``directory``."""
    for name in sorted(os.listdir(directory)):
        rel_parts = (*parts, name)
        rel = "/".join(rel_parts)
        if rel in skip:
            continue
        path = directory / name
        if path.is_symlink():
            _check_link(path, rel, root)
            yield rel, path
        elif path.is_dir():
            yield from _walk(path, root, rel_parts, skip)
        elif path.is_file():
            yield rel, path
        else:
            raise InvalidInputError(f"{rel} is neither a regular file nor a directory")


def _check_link(path: Path, rel: str, root: Path) -> None:
    """Accept a symlink only if it resolves to a regular file inside ``root``."""
    try:
        target = path.resolve()
    except RuntimeError as exc:  # Python < 3.13 reports a symlink loop this way
        raise InvalidInputError(f"{rel} is a symlink loop") from exc
    if not target.is_relative_to(root):
        raise InvalidInputError(f"{rel} is a symlink to {target}, outside {root}")
    if not target.is_file():
        raise InvalidInputError(
            f"{rel} is a symlink to {target}, which is not a regular file",
            hint="model_signing skips symlinked directories; copy the files in instead",
        )


def _hashed(rel: str, path: Path, store: ArtifactStore | None) -> ManifestFile:
    info = hash_file(path) if store is None else store.put_file(path)
    return ManifestFile(rel, info.digest, info.size)
