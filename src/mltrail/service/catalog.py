"""Registry use cases: datasets, code, environments, runs, models, versions, deployments.

Each command validates its input, refuses a duplicate id with different content (and is a
no-op for identical content), and appends one event whose `related` entries carry the
lineage (`add_versions` one per new version, all in one append). Projections follow in the
same transaction (`mltrail.catalog.projector`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from mltrail.artifacts.digest import ArtifactInfo
from mltrail.artifacts.manifest import Manifest
from mltrail.canonical import canonicalize, loads
from mltrail.capture.environment import Environment, capture_environment
from mltrail.capture.git import CodeVersion, capture_commit, explicit_commit
from mltrail.catalog import queries
from mltrail.catalog.ids import check_id, check_name, normalize_version, parse_version, version_id
from mltrail.catalog.projector import project_events
from mltrail.errors import (
    ConflictError,
    FormatError,
    InvalidInputError,
    NotFoundError,
    RegistryError,
)
from mltrail.events import (
    Action,
    Draft,
    Event,
    Ref,
    SubjectType,
    format_timestamp,
    parse_timestamp,
    sha256_hex,
    uuid7,
)
from mltrail.service.base import Appended, RegistryCore

__all__ = ["MAX_VERSIONS_PER_CALL", "CatalogUseCases", "VersionSpec", "content_digest"]

# The limit of one `add_versions` call. Every manifest is read and held before the write
# transaction opens, which then holds the write lock for the whole batch; by 1,000 the
# shared fsync and signature are already under 1% of the cost per version.
MAX_VERSIONS_PER_CALL = 1000
RUN_STATUSES = frozenset({"running", "finished", "failed", "killed"})
STAGES = ("none", "staging", "production", "archived")


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """One version for `Registry.add_versions`: the files under ``path`` or a
    stored ``manifest`` (its SHA-256), the ``run`` that produced them and the scoring
    ``entrypoint`` (``file.py:function``), as `add_version` takes them.

    That exactly one of ``path`` and ``manifest`` is given is checked when the version is
    registered, not here: a caller who may not register versions is refused (and the
    refusal logged) whatever else is wrong with the request.

    >>> VersionSpec.from_dict({"manifest": "ab" * 32, "run": "R678"}).run
    'R678'
    """

    path: Path | None = None
    manifest: str | None = None
    run: str | None = None
    entrypoint: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> VersionSpec:
        """Read ``{"path" | "manifest", "run", "entrypoint"}``, each a string or null.

        Raises:
            FormatError: not an object, an unknown field, or a value that is not a string.
        """
        if not isinstance(data, Mapping):
            raise FormatError(
                "a version should be an object with path or manifest, run and entrypoint; "
                f"got {type(data).__name__}"
            )
        unknown = sorted(set(data) - set(cls.__slots__))
        if unknown:
            raise FormatError(
                f"unknown version field {unknown[0]!r}; expected path, manifest, run, entrypoint"
            )
        for name, value in data.items():
            if value is not None and not isinstance(value, str):
                raise FormatError(f"version field {name!r} should be a string; got {value!r}")
        path = data.get("path")
        return cls(
            None if path is None else Path(path),
            data.get("manifest"),
            data.get("run"),
            data.get("entrypoint"),
        )

    def to_dict(self) -> dict[str, str]:
        """The fields that are set; `from_dict` reads it back."""
        out = {"path": None if self.path is None else str(self.path)}
        out |= {"manifest": self.manifest, "run": self.run, "entrypoint": self.entrypoint}
        return {k: v for k, v in out.items() if v is not None}


def content_digest(content: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical form of what an id was registered with."""
    return sha256_hex(canonicalize(dict(content)))


