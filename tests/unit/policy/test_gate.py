"""The promotion gate: each rule on its own, and the seed's Project 2 and Example 2."""

from __future__ import annotations

import doctest
from dataclasses import replace
from typing import Any

import pytest

from mltrail.errors import InvalidInputError
from mltrail.policy import gate
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
from mltrail.policy.gate import (
    ApprovalEvidence,
    AttestationEvidence,
    Evidence,
    GateResult,
    RuleResult,
    evaluate_gate,
)

TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
PROVENANCE = "https://slsa.dev/provenance/v1"
VERSION = "ab" * 32
OTHER = "cd" * 32
NOW = "2024-05-20T10:00:00Z"

# The seed's Project 2: "A promotion requires two approvals and attached test results;
# attempts without them are rejected."
PROJECT_2 = Policy.parse(f"""\
apiVersion: mltrail/v1
kind: PromotionPolicy
scope: fraud
stage: production
allowed_from: [staging]
approvals: {{count: 2, role: approver}}
attestations:
  - predicate_type: {TEST_RESULT}
    name: unit-tests
    result: PASSED
    signer_role: ci
    max_age_days: 30
""")


def approval(seq: int, approver: str, **changes: Any) -> ApprovalEvidence:
    base = ApprovalEvidence(
        seq=seq,
        approver=approver,
        approver_roles=frozenset({"approver"}),
        approver_active=True,
        meaning="approval",
        stage="production",
        version_sha256=VERSION,
        kind="manual",
        signed=False,
        signature_valid=False,
        at="2024-05-20T09:00:00Z",
    )
    return replace(base, **changes)


def attestation(seq: int, name: str | None = "unit-tests", **changes: Any) -> AttestationEvidence:
    base = AttestationEvidence(
        seq=seq,
        envelope_sha256="ef" * 32,
        predicate_type=TEST_RESULT,
        name=name,
        result="PASSED",
        signer="ci-bot",
        signer_roles=frozenset({"ci"}),
        signature_valid=True,
        subject_sha256=VERSION,
        issued_at="2024-05-19T08:00:00Z",
        metrics={},
    )
    return replace(base, **changes)


LEAD = approval(39, "lead.ds")
RISK = approval(41, "risk.officer")
UNIT_TESTS = attestation(37)


def evidence(*records: ApprovalEvidence | AttestationEvidence, **changes: Any) -> Evidence:
    base = Evidence(
        version_id="model:fraud:v5",
        version_sha256=VERSION,
        current_stage="staging",
        target_stage="production",
        registrant="alice",
        run_author="bob",
        promoter="carol",
        run_metrics={"auc": 0.93},
        approvals=tuple(r for r in records if isinstance(r, ApprovalEvidence)),
        attestations=tuple(r for r in records if isinstance(r, AttestationEvidence)),
        flags=frozenset(),
        now=NOW,
    )
    return replace(base, **changes)


def rule(result: GateResult, rule_id: str) -> RuleResult:
    [found] = [r for r in result.rules if r.rule == rule_id]
    return found


# --- the seed's Project 2 ---------------------------------------------------------------------


def test_project_2_two_approvals_and_test_results_pass() -> None:
    result = evaluate_gate(PROJECT_2, evidence(LEAD, RISK, UNIT_TESTS))
    assert result
    assert result.allowed
    assert result.failed() == []
    assert [r.rule for r in result.rules] == [
        "integrity",
        "allowed_from",
        "approvals",
        "attestation[0]:unit-tests",
    ]
    approvals = rule(result, "approvals")
    assert approvals.detail == (
        "2 of 2 approvals from distinct approvers: lead.ds (#39), risk.officer (#41)"
    )
    assert approvals.evidence == (39, 41)
    tests = rule(result, "attestation[0]:unit-tests")
    assert tests.evidence == (37,)
    assert "#37 (unit-tests PASSED, signed by ci-bot" in tests.detail
    assert result.policy_digest == PROJECT_2.digest


def test_project_2_without_approvals_or_test_results_fails() -> None:
    result = evaluate_gate(PROJECT_2, evidence())
    assert not result
    assert [r.rule for r in result.failed()] == ["approvals", "attestation[0]:unit-tests"]
    assert rule(result, "approvals").detail == "0 of 2 approvals from distinct approvers"
    assert rule(result, "attestation[0]:unit-tests").detail == (
        f"no valid attestation of type {TEST_RESULT} named 'unit-tests' with result PASSED "
        "signed by a ci principal within 30 days"
    )


