"""The promotion policy document: parsing, defaults, refusals, round trips and digests."""

from __future__ import annotations

import doctest
import hashlib
from typing import Any

import pytest

import mltrail.policy
from mltrail.canonical import canonicalize
from mltrail.errors import FormatError, InvalidInputError
from mltrail.policy import document
from mltrail.policy.document import (
    ApprovalRule,
    AttestationRule,
    Condition,
    Meaning,
    MetricRule,
    MetricSource,
    Outcome,
    Policy,
    Requirement,
    Trigger,
)

TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"

FULL = """\
apiVersion: mltrail/v1
kind: PromotionPolicy
scope: fraud                 # model name, or "*" for every model
stage: production
allowed_from: [staging]
approvals:
  count: 2
  role: approver
  meanings: [approval]
  separation_of_duties: true
  require_signed: false
attestations:
  - predicate_type: https://in-toto.io/attestation/test-result/v0.1
    name: unit-tests
    result: PASSED
    signer_role: ci
    max_age_days: 30
  - predicate_type: https://in-toto.io/attestation/test-result/v0.1
    name: fairness
    result: [PASSED, WARNED]
metrics:
  - name: auc
    source: run
    min: 0.9
  - name: latency_ms
    source: attestation
    max: 250
conditions:
  - when: drift_warning
    require: manual_approval
"""

MINIMAL = "apiVersion: mltrail/v1\nkind: PromotionPolicy\nscope: fraud\nstage: production\n"


def _minimal(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "apiVersion": "mltrail/v1",
        "kind": "PromotionPolicy",
        "scope": "fraud",
        "stage": "production",
    }
    data.update(extra)
    return data


# --- parsing ----------------------------------------------------------------------------------


def test_parse_full_example() -> None:
    policy = Policy.parse(FULL)
    assert policy == Policy(
        scope="fraud",
        stage="production",
        allowed_from=frozenset({"staging"}),
        approvals=ApprovalRule(count=2, role="approver"),
        attestations=(
            AttestationRule(
                predicate_type=TEST_RESULT,
                name="unit-tests",
                results=frozenset({Outcome.PASSED}),
                signer_role="ci",
                max_age_days=30,
            ),
            AttestationRule(
                predicate_type=TEST_RESULT,
                name="fairness",
                results=frozenset({Outcome.PASSED, Outcome.WARNED}),
            ),
        ),
        metrics=(
            MetricRule(name="auc", minimum=0.9),
            MetricRule(name="latency_ms", source=MetricSource.ATTESTATION, maximum=250),
        ),
        conditions=(Condition(Trigger.DRIFT_WARNING, Requirement.MANUAL_APPROVAL),),
    )
    assert isinstance(policy.metrics[1].maximum, float)


def test_defaults_of_a_minimal_policy() -> None:
    policy = Policy.parse(MINIMAL)
    assert policy == Policy(scope="fraud", stage="production")
    assert policy.allowed_from is None
    assert policy.approvals is None
    assert (policy.attestations, policy.metrics, policy.conditions) == ((), (), ())


def test_defaults_of_rules() -> None:
    policy = Policy.parse(
        MINIMAL
        + "approvals: {count: 1, role: approver}\n"
        + f"attestations: [{{predicate_type: '{TEST_RESULT}'}}]\n"
        + "metrics: [{name: auc, min: 0.5}]\n"
    )
    assert policy.approvals == ApprovalRule(
        count=1,
        role="approver",
        meanings=frozenset({Meaning.APPROVAL}),
        separation_of_duties=True,
        require_signed=False,
    )
    rule = policy.attestations[0]
    assert (rule.name, rule.results, rule.signer_role, rule.max_age_days) == (None,) * 4
    assert policy.metrics[0].source is MetricSource.RUN
    assert policy.metrics[0].maximum is None


def test_empty_lists_equal_missing_sections() -> None:
    policy = Policy.from_dict(_minimal(attestations=[], metrics=[], conditions=[]))
    assert policy == Policy(scope="fraud", stage="production")
    assert "attestations" not in policy.to_dict()


