"""Projections of governance events: policies, attestations, approvals, legal holds."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from mltrail.canonical import dumps_text
from mltrail.catalog.projector import register_handlers, set_flag
from mltrail.events import Event
from mltrail.storage import schema as t

__all__: list[str] = []


def _policy(conn: Connection, e: Event) -> None:
    meta = e.metadata
    conn.execute(
        t.policies.delete().where(
            t.policies.c.scope == meta["scope"], t.policies.c.stage == meta["stage"]
        )
    )
    conn.execute(
        t.policies.insert().values(
            scope=meta["scope"],
            stage=meta["stage"],
            version=meta["version"],
            document_sha256=meta["document_sha256"],
            document=dumps_text(meta["document"]),
            seq=e.seq,
        )
    )


def _attestation(conn: Connection, e: Event) -> None:
    meta = e.metadata
    target = next(r for r in e.related if r.role == "attests")
    conn.execute(
        t.attestations.insert().values(
            envelope_sha256=e.subject.id,
            subject_type=target.type,
            subject_id=target.id,
            subject_sha256=meta["subject_sha256"],
            predicate_type=meta["predicate_type"],
            name=meta.get("name"),
            result=meta.get("result"),
            signer_key_id=meta["key_id"],
            signer=meta["signer"],
            issued_at=meta["issued_at"],
            seq=e.seq,
        )
    )


def _approval(conn: Connection, e: Event) -> None:
    meta = e.metadata
    conn.execute(
        t.approvals.insert().values(
            seq=e.seq,
            version_id=e.subject.id,
            stage=meta["stage"],
            approver=e.actor.id,
            meaning=meta["meaning"],
            version_sha256=meta["version_sha256"],
            kind=meta.get("kind", "manual"),
            signed=int(bool(meta.get("signature"))),
            at=e.timestamp,
        )
    )
    if meta.get("kind", "manual") == "manual" and meta.get("meaning") == "approval":
        set_flag(conn, e.subject.id, "override_pending_review", on=False)


def _hold(conn: Connection, e: Event) -> None:
    conn.execute(t.holds.delete().where(t.holds.c.subject == e.metadata["key"]))
    conn.execute(
        t.holds.insert().values(subject=e.metadata["key"], reason=e.metadata["reason"], seq=e.seq)
    )


def _release(conn: Connection, e: Event) -> None:
    conn.execute(t.holds.delete().where(t.holds.c.subject == e.metadata["key"]))


register_handlers(
    {
        ("set_policy", "policy"): _policy,
        ("attest", "attestation"): _attestation,
        ("approve", "model_version"): _approval,
        ("hold", "registry"): _hold,
        ("release", "registry"): _release,
    }
)
