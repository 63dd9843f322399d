"""Projections: current state derived from events, in the same transaction as the append.

Every handler reads only the event (and, for prediction batches, the batch's records), so
`rebuild` can replay the log into empty tables and obtain exactly the live ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mltrail.canonical import dumps_text, loads
from mltrail.events import Event
from mltrail.storage import raw
from mltrail.storage import schema as t

__all__ = ["insert_ignore", "insert_row", "project_events", "set_flag"]

Handler = Callable[[Connection, Event], None]


def insert_ignore(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows``, skipping those whose primary key exists (SQLite and PostgreSQL both
    accept ``ON CONFLICT DO NOTHING``); plain SQL, as this runs on every append."""
    if not rows:
        return
    names = tuple(rows[0])
    raw.executemany(
        conn, _insert_sql(table.name, names, ignore=True), [_values(r, names) for r in rows]
    )


def insert_row(conn: Connection, table: sa.Table, **values: Any) -> None:
    """Insert one row in plain SQL: projections run inside every append, where building
    a SQLAlchemy statement costs more than the insert itself."""
    names = tuple(values)
    raw.execute(conn, _insert_sql(table.name, names, ignore=False), _values(values, names))


@functools.cache
def _insert_sql(table: str, names: tuple[str, ...], *, ignore: bool) -> str:
    """The INSERT for these columns, built once: every append runs a few of them."""
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    return sql + " ON CONFLICT DO NOTHING" if ignore else sql


