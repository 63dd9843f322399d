"""Privacy and retention: redaction before events are built, the erasable payload store,
erasure, retention windows and legal holds.

Personal data never enters the log: configured fields are dropped or replaced by keyed
hashes (HMAC with the registry secret) before any event exists, prediction inputs enter
only as HMACs, and raw inputs kept for reproduction live in `payload_store`, which is not
part of the log. Erasing a payload therefore never breaks a proof.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from mltrail.canonical import canonicalize
from mltrail.errors import InvalidInputError, NotFoundError
from mltrail.events import Action, Draft, Event, Ref, SubjectType, format_timestamp, parse_timestamp
from mltrail.privacy.redaction import Redactor, Rule, keyed_hash, keyed_hasher
from mltrail.service.base import Appended
from mltrail.service.evidence import EvidenceUseCases
from mltrail.settings import SIX_MONTHS_DAYS
from mltrail.storage import raw
from mltrail.storage import schema as t

__all__ = ["PrivacyUseCases"]

_PAYLOAD_COLUMNS = ("payload_id", "record_class", "subject_key", "created_at", "data")

MIN_DAYS = {
    "prediction_input": SIX_MONTHS_DAYS,
    "prediction_log": SIX_MONTHS_DAYS,
    "deployment_log": SIX_MONTHS_DAYS,
}


class PrivacyUseCases(EvidenceUseCases):
    """Keeping personal data out of the log, and payloads only as long as allowed."""

    @cached_property
    def redactor(self) -> Redactor:
        rules = [Rule.from_dict(r.model_dump(exclude_none=True)) for r in self.settings.redaction]
        return Redactor(rules, self.secret)

    def _draft(self, action: str, subject: Ref, **kwargs: Any) -> Draft:
        # Redaction happens here, before any event exists (DESIGN §2).
        if kwargs.get("metadata") and self.settings.redaction:
            kwargs["metadata"] = self.redactor.redact(dict(kwargs["metadata"]))
        return super()._draft(action, subject, **kwargs)

    def _signed_approval(
        self, row: Mapping[str, Any], meta: Mapping[str, Any], private_key: Any
    ) -> dict[str, Any]:
        # The approver signs what the event records: redacted, or the raw comment would sit
        # in the signed payload and the signature would not match the event's metadata.
        if self.settings.redaction:
            redacted = self.redactor.redact(dict(meta))
            meta = {key: redacted.get(key) for key in meta}  # a dropped member signs as null
        return super()._signed_approval(row, meta, private_key)

    def subject_key(self, data_subject: str) -> str:
        """The keyed hash under which a data subject (customer id, e-mail) is known."""
        return keyed_hash(self.secret, data_subject)

    # -- the payload store ----------------------------------------------------------------

    def _keep_inputs(
        self, conn: Any, inputs: Sequence[tuple[str, bytes, str | None]], event: Event
    ) -> None:
        if not inputs:
            return
        digest = keyed_hasher(self.secret)  # subject_key's hash, the secret read once
        subjects = {subject for _, _, subject in inputs if subject is not None}
        keys = {subject: digest(canonicalize(subject)) for subject in subjects}
        rows = [
            (
                f"prediction:{pid}:input",
                "prediction_input",
                None if subject is None else keys[subject],
                event.timestamp,
                data,
            )
            for pid, data, subject in inputs
        ]
        raw.insert_rows(conn, t.payloads, _PAYLOAD_COLUMNS, rows)

    def payload(self, payload_id: str) -> bytes | None:
        with self.db.read() as conn:
            data = conn.execute(
                sa.select(t.payloads.c.data).where(t.payloads.c.payload_id == payload_id)
            ).scalar()
        return None if data is None else bytes(data)

    # -- holds and erasure ---------------------------------------------------------------

    def hold(self, key: str, *, reason: str) -> Appended:
        """Place a legal hold on a prediction (``prediction:P123``) or a data subject
        (``subject:<id>``, stored as its keyed hash): purging and erasure pause for it."""
        self._require("administer")
        if not reason:
            raise InvalidInputError("a legal hold needs a reason")
        draft = self._draft(
            Action.HOLD,
            Ref(SubjectType.REGISTRY, self.settings.origin),
            metadata={"key": self._hold_key(key), "reason": reason},
        )
        return self._append([draft])[0]

    def release(self, key: str, *, reason: str) -> Appended:
        self._require("administer")
        draft = self._draft(
            Action.RELEASE,
            Ref(SubjectType.REGISTRY, self.settings.origin),
            metadata={"key": self._hold_key(key), "reason": reason},
        )
        return self._append([draft])[0]

    def _hold_key(self, key: str) -> str:
        kind, sep, ident = key.partition(":")
        if not sep or kind not in ("prediction", "subject") or not ident:
            raise InvalidInputError(f"hold key {key!r} should be prediction:ID or subject:ID")
        return f"subject:{self.subject_key(ident)}" if kind == "subject" else key

    def _held(self, keys: Sequence[str]) -> str | None:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(t.holds.c.subject, t.holds.c.reason).where(
                    t.holds.c.subject.in_(list(keys))
                )
            ).first()
        return None if row is None else f"{row.subject} is under legal hold: {row.reason}"

    def erase(
        self, *, prediction_id: str | None = None, data_subject: str | None = None, reason: str
    ) -> Appended:
        """Remove kept payloads for a prediction or a data subject and log the erasure.

        The log keeps only the HMACs, so every proof still verifies afterwards. A request
        that meets a legal hold is deferred, and the deferral is logged with the hold.
        """
        self._require("administer")
        if (prediction_id is None) == (data_subject is None):
            raise InvalidInputError("erase needs exactly one of --prediction or --subject")
        if prediction_id is not None:
            keys, where = (
                [f"prediction:{prediction_id}"],
                t.payloads.c.payload_id == f"prediction:{prediction_id}:input",
            )
            subject = Ref(SubjectType.PREDICTION, prediction_id)
        else:
            hashed = self.subject_key(str(data_subject))
            keys, where = [f"subject:{hashed}"], t.payloads.c.subject_key == hashed
            subject = Ref(SubjectType.REGISTRY, self.settings.origin)
        hold = self._held(keys)
        if hold is not None:
            return self._append(
                [
                    self._draft(
                        Action.ERASE,
                        subject,
                        outcome="failure",
                        metadata={
                            "status": "deferred",
                            "reasons": [hold],
                            "request": reason,
                            "keys": keys,
                        },
                    )
                ]
            )[0]
        return self._append(
            [
                self._draft(
                    Action.ERASE,
                    subject,
                    metadata={"status": "erased", "request": reason, "keys": keys},
                )
            ],
            project=self._projecting(lambda conn: _delete(conn, where)),
        )[0]

    def _projecting(self, then: Callable[[Any], None]) -> Callable[[Any, Sequence[Event]], None]:
        """A projector that updates the projections, then runs ``then`` in the same transaction."""

        def project(conn: Any, events: Sequence[Event]) -> None:
            self._project(conn, events)
            then(conn)

        return project

    # -- retention -------------------------------------------------------------------------

    def retention_windows(self) -> dict[str, int]:
        """Days to keep each record class (the legal minimum is enforced when `Settings`
        are read, so a shorter window never reaches this point)."""
        return {**MIN_DAYS, **self.settings.retention_days}

    def apply_retention(self, *, dry_run: bool = False) -> dict[str, Any]:
        """Delete payloads past their retention window (never ledger events), skipping held
        ones; logs what it removed. With ``dry_run`` only reports."""
        self._require("administer")
        now = parse_timestamp(self.clock())
        plan: dict[str, Any] = {}
        with self.db.read() as conn:
            held = {s for (s,) in conn.execute(sa.select(t.holds.c.subject))}
            for record_class, days in self.retention_windows().items():
                cutoff = format_timestamp(now - timedelta(days=days))
                rows = conn.execute(
                    sa.select(t.payloads.c.payload_id, t.payloads.c.subject_key).where(
                        t.payloads.c.record_class == record_class, t.payloads.c.created_at < cutoff
                    )
                ).all()
                ids = [pid for pid, key in rows if not _is_held(pid, key, held)]
                plan[record_class] = {
                    "cutoff": cutoff,
                    "expired": len(rows),
                    "removable": ids,
                    "held": len(rows) - len(ids),
                }
        report = {
            "dry_run": dry_run,
            "classes": {k: {**v, "removable": len(v["removable"])} for k, v in plan.items()},
        }
        if dry_run or not any(v["removable"] for v in plan.values()):
            return report
        ids = [pid for v in plan.values() for pid in v["removable"]]
        draft = self._draft(
            Action.ERASE,
            Ref(SubjectType.REGISTRY, self.settings.origin),
            metadata={"status": "purged", "retention": report["classes"]},
        )
        report["event"] = self._append(
            [draft],
            project=self._projecting(lambda conn: _delete_ids(conn, ids)),
        )[0].event.seq
        return report


def _is_held(payload_id: str, subject_key: str | None, held: set[str]) -> bool:
    prediction = payload_id.rsplit(":", 1)[0]
    return prediction in held or (subject_key is not None and f"subject:{subject_key}" in held)


def _delete(conn: Any, where: Any) -> None:
    result = conn.execute(t.payloads.delete().where(where))
    if result.rowcount == 0:
        raise NotFoundError(
            "no kept payload matches the erasure request",
            hint="it may have been erased or purged already (see `mltrail log --action erase`)",
        )


def _delete_ids(conn: Any, ids: Sequence[str]) -> None:
    for start in range(0, len(ids), 500):
        conn.execute(
            t.payloads.delete().where(t.payloads.c.payload_id.in_(ids[start : start + 500]))
        )