def test_project_2_with_one_approval_fails() -> None:
    result = evaluate_gate(PROJECT_2, evidence(LEAD, UNIT_TESTS))
    assert not result
    assert [r.rule for r in result.failed()] == ["approvals"]
    assert rule(result, "approvals").detail.startswith("1 of 2 approvals")


def test_project_2_without_test_results_fails() -> None:
    result = evaluate_gate(PROJECT_2, evidence(LEAD, RISK))
    assert [r.rule for r in result.failed()] == ["attestation[0]:unit-tests"]


# --- approvals that must not count --------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "because"),
    [
        ("alice", "self-approval: the approver registered this version"),
        ("bob", "self-approval: the approver authored the training run"),
        ("carol", "self-approval: the approver is the promoter"),
    ],
    ids=["registrant", "run-author", "promoter"],
)
def test_self_approval_fails(who: str, because: str) -> None:
    result = evaluate_gate(PROJECT_2, evidence(LEAD, approval(40, who), UNIT_TESTS))
    assert not result
    approvals = rule(result, "approvals")
    assert approvals.evidence == (39,)
    assert f"not counted: {who} (#40): {because}" in approvals.detail


def test_self_approval_lists_every_role_held() -> None:
    same = evidence(LEAD, approval(40, "alice"), UNIT_TESTS, run_author="alice", promoter="alice")
    detail = rule(evaluate_gate(PROJECT_2, same), "approvals").detail
    assert detail.count("self-approval") == 3


def test_self_approval_counts_without_separation_of_duties() -> None:
    lenient = replace(PROJECT_2, approvals=ApprovalRule(2, "approver", separation_of_duties=False))
    assert evaluate_gate(lenient, evidence(LEAD, approval(40, "alice"), UNIT_TESTS))


def test_run_without_author_is_no_self_approval() -> None:
    assert evaluate_gate(PROJECT_2, evidence(LEAD, RISK, UNIT_TESTS, run_author=None))


def test_approval_from_revoked_principal_fails() -> None:
    revoked = approval(41, "risk.officer", approver_active=False)
    result = evaluate_gate(PROJECT_2, evidence(LEAD, revoked, UNIT_TESTS))
    assert not result
    assert "risk.officer (#41): approver is revoked or unknown" in rule(result, "approvals").detail


def test_approval_from_role_less_principal_fails() -> None:
    role_less = approval(41, "risk.officer", approver_roles=frozenset())
    result = evaluate_gate(PROJECT_2, evidence(LEAD, role_less, UNIT_TESTS))
    assert not result
    assert "approver does not hold role 'approver'" in rule(result, "approvals").detail


def test_approval_from_principal_with_another_role_fails() -> None:
    viewer = approval(41, "risk.officer", approver_roles=frozenset({"viewer"}))
    assert not evaluate_gate(PROJECT_2, evidence(LEAD, viewer, UNIT_TESTS))


def test_approval_bound_to_another_digest_fails() -> None:
    stale = approval(41, "risk.officer", version_sha256=OTHER)
    result = evaluate_gate(PROJECT_2, evidence(LEAD, stale, UNIT_TESTS))
    assert not result
    assert "bound to another digest (sha256:cdcdcdcdcdcd…)" in rule(result, "approvals").detail


def test_approval_for_another_stage_fails() -> None:
    staging = approval(41, "risk.officer", stage="staging")
    result = evaluate_gate(PROJECT_2, evidence(LEAD, staging, UNIT_TESTS))
    assert not result
    assert "approves promotion to 'staging', not 'production'" in rule(result, "approvals").detail


def test_review_meaning_does_not_count_by_default() -> None:
    review = approval(41, "risk.officer", meaning="review")
    result = evaluate_gate(PROJECT_2, evidence(LEAD, review, UNIT_TESTS))
    assert not result
    assert "meaning 'review' does not count (counted: approval)" in rule(result, "approvals").detail
    reviews_count = replace(
        PROJECT_2,
        approvals=ApprovalRule(2, "approver", meanings=frozenset(Meaning)),
    )
    assert evaluate_gate(reviews_count, evidence(LEAD, review, UNIT_TESTS))


def test_approvals_are_counted_once_per_approver() -> None:
    again = approval(45, "lead.ds")
    result = evaluate_gate(PROJECT_2, evidence(again, LEAD, UNIT_TESTS))
    assert not result
    approvals = rule(result, "approvals")
    assert approvals.evidence == (39,)
    assert "lead.ds (#45): lead.ds already counted (#39)" in approvals.detail