def _values(row: Mapping[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    # Plain `str` for the driver: enum members (`SubjectType.MODEL`) are str subclasses.
    return tuple(
        str(v) if isinstance(v, str) and type(v) is not str else v for v in map(row.get, names)
    )


def project_events(conn: Connection, events: Iterable[Event]) -> None:
    """Apply ``events`` to every projection table."""
    refs: list[tuple[str, str, int]] = []
    for event in events:
        keys = {event.subject.key(), *(ref.key() for ref in event.related)}
        refs.extend((str(kind), str(ident), event.seq) for kind, ident in keys)
        success = event.outcome == "success"
        if success:
            _lineage(conn, event)
        handler = _HANDLERS.get((event.action, event.subject.type))
        if handler is not None and success:
            handler(conn, event)
    raw.executemany(conn, _insert_sql(t.event_refs.name, _REF_COLUMNS, ignore=True), refs)


_REF_COLUMNS = ("ref_type", "ref_id", "seq")
_EDGE_COLUMNS = ("src_type", "src_id", "role", "dst_type", "dst_id", "seq")


def _lineage(conn: Connection, event: Event) -> None:
    subject = event.subject
    edges = [
        (str(subject.type), str(subject.id), str(ref.role), str(ref.type), str(ref.id), event.seq)
        for ref in event.related
        if ref.role is not None
    ]
    raw.executemany(conn, _insert_sql(t.lineage_edges.name, _EDGE_COLUMNS, ignore=True), edges)


def _meta(event: Event, key: str, default: Any = None) -> Any:
    return event.metadata.get(key, default)


def _dataset(conn: Connection, e: Event) -> None:
    insert_row(
        conn,
        t.datasets,
        dataset_id=e.subject.id,
        name=_meta(e, "name"),
        version=_meta(e, "version"),
        uri=_meta(e, "uri"),
        digest=e.subject.digest,
        files=_meta(e, "files"),
        size=_meta(e, "size"),
        content_sha256=_meta(e, "content_sha256"),
        seq=e.seq,
    )


def _commit(conn: Connection, e: Event) -> None:
    insert_row(
        conn,
        t.commits,
        commit_id=e.subject.id,
        repository=_meta(e, "repository"),
        dirty=int(bool(_meta(e, "dirty"))),
        diff_sha256=_meta(e, "diff_sha256"),
        content_sha256=_meta(e, "content_sha256"),
        seq=e.seq,
    )


def _environment(conn: Connection, e: Event) -> None:
    insert_row(
        conn,
        t.environments,
        environment_id=e.subject.id,
        python=_meta(e, "python"),
        platform=_meta(e, "platform"),
        lockfile_sha256=_meta(e, "lockfile_sha256"),
        image_digest=_meta(e, "image_digest"),
        document_sha256=e.artifact_sha256,
        content_sha256=_meta(e, "content_sha256"),
        seq=e.seq,
    )


def _run(conn: Connection, e: Event) -> None:
    refs = {ref.role: ref.id for ref in e.related}
    insert_row(
        conn,
        t.runs,
        run_id=e.subject.id,
        params=dumps_text(_meta(e, "params", {})),
        metrics=dumps_text(_meta(e, "metrics", {})),
        commit_id=refs.get("built_from"),
        environment_id=refs.get("ran_in"),
        status=_meta(e, "status", "finished"),
        started_at=_meta(e, "started_at"),
        ended_at=_meta(e, "ended_at"),
        author=_meta(e, "author"),
        content_sha256=_meta(e, "content_sha256"),
        seq=e.seq,
    )


def _model(conn: Connection, e: Event) -> None:
    insert_row(
        conn,
        t.models,
        name=e.subject.id,
        description=_meta(e, "description"),
        owner=e.actor.id,
        seq=e.seq,
    )


def _version(conn: Connection, e: Event) -> None:
    refs = {ref.role: ref.id for ref in e.related}
    insert_row(
        conn,
        t.versions,
        version_id=e.subject.id,
        model=_meta(e, "model"),
        number=_meta(e, "number"),
        manifest_sha256=e.subject.digest,
        run_id=refs.get("produced_by"),
        entrypoint=_meta(e, "entrypoint"),
        stage="none",
        registered_by=e.actor.id,
        flags="[]",
        seq=e.seq,
        stage_seq=e.seq,
    )


def _stage(conn: Connection, e: Event) -> None:
    """promote: the version moves to `to_stage`; a version it displaces is archived."""
    to_stage = _meta(e, "to_stage")
    displaced = _meta(e, "displaced")
    if displaced:
        _set_stage(conn, displaced, "archived", e.seq)
    _set_stage(conn, e.subject.id, to_stage, e.seq)
    if _meta(e, "override"):
        set_flag(conn, e.subject.id, "override_pending_review", on=True)


def _set_stage(conn: Connection, version: str, stage: str, seq: int) -> None:
    conn.execute(
        t.versions.update()
        .where(t.versions.c.version_id == version)
        .values(stage=stage, stage_seq=seq)
    )


def set_flag(conn: Connection, version: str, flag: str, *, on: bool) -> None:
    """Raise or clear a flag on a version (integrity failure, override pending review)."""
    row = conn.execute(
        sa.select(t.versions.c.flags).where(t.versions.c.version_id == version)
    ).first()
    if row is None:
        return
    flags = set(loads(row.flags))
    flags = flags | {flag} if on else flags - {flag}
    conn.execute(
        t.versions.update()
        .where(t.versions.c.version_id == version)
        .values(flags=dumps_text(sorted(flags)))
    )


def _alias(conn: Connection, e: Event) -> None:
    model, alias = _meta(e, "model"), _meta(e, "alias")
    conn.execute(t.aliases.delete().where(t.aliases.c.model == model, t.aliases.c.alias == alias))
    conn.execute(
        t.aliases.insert().values(model=model, alias=alias, version_id=e.subject.id, seq=e.seq)
    )


def _retire_version(conn: Connection, e: Event) -> None:
    _set_stage(conn, e.subject.id, "retired", e.seq)


def _deploy(conn: Connection, e: Event) -> None:
    conn.execute(t.deployments.delete().where(t.deployments.c.deployment_id == e.subject.id))
    insert_row(
        conn,
        t.deployments,
        deployment_id=e.subject.id,
        version_id=_meta(e, "version"),
        model=_meta(e, "model"),
        target=_meta(e, "target"),
        config_sha256=_meta(e, "config_sha256"),
        status="active",
        seq=e.seq,
    )


def _rollback(conn: Connection, e: Event) -> None:
    to_version, from_version = _meta(e, "to_version"), _meta(e, "from_version")
    conn.execute(
        t.deployments.update()
        .where(t.deployments.c.deployment_id == e.subject.id)
        .values(version_id=to_version, seq=e.seq)
    )
    if _meta(e, "restage", True):
        _set_stage(conn, from_version, "rolled_back", e.seq)
        _set_stage(conn, to_version, "production", e.seq)


def _retire_deployment(conn: Connection, e: Event) -> None:
    conn.execute(
        t.deployments.update()
        .where(t.deployments.c.deployment_id == e.subject.id)
        .values(status="retired", seq=e.seq)
    )


def _batch(conn: Connection, e: Event) -> None:
    insert_row(
        conn,
        t.prediction_batches,
        batch_id=e.subject.id,
        deployment_id=_meta(e, "deployment"),
        version_id=_meta(e, "version"),
        count=_meta(e, "count"),
        root=_meta(e, "root"),
        first_at=_meta(e, "first_at"),
        last_at=_meta(e, "last_at"),
        seq=e.seq,
        records_sha256=e.artifact_sha256,
    )


def _reconcile_flags(conn: Connection, e: Event) -> None:
    for version in _meta(e, "failing_versions", []):
        set_flag(conn, version, "integrity_failed", on=True)


def _resolve(conn: Connection, e: Event) -> None:
    if _meta(e, "flag"):
        set_flag(conn, e.subject.id, str(_meta(e, "flag")), on=False)


_HANDLERS: dict[tuple[str, str], Handler] = {
    ("register", "dataset"): _dataset,
    ("register", "commit"): _commit,
    ("register", "environment"): _environment,
    ("register", "run"): _run,
    ("register", "model"): _model,
    ("register", "model_version"): _version,
    ("promote", "model_version"): _stage,
    ("set_alias", "model_version"): _alias,
    ("retire", "model_version"): _retire_version,
    ("deploy", "deployment"): _deploy,
    ("rollback", "deployment"): _rollback,
    ("retire", "deployment"): _retire_deployment,
    ("log_predictions", "prediction_batch"): _batch,
    ("reconcile", "registry"): _reconcile_flags,
    ("resolve", "model_version"): _resolve,
}


def register_handlers(handlers: Mapping[tuple[str, str], Handler]) -> None:
    """Let other concepts (governance, privacy) add their projections."""
    _HANDLERS.update(handlers)
