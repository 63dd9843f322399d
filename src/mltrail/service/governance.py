"""Governance use cases: principals and keys, grants, policies, attestations, approvals,
and the promotion gate (DESIGN §7).

Every decision names the policy version in force and the evidence (log indexes and
digests) it used; refusals are appended as `reject` events before the error is raised.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import mltrail.access.projector
import mltrail.catalog.governance  # noqa: F401  (registers projections)
from mltrail.access import queries as access
from mltrail.artifacts.manifest import Manifest
from mltrail.attest import dsse, intoto
from mltrail.attest.coverage import covers_version
from mltrail.attest.provenance import training_provenance
from mltrail.canonical import canonicalize, loads
from mltrail.catalog import queries
from mltrail.catalog.ids import check_id, check_name
from mltrail.errors import (
    ConflictError,
    FormatError,
    InvalidInputError,
    NotFoundError,
    PolicyError,
    VerificationError,
)
from mltrail.events import Action, Ref, SubjectType, sha256_hex
from mltrail.ledger.log import EventFilter
from mltrail.policy.document import Policy
from mltrail.policy.gate import (
    ApprovalEvidence,
    AttestationEvidence,
    Evidence,
    GateResult,
    evaluate_gate,
)
from mltrail.service.base import Appended
from mltrail.service.lineage import LineageUseCases
from mltrail.storage import schema as t

__all__ = [
    "APPROVAL_PREDICATE",
    "FAIRNESS_PREDICATE",
    "VSA_PREDICATE",
    "GovernanceUseCases",
    "fairness_predicate",
]

APPROVAL_PREDICATE = "https://mltrail.dev/attestation/approval/v1"
FAIRNESS_PREDICATE = "https://mltrail.dev/attestation/fairness/v1"
VSA_PREDICATE = "https://slsa.dev/verification_summary/v1"
MEANINGS = ("approval", "review", "responsibility")
STAGES = ("staging", "production", "archived")


class GovernanceUseCases(LineageUseCases):
    """Who may do what, what a promotion needs, and the evidence it was given."""

    # -- principals, keys, grants, tokens -------------------------------------------------

    def add_principal(
        self, principal_id: str, *, display_name: str, kind: str = "user", roles: Sequence[str] = ()
    ) -> Appended:
        """Register a user or service account with global roles."""
        self._require("administer")
        check_id(principal_id, "principal id")
        if kind not in ("user", "service"):
            raise InvalidInputError(f"principal type {kind!r} must be user or service")
        with self.db.read() as conn:
            if access.get_principal(conn, principal_id) is not None:
                raise ConflictError(
                    f"principal {principal_id!r} already exists",
                    hint="grant it roles with `mltrail access grant`",
                )
        meta = {"principal_type": kind, "display_name": display_name, "roles": sorted(set(roles))}
        return self._append(
            [self._draft(Action.REGISTER, Ref(SubjectType.PRINCIPAL, principal_id), metadata=meta)]
        )[0]

    def add_key(self, principal_id: str, public_key_pem: bytes | str) -> Appended:
        """Register a principal's public key (Ed25519 or ECDSA P-256) for signatures."""
        self._require("administer")
        key = dsse.load_public_key(public_key_pem)
        self._principal(principal_id)
        meta = {
            "kind": "key",
            "key_id": dsse.key_id(key),
            "public_key": dsse.public_key_pem(key),
            "algorithm": "ed25519" if "ED25519" in type(key).__name__.upper() else "ecdsa-p256",
        }
        return self._append(
            [self._draft(Action.REGISTER, Ref(SubjectType.PRINCIPAL, principal_id), metadata=meta)]
        )[0]

    def grant(self, principal_id: str, role: str, *, scope: str = "*") -> Appended:
        """Give a principal a role on a model (or on every model, scope ``*``)."""
        self._require("administer", scope)
        check_name(role, "role")
        if scope != "*":
            check_name(scope, "scope")
        self._principal(principal_id)
        draft = self._draft(
            Action.GRANT_ACCESS,
            Ref(SubjectType.PRINCIPAL, principal_id),
            metadata={"scope": scope, "role": role},
        )
        return self._append([draft])[0]

    def revoke(
        self,
        principal_id: str,
        *,
        role: str | None = None,
        scope: str = "*",
        key_id: str | None = None,
    ) -> Appended:
        """Revoke a role, a key, or (with neither) the principal itself."""
        self._require("administer", scope)
        self._principal(principal_id)
        meta: dict[str, Any] = {"scope": scope}
        if role is not None:
            meta["role"] = role
        if key_id is not None:
            meta["key_id"] = key_id
        draft = self._draft(
            Action.REVOKE_ACCESS, Ref(SubjectType.PRINCIPAL, principal_id), metadata=meta
        )
        return self._append([draft])[0]

    def issue_token(self, principal_id: str) -> tuple[str, Appended]:
        """A new API token for a principal; only its SHA-256 is stored and logged."""
        self._require("administer")
        self._principal(principal_id)
        token = "mlt_" + secrets.token_urlsafe(32)
        meta = {"token_sha256": sha256_hex(token.encode())}
        done = self._append(
            [
                self._draft(
                    Action.GRANT_ACCESS, Ref(SubjectType.PRINCIPAL, principal_id), metadata=meta
                )
            ]
        )[0]
        return token, done

    def _principal(self, principal_id: str) -> access.Principal:
        with self.db.read() as conn:
            found = access.get_principal(conn, principal_id)
        if found is None:
            raise NotFoundError(
                f"principal {principal_id!r} is not registered",
                hint="add it with `mltrail access add`",
            )
        return found

    # -- policies -----------------------------------------------------------------------------

    def set_policy(self, text: str) -> Appended:
        """Put a policy document (YAML) in force for its scope and stage; versions count up."""
        policy = Policy.parse(text)
        self._require("administer", policy.scope)
        stored = self.store.put_bytes(text.encode())
        with self.db.read() as conn:
            current = conn.execute(
                sa.select(t.policies.c.version).where(
                    t.policies.c.scope == policy.scope, t.policies.c.stage == policy.stage
                )
            ).scalar()
        meta = {
            "scope": policy.scope,
            "stage": policy.stage,
            "version": int(current or 0) + 1,
            "document_sha256": policy.digest,
            "document": policy.to_dict(),
            "source_sha256": stored.digest,
        }
        draft = self._draft(
            Action.SET_POLICY,
            Ref(SubjectType.POLICY, f"{policy.scope}/{policy.stage}"),
            metadata=meta,
            artifact_sha256=stored.digest,
        )
        return self._append([draft])[0]

    def policy_in_force(self, model: str, stage: str) -> tuple[Policy, dict[str, Any]] | None:
        """The policy for ``model`` (else for ``*``) and ``stage``, with its version and event."""
        with self.db.read() as conn:
            for scope in (model, "*"):
                row = (
                    conn.execute(
                        sa.select(t.policies).where(
                            t.policies.c.scope == scope, t.policies.c.stage == stage
                        )
                    )
                    .mappings()
                    .first()
                )
                if row is not None:
                    info = {
                        "scope": scope,
                        "stage": stage,
                        "version": row["version"],
                        "digest": row["document_sha256"],
                        "event": row["seq"],
                    }
                    return Policy.from_dict(loads(row["document"])), info
        return None

    # -- attestations -------------------------------------------------------------------------

    def attach(self, version: str, envelope: Mapping[str, Any]) -> Appended:
        """Import a DSSE envelope made elsewhere, or a Sigstore bundle (as the OpenSSF
        `model_signing` tool writes) whose DSSE envelope is taken. Its signature must verify
        with a registered key, and it must be about this version (`covers_version`).

        Raises:
            VerificationError: no registered key verifies it, or it is about another artifact.
        """
        row = self.get_version(self.resolve_version(version))
        self._require("attest", row["model"])
        if isinstance(envelope.get("dsseEnvelope"), Mapping):
            envelope = envelope["dsseEnvelope"]
        statement, key = self._open_envelope(envelope)
        if not covers_version(statement, row["manifest_sha256"], self._manifest(row)):
            raise VerificationError(
                f"attestation is about a different artifact than {row['version_id']} "
                f"(sha256 {row['manifest_sha256'][:16]}…)",
                hint="attest the version's manifest digest (`mltrail model show`)",
            )
        stored = self.store.put_bytes(canonicalize(dict(envelope)))
        meta = {
            "predicate_type": statement.predicate_type,
            "name": _attestation_name(statement),
            "result": _attestation_result(statement),
            "metrics": _attestation_metrics(statement),
            "signer": key["principal_id"],
            "key_id": key["key_id"],
            "subject_sha256": row["manifest_sha256"],
            "issued_at": _issued_at(statement, self.clock()),
        }
        draft = self._draft(
            Action.ATTEST,
            Ref(SubjectType.ATTESTATION, stored.digest, digest=stored.digest),
            related=[
                Ref(
                    SubjectType.MODEL_VERSION,
                    row["version_id"],
                    role="attests",
                    digest=row["manifest_sha256"],
                )
            ],
            metadata=meta,
            artifact_sha256=stored.digest,
        )
        return self._append([draft])[0]

    def attest(
        self, version: str, *, predicate_type: str, predicate: Mapping[str, Any], private_key: Any
    ) -> Appended:
        """Create an in-toto statement about the version, sign it with ``private_key`` (the
        signer's own registered key) and attach it."""
        row = self.get_version(self.resolve_version(version))
        statement = intoto.Statement(
            subject=[
                intoto.ResourceDescriptor(
                    name=row["version_id"], digest={"sha256": row["manifest_sha256"]}
                )
            ],
            predicate_type=predicate_type,
            predicate=dict(predicate),
        )
        return self.attach(version, intoto.sign_statement(statement, private_key))

    def attest_provenance(self, version: str, *, private_key: Any) -> Appended:
        """Sign and attach SLSA Provenance v1 for the version's training run: its
        parameters, datasets, commit and environment, each by digest."""
        predicate = training_provenance(
            self.trace_version(version), builder_id=self.settings.origin
        )
        return self.attest(
            version,
            predicate_type=intoto.SLSA_PROVENANCE,
            predicate=predicate,
            private_key=private_key,
        )

    def _manifest(self, row: Mapping[str, Any]) -> Manifest:
        return Manifest.from_dict(loads(self.store.read_bytes(row["manifest_sha256"])))

    def _open_envelope(
        self, envelope: Mapping[str, Any]
    ) -> tuple[intoto.Statement, dict[str, str]]:
        with self.db.read() as conn:
            keys = access.active_keys(conn)
        for key in keys:
            try:
                return intoto.open_statement(
                    envelope, [dsse.load_public_key(key["public_key"])]
                ), key
            except VerificationError:
                continue
        raise VerificationError(
            "attestation signature does not verify with any registered, unrevoked key",
            hint="register the signer's public key with `mltrail access add-key`",
        )

    # -- approvals ----------------------------------------------------------------------------

    def approve(
        self,
        version: str,
        *,
        stage: str,
        meaning: str = "approval",
        comment: str | None = None,
        private_key: Any = None,
        kind: str = "manual",
    ) -> Appended:
        """Record an approval of ``version`` for ``stage``, bound to its manifest digest, and
        signed with the approver's own key when one is given.

        The authority check and the append share one transaction. A signed approval is
        signed, and its signature checked against the approver's keys, before it opens
        (after a check of its own): the write lock is not held for cryptography.
        """
        row = self.get_version(self.resolve_version(version))
        signed = None
        if private_key is not None:
            self._require("approve", row["model"])
            signed = self._approval(row, stage, meaning, kind, comment, private_key)
        with self._command("approve", row["model"]):
            meta = signed or self._approval(row, stage, meaning, kind, comment, None)
            draft = self._draft(
                Action.APPROVE,
                Ref(SubjectType.MODEL_VERSION, row["version_id"], digest=row["manifest_sha256"]),
                metadata=meta,
            )
            return self._append([draft])[0]

    def _approval(
        self,
        row: Mapping[str, Any],
        stage: str,
        meaning: str,
        kind: str,
        comment: str | None,
        private_key: Any,
    ) -> dict[str, Any]:
        """An approval's metadata, signed with ``private_key`` unless it is None."""
        if meaning not in MEANINGS or stage not in STAGES or kind not in ("manual", "automated"):
            raise InvalidInputError(f"approval needs --meaning in {MEANINGS}, --to in {STAGES}")
        principal = self._principal(self.actor.id)
        meta: dict[str, Any] = {
            "stage": stage,
            "meaning": meaning,
            "version_sha256": row["manifest_sha256"],
            "approver": {"id": principal.principal_id, "name": principal.display_name},
            "kind": kind,
            "comment": comment,
        }
        if private_key is not None:
            meta["signature"] = self._signed_approval(row, meta, private_key)
        return meta

    def _signed_approval(
        self, row: Mapping[str, Any], meta: Mapping[str, Any], private_key: Any
    ) -> dict[str, Any]:
        predicate = {k: meta[k] for k in ("stage", "meaning", "approver", "comment")}
        statement = intoto.Statement(
            subject=[
                intoto.ResourceDescriptor(
                    name=row["version_id"], digest={"sha256": row["manifest_sha256"]}
                )
            ],
            predicate_type=APPROVAL_PREDICATE,
            predicate=predicate,
        )
        envelope = intoto.sign_statement(statement, private_key)
        approver = meta["approver"]["id"]
        if not self._signature_valid(envelope, approver, row["manifest_sha256"]):
            # Only the approver's own registered key may sign their approval.
            raise VerificationError(
                f"approval signature does not verify with a registered, unrevoked key "
                f"of {approver}",
                hint=f"sign with {approver}'s own key, registered with `mltrail access add-key`",
            )
        return envelope

    def reject_version(self, version: str, *, stage: str, reason: str) -> Appended:
        """Record a reviewer's refusal of a version for a stage."""
        row = self.get_version(self.resolve_version(version))
        with self._command("approve", row["model"]):
            if not reason:
                raise InvalidInputError("a rejection needs a reason (--reason)")
            draft = self._draft(
                Action.REJECT,
                Ref(SubjectType.MODEL_VERSION, row["version_id"], digest=row["manifest_sha256"]),
                metadata={"stage": stage, "reasons": [reason], "kind": "review"},
                outcome="failure",
            )
            return self._append([draft])[0]

    # -- the gate --------------------------------------------------------------------------

    def check_promotion(self, version: str, *, to: str) -> tuple[GateResult, dict[str, Any] | None]:
        """Dry run of the gate: every rule and whether it holds (`mltrail policy check`)."""
        row = self.get_version(self.resolve_version(version))
        found = self.policy_in_force(row["model"], to)
        policy, info = found if found else (None, None)
        return evaluate_gate(policy, self._evidence(row, to)), info

    def promote(self, version: str, *, to: str, override_reason: str | None = None) -> Appended:
        """Move a version to a stage if the policy gate passes; otherwise log a `reject`.

        An admin may override a failing gate with a reason (break-glass); the promotion is
        then logged as an override with every failed rule, and the version stays flagged
        `override_pending_review` until a later manual approval.

        Raises:
            PolicyError: the gate refused (after the refusal was logged).
        """
        if to not in STAGES:
            raise InvalidInputError(f"stage {to!r} is not one of {STAGES}")
        row = self.get_version(self.resolve_version(version))
        self._require("promote", row["model"])
        gate, info = self.check_promotion(row["version_id"], to=to)
        decision = {**gate.to_dict(), "policy": info}
        if not gate and override_reason is None:
            self._refuse_promotion(row, to, gate, decision)
        if not gate:
            self._require("override", row["model"])
        return self._append([self._promotion(row, to, decision, override_reason)])[0]

    def _refuse_promotion(
        self, row: Mapping[str, Any], to: str, gate: GateResult, decision: Any
    ) -> None:
        reasons = [f"{r.rule}: {r.detail}" for r in gate.failed()]
        draft = self._draft(
            Action.REJECT,
            Ref(SubjectType.MODEL_VERSION, row["version_id"], digest=row["manifest_sha256"]),
            metadata={
                "attempted": "promote",
                "to_stage": to,
                "reasons": reasons,
                "decision": decision,
            },
            outcome="failure",
        )
        self._append([draft])
        raise PolicyError(
            f"promotion of {row['version_id']} to {to} refused by policy",
            errors=reasons,
            hint=f"see each rule with `mltrail policy check {row['version_id']} --to {to}`",
        )

    def _promotion(
        self, row: Mapping[str, Any], to: str, decision: dict[str, Any], override: str | None
    ) -> Any:
        with self.db.read() as conn:
            displaced = (
                queries.production_version(conn, row["model"]) if to == "production" else None
            )
        vsa = self._verification_summary(row, to, decision)
        meta = {
            "from_stage": row["stage"],
            "to_stage": to,
            "model": row["model"],
            "decision": decision,
            "displaced": displaced if displaced != row["version_id"] else None,
            "verification_attestation": vsa,
            "override": override is not None,
        }
        if override is not None:
            meta["override_reason"] = override
        return self._draft(
            Action.PROMOTE,
            Ref(SubjectType.MODEL_VERSION, row["version_id"], digest=row["manifest_sha256"]),
            related=[
                Ref(SubjectType.POLICY, f"{decision['policy']['scope']}/{to}", role="decided_by")
            ]
            if decision.get("policy")
            else [],
            metadata=meta,
            artifact_sha256=row["manifest_sha256"],
        )

    def _verification_summary(
        self, row: Mapping[str, Any], to: str, decision: Mapping[str, Any]
    ) -> str:
        """A registry-signed SLSA verification summary of the decision, stored; its digest."""
        statement = intoto.Statement(
            subject=[
                intoto.ResourceDescriptor(
                    name=row["version_id"], digest={"sha256": row["manifest_sha256"]}
                )
            ],
            predicate_type=VSA_PREDICATE,
            predicate={
                "verifier": {"id": self.settings.origin},
                "timeVerified": self.clock(),
                "policy": {
                    "digest": {
                        "sha256": (decision.get("policy") or {}).get("digest") or sha256_hex(b"")
                    }
                },
                "verificationResult": "PASSED" if decision["allowed"] else "FAILED",
                "verifiedLevels": [f"MLTRAIL_GATE_{to.upper()}"],
                "rules": [{"rule": r["rule"], "ok": r["ok"]} for r in decision["rules"]],
            },
        )
        key = Ed25519PrivateKey.from_private_bytes(self.signer.seed)
        return self.store.put_bytes(canonicalize(intoto.sign_statement(statement, key))).digest

    def registry_public_key_pem(self) -> str:
        """The registry's Ed25519 public key as PEM (verifies its DSSE verification summaries)."""
        return dsse.public_key_pem(
            Ed25519PrivateKey.from_private_bytes(self.signer.seed).public_key()
        )

    # -- evidence --------------------------------------------------------------------------

    def _evidence(self, row: Mapping[str, Any], to: str) -> Evidence:
        manifest = self._manifest(row)
        with self.db.read() as conn:
            run = queries.find(conn, "run", row["run_id"]) if row.get("run_id") else None
            approvals = [
                self._approval_evidence(conn, dict(a), row["model"])
                for a in conn.execute(
                    sa.select(t.approvals).where(t.approvals.c.version_id == row["version_id"])
                ).mappings()
            ]
            attestations = [
                self._attestation_evidence(conn, dict(a), row["model"], manifest)
                for a in conn.execute(
                    sa.select(t.attestations).where(
                        t.attestations.c.subject_id == row["version_id"]
                    )
                ).mappings()
            ]
            datasets = queries.run_datasets(conn, row["run_id"]) if row.get("run_id") else []
        flags = set(row["flags"]) | ({"drift_warning"} if self._drift_in(datasets) else set())
        return Evidence(
            version_id=row["version_id"],
            version_sha256=row["manifest_sha256"],
            current_stage=row["stage"],
            target_stage=to,
            registrant=row["registered_by"],
            run_author=run["author"] if run else None,
            promoter=self.actor.id,
            run_metrics={
                k: float(v) for k, v in (run["metrics"] if run else {}).items() if _number(v)
            },
            approvals=tuple(approvals),
            attestations=tuple(attestations),
            flags=frozenset(flags),
            now=self.clock(),
        )

    def _approval_evidence(self, conn: Any, a: Mapping[str, Any], model: str) -> ApprovalEvidence:
        principal = access.get_principal(conn, a["approver"])
        grants = access.grants_of(conn, a["approver"])
        valid = False
        event = self.log.event(int(a["seq"]))
        if a["signed"]:
            valid = self._signature_valid(
                event.metadata.get("signature"), a["approver"], a["version_sha256"]
            )
        return ApprovalEvidence(
            seq=int(a["seq"]),
            approver=a["approver"],
            approver_roles=frozenset(grants.get(model, set()) | grants.get("*", set())),
            approver_active=bool(principal and principal.active),
            meaning=a["meaning"],
            stage=a["stage"],
            version_sha256=a["version_sha256"],
            kind=a["kind"],
            signed=bool(a["signed"]),
            signature_valid=valid,
            at=a["at"],
        )

    def _signature_valid(self, envelope: Any, principal_id: str, digest: str) -> bool:
        if not isinstance(envelope, Mapping):
            return False
        with self.db.read() as conn:
            keys = access.active_keys(conn, principal_id)
        for key in keys:
            try:
                statement = intoto.open_statement(
                    envelope, [dsse.load_public_key(key["public_key"])]
                )
            except (VerificationError, FormatError):
                continue
            return intoto.matches_subject(statement, digest)
        return False

    def _attestation_evidence(
        self, conn: Any, a: Mapping[str, Any], model: str, manifest: Manifest
    ) -> AttestationEvidence:
        # Verified again when the gate reads it: the key must still be registered and active.
        envelope = loads(self.store.read_bytes(a["envelope_sha256"]))
        key_rows = [
            k for k in access.active_keys(conn, a["signer"]) if k["key_id"] == a["signer_key_id"]
        ]
        valid = False
        statement = None
        for key in key_rows:
            try:
                statement = intoto.open_statement(
                    envelope, [dsse.load_public_key(key["public_key"])]
                )
                valid = True
                break
            except (VerificationError, FormatError):
                valid = False
        grants = access.grants_of(conn, a["signer"])
        subject = (
            a["subject_sha256"]
            if statement is None or covers_version(statement, a["subject_sha256"], manifest)
            else ""
        )
        event = self.log.event(int(a["seq"]))
        return AttestationEvidence(
            seq=int(a["seq"]),
            envelope_sha256=a["envelope_sha256"],
            predicate_type=a["predicate_type"],
            name=a["name"],
            result=a["result"],
            signer=a["signer"],
            signer_roles=frozenset(grants.get(model, set()) | grants.get("*", set())),
            signature_valid=valid,
            subject_sha256=subject,
            issued_at=a["issued_at"],
            metrics={
                k: float(v) for k, v in event.metadata.get("metrics", {}).items() if _number(v)
            },
        )

    def _drift_in(self, datasets: Sequence[str]) -> bool:
        """A data validation that flagged drift on any dataset the version was trained on."""
        for dataset in datasets:
            events = self.events(
                EventFilter(subject_type="dataset", subject_id=dataset, action="validate")
            )
            if any(
                e.metadata.get("check") == "drift"
                and e.metadata.get("result") in ("WARNED", "FAILED")
                for e in events
            ):
                return True
        return False

    def record_validation(
        self, dataset_id: str, *, check: str, result: str, details: Mapping[str, Any] | None = None
    ) -> Appended:
        """A data validation result on a dataset (drift, schema, …): PASSED, WARNED or FAILED."""
        self._require("register")
        if result not in ("PASSED", "WARNED", "FAILED"):
            raise InvalidInputError(
                f"validation result {result!r} must be PASSED, WARNED or FAILED"
            )
        with self.db.read() as conn:
            row = queries.get(conn, "dataset", dataset_id)
        draft = self._draft(
            Action.VALIDATE,
            Ref(SubjectType.DATASET, dataset_id, digest=row["digest"]),
            metadata={"check": check, "result": result, "details": dict(details or {})},
        )
        return self._append([draft])[0]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _attestation_name(statement: intoto.Statement) -> str | None:
    predicate = statement.predicate or {}
    if statement.predicate_type == FAIRNESS_PREDICATE:
        return "fairness"
    for item in predicate.get("configuration") or []:
        if isinstance(item, Mapping) and item.get("name"):
            return str(item["name"])
    return None


