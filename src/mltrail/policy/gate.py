"""Evaluating a promotion policy against the evidence for one version: the gate.

The service layer gathers the `Evidence` (the version's digest and stages, who registered,
trained and is promoting it, its run metrics, the approvals and attestations on record
with their signatures already checked, its flags and the registry clock) and calls
`evaluate_gate`. Evaluation is pure: no I/O, no clock. The `GateResult` lists every
rule with a sentence a person can read and the log indexes of the events it relied on,
so the decision can be recorded and later explained ("which approvals allowed this?").

>>> from mltrail.policy.document import ApprovalRule, Policy
>>> policy = Policy("fraud", "production", approvals=ApprovalRule(count=1, role="approver"))
>>> approval = ApprovalEvidence(
...     seq=39, approver="lead.ds", approver_roles=frozenset({"approver"}),
...     approver_active=True, meaning="approval", stage="production",
...     version_sha256="ab" * 32, kind="manual", signed=False, signature_valid=False,
...     at="2024-05-20T09:00:00Z")
>>> evidence = Evidence(
...     version_id="model:fraud:v5", version_sha256="ab" * 32, current_stage="staging",
...     target_stage="production", registrant="alice", run_author="alice",
...     promoter="bob", run_metrics={}, approvals=(approval,), attestations=(),
...     flags=frozenset(), now="2024-05-20T10:00:00Z")
>>> result = evaluate_gate(policy, evidence)
>>> bool(result), [rule.rule for rule in result.rules]
(True, ['integrity', 'approvals'])
>>> result.rules[1].detail, result.rules[1].evidence
('1 of 1 approvals from distinct approvers: lead.ds (#39)', (39,))
>>> from dataclasses import replace
>>> bool(evaluate_gate(policy, replace(evidence, registrant="lead.ds")))
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mltrail.errors import InvalidInputError
from mltrail.policy.document import (
    ApprovalRule,
    AttestationRule,
    Condition,
    Meaning,
    MetricRule,
    MetricSource,
    Outcome,
    Policy,
)

__all__ = [
    "CLOCK_SKEW",
    "DRIFT_WARNING",
    "INTEGRITY_FAILED",
    "ApprovalEvidence",
    "AttestationEvidence",
    "Evidence",
    "GateResult",
    "RuleResult",
    "evaluate_gate",
]

INTEGRITY_FAILED = "integrity_failed"
DRIFT_WARNING = "drift_warning"
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future an attestation may be dated before it is refused."""

_DRIFT_TEST = "drift"
_DRIFT_RESULTS = frozenset({"WARNED", "FAILED"})
_MANUAL = "manual"


# --- evidence -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalEvidence:
    """An approval event on record, with what the registry knows about its approver now.

    Raises:
        InvalidInputError: ``at`` is not an RFC 3339 timestamp with a UTC offset.
    """

    seq: int
    approver: str
    approver_roles: frozenset[str]
    approver_active: bool
    meaning: str
    stage: str
    version_sha256: str
    kind: str
    signed: bool
    signature_valid: bool
    at: str

    def __post_init__(self) -> None:
        _instant(self.at, f"approval #{self.seq} at")