def test_approval_with_invalid_signature_never_counts() -> None:
    forged = approval(41, "risk.officer", signed=True, signature_valid=False)
    result = evaluate_gate(PROJECT_2, evidence(LEAD, forged, UNIT_TESTS))
    assert not result
    assert (
        "signature does not verify against the approver's key" in rule(result, "approvals").detail
    )


def test_require_signed() -> None:
    signed_policy = replace(PROJECT_2, approvals=ApprovalRule(2, "approver", require_signed=True))
    unsigned = evaluate_gate(signed_policy, evidence(LEAD, RISK, UNIT_TESTS))
    assert not unsigned
    assert "not signed, and the policy requires signed approvals" in unsigned.reasons()[0]
    signed = [replace(a, signed=True, signature_valid=True) for a in (LEAD, RISK)]
    assert evaluate_gate(signed_policy, evidence(*signed, UNIT_TESTS))


def test_more_approvals_than_needed_pass() -> None:
    third = approval(44, "cfo")
    result = evaluate_gate(PROJECT_2, evidence(LEAD, RISK, third, UNIT_TESTS))
    assert result
    assert rule(result, "approvals").evidence == (39, 41, 44)


# --- attestations -----------------------------------------------------------------------------

REJECTED_ATTESTATIONS = [
    ("forged", {"signature_valid": False}, "signature does not verify against a registered key"),
    ("expired", {"issued_at": "2024-04-01T00:00:00Z"}, "expired: issued 49.4 days ago"),
    ("future", {"issued_at": "2024-05-20T10:06:00Z"}, "issued in the future"),
    ("other-artifact", {"subject_sha256": OTHER}, "is about another artifact (sha256:cdcd"),
    ("wrong-result", {"result": "FAILED"}, "result FAILED, not PASSED"),
    ("no-result", {"result": None}, "result missing, not PASSED"),
    ("signer-role", {"signer_roles": frozenset()}, "signer ci-bot does not hold role 'ci'"),
    (
        "unknown-key",
        {"signer": "", "signer_roles": frozenset(), "signature_valid": False},
        "signer (unknown key) does not hold role 'ci'",
    ),
]


@pytest.mark.parametrize(
    ("changes", "because"),
    [case[1:] for case in REJECTED_ATTESTATIONS],
    ids=[case[0] for case in REJECTED_ATTESTATIONS],
)
def test_attestation_that_does_not_satisfy(changes: dict[str, Any], because: str) -> None:
    result = evaluate_gate(PROJECT_2, evidence(LEAD, RISK, attestation(37, **changes)))
    assert not result
    tests = rule(result, "attestation[0]:unit-tests")
    assert not tests.ok
    assert tests.evidence == ()
    assert "not counted: #37: " in tests.detail
    assert because in tests.detail


def test_forged_attestation_fails() -> None:
    forged = attestation(37, signature_valid=False)
    assert not evaluate_gate(PROJECT_2, evidence(LEAD, RISK, forged))


def test_expired_attestation_fails_at_the_limit_plus_one_second() -> None:
    at_limit = attestation(37, issued_at="2024-04-20T10:00:00Z")
    past_limit = attestation(37, issued_at="2024-04-20T09:59:59Z")
    assert evaluate_gate(PROJECT_2, evidence(LEAD, RISK, at_limit))
    assert not evaluate_gate(PROJECT_2, evidence(LEAD, RISK, past_limit))


def test_attestation_within_clock_skew_passes() -> None:
    skewed = attestation(37, issued_at="2024-05-20T10:05:00Z")
    assert evaluate_gate(PROJECT_2, evidence(LEAD, RISK, skewed))


def test_attestation_about_a_different_artifact_fails() -> None:
    other = attestation(37, subject_sha256=OTHER)
    assert not evaluate_gate(PROJECT_2, evidence(LEAD, RISK, other))


def test_attestation_with_wrong_result_fails() -> None:
    assert not evaluate_gate(PROJECT_2, evidence(LEAD, RISK, attestation(37, result="WARNED")))


def test_attestations_of_another_name_or_type_are_not_candidates() -> None:
    fairness = attestation(36, name="fairness")
    provenance = attestation(38, predicate_type=PROVENANCE)
    result = evaluate_gate(PROJECT_2, evidence(LEAD, RISK, fairness, provenance))
    detail = rule(result, "attestation[0]:unit-tests").detail
    assert "not counted" not in detail


