"""The registry's core: opening a registry, the one append path, log queries and proofs.

Every command of every interface ends in `RegistryCore._append`, which builds drafts with
the acting principal and the interface they came from, appends them to the log and runs
the projections in the same transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, Self

from sqlalchemy.engine import Connection

from mltrail.access import queries as access
from mltrail.access.roles import Decision, decide
from mltrail.artifacts.store import ArtifactStore, open_store
from mltrail.errors import (
    AccessDeniedError,
    ConfigError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)
from mltrail.events import Action, Actor, Draft, Event, Ref, SubjectType, now_timestamp
from mltrail.ledger import merkle
from mltrail.ledger.audit import AuditReport, Progress, audit
from mltrail.ledger.checkpoint import Checkpoint, NoteSigner, split_note
from mltrail.ledger.keys import load_signer, save_signer
from mltrail.ledger.log import EventFilter, Log, Projector, Receipt, Receipts
from mltrail.settings import ActorSettings, Settings, default_actor_id, load_settings
from mltrail.storage import migrate
from mltrail.storage.database import Database

__all__ = ["Appended", "Origin", "RegistryCore"]

INTERFACES = frozenset({"cli", "api", "sdk", "importer", "demo"})


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """Where a command came from (DESIGN §2: `metadata.origin`)."""

    interface: str = "sdk"
    address: str | None = None

    def __post_init__(self) -> None:
        if self.interface not in INTERFACES:
            raise InvalidInputError(
                f"origin interface {self.interface!r} is not one of {sorted(INTERFACES)}"
            )

    def to_dict(self) -> dict[str, str]:
        out = {"interface": self.interface}
        if self.address:
            out["address"] = self.address
        return out


class Appended:
    """A command's result: the event it appended and its receipt.

    Given the append's `Receipts` instead of a receipt, the inclusion proof is computed
    when `receipt` is first read: it needs nothing the append does not already hold, and
    a caller that only wants the event should not pay for it on every command.
    """

    __slots__ = ("_index", "_receipt", "_receipts", "event")

    def __init__(
        self,
        event: Event,
        receipt: Receipt | None = None,
        *,
        of: tuple[Receipts, int] | None = None,
    ) -> None:
        if (receipt is None) == (of is None):
            raise TypeError("Appended needs exactly one of a receipt or (receipts, index)")
        self.event = event
        self._receipt = receipt
        self._receipts: Receipts | None = of[0] if of else None
        self._index = of[1] if of else 0

    @property
    def receipt(self) -> Receipt:
        if self._receipt is None:
            assert self._receipts is not None  # one of the two is always given
            self._receipt = self._receipts[self._index]
        return self._receipt

    def __repr__(self) -> str:
        return f"Appended(event={self.event!r})"


class RegistryCore:
    """Opening, appending, reading and proving. Use-case mixins build on this."""

    def __init__(
        self,
        root: Path,
        settings: Settings,
        *,
        actor: Actor | None = None,
        origin: Origin = Origin(),
        clock: Callable[[], str] = now_timestamp,
    ) -> None:
        self.root = root
        self.settings = settings
        self.db = Database.connect(settings.database)
        self.signer = load_signer(settings.resolve(root, settings.key_file))
        self.clock = clock
        self.log = self._open_log()
        self.store: ArtifactStore = open_store(
            settings.artifacts, endpoint_url=settings.s3_endpoint_url
        )
        self.actor = actor or _configured_actor(settings.actor)
        self.origin = origin

    def _open_log(self) -> Log:
        return Log(
            self.db,
            self.signer,
            origin=self.settings.origin,
            clock=self.clock,
            subjects_in_refs=True,
        )

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        root: str | os.PathLike[str],
        *,
        database: str | None = None,
        artifacts: str | None = None,
        origin: str | None = None,
        s3_endpoint_url: str | None = None,
        actor: Actor | None = None,
        interface: Origin = Origin(),
        clock: Callable[[], str] = now_timestamp,
    ) -> Self:
        """Create a registry in directory ``root``: keys, configuration, schema, first event.

        Raises:
            ConflictError: a registry already exists there.
        """
        path = Path(root).absolute()
        if (path / "config.json").exists():
            raise ConflictError(
                f"a registry already exists at {path}",
                hint="open it with --registry, or choose another directory",
            )
        settings = Settings.default(path, origin=origin, database=database, artifacts=artifacts)
        settings.s3_endpoint_url = s3_endpoint_url
        created = not path.exists()
        try:
            _create_files(path, settings)
            registry = cls(path, settings, actor=actor, origin=interface, clock=clock)
            registry._append(
                [
                    registry._draft(
                        Action.INIT,
                        Ref(SubjectType.REGISTRY, settings.origin),
                        metadata={
                            "verifier_key": registry.verifier_key,
                            "schema": migrate.head_revision(),
                        },
                    ),
                    registry._bootstrap_admin(),
                ]
            )
        except BaseException:
            if created:  # a failed init leaves nothing behind
                shutil.rmtree(path, ignore_errors=True)
            raise
        return registry

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        *,
        actor: Actor | None = None,
        origin: Origin = Origin(),
        clock: Callable[[], str] = now_timestamp,
    ) -> Self:
        """Open the registry in directory ``root``.

        Raises:
            ConfigError: there is no registry there.
        """
        path = Path(root).absolute()
        registry = cls(path, load_settings(path), actor=actor, origin=origin, clock=clock)
        try:
            migrate.require_head(registry.db)
        except BaseException:
            registry.close()
            raise
        return registry

    @classmethod
    def upgrade(
        cls,
        root: str | os.PathLike[str],
        *,
        actor: Actor | None = None,
        origin: Origin = Origin(),
        clock: Callable[[], str] = now_timestamp,
    ) -> Appended | None:
        """Migrate the registry's database to this mltrail's schema, as an admin, and log
        an `upgrade` event naming both revisions. None when it is already current.

        Raises:
            ConfigError: there is no registry there, or a newer mltrail upgraded it.
            AccessDeniedError: the actor is not an admin (the schema is left as it was).
        """
        path = Path(root).absolute()
        with cls(path, load_settings(path), actor=actor, origin=origin, clock=clock) as reg:
            before, head = migrate.current_revision(reg.db), migrate.head_revision()
            if before == head:
                return None
            migrate.require_head(reg.db, older_ok=True)
            reg._require("administer")
            migrate.upgrade(reg.db)
            draft = reg._draft(
                Action.UPGRADE,
                Ref(SubjectType.REGISTRY, reg.settings.origin),
                metadata={"from_schema": before, "to_schema": head},
            )
            return reg._append([draft])[0]

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @cached_property
    def secret(self) -> bytes:
        """The registry's key for keyed hashes (HMAC) of sensitive values."""
        return self.settings.resolve(self.root, self.settings.secret_file).read_bytes()

    @property
    def verifier_key(self) -> str:
        """The registry's C2SP note verifier key: all an auditor needs to check proofs."""
        return self.signer.verifier_key

    # -- the one append path -------------------------------------------------------------

    def _draft(
        self,
        action: str,
        subject: Ref,
        *,
        related: Sequence[Ref] = (),
        metadata: Mapping[str, Any] | None = None,
        artifact_sha256: str | None = None,
        outcome: str = "success",
    ) -> Draft:
        meta = dict(metadata or {})
        meta.setdefault("outcome", outcome)
        meta["origin"] = self.origin.to_dict()
        return Draft(action, self.actor, subject, tuple(related), meta, artifact_sha256)

    def _append(self, drafts: Sequence[Draft], project: Projector | None = None) -> list[Appended]:
        receipts = self.log.append(drafts, project=project or self._project)
        return [Appended(event, of=(receipts, i)) for i, event in enumerate(receipts.events)]

    def _bootstrap_admin(self) -> Draft:
        """The one who creates the registry is its first admin."""
        kind = "service" if self.actor.type == "service" else "user"
        meta = {"principal_type": kind, "display_name": self.actor.id, "roles": ["admin"]}
        return self._draft(
            Action.REGISTER, Ref(SubjectType.PRINCIPAL, self.actor.id), metadata=meta
        )

    def _require(self, permission: str, scope: str = "*") -> None:
        """Refuse (and log the refusal) unless the actor may use ``permission`` on ``scope``."""
        with self.db.read() as conn:
            decision = self._decide(conn, permission, scope)
        if not decision:
            self._refuse(permission, scope, decision)

    @contextlib.contextmanager
    def _command(
        self, permission: str, scope: str | Callable[[Connection], str] = "*"
    ) -> Iterator[Connection]:
        """One use case in one write transaction, entered only if the actor may use
        ``permission`` on ``scope``: the check, the reads the command depends on and its
        append see one state, take one lock and pay for one commit.

        A ``scope`` that is itself read from the database (the model a deployment serves)
        is given as a function of the connection, so it is read in the same transaction
        as the decision it scopes.

        Raises:
            AccessDeniedError: the actor may not; the refusal is logged (after this
                transaction closes, in one of its own) before this raises, as with `_require`.
        """
        with self._transaction() as conn:
            if callable(scope):
                scope = scope(conn)
            decision = self._decide(conn, permission, scope)
            if decision:
                yield conn
                return
        self._refuse(permission, scope, decision)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction that `_append` joins (see `Database.write`)."""
        try:
            with self.db.write() as conn:
                yield conn
        except BaseException:
            # An append that returned inside the transaction left the log's in-memory
            # frontier at a tree the rollback just undid; start over from the database.
            self.log = self._open_log()
            raise

    def _decide(self, conn: Connection, permission: str, scope: str) -> Decision:
        active, grants = access.authority(conn, self.actor.id)
        return decide(permission, scope, grants, active=active)

    def _refuse(self, permission: str, scope: str, decision: Decision) -> NoReturn:
        """Log the refusal, in a transaction of its own, and raise AccessDeniedError."""
        draft = self._draft(
            Action.REJECT,
            Ref(SubjectType.PRINCIPAL, self.actor.id),
            metadata={"attempted": permission, "scope": scope, "reasons": [decision.reason]},
            outcome="failure",
        )
        self._append([draft])
        where = "every model" if scope == "*" else f"model {scope!r}"
        raise AccessDeniedError(
            f"{self.actor.id} may not {permission} on {where}: {decision.reason}"
        )

    def _project(self, conn: Any, events: Sequence[Event]) -> None:
        """Update projections for ``events``; mixins extend this."""

    # -- reading the log -----------------------------------------------------------------

    def events(self, where: EventFilter | None = None) -> Iterator[Event]:
        return self.log.events(where or EventFilter())

    def event(self, ref: int | str) -> Event:
        return self.log.event(ref)

    def checkpoint(self) -> tuple[Checkpoint, str]:
        """The newest signed checkpoint (parsed, and as the signed note)."""
        return self.log.latest_checkpoint()

    def prove_event(self, ref: int | str, size: int | None = None) -> Receipt:
        """A receipt (index, signed checkpoint, inclusion proof) for an existing event."""
        event = self.log.event(ref)
        checkpoint, note = self.checkpoint()
        if size is not None and size != checkpoint.size:
            note = self.log.checkpoint_at(size)
            checkpoint = _body(note)
        if event.seq >= checkpoint.size:
            raise NotFoundError(
                f"event {event.seq} is not covered by a checkpoint of size {checkpoint.size}"
            )
        proof = self.log.inclusion_proof(event.seq, checkpoint.size)
        receipt = Receipt(event.seq, event.event_sha256, note, tuple(proof))
        receipt.verify([self.verifier_key])
        return receipt

    def prove_consistency(self, size1: int, size2: int | None = None) -> dict[str, Any]:
        """Consistency proof between two signed tree sizes, self-checked before returning."""
        size2 = size2 if size2 is not None else self.checkpoint()[0].size
        note1, note2 = self.log.checkpoint_at(size1), self.log.checkpoint_at(size2)
        cp1, cp2 = _body(note1), _body(note2)
        proof = self.log.consistency_proof(size1, size2) if size1 != size2 else []
        merkle.verify_consistency(size1, size2, proof, cp1.root_hash, cp2.root_hash)
        return {
            "size1": size1,
            "size2": size2,
            "checkpoint1": note1,
            "checkpoint2": note2,
            "proof": [h.hex() for h in proof],
        }

    def verify(
        self,
        *,
        trusted: str | None = None,
        progress: Progress | None = None,
        all_signatures: bool = False,
    ) -> AuditReport:
        """Check the whole log; see `mltrail.ledger.audit`."""
        return audit(
            self.db,
            [self.verifier_key],
            trusted=trusted,
            progress=progress,
            all_signatures=all_signatures,
        )

    # -- artifacts -----------------------------------------------------------------------

    def put_artifact(self, stream: BinaryIO, *, name: str | None = None) -> Appended:
        """Store bytes under their SHA-256 and record an `artifact` register event."""
        self._require("register")
        info = self.store.put(stream)
        meta = {"size": info.size, **({"name": name} if name else {})}
        draft = self._draft(
            Action.REGISTER,
            Ref(SubjectType.ARTIFACT, info.digest, digest=info.digest),
            metadata=meta,
            artifact_sha256=info.digest,
        )
        return self._append([draft])[0]

    def get_artifact(self, digest: str, dest: Path) -> Appended:
        """Copy a verified artifact to ``dest`` and record the download (`access`)."""
        self._require("read")
        self.store.get(digest, dest)
        draft = self._draft(
            Action.ACCESS,
            Ref(SubjectType.ARTIFACT, digest, digest=digest),
            metadata={"access": "download"},
            artifact_sha256=digest,
        )
        return self._append([draft])[0]

    def verify_artifact(self, digest: str) -> None:
        """Re-hash a stored artifact. Raises IntegrityError or NotFoundError."""
        self.store.verify(digest)

    def verify_artifacts(self, digests: Sequence[str] | None = None) -> dict[str, Any]:
        """Re-hash ``digests`` (default: everything stored); returns what failed and why."""
        problems: dict[str, str] = {}
        checked = 0
        for digest in digests if digests is not None else self.store.iter_digests():
            checked += 1
            try:
                self.store.verify(digest)
            except (IntegrityError, NotFoundError) as exc:
                problems[digest] = exc.message
        return {"checked": checked, "problems": problems}


def _body(note: str) -> Checkpoint:
    """The checkpoint a signed note carries (its signature was checked where it was read)."""
    return Checkpoint.from_text(split_note(note)[0])


def _configured_actor(configured: ActorSettings | None) -> Actor:
    if configured is not None:
        return Actor(configured.type, configured.id)
    return Actor("user", default_actor_id())


def _create_files(path: Path, settings: Settings) -> None:
    path.mkdir(parents=True, exist_ok=True)
    key_file = settings.resolve(path, settings.key_file)
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_signer(key_file, NoteSigner.generate(settings.origin))
    _write_secret(settings.resolve(path, settings.secret_file))
    db = Database.connect(settings.database)
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    settings.save(path)


def _write_secret(path: Path) -> None:
    """A 32-byte random key for keyed hashes (HMAC) of sensitive values, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"secret file {path} already exists; refusing to overwrite it") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(os.urandom(32))


def parse_subject(text: str) -> Ref:
    """``type:id`` (``model_version:model:churn:v2``) or a bare id; see `mltrail show`."""
    kind, sep, ident = text.partition(":")
    if sep and kind in SubjectType.__members__.values():
        return Ref(kind, ident)
    raise InvalidInputError(
        f"subject {text!r} should be TYPE:ID with TYPE one of {', '.join(SubjectType)}",
        hint="for example model_version:model:churn:v2 or dataset:DS:2024-05-15",
    )