@dataclass(frozen=True, slots=True)
class AttestationEvidence:
    """An attestation on record; ``signature_valid`` says its DSSE envelope verified.

    Raises:
        InvalidInputError: ``issued_at`` is not an RFC 3339 timestamp with a UTC offset.
    """

    seq: int
    envelope_sha256: str
    predicate_type: str
    name: str | None
    result: str | None
    signer: str
    signer_roles: frozenset[str]
    signature_valid: bool
    subject_sha256: str
    issued_at: str
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _instant(self.issued_at, f"attestation #{self.seq} issued_at")


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the gate may look at for one promotion of one version.

    Raises:
        InvalidInputError: ``now`` is not an RFC 3339 timestamp with a UTC offset.
    """

    version_id: str
    version_sha256: str
    current_stage: str
    target_stage: str
    registrant: str
    run_author: str | None
    promoter: str
    run_metrics: Mapping[str, float]
    approvals: tuple[ApprovalEvidence, ...]
    attestations: tuple[AttestationEvidence, ...]
    flags: frozenset[str]
    now: str

    def __post_init__(self) -> None:
        _instant(self.now, "evidence now")


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's outcome.

    Args:
        rule: a stable short id (``approvals``, ``attestation[0]:unit-tests``,
            ``metric:auc``, ``condition:drift_warning``, ``allowed_from``, ``integrity``).
        ok: whether the rule holds.
        detail: a sentence saying why, naming the approvers and attestations.
        evidence: log indexes of the approvals and attestations the rule relied on.
    """

    rule: str
    ok: bool
    detail: str
    evidence: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        return {
            "rule": self.rule,
            "ok": self.ok,
            "detail": self.detail,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class GateResult:
    """The gate's decision: allowed when every rule holds. ``bool(result)`` is `allowed`."""

    rules: tuple[RuleResult, ...]
    policy_digest: str | None = None

    @property
    def allowed(self) -> bool:
        """Whether the promotion may go ahead."""
        return all(rule.ok for rule in self.rules)

    def __bool__(self) -> bool:
        return self.allowed

    def failed(self) -> list[RuleResult]:
        """The rules that do not hold, in evaluation order."""
        return [rule for rule in self.rules if not rule.ok]

    def reasons(self) -> list[str]:
        """One line per failed rule (for `PolicyError.errors`)."""
        return [f"{rule.rule}: {rule.detail}" for rule in self.failed()]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object recorded with the promotion decision."""
        return {
            "allowed": self.allowed,
            "policy_digest": self.policy_digest,
            "rules": [rule.to_dict() for rule in self.rules],
        }


# --- the gate -------------------------------------------------------------------------------


def evaluate_gate(policy: Policy | None, evidence: Evidence) -> GateResult:
    """Evaluate ``policy`` for promoting the version described by ``evidence``.

    Args:
        policy: the policy for the model and target stage, or ``None`` if there is none.
        evidence: what is on record for the version; no side effects, no clock.

    Returns:
        Every rule's outcome; a version flagged ``integrity_failed`` never passes, with or
        without a policy.

    Raises:
        InvalidInputError: the policy gates another stage than ``evidence.target_stage``.
    """
    rules = [_integrity(evidence)]
    if policy is None:
        rules.append(RuleResult("policy", True, "no policy for this model and stage"))
        return GateResult(tuple(rules))
    if policy.stage != evidence.target_stage:
        raise InvalidInputError(
            f"policy {policy.digest[:12]} gates stage {policy.stage!r}, "
            f"not {evidence.target_stage!r}"
        )
    if policy.allowed_from is not None:
        rules.append(_allowed_from(policy.allowed_from, evidence))
    if policy.approvals is not None:
        rules.append(_approvals(policy.approvals, evidence))
    for index, attestation in enumerate(policy.attestations):
        rules.append(_attestation(index, attestation, evidence))
    rules.extend(_metric(metric, evidence) for metric in policy.metrics)
    rules.extend(
        _condition(condition, policy.approvals, evidence) for condition in policy.conditions
    )
    return GateResult(tuple(rules), policy.digest)


def _integrity(evidence: Evidence) -> RuleResult:
    if INTEGRITY_FAILED in evidence.flags:
        return RuleResult(
            "integrity",
            False,
            f"{evidence.version_id} is flagged "
            "integrity_failed: its stored bytes no longer match the recorded "
            "digest, so it cannot be promoted",
        )
    return RuleResult("integrity", True, f"no integrity failure recorded for {evidence.version_id}")


def _allowed_from(stages: frozenset[str], evidence: Evidence) -> RuleResult:
    allowed = ", ".join(sorted(stages))
    ok = evidence.current_stage in stages
    verdict = "is allowed" if ok else "is not allowed"
    detail = (
        f"promotion from {evidence.current_stage!r} to {evidence.target_stage!r} "
        f"{verdict} (allowed from: {allowed})"
    )
    return RuleResult("allowed_from", ok, detail)


# --- approvals ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Screen:
    """Which approvals count: an `ApprovalRule`'s filters, or the drift fallback's."""

    meanings: frozenset[str]
    role: str | None
    separation_of_duties: bool
    require_signed: bool


# Without an approvals rule, a drift condition still needs one approval that is not a
# self-approval, by an active principal (DESIGN.md §7, seed Example 2 step 5).
_FALLBACK = _Screen(frozenset({Meaning.APPROVAL}), None, True, False)


def _screen(rule: ApprovalRule | None) -> _Screen:
    if rule is None:
        return _FALLBACK
    return _Screen(
        frozenset(rule.meanings), rule.role, rule.separation_of_duties, rule.require_signed
    )


@dataclass(frozen=True, slots=True)
class _Tally:
    counted: tuple[ApprovalEvidence, ...]
    refused: tuple[str, ...]


def _tally(screen: _Screen, evidence: Evidence) -> _Tally:
    """The approvals that count, one per approver (the earliest), and why the rest don't."""
    counted: dict[str, ApprovalEvidence] = {}
    refused: list[str] = []
    for approval in sorted(evidence.approvals, key=lambda a: a.seq):
        objections = _objections(approval, screen, evidence)
        if not objections and approval.approver in counted:
            objections = [
                f"{approval.approver} already counted (#{counted[approval.approver].seq})"
            ]
        if objections:
            refused.append(f"{_who(approval)}: {', '.join(objections)}")
        else:
            counted[approval.approver] = approval
    return _Tally(tuple(counted.values()), tuple(refused))


def _objections(approval: ApprovalEvidence, screen: _Screen, evidence: Evidence) -> list[str]:
    found = []
    if approval.stage != evidence.target_stage:
        found.append(f"approves promotion to {approval.stage!r}, not {evidence.target_stage!r}")
    if approval.version_sha256 != evidence.version_sha256:
        found.append(f"bound to another digest ({_short(approval.version_sha256)})")
    if approval.meaning not in screen.meanings:
        found.append(
            f"meaning {approval.meaning!r} does not count "
            f"(counted: {', '.join(sorted(screen.meanings))})"
        )
    if not approval.approver_active:
        found.append("approver is revoked or unknown")
    if screen.role is not None and screen.role not in approval.approver_roles:
        found.append(f"approver does not hold role {screen.role!r}")
    if screen.separation_of_duties:
        found.extend(_self_approval(approval.approver, evidence))
    if approval.signed and not approval.signature_valid:
        # A forged or broken signature never counts, whatever the policy says.
        found.append("signature does not verify against the approver's key")
    if screen.require_signed and not approval.signed:
        found.append("not signed, and the policy requires signed approvals")
    return found


def _self_approval(approver: str, evidence: Evidence) -> list[str]:
    roles = (
        ("registered this version", evidence.registrant),
        ("authored the training run", evidence.run_author),
        ("is the promoter", evidence.promoter),
    )
    return [f"self-approval: the approver {what}" for what, who in roles if who == approver]


def _approvals(rule: ApprovalRule, evidence: Evidence) -> RuleResult:
    tally = _tally(_screen(rule), evidence)
    ok = len(tally.counted) >= rule.count
    detail = f"{len(tally.counted)} of {rule.count} approvals from distinct approvers"
    if tally.counted:
        detail += ": " + ", ".join(_who(approval) for approval in tally.counted)
    if tally.refused:
        detail += "; not counted: " + "; ".join(tally.refused)
    return RuleResult("approvals", ok, detail, tuple(a.seq for a in tally.counted))


def _who(approval: ApprovalEvidence) -> str:
    return f"{approval.approver} (#{approval.seq})"


# --- attestations ---------------------------------------------------------------------------


def _attestation(index: int, rule: AttestationRule, evidence: Evidence) -> RuleResult:
    rule_id = f"attestation[{index}]" + (f":{rule.name}" if rule.name is not None else "")
    now = _instant(evidence.now, "evidence now")
    matched: list[AttestationEvidence] = []
    refused: list[str] = []
    for attestation in sorted(evidence.attestations, key=lambda a: a.seq):
        if attestation.predicate_type != rule.predicate_type or (
            rule.name is not None and attestation.name != rule.name
        ):
            continue
        objections = _attestation_objections(attestation, rule, evidence, now)
        if objections:
            refused.append(f"#{attestation.seq}: {', '.join(objections)}")
        else:
            matched.append(attestation)
    if matched:
        used = "; ".join(_describe_attestation(attestation) for attestation in matched)
        return RuleResult(rule_id, True, f"satisfied by {used}", tuple(a.seq for a in matched))
    detail = f"no valid attestation {_requirement(rule)}"
    if refused:
        detail += "; not counted: " + "; ".join(refused)
    return RuleResult(rule_id, False, detail)


def _attestation_objections(
    attestation: AttestationEvidence, rule: AttestationRule, evidence: Evidence, now: datetime
) -> list[str]:
    found = _unusable(attestation, evidence)
    if rule.results is not None and attestation.result not in rule.results:
        found.append(f"result {attestation.result or 'missing'}, not {_results(rule.results)}")
    if rule.signer_role is not None and rule.signer_role not in attestation.signer_roles:
        signer = attestation.signer or "(unknown key)"
        found.append(f"signer {signer} does not hold role {rule.signer_role!r}")
    issued = _instant(attestation.issued_at, "issued_at")
    if issued - now > CLOCK_SKEW:
        found.append(f"issued in the future ({attestation.issued_at}, now {evidence.now})")
    elif rule.max_age_days is not None and now - issued > timedelta(days=rule.max_age_days):
        age = (now - issued) / timedelta(days=1)
        found.append(f"expired: issued {age:.1f} days ago, limit {rule.max_age_days} days")
    return found


def _unusable(attestation: AttestationEvidence, evidence: Evidence) -> list[str]:
    """Why an attestation cannot be trusted about this version at all (empty if it can)."""
    found = []
    if not attestation.signature_valid:
        found.append("signature does not verify against a registered key")
    if attestation.subject_sha256 != evidence.version_sha256:
        found.append(f"is about another artifact ({_short(attestation.subject_sha256)})")
    return found


def _requirement(rule: AttestationRule) -> str:
    text = f"of type {rule.predicate_type}"
    if rule.name is not None:
        text += f" named {rule.name!r}"
    if rule.results is not None:
        text += f" with result {_results(rule.results)}"
    if rule.signer_role is not None:
        text += f" signed by a {rule.signer_role} principal"
    if rule.max_age_days is not None:
        text += f" within {rule.max_age_days} days"
    return text


def _results(accepted: frozenset[Outcome]) -> str:
    return " or ".join(outcome.value for outcome in Outcome if outcome in accepted)


def _describe_attestation(attestation: AttestationEvidence) -> str:
    what = attestation.name or attestation.predicate_type
    result = f" {attestation.result}" if attestation.result is not None else ""
    return (
        f"#{attestation.seq} ({what}{result}, signed by {attestation.signer}, "
        f"issued {attestation.issued_at})"
    )


# --- metrics --------------------------------------------------------------------------------


def _metric(rule: MetricRule, evidence: Evidence) -> RuleResult:
    rule_id = f"metric:{rule.name}"
    found = _metric_value(rule, evidence)
    if found is None:
        where = (
            "the run's metrics"
            if rule.source is MetricSource.RUN
            else "every valid attestation about this version"
        )
        return RuleResult(rule_id, False, f"metric {rule.name} is missing from {where}")
    value, origin, used = found
    problem = _out_of_bounds(value, rule)
    verdict = problem or f"meets {_bounds(rule)}"
    detail = f"{rule.name} = {value:g} from {origin}, {verdict}"
    return RuleResult(rule_id, problem is None, detail, used)


def _metric_value(
    rule: MetricRule, evidence: Evidence
) -> tuple[float, str, tuple[int, ...]] | None:
    """The metric's value, where it came from, and the attestation used (if any)."""
    if rule.source is MetricSource.RUN:
        value = evidence.run_metrics.get(rule.name)
        return None if value is None else (value, "the run's metrics", ())
    source = _newest_carrying(rule.name, evidence)
    if source is None:
        return None
    return source.metrics[rule.name], f"attestation #{source.seq}", (source.seq,)


def _newest_carrying(name: str, evidence: Evidence) -> AttestationEvidence | None:
    """The newest trusted attestation about this version that carries metric ``name``."""
    now = _instant(evidence.now, "evidence now")
    candidates = [
        attestation
        for attestation in evidence.attestations
        if name in attestation.metrics
        and not _unusable(attestation, evidence)
        and _instant(attestation.issued_at, "issued_at") - now <= CLOCK_SKEW
    ]
    return max(candidates, default=None, key=lambda a: (_instant(a.issued_at, "issued_at"), a.seq))


def _out_of_bounds(value: float, rule: MetricRule) -> str | None:
    if not math.isfinite(value):
        return "which is not a finite number"
    if rule.minimum is not None and value < rule.minimum:
        return f"below the minimum {rule.minimum:g}"
    if rule.maximum is not None and value > rule.maximum:
        return f"above the maximum {rule.maximum:g}"
    return None


def _bounds(rule: MetricRule) -> str:
    parts = []
    if rule.minimum is not None:
        parts.append(f"min {rule.minimum:g}")
    if rule.maximum is not None:
        parts.append(f"max {rule.maximum:g}")
    return " and ".join(parts)


# --- conditions -----------------------------------------------------------------------------


def _condition(condition: Condition, rule: ApprovalRule | None, evidence: Evidence) -> RuleResult:
    # Only drift_warning -> manual_approval exists (Trigger and Requirement are closed).
    rule_id = f"condition:{condition.when.value}"
    causes, drift_seqs = _drift(evidence)
    if not causes:
        return RuleResult(rule_id, True, "no drift warning on this version")
    tally = _tally(_screen(rule), evidence)
    manual = [approval for approval in tally.counted if approval.kind == _MANUAL]
    because = f"drift warning ({'; '.join(causes)}) requires a manual approval"
    if manual:
        found = ", ".join(_who(approval) for approval in manual)
        return RuleResult(
            rule_id, True, f"{because}: {found}", drift_seqs + tuple(a.seq for a in manual)
        )
    counted = ", ".join(f"{_who(a)} {a.kind}" for a in tally.counted) or "none"
    return RuleResult(
        rule_id,
        False,
        f"{because}, and no counted approval is manual (counted: {counted})",
        drift_seqs,
    )


def _drift(evidence: Evidence) -> tuple[list[str], tuple[int, ...]]:
    """Why the version has a drift warning (empty if it has none), and the attestations."""
    causes = [f"flag {DRIFT_WARNING}"] if DRIFT_WARNING in evidence.flags else []
    warned = [
        attestation
        for attestation in sorted(evidence.attestations, key=lambda a: a.seq)
        if attestation.name == _DRIFT_TEST
        and attestation.result in _DRIFT_RESULTS
        and not _unusable(attestation, evidence)
    ]
    causes.extend(f"drift attestation #{a.seq} result {a.result}" for a in warned)
    return causes, tuple(a.seq for a in warned)


# --- helpers --------------------------------------------------------------------------------


def _instant(text: str, what: str) -> datetime:
    """Parse an RFC 3339 timestamp; it must carry a UTC offset."""
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} {text!r} is not an RFC 3339 timestamp") from exc
    if value.tzinfo is None:
        raise InvalidInputError(f"{what} {text!r} has no UTC offset (RFC 3339 requires one)")
    return value


def _short(digest: str) -> str:
    return f"sha256:{digest[:12]}…"