def test_one_good_attestation_among_bad_ones_satisfies() -> None:
    records = (attestation(36, result="FAILED"), UNIT_TESTS, attestation(38, subject_sha256=OTHER))
    result = evaluate_gate(PROJECT_2, evidence(LEAD, RISK, *records))
    assert result
    assert rule(result, "attestation[0]:unit-tests").evidence == (37,)


def test_accepted_results_list_and_unconstrained_rules() -> None:
    policy = Policy(
        "fraud",
        "production",
        attestations=(
            AttestationRule(TEST_RESULT, "fairness", frozenset({Outcome.PASSED, Outcome.WARNED})),
            AttestationRule(PROVENANCE),
        ),
    )
    fairness = attestation(36, name="fairness", result="WARNED")
    provenance = attestation(38, name=None, predicate_type=PROVENANCE, result=None)
    result = evaluate_gate(policy, evidence(fairness, provenance))
    assert result
    assert [r.rule for r in result.rules] == [
        "integrity",
        "attestation[0]:fairness",
        "attestation[1]",
    ]
    assert "#38 (https://slsa.dev/provenance/v1, signed by ci-bot" in result.rules[2].detail
    failing = evaluate_gate(policy, evidence(replace(fairness, result="FAILED"), provenance))
    assert "with result PASSED or WARNED" in failing.reasons()[0]
    assert failing.reasons()[0].endswith("not counted: #36: result FAILED, not PASSED or WARNED")
    missing = evaluate_gate(policy, evidence(fairness))
    assert missing.reasons() == [f"attestation[1]: no valid attestation of type {PROVENANCE}"]


# --- metrics ----------------------------------------------------------------------------------


def _metrics_policy(*rules: MetricRule) -> Policy:
    return Policy("fraud", "production", metrics=rules)


@pytest.mark.parametrize(
    ("metric", "value", "ok", "detail"),
    [
        (
            MetricRule("auc", minimum=0.9),
            0.93,
            True,
            "auc = 0.93 from the run's metrics, meets min 0.9",
        ),
        (MetricRule("auc", minimum=0.93), 0.93, True, "meets min 0.93"),
        (MetricRule("auc", minimum=0.95), 0.93, False, "below the minimum 0.95"),
        (MetricRule("auc", maximum=0.9), 0.93, False, "above the maximum 0.9"),
        (MetricRule("auc", maximum=0.95), 0.93, True, "meets max 0.95"),
        (MetricRule("auc", minimum=0.5, maximum=1.0), 0.93, True, "meets min 0.5 and max 1"),
        (MetricRule("auc", minimum=0.5), float("nan"), False, "which is not a finite number"),
    ],
    ids=["above-min", "at-min", "below-min", "above-max", "below-max", "within-range", "nan"],
)
def test_run_metric_thresholds(metric: MetricRule, value: float, ok: bool, detail: str) -> None:
    result = evaluate_gate(_metrics_policy(metric), evidence(run_metrics={"auc": value}))
    assert bool(result) is ok
    assert detail in rule(result, "metric:auc").detail


def test_missing_run_metric_fails() -> None:
    result = evaluate_gate(
        _metrics_policy(MetricRule("auc", minimum=0.9)), evidence(run_metrics={})
    )
    assert result.reasons() == ["metric:auc: metric auc is missing from the run's metrics"]


ATT_AUC = MetricRule("auc", source=MetricSource.ATTESTATION, minimum=0.9)


def test_metric_from_the_newest_valid_attestation() -> None:
    older = attestation(30, name="eval", metrics={"auc": 0.80}, issued_at="2024-05-01T00:00:00Z")
    newer = attestation(31, name="eval", metrics={"auc": 0.95}, issued_at="2024-05-02T00:00:00Z")
    result = evaluate_gate(_metrics_policy(ATT_AUC), evidence(newer, older, run_metrics={}))
    assert result
    assert rule(result, "metric:auc").evidence == (31,)
    assert rule(result, "metric:auc").detail == "auc = 0.95 from attestation #31, meets min 0.9"
    reversed_dates = replace(older, issued_at="2024-05-03T00:00:00Z")
    assert not evaluate_gate(_metrics_policy(ATT_AUC), evidence(newer, reversed_dates))