def _attestation_result(statement: intoto.Statement) -> str | None:
    result = (statement.predicate or {}).get("result")
    return str(result) if result is not None else None


def _attestation_metrics(statement: intoto.Statement) -> dict[str, float]:
    predicate = statement.predicate or {}
    metrics = {k: v for k, v in (predicate.get("metrics") or {}).items() if _number(v)}
    if statement.predicate_type == FAIRNESS_PREDICATE and _number(predicate.get("value")):
        metrics[str(predicate.get("metric", "fairness"))] = predicate["value"]
    return metrics


def _issued_at(statement: intoto.Statement, default: str) -> str:
    predicate = statement.predicate or {}
    for key in ("evaluated_at", "timeVerified", "issued_at"):
        if isinstance(predicate.get(key), str):
            return str(predicate[key])
    return default


def fairness_predicate(
    *, evaluator: str, evaluated_at: str, report_sha256: str, metric: str, value: float, result: str
) -> dict[str, Any]:
    """The seed's mini challenge: a fairness attestation in six fields — who, when, the
    report's hash (linkable artifact), the metric, its value and the result."""
    return {
        "evaluator": evaluator,
        "evaluated_at": evaluated_at,
        "report": {"sha256": report_sha256},
        "metric": metric,
        "value": value,
        "result": result,
    }