def test_explicit_nulls_equal_missing_fields() -> None:
    rule = {"predicate_type": TEST_RESULT, "name": None, "result": None, "max_age_days": None}
    policy = Policy.from_dict(_minimal(allowed_from=None, approvals=None, attestations=[rule]))
    assert policy == Policy("fraud", "production", attestations=(AttestationRule(TEST_RESULT),))


def test_applies_to_model_and_wildcard() -> None:
    fraud = Policy(scope="fraud", stage="production")
    every = Policy(scope="*", stage="production")
    assert fraud.applies_to("fraud", "production")
    assert not fraud.applies_to("churn", "production")
    assert not fraud.applies_to("fraud", "staging")
    assert every.applies_to("churn", "production")
    assert not every.applies_to("churn", "staging")


# --- refusals ---------------------------------------------------------------------------------

APPROVALS = "approvals: {count: 2, role: approver}\n"

BAD_DOCUMENTS = [
    ("wrong-api-version", MINIMAL.replace("mltrail/v1", "mltrail/v2"), "apiVersion"),
    ("wrong-kind", MINIMAL.replace("PromotionPolicy", "Policy"), "kind"),
    ("missing-scope", MINIMAL.replace("scope: fraud\n", ""), "scope"),
    ("missing-stage", MINIMAL.replace("stage: production\n", ""), "stage"),
    ("empty-scope", MINIMAL.replace("scope: fraud", "scope: ''"), "scope"),
    ("scope-not-string", MINIMAL.replace("scope: fraud", "scope: 42"), "scope"),
    ("stage-padded", MINIMAL.replace("stage: production", "stage: 'production '"), "stage"),
    ("unknown-top-key", MINIMAL + "aprovals: {count: 2, role: approver}\n", "aprovals"),
    ("allowed-from-empty", MINIMAL + "allowed_from: []\n", "allowed_from"),
    ("allowed-from-string", MINIMAL + "allowed_from: staging\n", "allowed_from"),
    ("allowed-from-blank", MINIMAL + "allowed_from: ['']\n", "allowed_from[0]"),
    ("allowed-from-repeat", MINIMAL + "allowed_from: [a, a]\n", "allowed_from"),
    ("approvals-not-mapping", MINIMAL + "approvals: 2\n", "approvals"),
    ("count-zero", MINIMAL + "approvals: {count: 0, role: approver}\n", "approvals.count"),
    ("count-string", MINIMAL + "approvals: {count: '2', role: approver}\n", "approvals.count"),
    ("count-bool", MINIMAL + "approvals: {count: true, role: approver}\n", "approvals.count"),
    ("count-float", MINIMAL + "approvals: {count: 1.5, role: approver}\n", "approvals.count"),
    ("count-missing", MINIMAL + "approvals: {role: approver}\n", "approvals.count"),
    ("role-missing", MINIMAL + "approvals: {count: 2}\n", "approvals.role"),
    ("role-empty", MINIMAL + "approvals: {count: 2, role: ''}\n", "approvals.role"),
    (
        "meaning-unknown",
        MINIMAL + "approvals: {count: 2, role: a, meanings: [approve]}\n",
        "approvals.meanings[0]",
    ),
    (
        "meanings-empty",
        MINIMAL + "approvals: {count: 2, role: a, meanings: []}\n",
        "approvals.meanings",
    ),
    (
        "meanings-repeat",
        MINIMAL + "approvals: {count: 2, role: a, meanings: [review, review]}\n",
        "approvals.meanings",
    ),
    (
        "sod-string",
        MINIMAL + "approvals: {count: 2, role: a, separation_of_duties: 'no'}\n",
        "approvals.separation_of_duties",
    ),
    (
        "require-signed-int",
        MINIMAL + "approvals: {count: 2, role: a, require_signed: 1}\n",
        "approvals.require_signed",
    ),
    (
        "approvals-unknown-key",
        MINIMAL + "approvals: {count: 2, role: a, min_approvals: 3}\n",
        "approvals.min_approvals",
    ),
    ("attestations-not-list", MINIMAL + "attestations: {a: 1}\n", "attestations"),
    ("predicate-type-missing", MINIMAL + "attestations: [{name: x}]\n", "predicate_type"),
    ("name-empty", MINIMAL + "attestations: [{predicate_type: t, name: ''}]\n", "[0].name"),
    ("result-unknown", MINIMAL + "attestations: [{predicate_type: t, result: OK}]\n", "result"),
    ("result-empty", MINIMAL + "attestations: [{predicate_type: t, result: []}]\n", "result"),
    (
        "result-repeat",
        MINIMAL + "attestations: [{predicate_type: t, result: [PASSED, PASSED]}]\n",
        "attestations[0].result",
    ),
    (
        "signer-role-empty",
        MINIMAL + "attestations: [{predicate_type: t, signer_role: ''}]\n",
        "signer_role",
    ),
    (
        "max-age-zero",
        MINIMAL + "attestations: [{predicate_type: t, max_age_days: 0}]\n",
        "max_age_days",
    ),
    (
        "max-age-negative",
        MINIMAL + "attestations: [{predicate_type: t, max_age_days: -3}]\n",
        "max_age_days",
    ),
    (
        "max-age-huge",
        MINIMAL + "attestations: [{predicate_type: t, max_age_days: 1000000000}]\n",
        "max_age_days",
    ),
    (
        "attestation-unknown-key",
        MINIMAL + "attestations: [{predicate_type: t, results: PASSED}]\n",
        "attestations[0].results",
    ),
    ("metric-name-missing", MINIMAL + "metrics: [{min: 1.0}]\n", "metrics[0].name"),
    ("metric-no-bound", MINIMAL + "metrics: [{name: auc}]\n", "metrics[0]"),
    ("metric-min-gt-max", MINIMAL + "metrics: [{name: auc, min: 0.9, max: 0.5}]\n", "max"),
    ("metric-min-nan", MINIMAL + "metrics: [{name: auc, min: .nan}]\n", "metrics[0].min"),
    ("metric-max-inf", MINIMAL + "metrics: [{name: auc, max: .inf}]\n", "metrics[0].max"),
    ("metric-min-huge", MINIMAL + "metrics: [{name: auc, min: 1.0e+300}]\n", "metrics[0].min"),
    ("metric-min-string", MINIMAL + "metrics: [{name: auc, min: high}]\n", "metrics[0].min"),
    ("metric-min-bool", MINIMAL + "metrics: [{name: auc, min: true}]\n", "metrics[0].min"),
    ("metric-source", MINIMAL + "metrics: [{name: auc, source: db, min: 1.0}]\n", "source"),
    ("metric-unknown-key", MINIMAL + "metrics: [{name: auc, minimum: 1.0}]\n", "minimum"),
    (
        "condition-when",
        MINIMAL + "conditions: [{when: drift, require: manual_approval}]\n",
        "conditions[0].when",
    ),
    (
        "condition-require",
        MINIMAL + "conditions: [{when: drift_warning, require: approval}]\n",
        "conditions[0].require",
    ),
    ("condition-missing", MINIMAL + "conditions: [{when: drift_warning}]\n", "require"),
]


