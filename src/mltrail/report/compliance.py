"""The compliance report: the auditor's answer for one model version (seed Example 3).

"Who approved model M:5, currently in production?" The report lists the registration,
the lineage chain, the attestations, the approvals (who by name and id, when, meaning,
signature), the policy in force, each promotion decision rule by rule (overrides called
out loudly) and the deployments. Every row carries its log index, its event SHA-256 and
the state of its inclusion proof against the signed checkpoint, which is checked while
rendering: evidence whose checkpoint signature or proofs do not hold is refused.

The input is the evidence dict `service.Registry.compliance_evidence` builds; an auditor
who trusts only the registry's key checks it offline with `mltrail.report.bundle`.

>>> render_compliance({}, "pdf")
Traceback (most recent call last):
...
mltrail.errors.InvalidInputError: report format 'pdf' is not one of markdown, html, json
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from mltrail.errors import FormatError, InvalidInputError
from mltrail.ledger.checkpoint import Checkpoint
from mltrail.report.claims import ProvenEvent, ProvenEvidence, prove_evidence
from mltrail.report.page import (
    Alert,
    Block,
    Inline,
    Mark,
    Page,
    Paragraph,
    Preformatted,
    Section,
    Table,
    show,
    show_ref,
)

__all__ = ["FORMATS", "malformed", "render_compliance"]

FORMATS = ("markdown", "html", "json")
_PROOF_HEADERS = ("log index", "event sha256", "inclusion proof")
_DETAIL_KEYS = (
    "version",
    "to_version",
    "from_version",
    "target",
    "to_stage",
    "reason",
    "reasons",
    "check",
    "result",
    "config_sha256",
)


def render_compliance(evidence: Mapping[str, Any], fmt: str = "markdown") -> str:
    """Render the compliance report of one version.

    Args:
        evidence: the evidence dict (`service.Registry.compliance_evidence`).
        fmt: ``markdown``, ``html`` (one self-contained page) or ``json`` (the evidence).

    Returns:
        The report text.

    Raises:
        InvalidInputError: ``fmt`` is not a known format.
        FormatError: the evidence lacks a field or has one of the wrong type.
        VerificationError: the checkpoint signature, an event digest or an inclusion proof
            does not hold.
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"report format {fmt!r} is not one of {', '.join(FORMATS)}")
    with malformed("evidence"):
        proven = prove_evidence(evidence)
        if fmt == "json":
            return json.dumps(evidence, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        page = _page(evidence, proven)
    return page.to_markdown() if fmt == "markdown" else page.to_html()


@contextmanager
def malformed(what: str) -> Iterator[None]:
    """Report a missing or mistyped field of ``what`` as the one FormatError (STYLE §4)."""
    try:
        yield
    except KeyError as exc:
        raise FormatError(f"{what} is missing the field {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise FormatError(f"{what} is malformed: {exc}") from exc


# --- the page ----------------------------------------------------------------------------------


def _page(evidence: Mapping[str, Any], proven: ProvenEvidence) -> Page:
    version = evidence["version"]
    sections = (
        _registration(proven, version["version_id"]),
        _lineage(evidence["lineage"], proven),
        _keys(evidence.get("keys") or [], proven),
        _attestations(evidence["attestations"], proven),
        _approvals(evidence["approvals"], version["manifest_sha256"], proven),
        _policy(evidence.get("policy"), proven),
        _decisions(evidence["decisions"], proven),
        _section("Deployments", proven.with_action("deploy", "rollback")),
        _section("Rejections", proven.with_action("reject")),
        _section("Every event in this report", proven.with_role()),
    )
    return Page(
        title=f"Compliance report: {version['version_id']}",
        facts=_facts(evidence, proven.checkpoint),
        sections=tuple(s for s in sections if s is not None),
        notes=_notes(evidence, proven),
    )


def _facts(evidence: Mapping[str, Any], cp: Checkpoint) -> tuple[tuple[str, Inline], ...]:
    version, registry = evidence["version"], evidence["registry"]
    return (
        ("model version", Mark(version["version_id"], "strong")),
        ("model", f"{version['model']} (version {version['number']})"),
        ("stage", show(version.get("stage"))),
        ("manifest sha256", Mark(version["manifest_sha256"], "code")),
        ("registered by", show(version.get("registered_by"))),
        ("run", show(version.get("run_id"))),
        ("flags", ", ".join(version.get("flags") or []) or "none"),
        ("registry", registry["origin"]),
        ("registry verifier key", Mark(registry["verifier_key"], "code")),
        ("signed checkpoint", f"{cp.origin}, size {cp.size}"),
        ("checkpoint root (hex)", Mark(cp.root_hash.hex(), "code")),
        ("generated at", show(evidence.get("generated_at"))),
    )


def _notes(evidence: Mapping[str, Any], proven: ProvenEvidence) -> tuple[Paragraph, ...]:
    version = evidence["version"]["version_id"]
    notes = [
        _para(
            "Every row names its log index and event SHA-256. The checkpoint signature (with the "
            f"registry verifier key above) and all {len(proven.events)} inclusion proofs were "
            "verified when this report was rendered. "
            "To check everything offline, trusting only the registry's key: ",
            Mark(f"mltrail export evidence {version} -o DIR", "code"),
            " then ",
            Mark("mltrail verify-bundle DIR --key KEY", "code"),
            ".",
        )
    ]
    overridden = [
        d
        for d in evidence["decisions"]
        if d["override"] and proven.cite(d["event"], "decision").subject_id == version
    ]
    if overridden:
        notes.append(
            _para(
                Mark(
                    "⚠ A promotion of this version went ahead with a break-glass "
                    "override of a failing policy gate; see Promotion decisions.",
                    "bad",
                )
            )
        )
    return tuple(notes)


def _cells(proven: ProvenEvent) -> tuple[Inline, ...]:
    """The log index, event digest and proof note every report row ends with."""
    size, root = proven.checkpoint.size, proven.checkpoint.root_hash.hex()
    note = f"✓ verifies against signed checkpoint size {size}, root {root[:12]}…"
    return (Mark(str(proven.index), "strong"), Mark(proven.sha256, "code"), Mark(note, "good"))


def _para(*parts: Inline) -> Paragraph:
    return Paragraph(parts)


def _table(headers: Sequence[str], rows: Sequence[tuple[Inline, ...]]) -> Table:
    return Table(tuple(headers), tuple(rows))


def _events_table(events: Sequence[ProvenEvent]) -> Table:
    headers = ("role", "action", "who", "when", "subject", "subject digest", "outcome", "details")
    rows = [
        (
            p.role,
            p.event["action"],
            show_ref(p.event["actor"]),
            p.event["timestamp"],
            show_ref(p.event["subject"]),
            Mark(show(p.event["subject"].get("digest")), "code"),
            _outcome(p.event),
            _details(p.event),
            *_cells(p),
        )
        for p in events
    ]
    return _table(headers + _PROOF_HEADERS, rows)


def _registration(proven: ProvenEvidence, version_id: str) -> Section:
    events = [
        p
        for p in proven.with_action("register", subject_type="model_version")
        if p.subject_id == version_id
    ]
    if not events:
        return Section("Registration", (Alert(("no registration event is in the evidence",)),))
    return Section("Registration", (_events_table(events),))


def _section(title: str, events: Sequence[ProvenEvent]) -> Section | None:
    return Section(title, (_events_table(events),)) if events else None


def _outcome(event: Mapping[str, Any]) -> Inline:
    outcome = show(event.get("metadata", {}).get("outcome", "success"))
    return Mark(outcome, "good") if outcome == "success" else Mark(outcome.upper(), "bad")


def _details(event: Mapping[str, Any]) -> str:
    meta = event.get("metadata", {})
    return "; ".join(f"{k}: {show(meta[k])}" for k in _DETAIL_KEYS if meta.get(k) is not None)


def _lineage(lineage: Mapping[str, Any], proven: ProvenEvidence) -> Section:
    chain = " → ".join(show(x) for x in lineage.get("chain") or []) or "—"
    blocks: list[Block] = [_para(Mark("chain", "strong"), ": ", chain)]
    for key in ("run", "commit", "environment", "parameters"):
        value = lineage.get(key)
        if isinstance(value, Mapping) and value:
            rows = [(str(k), show(v)) for k, v in sorted(value.items())]
            blocks += [_para(Mark(key, "strong")), _table(("field", "value"), rows)]
    datasets = [
        (
            show(d.get("dataset_id", d.get("id"))),
            Mark(show(d.get("digest", d.get("sha256"))), "code"),
            show(d.get("uri")),
        )
        for d in lineage.get("datasets") or []
    ]
    if datasets:
        headers = ("dataset", "digest", "uri")
        blocks += [_para(Mark("datasets", "strong")), _table(headers, datasets)]
    events = proven.with_role("lineage")
    if events:
        blocks += [_para(Mark("lineage events", "strong")), _events_table(events)]
    return Section("Lineage", tuple(blocks))


def _keys(keys: Sequence[Mapping[str, Any]], proven: ProvenEvidence) -> Section | None:
    rows = [
        (k["principal_id"], Mark(k["key_id"], "code"), *_cells(proven.cite(k["event"], "key")))
        for k in keys
    ]
    headers = ("principal", "key id", *_PROOF_HEADERS)
    return Section("Signing keys", (_table(headers, rows),)) if rows else None


def _attestations(items: Sequence[Mapping[str, Any]], proven: ProvenEvidence) -> Section:
    headers = ("name", "predicate type", "result", "signer", "envelope sha256", "signature")
    rows = [
        (
            show(a.get("name")),
            a["predicate_type"],
            _result(a.get("result")),
            f"{a['signer']} (key {str(a['key_id'])[:12]}…)",
            Mark(a["envelope_sha256"], "code"),
            Mark("✓ verified", "good") if a["verified"] else Mark("✗ NOT VERIFIED", "bad"),
            *_cells(proven.cite(a["event"], f"attestation {a['envelope_sha256']}")),
        )
        for a in items
    ]
    if not rows:
        return Section("Attestations", (Alert(("no attestation is on record for this version",)),))
    return Section("Attestations", (_table(headers + _PROOF_HEADERS, rows),))


def _result(result: Any) -> Inline:
    text = show(result)
    if text == "PASSED":
        return Mark(text, "good")
    return Mark(text, "bad") if text in ("FAILED", "WARNED") else text


def _approvals(items: Sequence[Mapping[str, Any]], digest: str, proven: ProvenEvidence) -> Section:
    headers = (
        "approver (name, id)",
        "when",
        "meaning",
        "stage",
        "kind",
        "approved digest",
        "signature",
        "comment",
    )
    rows = [
        (
            f"{a['approver']['name']} ({a['approver']['id']})",
            a["at"],
            a["meaning"],
            a["stage"],
            a["kind"],
            _bound(a["version_sha256"], digest),
            _signature(a),
            show(a.get("comment")),
            *_cells(proven.cite(a["event"], f"approval by {a['approver']['id']}")),
        )
        for a in items
    ]
    if not rows:
        return Section("Approvals", (Alert(("no approval is on record for this version",)),))
    return Section("Approvals", (_table(headers + _PROOF_HEADERS, rows),))


def _bound(approved: str, digest: str) -> Inline:
    if approved == digest:
        return Mark(f"✓ this version's manifest {approved[:12]}…", "good")
    return Mark(f"✗ ANOTHER DIGEST {approved}", "bad")


def _signature(approval: Mapping[str, Any]) -> Inline:
    if not approval["signed"]:
        return "unsigned"
    if approval["signature_verified"]:
        return Mark("✓ signed, verified with the approver's registered key", "good")
    return Mark("✗ signed, signature NOT VERIFIED", "bad")


def _policy(policy: Mapping[str, Any] | None, proven: ProvenEvidence) -> Section:
    title = "Policy in force"
    if policy is None:
        return Section(title, (Alert(("no policy was in force for this model and stage",)),))
    row = (
        policy["scope"],
        policy["stage"],
        show(policy["version"]),
        Mark(policy["digest"], "code"),
        *_cells(proven.cite(policy["event"], "policy")),
    )
    headers = ("scope", "stage", "version", "document sha256", *_PROOF_HEADERS)
    document = json.dumps(policy.get("document"), indent=2, sort_keys=True, ensure_ascii=False)
    return Section(title, (_table(headers, [row]), Preformatted(document)))


def _decisions(decisions: Sequence[Mapping[str, Any]], proven: ProvenEvidence) -> Section:
    blocks: list[Block] = []
    for decision in decisions:
        blocks += _decision(decision, proven.cite(decision["event"], "promotion decision"))
    if not blocks:
        blocks.append(_para("no promotion of this version is on record"))
    return Section("Promotion decisions", tuple(blocks))


def _decision(decision: Mapping[str, Any], proven: ProvenEvent) -> list[Block]:
    event, policy = proven.event, decision.get("policy")
    verdict = "ALLOWED" if decision["allowed"] else "REFUSED"
    if decision["override"]:
        verdict = "ALLOWED BY OVERRIDE"
    index, sha, proof = _cells(proven)
    blocks: list[Block] = [
        _para(
            Mark(f"{event['action']} {proven.subject_id} to {decision['to_stage']}", "strong"),
            ": ",
            Mark(verdict, "good" if verdict == "ALLOWED" else "bad"),
            f" — by {show_ref(event['actor'])} at {event['timestamp']}; ",
            *_policy_ref(policy),
            "; registry-signed verification summary ",
            Mark(show(decision.get("verification_attestation")), "code"),
            "; log index ",
            index,
            ", event sha256 ",
            sha,
            ", ",
            proof,
        )
    ]
    if decision["override"]:
        failed = [str(r["rule"]) for r in decision["rules"] if not r["ok"]]
        reason = event.get("metadata", {}).get("override_reason")
        blocks.append(
            Alert(
                (
                    Mark("BREAK-GLASS OVERRIDE", "bad"),
                    f": {show_ref(event['actor'])} promoted although {len(failed)} rule(s) failed "
                    f"({', '.join(failed) or 'none'}); reason given: {show(reason)}",
                )
            )
        )
    rows = [
        (
            show(r["rule"]),
            Mark("✓ ok", "good") if r["ok"] else Mark("✗ FAILED", "bad"),
            show(r.get("detail")),
            ", ".join(f"#{i}" for i in r.get("evidence") or []) or "—",
        )
        for r in decision["rules"]
    ]
    blocks.append(_table(("rule", "result", "detail", "evidence (log indexes)"), rows))
    return blocks


def _policy_ref(policy: Mapping[str, Any] | None) -> tuple[Inline, ...]:
    if not policy:
        return ("no policy in force",)
    return (
        f"policy {policy.get('scope')}/{policy.get('stage')} version "
        f"{show(policy.get('version'))} ",
        Mark(show(policy.get("digest")), "code"),
    )
