"""The auditor's answers: the evidence for a version (seed Example 3) and the timeline of
an incident (seed Example 2), every entry with its log index and inclusion proof against
one signed checkpoint. Rendering and the offline bundle live in `mltrail.report`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from mltrail.access import queries as access
from mltrail.attest import dsse
from mltrail.canonical import loads
from mltrail.catalog.ids import check_name
from mltrail.errors import FormatError, VerificationError
from mltrail.events import Action, Event, Ref, SubjectType, format_timestamp, parse_timestamp
from mltrail.ledger.checkpoint import Checkpoint, split_note
from mltrail.ledger.log import EventFilter
from mltrail.service.governance import GovernanceUseCases
from mltrail.storage import schema as t

__all__ = ["EvidenceUseCases"]

_ROLES = {
    ("register", "model_version"): "registration",
    ("attest", "attestation"): "attestation",
    ("approve", "model_version"): "approval",
    ("reject", "model_version"): "rejection",
    ("promote", "model_version"): "promotion",
    ("deploy", "deployment"): "deployment",
    ("rollback", "deployment"): "rollback",
    ("set_policy", "policy"): "policy",
    ("register", "principal"): "key",
    ("validate", "dataset"): "validation",
    ("set_alias", "model_version"): "alias",
    ("retire", "model_version"): "retirement",
    ("resolve", "model_version"): "resolution",
    ("reproduce", "prediction"): "reproduction",
}
_CATEGORIES = {
    "validate": "validation",
    "promote": "promotion",
    "reject": "rejection",
    "deploy": "deployment",
    "rollback": "rollback",
    "set_policy": "policy",
    "approve": "decision",
    "attest": "validation",
    "log_predictions": "predictions",
    "retire": "deployment",
}


class EvidenceUseCases(GovernanceUseCases):
    """Evidence packages and timelines, read from the log and proven against a checkpoint."""

    def compliance_evidence(self, version: str) -> dict[str, Any]:
        """Everything an auditor needs about ``version``; appends an `access` event (the
        evidence is a protected record) before gathering, so the package covers it too."""
        row = self.get_version(self.resolve_version(version))
        self._require("read", row["model"])
        self._append(
            [
                self._draft(
                    Action.ACCESS,
                    Ref(
                        SubjectType.MODEL_VERSION, row["version_id"], digest=row["manifest_sha256"]
                    ),
                    metadata={"access": "compliance evidence"},
                )
            ]
        )
        _, note = self.checkpoint()
        size = Checkpoint.from_text(split_note(note)[0]).size
        events = self._version_events(row)
        keys = self._signing_keys(events)
        events = sorted(
            {e.seq: e for e in (*events, *(k[1] for k in keys))}.values(), key=lambda e: e.seq
        )
        return {
            "generated_at": self.clock(),
            "version": _public(row),
            "registry": {
                "origin": self.settings.origin,
                "verifier_key": self.verifier_key,
                "public_key_pem": self.registry_public_key_pem(),
            },
            "checkpoint": note,
            "policy": self._policy_info(row),
            "lineage": self.trace_version(row["version_id"]),
            "events": [self._proven(e, size) for e in events],
            "attestations": self._attestations(events),
            "approvals": self._approvals(events),
            "keys": [{**k[0], "event": k[1].seq} for k in keys],
            "manifest": loads(self.store.read_bytes(row["manifest_sha256"])),
            "decisions": [
                _decision(e)
                for e in events
                if e.action in ("promote", "reject") and "decision" in e.metadata
            ],
        }

    def _version_events(self, row: dict[str, Any]) -> list[Event]:
        """Events about this version (not its siblings): its own, its run's registration,
        and the policies that applied to its model."""
        refs = t.event_refs.c
        with self.db.read() as conn:
            seqs = {
                int(s)
                for (s,) in conn.execute(
                    sa.select(refs.seq).where(
                        refs.ref_type == "model_version", refs.ref_id == row["version_id"]
                    )
                )
            }
            run = (
                [
                    int(s)
                    for (s,) in conn.execute(
                        sa.select(t.runs.c.seq).where(t.runs.c.run_id == row["run_id"])
                    )
                ]
                if row.get("run_id")
                else []
            )
            policies = {
                int(s)
                for (s,) in conn.execute(
                    sa.select(t.ledger_events.c.seq).where(t.ledger_events.c.action == "set_policy")
                )
            }
        events = [self.log.event(s) for s in sorted(seqs | set(run) | policies)]
        return [
            e
            for e in events
            if e.action != "set_policy" or e.metadata.get("scope") in ("*", row["model"])
        ]

    def _signing_keys(self, events: Iterable[Event]) -> list[tuple[dict[str, str], Event]]:
        """Every key ever registered by whoever signed something here (revoked ones too:
        a signature made before a revocation still needs its key), with its event."""
        signers = {
            e.metadata.get("signer") if e.action == "attest" else e.actor.id
            for e in events
            if e.action in ("attest", "approve")
        }
        keys = t.principal_keys.c
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(keys.principal_id, keys.key_id, keys.public_key, keys.seq)
                .where(keys.principal_id.in_(sorted(s for s in signers if s)))
                .order_by(keys.seq)
            ).all()
        return [
            ({"principal_id": p, "key_id": k, "public_key": pem}, self.log.event(int(seq)))
            for p, k, pem, seq in rows
        ]

    def _proven(self, event: Event, size: int) -> dict[str, Any]:
        proof = self.log.inclusion_proof(event.seq, size)
        return {
            "index": event.seq,
            "role": _ROLES.get((event.action, event.subject.type), "lineage"),
            "canonical": base64.b64encode(event.canonical_bytes()).decode(),
            "event": event.to_wire(),
            "proof": [h.hex() for h in proof],
        }

    def _policy_info(self, row: dict[str, Any]) -> dict[str, Any] | None:
        stage = row["stage"] if row["stage"] in ("staging", "production") else "production"
        found = self.policy_in_force(row["model"], stage)
        return None if found is None else {**found[1], "document": found[0].to_dict()}

    def _attestations(self, events: Iterable[Event]) -> list[dict[str, Any]]:
        out = []
        for e in events:
            if e.action != "attest":
                continue
            envelope = loads(self.store.read_bytes(e.subject.id))
            out.append(
                {
                    "envelope_sha256": e.subject.id,
                    "envelope": envelope,
                    "event": e.seq,
                    "signer": e.metadata["signer"],
                    "key_id": e.metadata["key_id"],
                    "predicate_type": e.metadata["predicate_type"],
                    "name": e.metadata.get("name"),
                    "result": e.metadata.get("result"),
                    "verified": self._envelope_verifies(envelope, e.metadata["signer"]),
                }
            )
        return out

    def _envelope_verifies(self, envelope: Any, principal: str) -> bool:
        with self.db.read() as conn:
            keys = access.active_keys(conn, principal)
        try:
            dsse.verify_envelope(envelope, [dsse.load_public_key(k["public_key"]) for k in keys])
        except (VerificationError, FormatError):
            return False
        return True

    def _approvals(self, events: Iterable[Event]) -> list[dict[str, Any]]:
        return [
            {
                "event": e.seq,
                "approver": e.metadata.get("approver"),
                "at": e.timestamp,
                "meaning": e.metadata["meaning"],
                "stage": e.metadata["stage"],
                "version_sha256": e.metadata["version_sha256"],
                "comment": e.metadata.get("comment"),
                "kind": e.metadata.get("kind", "manual"),
                "signed": bool(e.metadata.get("signature")),
                "signature_verified": self._signature_valid(
                    e.metadata.get("signature"), e.actor.id, e.metadata["version_sha256"]
                ),
            }
            for e in events
            if e.action == "approve" and e.outcome == "success"
        ]

    # -- incident -----------------------------------------------------------------------------

    def incident_timeline(self, model: str, since: str, until: str) -> dict[str, Any]:
        """What happened to ``model`` between two instants: validations, decisions and
        overrides, promotions, deployments, rollbacks, policy changes (seed Example 2)."""
        check_name(model)
        self._require("read", model)
        t1, t2 = (format_timestamp(parse_timestamp(x)) for x in (since, until))
        with self.db.read() as conn:
            refs = {
                (r.ref_type, r.ref_id)
                for r in conn.execute(
                    sa.select(t.event_refs.c.ref_type, t.event_refs.c.ref_id).where(
                        t.event_refs.c.ref_type.in_(
                            ("model_version", "run", "dataset", "deployment")
                        )
                    )
                )
            }
        mine = self._model_refs(model, refs)
        e = t.ledger_events
        with self.db.read() as conn:
            seqs = (
                [
                    int(s)
                    for (s,) in conn.execute(
                        sa.select(t.event_refs.c.seq)
                        .distinct()
                        .join(e, e.c.seq == t.event_refs.c.seq)
                        .where(
                            sa.tuple_(t.event_refs.c.ref_type, t.event_refs.c.ref_id).in_(
                                sorted(mine)
                            ),
                            e.c.ts >= t1,
                            e.c.ts <= t2,
                        )
                        .order_by(t.event_refs.c.seq)
                    )
                ]
                if mine
                else []
            )
        policy = [ev for ev in self.events(_window(t1, t2, "set_policy"))]
        events = sorted(
            {ev.seq: ev for ev in [*(self.log.event(s) for s in seqs), *policy]}.values(),
            key=lambda ev: ev.seq,
        )
        _, note = self.checkpoint()
        return {
            "model": model,
            "from": t1,
            "to": t2,
            "checkpoint": note,
            "entries": [_entry(ev) for ev in events],
        }

    def _model_refs(self, model: str, refs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        versions = {
            r for r in refs if r[0] == "model_version" and r[1].startswith(f"model:{model}:v")
        }
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(t.versions.c.run_id).where(t.versions.c.model == model)
            ).all()
            runs = {("run", r[0]) for r in rows if r[0]}
            deployments = {
                ("deployment", r[0])
                for r in conn.execute(
                    sa.select(t.deployments.c.deployment_id).where(t.deployments.c.model == model)
                )
            }
            datasets = (
                {
                    ("dataset", r[0])
                    for r in conn.execute(
                        sa.select(t.lineage_edges.c.dst_id).where(
                            t.lineage_edges.c.src_type == "run",
                            t.lineage_edges.c.role == "used",
                            t.lineage_edges.c.src_id.in_([r[1] for r in runs]),
                        )
                    )
                }
                if runs
                else set()
            )
        return versions | runs | deployments | datasets


def _window(t1: str, t2: str, action: str) -> EventFilter:
    return EventFilter(action=action, since=t1, until=t2 + "\uffff")


def _entry(event: Event) -> dict[str, Any]:
    meta = event.metadata
    category = _CATEGORIES.get(event.action, "other")
    if event.action == "promote" and meta.get("override"):
        category = "override"
    return {
        "index": event.seq,
        "timestamp": event.timestamp,
        "action": event.action,
        "actor": event.actor.id,
        "subject": f"{event.subject.type}:{event.subject.id}",
        "outcome": event.outcome,
        "category": category,
        "summary": _summary(event),
    }


def _summary(event: Event) -> str:
    meta = event.metadata
    match event.action:
        case "validate":
            return f"{meta.get('check')} check {meta.get('result')}: {meta.get('details')}"
        case "promote":
            rules = (meta.get("decision") or {}).get("rules", [])
            held = ", ".join(f"{r['rule']} {'ok' if r['ok'] else 'FAILED'}" for r in rules)
            extra = f"; OVERRIDE: {meta.get('override_reason')}" if meta.get("override") else ""
            return f"{meta.get('from_stage')} -> {meta.get('to_stage')} ({held}){extra}"
        case "reject":
            return "refused: " + "; ".join(meta.get("reasons", []))
        case "deploy":
            return f"now serves {meta.get('version')} (was {meta.get('previous_version')})"
        case "rollback":
            return f"{meta.get('from_version')} -> {meta.get('to_version')}: {meta.get('reason')}"
        case "approve":
            kind, meaning = meta.get("kind", "manual"), meta.get("meaning")
            return f"{kind} {meaning} for {meta.get('stage')}: {meta.get('comment')}"
        case "set_policy":
            digest = str(meta.get("document_sha256", ""))[:12]
            where = f"{meta.get('scope')}/{meta.get('stage')}"
            return f"policy {where} v{meta.get('version')} ({digest}…)"
        case "log_predictions":
            return f"{meta.get('count')} predictions by {meta.get('version')}"
        case _:
            return event.action


def _decision(event: Event) -> dict[str, Any]:
    decision = event.metadata["decision"]
    return {
        "event": event.seq,
        "to_stage": event.metadata.get("to_stage"),
        "allowed": decision.get("allowed"),
        "override": bool(event.metadata.get("override")),
        "rules": decision.get("rules", []),
        "policy": decision.get("policy"),
        "verification_attestation": event.metadata.get("verification_attestation"),
    }


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("seq", "stage_seq")}