@pytest.mark.parametrize(
    ("text", "field"), [case[1:] for case in BAD_DOCUMENTS], ids=[case[0] for case in BAD_DOCUMENTS]
)
def test_invalid_field_names_the_field(text: str, field: str) -> None:
    with pytest.raises(FormatError) as info:
        Policy.parse(text)
    assert field in info.value.message
    assert info.value.errors
    assert "field " in info.value.message


def test_every_problem_is_listed() -> None:
    text = MINIMAL.replace("scope: fraud\n", "") + "approvals: {count: 0, role: ''}\n"
    with pytest.raises(FormatError) as info:
        Policy.parse(text)
    assert "(and 2 more problems)" in info.value.message
    assert len(info.value.errors) == 3
    assert any("approvals.role" in error for error in info.value.errors)


def test_messages_say_what_was_expected() -> None:
    with pytest.raises(FormatError, match=r"approvals\.count: expected greater than or equal to 1"):
        Policy.parse(MINIMAL + "approvals: {count: 0, role: approver}\n")
    with pytest.raises(FormatError, match=r"'PASSED', 'WARNED' or 'FAILED'; got 'OK'"):
        Policy.parse(MINIMAL + "attestations: [{predicate_type: t, result: OK}]\n")
    with pytest.raises(FormatError, match=r"field aprovals is not a known policy field"):
        Policy.parse(MINIMAL + "aprovals: {}\n")
    with pytest.raises(FormatError, match=r"field scope is required"):
        Policy.parse(MINIMAL.replace("scope: fraud\n", ""))
    with pytest.raises(FormatError, match=r"allowed_from: expected at least one item"):
        Policy.parse(MINIMAL + "allowed_from: []\n")