@pytest.mark.parametrize(
    "changes",
    [
        {"signature_valid": False},
        {"subject_sha256": OTHER},
        {"issued_at": "2024-06-01T00:00:00Z"},
    ],
    ids=["forged", "other-artifact", "future"],
)
def test_metric_from_untrusted_attestation_is_ignored(changes: dict[str, Any]) -> None:
    good = attestation(30, name="eval", metrics={"auc": 0.80}, issued_at="2024-05-01T00:00:00Z")
    bad = attestation(31, name="eval", metrics={"auc": 0.99}, **changes)
    result = evaluate_gate(_metrics_policy(ATT_AUC), evidence(good, bad))
    assert not result
    assert rule(result, "metric:auc").evidence == (30,)
    assert "below the minimum 0.9" in rule(result, "metric:auc").detail


def test_metric_missing_from_every_attestation_fails() -> None:
    result = evaluate_gate(_metrics_policy(ATT_AUC), evidence(UNIT_TESTS, run_metrics={"auc": 1.0}))
    assert result.reasons() == [
        "metric:auc: metric auc is missing from every valid attestation about this version"
    ]


# --- conditions: the seed's Example 2 ---------------------------------------------------------

DRIFT = Condition()
EXAMPLE_2 = replace(PROJECT_2, approvals=ApprovalRule(1, "approver"), conditions=(DRIFT,))
AUTOMATED = approval(40, "svc.deployer", kind="automated")


def test_drift_warning_blocks_automated_approval_alone() -> None:
    result = evaluate_gate(EXAMPLE_2, evidence(AUTOMATED, UNIT_TESTS, flags={"drift_warning"}))
    assert not result
    assert [r.rule for r in result.failed()] == ["condition:drift_warning"]
    assert rule(result, "condition:drift_warning").detail == (
        "drift warning (flag drift_warning) requires a manual approval, and no counted "
        "approval is manual (counted: svc.deployer (#40) automated)"
    )


def test_drift_warning_passes_with_a_manual_approval() -> None:
    result = evaluate_gate(
        EXAMPLE_2, evidence(AUTOMATED, LEAD, UNIT_TESTS, flags={"drift_warning"})
    )
    assert result
    drift = rule(result, "condition:drift_warning")
    assert drift.detail.endswith("requires a manual approval: lead.ds (#39)")
    assert drift.evidence == (39,)


def test_without_drift_an_automated_approval_is_enough() -> None:
    result = evaluate_gate(EXAMPLE_2, evidence(AUTOMATED, UNIT_TESTS))
    assert result
    assert rule(result, "condition:drift_warning").detail == "no drift warning on this version"


@pytest.mark.parametrize("outcome", ["WARNED", "FAILED"], ids=["warned", "failed"])
def test_drift_attestation_is_a_drift_warning(outcome: str) -> None:
    drift = attestation(38, name="drift", result=outcome)
    result = evaluate_gate(EXAMPLE_2, evidence(AUTOMATED, UNIT_TESTS, drift))
    assert not result
    detail = rule(result, "condition:drift_warning").detail
    assert f"drift attestation #38 result {outcome}" in detail
    passing = evaluate_gate(EXAMPLE_2, evidence(AUTOMATED, LEAD, UNIT_TESTS, drift))
    assert rule(passing, "condition:drift_warning").evidence == (38, 39)


@pytest.mark.parametrize(
    "changes",
    [{"result": "PASSED"}, {"signature_valid": False}, {"subject_sha256": OTHER}],
    ids=["passed", "forged", "other-artifact"],
)
def test_drift_attestations_that_do_not_warn(changes: dict[str, Any]) -> None:
    drift = attestation(38, name="drift", **{"result": "WARNED", **changes})
    assert evaluate_gate(EXAMPLE_2, evidence(AUTOMATED, UNIT_TESTS, drift))


def test_manual_approval_must_itself_count() -> None:
    manual_self = approval(42, "carol")  # the promoter
    result = evaluate_gate(
        EXAMPLE_2, evidence(AUTOMATED, manual_self, UNIT_TESTS, flags={"drift_warning"})
    )
    assert not result
    assert "condition:drift_warning" in [r.rule for r in result.failed()]


DRIFT_ONLY = Policy("churn", "production", conditions=(DRIFT,))


def test_drift_condition_without_approvals_rule() -> None:
    flagged = {"drift_warning"}
    assert not evaluate_gate(DRIFT_ONLY, evidence(flags=flagged))
    assert not evaluate_gate(DRIFT_ONLY, evidence(AUTOMATED, flags=flagged))
    role_less = replace(LEAD, approver_roles=frozenset())
    result = evaluate_gate(DRIFT_ONLY, evidence(role_less, flags=flagged))
    assert result  # no approvals rule, so no role is needed
    assert rule(result, "condition:drift_warning").evidence == (39,)
    assert evaluate_gate(DRIFT_ONLY, evidence(flags=frozenset()))


