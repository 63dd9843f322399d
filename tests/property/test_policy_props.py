"""Properties of policy documents and of the gate (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.canonical import MAX_SAFE_INTEGER
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
    evaluate_gate,
)

TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
VERSION = "ab" * 32
OTHER = "cd" * 32
STAGE = "production"

# --- policies -----------------------------------------------------------------------------------

names = st.text(min_size=1, max_size=12).filter(lambda s: s == s.strip())
bounds = st.floats(
    min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER, allow_nan=False, allow_infinity=False
)


def _nonempty_set(elements: st.SearchStrategy[object]) -> st.SearchStrategy[frozenset[object]]:
    return st.frozensets(elements, min_size=1)


approval_rules = st.builds(
    ApprovalRule,
    count=st.integers(1, 5),
    role=names,
    meanings=_nonempty_set(st.sampled_from(Meaning)),
    separation_of_duties=st.booleans(),
    require_signed=st.booleans(),
)
attestation_rules = st.builds(
    AttestationRule,
    predicate_type=st.sampled_from([TEST_RESULT, "https://slsa.dev/provenance/v1"]) | names,
    name=st.none() | names,
    results=st.none() | _nonempty_set(st.sampled_from(Outcome)),
    signer_role=st.none() | names,
    max_age_days=st.none() | st.integers(1, 36500),
)


@st.composite
def metric_rules(draw: st.DrawFn) -> MetricRule:
    low, high = draw(st.none() | bounds), draw(st.none() | bounds)
    if low is None and high is None:
        low = draw(bounds)
    if low is not None and high is not None and low > high:
        low, high = high, low
    source = draw(st.sampled_from(MetricSource))
    return MetricRule(draw(names), source, low, high)


policies = st.builds(
    Policy,
    scope=st.just("*") | names,
    stage=names,
    allowed_from=st.none() | _nonempty_set(names),
    approvals=st.none() | approval_rules,
    attestations=st.lists(attestation_rules, max_size=3).map(tuple),
    metrics=st.lists(metric_rules(), max_size=3).map(tuple),
    conditions=st.lists(st.just(Condition()), max_size=1).map(tuple),
)


@settings(deadline=None)
@given(policies)
def test_from_dict_inverts_to_dict(policy: Policy) -> None:
    assert Policy.from_dict(policy.to_dict()) == policy


@settings(deadline=None)
@given(policies)
def test_parse_inverts_render(policy: Policy) -> None:
    assert Policy.parse(policy.render()) == policy


@settings(deadline=None)
@given(policies)
def test_digest_is_deterministic(policy: Policy) -> None:
    copy = Policy.from_dict(policy.to_dict())
    assert copy.digest == policy.digest
    assert copy.canonical_bytes() == policy.canonical_bytes()
    assert Policy.parse(policy.render()).digest == policy.digest


@settings(deadline=None)
@given(policies, policies)
def test_different_policies_have_different_digests(a: Policy, b: Policy) -> None:
    assert (a.digest == b.digest) == (a == b)


# --- the gate is monotone in counted approvals ----------------------------------------------

PEOPLE = ["alice", "bob", "carol", "dave", "erin", "svc"]
people = st.sampled_from(PEOPLE)


@st.composite
def approvals(draw: st.DrawFn, seq: int) -> ApprovalEvidence:
    signed = draw(st.booleans())
    return ApprovalEvidence(
        seq=seq,
        approver=draw(people),
        approver_roles=draw(st.frozensets(st.sampled_from(["approver", "ci"]))),
        approver_active=draw(st.booleans()),
        meaning=draw(st.sampled_from(Meaning)).value,
        stage=draw(st.sampled_from([STAGE, "staging"])),
        version_sha256=draw(st.sampled_from([VERSION, OTHER])),
        kind=draw(st.sampled_from(["manual", "automated"])),
        signed=signed,
        signature_valid=signed and draw(st.booleans()),
        at="2024-05-20T09:00:00Z",
    )


@st.composite
def attestations(draw: st.DrawFn, seq: int) -> AttestationEvidence:
    return AttestationEvidence(
        seq=seq,
        envelope_sha256="ef" * 32,
        predicate_type=TEST_RESULT,
        name=draw(st.sampled_from(["unit-tests", "drift", None])),
        result=draw(st.sampled_from([*Outcome, None])),
        signer="ci-bot",
        signer_roles=frozenset({"ci"}),
        signature_valid=draw(st.booleans()),
        subject_sha256=draw(st.sampled_from([VERSION, OTHER])),
        issued_at=draw(st.sampled_from(["2024-05-19T00:00:00Z", "2024-01-01T00:00:00Z"])),
        metrics=draw(st.dictionaries(st.just("auc"), st.floats(0, 1))),
    )


@st.composite
def gate_cases(draw: st.DrawFn) -> tuple[Policy, Evidence]:
    policy = Policy(
        scope="fraud",
        stage=STAGE,
        allowed_from=draw(st.none() | st.just(frozenset({"staging"}))),
        approvals=draw(st.none() | approval_rules.map(lambda r: replace(r, role="approver"))),
        attestations=(AttestationRule(TEST_RESULT, "unit-tests", frozenset({Outcome.PASSED})),)
        if draw(st.booleans())
        else (),
        metrics=(MetricRule("auc", draw(st.sampled_from(MetricSource)), minimum=0.5),)
        if draw(st.booleans())
        else (),
        conditions=draw(st.lists(st.just(Condition()), max_size=1).map(tuple)),
    )
    n_approvals = draw(st.integers(0, 4))
    evidence = Evidence(
        version_id="model:fraud:v5",
        version_sha256=VERSION,
        current_stage=draw(st.sampled_from(["staging", "dev"])),
        target_stage=STAGE,
        registrant=draw(people),
        run_author=draw(st.none() | people),
        promoter=draw(people),
        run_metrics=draw(st.dictionaries(st.just("auc"), st.floats(0, 1))),
        approvals=tuple(draw(approvals(seq)) for seq in range(n_approvals)),
        attestations=tuple(draw(attestations(100 + i)) for i in range(draw(st.integers(0, 3)))),
        flags=draw(st.frozensets(st.sampled_from(["drift_warning", "integrity_failed"]))),
        now="2024-05-20T10:00:00Z",
    )
    return policy, evidence


def _counted(policy: Policy, evidence: Evidence, approver: str, kind: str) -> ApprovalEvidence:
    """An approval that passes every filter of ``policy`` (or of the drift fallback)."""
    rule = policy.approvals
    return ApprovalEvidence(
        seq=1000,
        approver=approver,
        approver_roles=frozenset({"approver"}),
        approver_active=True,
        meaning=Meaning.APPROVAL.value if rule is None else min(rule.meanings).value,
        stage=STAGE,
        version_sha256=VERSION,
        kind=kind,
        signed=True,
        signature_valid=True,
        at="2024-05-20T09:30:00Z",
    )


@settings(deadline=None)
@given(gate_cases(), st.sampled_from([*PEOPLE, "zed"]), st.sampled_from(["manual", "automated"]))
def test_adding_a_counted_approval_never_refuses(
    case: tuple[Policy, Evidence], approver: str, kind: str
) -> None:
    policy, evidence = case
    sod = policy.approvals is None or policy.approvals.separation_of_duties
    if sod and approver in (evidence.registrant, evidence.run_author, evidence.promoter):
        approver = "zed"  # a self-approval is not a counted approval
    before = evaluate_gate(policy, evidence)
    more = replace(
        evidence, approvals=(*evidence.approvals, _counted(policy, evidence, approver, kind))
    )
    after = evaluate_gate(policy, more)
    if before:
        assert after
    assert len(after.failed()) <= len(before.failed())


@settings(deadline=None)
@given(gate_cases())
def test_evaluation_is_deterministic(case: tuple[Policy, Evidence]) -> None:
    policy, evidence = case
    assert evaluate_gate(policy, evidence) == evaluate_gate(policy, evidence)
    reordered = replace(evidence, approvals=evidence.approvals[::-1])
    assert evaluate_gate(policy, reordered) == evaluate_gate(policy, evidence)


@settings(deadline=None)
@given(gate_cases())
def test_integrity_failure_always_refuses(case: tuple[Policy, Evidence]) -> None:
    policy, evidence = case
    flagged = replace(evidence, flags=evidence.flags | {"integrity_failed"})
    assert not evaluate_gate(policy, flagged)
    assert not evaluate_gate(None, flagged)