BAD_YAML = [
    ("not-yaml", "scope: [fraud\n", "not valid YAML"),
    ("duplicate-key", MINIMAL + "scope: churn\n", "duplicate key 'scope'"),
    (
        "duplicate-nested-key",
        MINIMAL + "approvals:\n  count: 2\n  role: a\n  count: 1\n",
        "duplicate key 'count'",
    ),
    ("unhashable-key", MINIMAL + "? [a, b]\n: 1\n", "unhashable key"),
    ("two-documents", MINIMAL + "---\n" + MINIMAL, "not valid YAML"),
    ("python-tag", MINIMAL + "x: !!python/object:os.system {}\n", "not valid YAML"),
    ("empty", "", "must be a mapping"),
    ("list", "- fraud\n", "must be a mapping"),
    ("scalar", "fraud\n", "must be a mapping"),
]


@pytest.mark.parametrize(
    ("text", "message"), [case[1:] for case in BAD_YAML], ids=[case[0] for case in BAD_YAML]
)
def test_documents_that_are_not_policies(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Policy.parse(text)


def test_yaml_merge_keys_still_work() -> None:
    text = MINIMAL + "x-base: &base {count: 2}\napprovals:\n  <<: *base\n  role: approver\n"
    with pytest.raises(FormatError, match="x-base"):  # unknown key, but the merge parsed
        Policy.parse(text)


def test_from_dict_refuses_non_mappings() -> None:
    with pytest.raises(FormatError, match="got list"):
        Policy.from_dict(["fraud"])


# --- invariants of the dataclasses (for code that builds policies directly) -------------------

BAD_OBJECTS: list[tuple[str, Any]] = [
    ("scope-empty", lambda: Policy(scope="", stage="production")),
    ("stage-not-string", lambda: Policy(scope="fraud", stage=3)),  # type: ignore[arg-type]
    ("allowed-from-empty", lambda: Policy("fraud", "production", allowed_from=frozenset())),
    ("allowed-from-blank", lambda: Policy("fraud", "production", allowed_from=frozenset({" "}))),
    ("count-zero", lambda: ApprovalRule(count=0, role="approver")),
    ("role-empty", lambda: ApprovalRule(count=1, role="")),
    ("meanings-empty", lambda: ApprovalRule(count=1, role="a", meanings=frozenset())),
    ("meaning-unknown", lambda: ApprovalRule(count=1, role="a", meanings=frozenset({"yes"}))),  # type: ignore[arg-type]
    ("predicate-type-empty", lambda: AttestationRule(predicate_type="")),
    ("name-empty", lambda: AttestationRule(predicate_type="t", name="")),
    ("results-empty", lambda: AttestationRule(predicate_type="t", results=frozenset())),
    ("results-unknown", lambda: AttestationRule(predicate_type="t", results=frozenset({"OK"}))),  # type: ignore[arg-type]
    ("signer-role-empty", lambda: AttestationRule(predicate_type="t", signer_role="")),
    ("max-age-zero", lambda: AttestationRule(predicate_type="t", max_age_days=0)),
    ("metric-name-empty", lambda: MetricRule(name="", minimum=1.0)),
    ("metric-no-bound", lambda: MetricRule(name="auc")),
    ("metric-source", lambda: MetricRule(name="auc", source="db", minimum=1.0)),  # type: ignore[arg-type]
    ("metric-nan", lambda: MetricRule(name="auc", minimum=float("nan"))),
    ("metric-inf", lambda: MetricRule(name="auc", maximum=float("inf"))),
    ("metric-min-gt-max", lambda: MetricRule(name="auc", minimum=2.0, maximum=1.0)),
    ("condition-when", lambda: Condition(when="drift")),  # type: ignore[arg-type]
    ("condition-require", lambda: Condition(require="review")),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    "build", [case[1] for case in BAD_OBJECTS], ids=[case[0] for case in BAD_OBJECTS]
)
def test_dataclasses_check_invariants(build: Any) -> None:
    with pytest.raises(InvalidInputError):
        build()


def test_dataclasses_coerce_values() -> None:
    rule = MetricRule(name="auc", source="attestation", minimum=1)  # type: ignore[arg-type]
    assert rule.source is MetricSource.ATTESTATION
    assert isinstance(rule.minimum, float)
    condition = Condition("drift_warning", "manual_approval")  # type: ignore[arg-type]
    assert condition.when is Trigger.DRIFT_WARNING
    policy = Policy("fraud", "production", allowed_from=["staging"], metrics=[rule])  # type: ignore[arg-type]
    assert policy.allowed_from == frozenset({"staging"})
    assert policy.metrics == (rule,)


# --- round trips and digests -------------------------------------------------------------------


def test_round_trips() -> None:
    policy = Policy.parse(FULL)
    assert Policy.from_dict(policy.to_dict()) == policy
    assert Policy.parse(policy.render()) == policy
    assert policy.canonical_bytes() == canonicalize(policy.to_dict())
    assert policy.digest == hashlib.sha256(policy.canonical_bytes()).hexdigest()


def test_to_dict_writes_defaults_and_sets_in_order() -> None:
    data = Policy.parse(FULL).to_dict()
    assert data["approvals"] == {
        "count": 2,
        "role": "approver",
        "meanings": ["approval"],
        "separation_of_duties": True,
        "require_signed": False,
    }
    assert data["attestations"][0]["result"] == "PASSED"
    assert data["attestations"][1]["result"] == ["PASSED", "WARNED"]
    assert data["metrics"][1] == {"name": "latency_ms", "source": "attestation", "max": 250.0}
    assert data["conditions"] == [{"when": "drift_warning", "require": "manual_approval"}]


REORDERED = """\
kind: PromotionPolicy
conditions: [{require: manual_approval, when: drift_warning}]
metrics:
- {min: 0.90, name: auc}
- {max: 250, name: latency_ms, source: attestation}
approvals: {require_signed: false, role: approver, count: 2}

stage:   production
attestations:
- {name: unit-tests, predicate_type: "https://in-toto.io/attestation/test-result/v0.1",
   max_age_days: 30, signer_role: ci, result: [PASSED]}
- name: fairness
  predicate_type: https://in-toto.io/attestation/test-result/v0.1
  result: [WARNED, PASSED]
allowed_from:
  - staging
scope: "fraud"
apiVersion: mltrail/v1
"""


def test_digest_is_stable_under_key_order_whitespace_and_defaults() -> None:
    assert Policy.parse(REORDERED) == Policy.parse(FULL)
    assert Policy.parse(REORDERED).digest == Policy.parse(FULL).digest


def test_digest_changes_with_meaning() -> None:
    base = Policy.parse(FULL)
    stricter = Policy.parse(FULL.replace("count: 2", "count: 3"))
    assert stricter.digest != base.digest


def test_module_docstring_examples_run() -> None:
    for module in (document, mltrail.policy):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0
        assert result.failed == 0