@pytest.mark.parametrize(
    "changes",
    [
        {"approver": "alice"},
        {"approver": "bob"},
        {"approver": "carol"},
        {"approver_active": False},
        {"version_sha256": OTHER},
        {"stage": "staging"},
        {"meaning": "review"},
        {"signed": True, "signature_valid": False},
        {"kind": "automated"},
    ],
    ids=[
        "registrant",
        "run-author",
        "promoter",
        "revoked",
        "other-digest",
        "other-stage",
        "review",
        "forged",
        "automated",
    ],
)
def test_drift_condition_fallback_refuses(changes: dict[str, Any]) -> None:
    result = evaluate_gate(DRIFT_ONLY, evidence(replace(LEAD, **changes), flags={"drift_warning"}))
    assert not result


# --- integrity, allowed_from, no policy --------------------------------------------------------


def test_integrity_flag_fails_with_policy() -> None:
    flagged = evidence(LEAD, RISK, UNIT_TESTS, flags={"integrity_failed"})
    result = evaluate_gate(PROJECT_2, flagged)
    assert not result
    assert [r.rule for r in result.failed()] == ["integrity"]
    assert "model:fraud:v5 is flagged integrity_failed" in result.reasons()[0]


def test_integrity_flag_fails_without_policy() -> None:
    result = evaluate_gate(None, evidence(flags={"integrity_failed"}))
    assert not result
    assert [r.rule for r in result.rules] == ["integrity", "policy"]


def test_no_policy_allows() -> None:
    result = evaluate_gate(None, evidence())
    assert result
    assert result.policy_digest is None
    assert rule(result, "policy").detail == "no policy for this model and stage"
    assert rule(result, "integrity").detail == "no integrity failure recorded for model:fraud:v5"


def test_other_flags_do_not_block() -> None:
    assert evaluate_gate(None, evidence(flags={"override_pending_review"}))


def test_allowed_from() -> None:
    result = evaluate_gate(PROJECT_2, evidence(LEAD, RISK, UNIT_TESTS, current_stage="dev"))
    assert result.reasons() == [
        "allowed_from: promotion from 'dev' to 'production' is not allowed (allowed from: staging)"
    ]
    ok = rule(evaluate_gate(PROJECT_2, evidence(LEAD, RISK, UNIT_TESTS)), "allowed_from")
    assert (
        ok.detail == "promotion from 'staging' to 'production' is allowed (allowed from: staging)"
    )


def test_policy_for_another_stage_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="gates stage 'production', not 'staging'"):
        evaluate_gate(PROJECT_2, evidence(target_stage="staging"))


# --- evidence and results ---------------------------------------------------------------------

BAD_TIMES = [
    ("approval-garbage", lambda: approval(1, "x", at="yesterday"), "approval #1 at"),
    ("approval-naive", lambda: approval(1, "x", at="2024-05-20T09:00:00"), "no UTC offset"),
    ("attestation-date", lambda: attestation(2, issued_at="2024-05-20"), "no UTC offset"),
    ("attestation-none", lambda: attestation(2, issued_at=None), "attestation #2 issued_at"),
    ("evidence-now", lambda: evidence(now="now"), "evidence now"),
]


@pytest.mark.parametrize(
    ("build", "message"), [c[1:] for c in BAD_TIMES], ids=[c[0] for c in BAD_TIMES]
)
def test_evidence_timestamps_must_be_rfc3339(build: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build()


def test_offsets_other_than_utc_compare_as_instants() -> None:
    in_paris = attestation(37, issued_at="2024-05-20T12:04:00+02:00")  # 10:04Z, within skew
    assert evaluate_gate(PROJECT_2, evidence(LEAD, RISK, in_paris))


def test_gate_result_shape() -> None:
    result = evaluate_gate(PROJECT_2, evidence(LEAD, UNIT_TESTS))
    data = result.to_dict()
    assert data["allowed"] is False
    assert data["policy_digest"] == PROJECT_2.digest
    assert data["rules"][2] == {
        "rule": "approvals",
        "ok": False,
        "detail": "1 of 2 approvals from distinct approvers: lead.ds (#39)",
        "evidence": [39],
    }
    assert result.failed() == [result.rules[2]]
    assert result.reasons() == [
        "approvals: 1 of 2 approvals from distinct approvers: lead.ds (#39)"
    ]
    assert GateResult(()).allowed


def test_module_docstring_example_runs() -> None:
    result = doctest.testmod(gate, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