class CatalogUseCases(RegistryCore):
    """Registering and changing the things the registry keeps track of."""

    def _project(self, conn: Any, events: Sequence[Event]) -> None:
        project_events(conn, events)

    # -- idempotent registration ---------------------------------------------------------

    def _existing(self, kind: str, key: str, content: str) -> Appended | None:
        """The earlier registration of ``key`` if its content matches; raises if it differs."""
        with self.db.read() as conn:
            row = queries.find(conn, kind, key)
        if row is None:
            return None
        if row.get("content_sha256") not in (None, content):
            raise ConflictError(
                f"{kind.replace('_', ' ')} {key!r} is already registered with different content",
                hint="registered records are immutable; register the change under a new id",
            )
        event = self.log.event(int(row["seq"]))
        return Appended(event, self.prove_event(event.seq))

    def _register(self, kind: str, key: str, content: dict[str, Any], **draft: Any) -> Appended:
        digest = content_digest(content)
        earlier = self._existing(kind, key, digest)
        if earlier is not None:
            return earlier
        metadata = {**content, "content_sha256": digest, **draft.pop("metadata", {})}
        return self._append([self._draft(Action.REGISTER, metadata=metadata, **draft)])[0]

    # -- datasets, code, environments -------------------------------------------------------

    def register_dataset(
        self,
        dataset_id: str,
        *,
        name: str,
        version: str,
        uri: str | None = None,
        path: Path | None = None,
        digest: str | None = None,
    ) -> Appended:
        """A dataset version with its content identity: a manifest of its files (stored)
        when ``path`` is given, or the SHA-256 of a manifest kept elsewhere (``digest``).

        Raises:
            InvalidInputError: neither or both of ``path`` and ``digest``.
        """
        self._require("register")
        check_id(dataset_id, "dataset id")
        if (path is None) == (digest is None):
            raise InvalidInputError(
                f"dataset {dataset_id!r} needs exactly one of a directory (--path) or a manifest "
                "digest (--digest) as its content identity"
            )
        files = size = None
        if path is not None:
            manifest = Manifest.from_directory(path, self.store)
            digest = self.store.put_bytes(canonicalize(manifest.to_dict())).digest
            files, size = len(manifest.files), manifest.size
        content = {
            "name": name,
            "version": version,
            "uri": uri,
            "digest": digest,
            "files": files,
            "size": size,
        }
        return self._register(
            "dataset",
            dataset_id,
            content,
            subject=Ref(SubjectType.DATASET, dataset_id, digest=digest),
            artifact_sha256=digest,
        )

    def register_code(
        self, *, path: Path | None = None, repository: str | None = None, commit: str | None = None
    ) -> Appended:
        """A code version: captured from the git checkout at ``path`` or given explicitly."""
        self._require("register")
        if commit is not None:
            code = explicit_commit(repository or "unknown", commit)
        else:
            code = capture_commit(path or Path.cwd())
        return self._register_code(code)

    def _register_code(self, code: CodeVersion) -> Appended:
        content = code.to_dict()
        return self._register(
            "commit", code.commit, content, subject=Ref(SubjectType.COMMIT, code.commit)
        )

    def register_environment(
        self, environment: Environment | None = None, *, project_dir: Path | None = None
    ) -> Appended:
        """An environment fingerprint (captured from this interpreter by default), stored
        as a canonical JSON document whose SHA-256 is its identity."""
        self._require("register")
        env = environment or capture_environment(project_dir)
        for lock in env.lockfiles:
            if project_dir is None:
                break
            # The lockfile itself is kept, so `repro --isolated` can rebuild the environment.
            path = project_dir / lock.name
            if path.is_file() and self.store.put_file(path).digest != lock.sha256:
                raise InvalidInputError(
                    f"lockfile {path} changed while it was being recorded; try again"
                )
        document = canonicalize(env.to_dict())
        stored = self.store.put_bytes(document)
        env_id = f"sha256:{stored.digest}"
        summary = _environment_summary(env)
        return self._register(
            "environment",
            env_id,
            summary,
            subject=Ref(SubjectType.ENVIRONMENT, env_id, digest=stored.digest),
            artifact_sha256=stored.digest,
        )

    # -- runs --------------------------------------------------------------------------------

    def register_run(
        self,
        run_id: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        datasets: Sequence[str] = (),
        commit: str | None = None,
        environment: str | None = None,
        status: str = "finished",
        started_at: str | None = None,
        ended_at: str | None = None,
        author: str | None = None,
    ) -> Appended:
        """A training run with its inputs: datasets, code commit, environment, parameters.

        Without ``run_id`` the run gets a new UUIDv7 id (read it from the returned event).

        Raises:
            NotFoundError: a referenced dataset, commit or environment is not registered.
        """
        self._require("register")
        run_id = check_id(run_id, "run id") if run_id is not None else uuid7()
        if status not in RUN_STATUSES:
            raise InvalidInputError(f"run status {status!r} is not one of {sorted(RUN_STATUSES)}")
        related = self._run_inputs(datasets, commit, environment)
        content = {
            "params": dict(params or {}),
            "metrics": dict(metrics or {}),
            "datasets": sorted(datasets),
            "commit": commit,
            "environment": environment,
            "status": status,
            "started_at": _time(started_at),
            "ended_at": _time(ended_at),
            "author": author or self.actor.id,
        }
        return self._register(
            "run", run_id, content, subject=Ref(SubjectType.RUN, run_id), related=related
        )

    def _run_inputs(
        self, datasets: Sequence[str], commit: str | None, environment: str | None
    ) -> list[Ref]:
        related = []
        with self.db.read() as conn:
            for dataset in datasets:
                row = queries.get(conn, "dataset", dataset)
                related.append(Ref(SubjectType.DATASET, dataset, role="used", digest=row["digest"]))
            if commit is not None:
                queries.get(conn, "commit", commit)
                related.append(Ref(SubjectType.COMMIT, commit, role="built_from"))
            if environment is not None:
                row = queries.get(conn, "environment", environment)
                related.append(
                    Ref(
                        SubjectType.ENVIRONMENT,
                        environment,
                        role="ran_in",
                        digest=row["document_sha256"],
                    )
                )
        return related

    # -- models and versions ------------------------------------------------------------------

    def register_model(self, name: str, *, description: str | None = None) -> Appended:
        """A model: a name under which versions are numbered v1, v2, …"""
        self._require("register", name)
        check_name(name)
        return self._register(
            "model", name, {"description": description}, subject=Ref(SubjectType.MODEL, name)
        )

    def add_version(
        self,
        model: str,
        path: Path | None = None,
        *,
        manifest: str | None = None,
        run: str | None = None,
        entrypoint: str | None = None,
    ) -> Appended:
        """Register the next version of ``model``: the files under ``path`` (each stored),
        or a manifest already in the artifact store (``manifest``, its SHA-256; every file
        it lists must be stored too). The manifest's digest is the version's identity.
        Registering the same files from the same run again returns the existing version.
        This is `add_versions` of one version.

        Raises:
            NotFoundError: the model, the run, the manifest or one of its files is missing.
            InvalidInputError: neither or both of ``path`` and ``manifest``.
        """
        return self.add_versions(model, [VersionSpec(path, manifest, run, entrypoint)])[0]

    def add_versions(self, model: str, versions: Sequence[VersionSpec]) -> list[Appended]:
        """Register ``versions`` of ``model`` as `add_version` would one by one, in order,
        but all or nothing and as one append (group commit): one transaction, one durable
        commit and one signed checkpoint for the whole batch.

        New versions are numbered consecutively. A spec with the files and run of a
        registered version, or of an earlier spec in the batch, gets that version's event,
        as `add_version` does for a registration repeated. Every spec's files are checked
        (and a directory's stored) before the transaction opens; the model, the runs and
        the actor's authority are checked inside it, so nothing is written unless every
        spec can be.

        Args:
            model: a registered model name.
            versions: 1 to `MAX_VERSIONS_PER_CALL` specs.

        Returns:
            One `Appended` per spec, in order (the same one for specs that are the same).

        Raises:
            AccessDeniedError: the actor may not register versions of ``model`` (the
                refusal is logged, whatever else is wrong with the request).
            NotFoundError: the model, a run, a manifest or one of its files is missing.
            InvalidInputError: no specs or too many, or a spec with neither or both of a
                path and a manifest. An error about one spec of several names its position.
        """
        manifests = self._version_manifests(model, versions)
        wanted = [
            (stored.digest, s.run) for s, (_, stored) in zip(versions, manifests, strict=True)
        ]
        with self._command("register", model) as conn:
            slots = queries.version_slots(conn, model, wanted)
            drafts: dict[int, Draft] = {}
            for spec, (found, stored), slot in zip(versions, manifests, slots, strict=True):
                if slot.existing is None and slot.number not in drafts:
                    drafts[slot.number] = self._version_draft(
                        model, slot.number, found, stored, spec.run, spec.entrypoint
                    )
            new = self._append(list(drafts.values())) if drafts else []
            appended = dict(zip(drafts, new, strict=True))
        # Registered before: their receipts are proved after the write lock is released.
        earlier = {s.existing: self._proved(s.existing) for s in slots if s.existing is not None}
        return [appended[s.number] if s.existing is None else earlier[s.existing] for s in slots]

    def _proved(self, seq: int) -> Appended:
        event = self.log.event(seq)
        return Appended(event, self.prove_event(event.seq))

    def _version_draft(
        self,
        model: str,
        number: int,
        found: Manifest,
        stored: ArtifactInfo,
        run: str | None,
        entrypoint: str | None,
    ) -> Draft:
        related = [Ref(SubjectType.MODEL, model, role="version_of")]
        if run is not None:
            related.append(Ref(SubjectType.RUN, run, role="produced_by"))
        meta = {
            "model": model,
            "number": number,
            "files": len(found.files),
            "size": found.size,
            "entrypoint": entrypoint,
            "model_signing_digest": found.model_signing_digest,
        }
        return self._draft(
            Action.REGISTER,
            Ref(SubjectType.MODEL_VERSION, version_id(model, number), digest=stored.digest),
            related=related,
            metadata=meta,
            artifact_sha256=stored.digest,
        )

    def _version_manifests(
        self, model: str, versions: Sequence[VersionSpec]
    ) -> list[tuple[Manifest, ArtifactInfo]]:
        """Each new version's manifest and where it is stored, in order.

        A directory's files are stored only once the actor may register versions of
        ``model``. Reading a stored manifest has no side effects, so it is done before the
        command's transaction opens (the write lock is not held for artifact I/O); the
        authority check then happens inside it, or first should the reading fail: a caller
        who may not register is refused, and the refusal logged, whatever else is wrong.
        """
        if any(spec.path is not None for spec in versions):
            self._require("register", model)
        manifests = []
        try:
            _check_batch_size(len(versions))
            for i, spec in enumerate(versions):
                with _naming(i, len(versions)):
                    manifests.append(self._version_manifest(spec))
        except RegistryError:
            self._require("register", model)
            raise
        return manifests

    def _version_manifest(self, spec: VersionSpec) -> tuple[Manifest, ArtifactInfo]:
        if spec.path is not None and spec.manifest is None:
            found = Manifest.from_directory(spec.path, self.store)
            return found, self.store.put_bytes(canonicalize(found.to_dict()))
        if spec.manifest is None or spec.path is not None:
            raise InvalidInputError(
                "a version needs exactly one of a directory or a stored manifest digest"
            )
        return self._stored_manifest(spec.manifest)

    def _stored_manifest(self, digest: str) -> tuple[Manifest, ArtifactInfo]:
        data = self.store.read_bytes(digest)  # verified against its digest
        found = Manifest.from_dict(loads(data))
        missing = [f.path for f in found.files if self.store.stat(f.digest) != f.size]
        if missing:
            raise NotFoundError(
                f"manifest {digest[:16]}… lists files that are not stored: {missing[:5]}",
                hint="put them first (`mltrail artifact put`)",
            )
        return found, ArtifactInfo(digest, len(data))

    def get_version(self, version: str) -> dict[str, Any]:
        """The projection row of a version (``model:churn:v2`` or ``churn:v2``)."""
        with self.db.read() as conn:
            return queries.get(conn, "model_version", normalize_version(version))

    def resolve_version(self, ref: str) -> str:
        """A version id: ``model:NAME:vN``, ``NAME:vN``, ``NAME@ALIAS`` or ``NAME@production``."""
        if "@" not in ref:
            return str(self.get_version(ref)["version_id"])
        model, _, alias = ref.partition("@")
        with self.db.read() as conn:
            found = (
                queries.production_version(conn, model)
                if alias == "production"
                else queries.resolve_alias(conn, model, alias)
            )
        if found is None:
            raise NotFoundError(
                f"model {model!r} has no version at {alias!r}",
                hint=f"list versions with `mltrail model show {model}`",
            )
        return str(found)

    def list_versions(self, model: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            queries.get(conn, "model", model)
            return queries.list_versions(conn, model)

    def set_alias(self, version: str, alias: str) -> Appended:
        """Point ``alias`` of the version's model at this version (history in the log)."""
        with self._command("promote", parse_version(version)[0]):
            check_name(alias, "alias")
            row = self.get_version(version)
            draft = self._draft(
                Action.SET_ALIAS,
                Ref(SubjectType.MODEL_VERSION, row["version_id"], digest=row["manifest_sha256"]),
                metadata={"model": row["model"], "alias": alias},
            )
            return self._append([draft])[0]

    # -- deployments --------------------------------------------------------------------------

    def deploy(
        self,
        deployment_id: str,
        version: str,
        *,
        target: str,
        config: Mapping[str, Any] | None = None,
    ) -> Appended:
        """Point deployment ``deployment_id`` at ``version`` (creating or updating it).

        The version is checked deployable, and the version it replaces read, in the
        transaction that appends the event: a version flagged, or a deployment changed, by
        another writer meanwhile is seen.
        """
        model = self._model_of(version)
        config_digest = self._stored_config(deployment_id, model, config)
        with self._command("deploy", model) as conn:
            check_id(deployment_id, "deployment id")
            row = self._deployable(version)
            current = queries.find(conn, "deployment", deployment_id)
            return self._append(
                [self._deployment(deployment_id, row, target, config_digest, current)]
            )[0]

    def _stored_config(
        self, deployment_id: str, model: str, config: Mapping[str, Any] | None
    ) -> str | None:
        """Store a deployment's configuration, once the actor may deploy ``model``: before
        the command's transaction, so the write lock is not held for artifact I/O."""
        if not config:
            return None
        self._require("deploy", model)
        check_id(deployment_id, "deployment id")
        return self.store.put_bytes(canonicalize(dict(config))).digest

    def _deployment(
        self,
        deployment_id: str,
        row: Mapping[str, Any],
        target: str,
        config_digest: str | None,
        current: Mapping[str, Any] | None,
    ) -> Draft:
        meta = {
            "version": row["version_id"],
            "model": row["model"],
            "target": target,
            "config_sha256": config_digest,
            "previous_version": current["version_id"] if current else None,
        }
        return self._draft(
            Action.DEPLOY,
            Ref(SubjectType.DEPLOYMENT, deployment_id),
            related=[
                Ref(
                    SubjectType.MODEL_VERSION,
                    row["version_id"],
                    role="serves",
                    digest=row["manifest_sha256"],
                )
            ],
            metadata=meta,
            artifact_sha256=row["manifest_sha256"],
        )

    def _model_of(self, version: str) -> str:
        return version.partition("@")[0] if "@" in version else parse_version(version)[0]

    def _deployable(self, version: str) -> dict[str, Any]:
        # Inside a command, these reads join its transaction (`Database.read`).
        row = self.get_version(self.resolve_version(version))
        if "integrity_failed" in row["flags"]:
            raise ConflictError(
                f"model version {row['version_id']} failed an integrity check; "
                "it cannot be deployed",
                hint="repair the artifact and record it with `mltrail reconcile --resolve`",
            )
        return row

    def rollback(self, deployment_id: str, *, to: str | None = None, reason: str) -> Appended:
        """Point a deployment back at a known-good version: ``to``, or the one it served before.

        Raises:
            NotFoundError: the deployment never served another version and ``to`` is not given.
        """
        with self._command("deploy", _served_model(deployment_id)) as conn:
            if not reason:
                raise InvalidInputError("a rollback needs a reason (--reason)")
            current = queries.get(conn, "deployment", deployment_id)
            target = (
                self._deployable(to)
                if to
                else self._previous_version(deployment_id, current["version_id"])
            )
            return self._append([self._rollback(deployment_id, current, target, reason)])[0]

    def _rollback(
        self,
        deployment_id: str,
        current: Mapping[str, Any],
        target: Mapping[str, Any],
        reason: str,
    ) -> Draft:
        meta = {
            "from_version": current["version_id"],
            "to_version": target["version_id"],
            "model": target["model"],
            "reason": reason,
        }
        related = [
            Ref(
                SubjectType.MODEL_VERSION,
                target["version_id"],
                role="serves",
                digest=target["manifest_sha256"],
            ),
            Ref(SubjectType.MODEL_VERSION, current["version_id"], role="replaced"),
        ]
        return self._draft(
            Action.ROLLBACK,
            Ref(SubjectType.DEPLOYMENT, deployment_id),
            related=related,
            metadata=meta,
            artifact_sha256=target["manifest_sha256"],
        )

    def _previous_version(self, deployment_id: str, current: str) -> dict[str, Any]:
        from mltrail.ledger.log import EventFilter

        history = self.events(
            EventFilter(subject_type="deployment", subject_id=deployment_id, descending=True)
        )
        for event in history:
            for key in ("previous_version", "from_version"):
                candidate = event.metadata.get(key)
                if candidate and candidate != current and event.outcome == "success":
                    return self._deployable(candidate)
        raise NotFoundError(
            f"deployment {deployment_id!r} never served a version before {current}",
            hint="name the version to roll back to with --to",
        )

    def retire_deployment(self, deployment_id: str, *, reason: str) -> Appended:
        """Take a deployment out of service."""
        with self._command("deploy", _served_model(deployment_id)) as conn:
            current = queries.get(conn, "deployment", deployment_id)
            draft = self._draft(
                Action.RETIRE,
                Ref(SubjectType.DEPLOYMENT, deployment_id),
                metadata={"reason": reason, "version": current["version_id"]},
            )
            return self._append([draft])[0]


def _served_model(deployment_id: str) -> Callable[[Connection], str]:
    """The scope of a command on a deployment: the model it serves, read in the command's
    transaction (`RegistryCore._command`).

    Raises:
        NotFoundError: there is no such deployment.
    """

    def read(conn: Connection) -> str:
        return str(queries.get(conn, "deployment", deployment_id)["model"])

    return read


def _check_batch_size(count: int) -> None:
    if count == 0:
        raise InvalidInputError("no versions to register: the batch is empty")
    if count > MAX_VERSIONS_PER_CALL:
        raise InvalidInputError(
            f"{count} versions in one call; the limit is {MAX_VERSIONS_PER_CALL}",
            hint=f"split them into batches of at most {MAX_VERSIONS_PER_CALL}",
        )


@contextlib.contextmanager
def _naming(index: int, count: int) -> Iterator[None]:
    """An error about item ``index`` of a batch of ``count`` says which item (if count > 1)."""
    try:
        yield
    except RegistryError as exc:
        if count == 1:
            raise
        raise type(exc)(
            f"item {index + 1} of {count}: {exc.message}", hint=exc.hint(), errors=exc.errors
        ) from exc


def _time(text: str | None) -> str | None:
    return None if text is None else format_timestamp(parse_timestamp(text))


def _environment_summary(env: Environment) -> dict[str, Any]:
    return {
        "python": f"{env.python_implementation} {env.python_version}",
        "platform": f"{env.system} {env.machine}",
        "lockfile_sha256": env.lockfiles[0].sha256 if env.lockfiles else None,
        "lockfiles": {lock.name: lock.sha256 for lock in env.lockfiles},
        "image_digest": env.image_digest,
        "packages": len(env.packages),
        "gpu": list(env.gpu) if env.gpu else None,
        "cuda": env.cuda,
    }
