"""Governance end to end: promotion gates, signed attestations, approvals, access control
(DESIGN §7; seed practical project 2, Examples 2 and 3).

Every refused promotion is checked three ways: the `PolicyError` names the failing rule,
a `reject` event carrying the same reasons was appended to the log, and the version's
stage did not change.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mltrail.access import queries as access
from mltrail.attest import dsse, intoto
from mltrail.attest.keys import generate_key
from mltrail.canonical import loads
from mltrail.cli.main import main
from mltrail.demo.story import SimClock
from mltrail.errors import AccessDeniedError, PolicyError, VerificationError
from mltrail.events import Actor, Event, sha256_hex
from mltrail.ledger.log import EventFilter
from mltrail.policy import Policy
from mltrail.service import MAX_VERSIONS_PER_CALL, Registry, VersionSpec
from mltrail.service.governance import VSA_PREDICATE

MODEL = "churn"
VERSION = "model:churn:v1"
RUN = "R678"
DATASET = "DS:2024-05-15"
PRODUCTION = "production"

POLICY = """\
apiVersion: mltrail/v1
kind: PromotionPolicy
scope: churn
stage: production
approvals:
  count: 2
  role: approver
attestations:
  - predicate_type: https://in-toto.io/attestation/test-result/v0.1
    name: unit-tests
    result: PASSED
    signer_role: ci
    max_age_days: 30
metrics:
  - name: auc
    source: run
    min: 0.7
"""

DRIFT_CONDITION = """\
conditions:
  - when: drift_warning
    require: manual_approval
"""

SIGNED_APPROVALS = POLICY.replace(
    "  role: approver\n", "  role: approver\n  require_signed: true\n"
)

SERVICES = frozenset({"svc.ci", "svc.autoapprove", "svc.autoscore"})


# --- the world: a registered version, its run, principals, keys and the policy ------------------


@dataclass
class Gov:
    """A registry holding model:churn:v1 (run R678 by ds.maria, auc 0.91) under POLICY.

    Principals: the creating admin, ds.maria (contributor), lead.ds and risk.officer
    (approvers, Ed25519 keys), svc.ci (contributor + ci, P-256 key). Every handle shares
    one controllable clock, starting now.
    """

    root: Path
    admin_id: str
    work: Path
    clock: SimClock
    keys: dict[str, Any] = field(default_factory=dict)
    handles: list[Registry] = field(default_factory=list)

    def as_(self, who: str) -> Registry:
        kind = "service" if who in SERVICES else "user"
        reg = Registry.open(self.root, actor=Actor(kind, who), clock=self.clock)
        self.handles.append(reg)
        return reg  # type: ignore[no-any-return]

    @property
    def admin(self) -> Registry:
        return self.as_(self.admin_id)

    def close(self) -> None:
        for reg in self.handles:
            reg.close()

    # -- steps ------------------------------------------------------------------------------

    def attest_tests(
        self, version: str = VERSION, *, result: str = "PASSED", key: Any = None
    ) -> Event:
        """svc.ci signs and attaches a unit-tests test-result attestation."""
        predicate = intoto.test_result_predicate(
            result,  # type: ignore[arg-type]
            [{"name": "unit-tests", "uri": "https://ci.example.com/runs/4711"}],
            passed_tests=["test_schema", "test_auc_floor"] if result == "PASSED" else [],
            failed_tests=["test_auc_floor"] if result == "FAILED" else [],
        )
        key = key or self.keys["svc.ci"]
        done = self.as_("svc.ci").attest(
            version, predicate_type=intoto.TEST_RESULT, predicate=predicate, private_key=key
        )
        return done.event

    def approve(self, who: str, version: str = VERSION, **kwargs: Any) -> Event:
        return self.as_(who).approve(version, stage=PRODUCTION, **kwargs).event

    def new_version(self, who: str, *, tag: str) -> str:
        """``who`` registers another version of churn from run R678 (different files)."""
        folder = self.work / f"model-{tag}"
        folder.mkdir(parents=True)
        (folder / "weights.json").write_text(json.dumps({"tag": tag, "w": [0.1, 0.2]}))
        return self.as_(who).add_version(MODEL, folder, run=RUN).event.subject.id

    def statement_about(self, version: str, result: str = "PASSED") -> intoto.Statement:
        digest = self.admin.get_version(version)["manifest_sha256"]
        predicate = intoto.test_result_predicate(
            result, [{"name": "unit-tests", "uri": "https://ci.example.com/runs/4711"}]
        )  # type: ignore[arg-type]
        return intoto.Statement(
            subject=[intoto.ResourceDescriptor(name=version, digest={"sha256": digest})],
            predicate_type=intoto.TEST_RESULT,
            predicate=predicate,
        )

    # -- reading -----------------------------------------------------------------------------

    def stage(self, version: str = VERSION) -> str:
        return str(self.admin.get_version(version)["stage"])

    def flags(self, version: str = VERSION) -> list[str]:
        return list(self.admin.get_version(version)["flags"])

    def last_seq(self) -> int:
        return next(self.admin.events(EventFilter(descending=True, limit=1))).seq

    def events(self, **where: Any) -> list[Event]:
        return list(self.admin.events(EventFilter(**where)))

    def refused(self, promoter: str = "svc.ci", version: str = VERSION) -> PolicyError:
        """``promoter`` tries to promote ``version``; the gate refuses, logs and keeps the stage."""
        stage, before = self.stage(version), self.last_seq()
        with pytest.raises(PolicyError) as info:
            self.as_(promoter).promote(version, to=PRODUCTION)
        error = info.value
        assert error.errors, "a refusal lists the failed rules"
        rejects = [e for e in self.events(action="reject", subject_id=version) if e.seq > before]
        assert len(rejects) == 1, "the refusal is appended to the log before the error is raised"
        reject = rejects[0]
        assert reject.actor.id == promoter
        assert reject.outcome == "failure"
        assert reject.metadata["attempted"] == "promote"
        assert reject.metadata["to_stage"] == PRODUCTION
        assert reject.metadata["reasons"] == error.errors
        assert reject.metadata["decision"]["allowed"] is False
        assert self.stage(version) == stage, "a refused promotion leaves the stage as it was"
        return error


def failed_rule(error: PolicyError, rule: str, *fragments: str) -> str:
    """The reason line of ``rule``; it must mention every fragment."""
    lines = [line for line in error.errors if line.startswith(f"{rule}: ")]
    assert lines, f"rule {rule!r} is not among the failures: {error.errors}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def failed_rules(error: PolicyError) -> set[str]:
    return {line.split(": ", 1)[0] for line in error.errors}


def build_governance(reg: Registry, work: Path) -> Gov:
    gov = Gov(root=reg.root, admin_id=reg.actor.id, work=work, clock=SimClock(datetime.now(UTC)))
    admin = gov.admin
    for pid, name, kind, roles in (
        ("ds.maria", "Maria Lopez", "user", ["contributor"]),
        ("lead.ds", "Dana Kim", "user", ["approver"]),
        ("risk.officer", "Sam Okafor", "user", ["approver"]),
        ("svc.ci", "CI pipeline", "service", ["contributor", "ci"]),
    ):
        admin.add_principal(pid, display_name=name, kind=kind, roles=roles)
    for pid, kind in (("lead.ds", "ed25519"), ("risk.officer", "ed25519"), ("svc.ci", "p256")):
        gov.keys[pid] = generate_key(kind)
        admin.add_key(pid, dsse.public_key_pem(gov.keys[pid].public_key()))
    admin.set_policy(POLICY)

    data = work / "data" / "DS_2024-05-15"
    data.mkdir(parents=True)
    (data / "churn.csv").write_text("tenure,monthly_charges,churned\n3,70.5,1\n40,20.1,0\n")
    folder = work / "model-v1"
    folder.mkdir()
    (folder / "weights.json").write_text(json.dumps({"w": [0.3, -0.7], "b": 0.05}))
    maria = gov.as_("ds.maria")
    maria.register_model(MODEL, description="Customer churn propensity")
    maria.register_dataset(DATASET, name="churn-events", version="2024-05-15", path=data)
    maria.register_run(RUN, params={"lr": 0.5}, metrics={"auc": 0.91}, datasets=[DATASET])
    assert maria.add_version(MODEL, folder, run=RUN).event.subject.id == VERSION
    return gov


@pytest.fixture
def gov(sqlite_registry: Registry, tmp_path: Path) -> Iterator[Gov]:
    world = build_governance(sqlite_registry, tmp_path / "work")
    yield world
    world.close()


@pytest.fixture
def gov_any_backend(registry: Registry, tmp_path: Path) -> Iterator[Gov]:
    world = build_governance(registry, tmp_path / "work")
    yield world
    world.close()


# --- practical project 2 -------------------------------------------------------------------------


def test_promotion_needs_two_approvals_and_test_results(gov_any_backend: Gov) -> None:
    gov = gov_any_backend
    error = gov.refused()
    failed_rule(error, "approvals", "0 of 2")
    failed_rule(error, "attestation[0]:unit-tests", "no valid attestation")
    assert "metric:auc" not in failed_rules(error)

    attestation = gov.attest_tests()
    first = gov.approve("lead.ds", comment="offline metrics reviewed")
    error = gov.refused()
    failed_rule(error, "approvals", "1 of 2", f"lead.ds (#{first.seq})")
    assert failed_rules(error) == {"approvals"}

    second = gov.approve("risk.officer", comment="model risk sign-off")
    done = gov.as_("svc.ci").promote(VERSION, to=PRODUCTION)
    assert gov.stage() == PRODUCTION

    event = done.event
    assert (event.action, event.subject.id, event.actor.id) == ("promote", VERSION, "svc.ci")
    decision = event.metadata["decision"]
    assert decision["allowed"] is True
    assert decision["policy"]["version"] == 1
    assert decision["policy"]["digest"] == Policy.parse(POLICY).digest == decision["policy_digest"]
    policy_event = gov.admin.event(decision["policy"]["event"])
    assert policy_event.action == "set_policy"
    assert policy_event.metadata["document_sha256"] == decision["policy"]["digest"]
    assert [r.id for r in event.related if r.role == "decided_by"] == ["churn/production"]
    evidence = {rule["rule"]: rule["evidence"] for rule in decision["rules"]}
    assert evidence["approvals"] == [first.seq, second.seq]
    assert evidence["attestation[0]:unit-tests"] == [attestation.seq]

    # The registry's own decision, signed: an SLSA verification summary stored by digest.
    digest = event.metadata["verification_attestation"]
    stored = gov.admin.store.read_bytes(digest)
    assert hashlib.sha256(stored).hexdigest() == digest
    envelope = loads(stored)
    registry_key = dsse.load_public_key(gov.admin.registry_public_key_pem())
    statement = intoto.open_statement(envelope, [registry_key])
    assert statement.predicate_type == VSA_PREDICATE
    assert intoto.matches_subject(statement, gov.admin.get_version(VERSION)["manifest_sha256"])
    assert statement.predicate["verificationResult"] == "PASSED"
    assert statement.predicate["policy"]["digest"]["sha256"] == decision["policy"]["digest"]
    with pytest.raises(VerificationError):
        intoto.open_statement(envelope, [gov.keys["svc.ci"].public_key()])

    # Both refusals stay in the log, and the log still verifies.
    rejects = gov.events(action="reject", subject_id=VERSION)
    assert len(rejects) == 2 and all(e.seq < event.seq for e in rejects)
    assert gov.admin.verify().ok


# --- separation of duties ----------------------------------------------------------------------


def test_registrant_cannot_approve(gov: Gov) -> None:
    gov.admin.grant("lead.ds", "contributor", scope=MODEL)
    version = gov.new_version("lead.ds", tag="lead")
    gov.attest_tests(version)
    gov.approve("lead.ds", version)
    gov.approve("risk.officer", version)

    error = gov.refused(version=version)
    line = failed_rule(
        error, "approvals", "1 of 2", "self-approval: the approver registered this version"
    )
    assert "authored the training run" not in line
    assert failed_rules(error) == {"approvals"}


def test_run_author_cannot_approve(gov: Gov) -> None:
    gov.admin.grant("ds.maria", "approver", scope=MODEL)
    version = gov.new_version("svc.ci", tag="ci")  # registered by CI, trained by ds.maria
    gov.attest_tests(version)
    gov.approve("ds.maria", version)
    gov.approve("lead.ds", version)

    error = gov.refused(version=version)
    line = failed_rule(
        error,
        "approvals",
        "1 of 2",
        "ds.maria",
        "self-approval: the approver authored the training run",
    )
    assert "registered this version" not in line
    assert failed_rules(error) == {"approvals"}


def test_promoter_cannot_be_an_approver(gov: Gov) -> None:
    gov.admin.grant("lead.ds", "deployer", scope=MODEL)
    gov.attest_tests()
    gov.approve("lead.ds")
    gov.approve("risk.officer")

    error = gov.refused(promoter="lead.ds")
    failed_rule(error, "approvals", "1 of 2", "self-approval: the approver is the promoter")
    assert failed_rules(error) == {"approvals"}
    # The same evidence passes when someone else promotes.
    gov.as_("svc.ci").promote(VERSION, to=PRODUCTION)
    assert gov.stage() == PRODUCTION


# --- who may approve ---------------------------------------------------------------------------


def test_approval_from_revoked_principal_does_not_count(gov: Gov) -> None:
    gov.attest_tests()
    gov.approve("lead.ds")
    revoked = gov.approve("risk.officer")
    assert gov.admin.check_promotion(VERSION, to=PRODUCTION)[0].allowed
    gov.admin.revoke("risk.officer")

    error = gov.refused()
    failed_rule(
        error,
        "approvals",
        "1 of 2",
        f"risk.officer (#{revoked.seq}): approver is revoked or unknown",
    )
    assert failed_rules(error) == {"approvals"}
    with pytest.raises(AccessDeniedError, match="revoked"):
        gov.approve("risk.officer")


def test_approval_without_approver_role_does_not_count(gov: Gov) -> None:
    gov.attest_tests()
    gov.approve("lead.ds")
    gov.approve(gov.admin_id)  # an admin may approve, but does not hold the policy's role

    error = gov.refused()
    failed_rule(
        error, "approvals", "1 of 2", f"{gov.admin_id} (#", "approver does not hold role 'approver'"
    )
    assert failed_rules(error) == {"approvals"}


# --- attestations -----------------------------------------------------------------------------


def test_forged_attestations_are_refused(gov: Gov) -> None:
    gov.approve("lead.ds")
    gov.approve("risk.officer")
    before = gov.last_seq()
    intruder = generate_key("p256")  # never registered

    with pytest.raises(VerificationError, match="registered"):
        gov.as_("svc.ci").attach(
            VERSION, intoto.sign_statement(gov.statement_about(VERSION), intruder)
        )
    with pytest.raises(VerificationError):
        gov.attest_tests(key=intruder)
    # A genuine envelope of a FAILED run whose payload was rewritten to PASSED.
    genuine = intoto.sign_statement(gov.statement_about(VERSION, "FAILED"), gov.keys["svc.ci"])
    payload = base64.b64decode(genuine["payload"]).replace(b'"FAILED"', b'"PASSED"')
    forged = {**genuine, "payload": base64.b64encode(payload).decode()}
    with pytest.raises(VerificationError):
        gov.as_("svc.ci").attach(VERSION, forged)
    assert gov.events(action="attest") == []
    assert gov.last_seq() == before, "nothing was attached"

    error = gov.refused()
    line = failed_rule(error, "attestation[0]:unit-tests", "no valid attestation")
    assert "not counted" not in line
    assert failed_rules(error) == {"attestation[0]:unit-tests"}


def test_attestation_signed_by_a_key_revoked_after_attaching_no_longer_counts(gov: Gov) -> None:
    attestation = gov.attest_tests()
    gov.approve("lead.ds")
    gov.approve("risk.officer")
    assert gov.admin.check_promotion(VERSION, to=PRODUCTION)[0].allowed
    gov.admin.revoke("svc.ci", key_id=dsse.key_id(gov.keys["svc.ci"].public_key()))

    error = gov.refused()
    failed_rule(
        error,
        "attestation[0]:unit-tests",
        f"#{attestation.seq}: signature does not verify against a registered key",
    )
    assert failed_rules(error) == {"attestation[0]:unit-tests"}


def test_expired_attestation_does_not_count(gov: Gov) -> None:
    attestation = gov.attest_tests()
    gov.approve("lead.ds")
    gov.approve("risk.officer")
    gov.clock.now += timedelta(days=29)
    assert gov.admin.check_promotion(VERSION, to=PRODUCTION)[0].allowed
    gov.clock.now += timedelta(days=2)

    error = gov.refused()
    failed_rule(error, "attestation[0]:unit-tests", f"#{attestation.seq}: expired", "limit 30 days")
    assert failed_rules(error) == {"attestation[0]:unit-tests"}


def test_attestation_about_another_artifact_is_refused(gov: Gov) -> None:
    other = gov.new_version("ds.maria", tag="other")
    envelope = intoto.sign_statement(gov.statement_about(other), gov.keys["svc.ci"])
    with pytest.raises(VerificationError, match="different artifact"):
        gov.as_("svc.ci").attach(VERSION, envelope)
    assert gov.events(action="attest") == []
    gov.as_("svc.ci").attach(other, envelope)  # it is a fine attestation of its own subject

    gov.approve("lead.ds")
    gov.approve("risk.officer")
    error = gov.refused()
    failed_rule(error, "attestation[0]:unit-tests", "no valid attestation")
    assert failed_rules(error) == {"attestation[0]:unit-tests"}


# --- seed Example 2: a drift warning requires a manual approval -------------------------------


def test_drift_warning_requires_a_manual_approval(gov: Gov) -> None:
    admin = gov.admin
    for bot in ("svc.autoapprove", "svc.autoscore"):
        admin.add_principal(
            bot, display_name=f"auto-approval bot {bot}", kind="service", roles=["approver"]
        )
    assert admin.set_policy(POLICY + DRIFT_CONDITION).event.metadata["version"] == 2
    gov.attest_tests()
    for bot in ("svc.autoapprove", "svc.autoscore"):
        gov.approve(bot, comment="auto-approved: auc above 0.7", kind="automated")
    gate, _ = admin.check_promotion(VERSION, to=PRODUCTION)
    assert gate.allowed, "without a drift warning, automated approvals are enough"

    validation = (
        gov.as_("ds.maria")
        .record_validation(
            DATASET,
            check="drift",
            result="WARNED",
            details={"feature": "monthly_charges", "psi": 0.31, "threshold": 0.2},
        )
        .event
    )
    assert validation.subject.id == DATASET

    error = gov.refused()
    failed_rule(
        error,
        "condition:drift_warning",
        "requires a manual approval",
        "no counted approval is manual",
    )
    assert failed_rules(error) == {"condition:drift_warning"}

    manual = gov.approve("lead.ds", comment="drift reviewed: PSI 0.31 on monthly_charges")
    done = gov.as_("svc.ci").promote(VERSION, to=PRODUCTION)
    assert gov.stage() == PRODUCTION
    decision = done.event.metadata["decision"]
    assert decision["policy"]["version"] == 2
    assert decision["policy"]["digest"] == Policy.parse(POLICY + DRIFT_CONDITION).digest
    rule = next(r for r in decision["rules"] if r["rule"] == "condition:drift_warning")
    assert rule["ok"] and manual.seq in rule["evidence"]


# --- break-glass --------------------------------------------------------------------------------


def test_break_glass_override(gov: Gov) -> None:
    before = gov.last_seq()
    with pytest.raises(AccessDeniedError, match="override"):
        gov.as_("svc.ci").promote(VERSION, to=PRODUCTION, override_reason="hotfix for INC-2291")
    refusal = [e for e in gov.events(action="reject") if e.seq > before]
    assert len(refusal) == 1
    assert refusal[0].actor.id == "svc.ci"
    assert refusal[0].metadata["attempted"] == "override"
    assert "admin" in refusal[0].metadata["reasons"][0]
    assert gov.stage() == "none"
    assert gov.events(action="promote") == []

    done = gov.admin.promote(VERSION, to=PRODUCTION, override_reason="hotfix for INC-2291")
    meta = done.event.metadata
    assert meta["override"] is True
    assert meta["override_reason"] == "hotfix for INC-2291"
    assert meta["decision"]["allowed"] is False
    failed = {r["rule"] for r in meta["decision"]["rules"] if not r["ok"]}
    assert failed == {"approvals", "attestation[0]:unit-tests"}
    assert gov.stage() == PRODUCTION
    assert "override_pending_review" in gov.flags()
    vsa = loads(gov.admin.store.read_bytes(meta["verification_attestation"]))
    key = dsse.load_public_key(gov.admin.registry_public_key_pem())
    assert intoto.open_statement(vsa, [key]).predicate["verificationResult"] == "FAILED"

    gov.admin.add_principal(
        "svc.autoapprove", display_name="bot", kind="service", roles=["approver"]
    )
    gov.approve("svc.autoapprove", kind="automated")
    assert "override_pending_review" in gov.flags(), "an automated approval is no review"
    gov.approve("lead.ds", comment="post-incident review of the override")
    assert "override_pending_review" not in gov.flags()


# --- access control -----------------------------------------------------------------------------


def test_viewer_cannot_register_approve_or_promote(gov: Gov) -> None:
    gov.admin.add_principal("auditor.kim", display_name="Kim (auditor)", roles=["viewer"])
    viewer = gov.as_("auditor.kim")
    folder = gov.work / "viewer-model"
    folder.mkdir()
    (folder / "weights.json").write_text("{}")
    before = gov.last_seq()

    with pytest.raises(AccessDeniedError, match="needs role admin or contributor"):
        viewer.add_version(MODEL, folder, run=RUN)
    with pytest.raises(AccessDeniedError, match="needs role admin or approver"):
        viewer.approve(VERSION, stage=PRODUCTION)
    with pytest.raises(AccessDeniedError, match="needs role admin or contributor or deployer"):
        viewer.promote(VERSION, to=PRODUCTION)

    rejects = [e for e in gov.events(action="reject") if e.seq > before]
    assert [e.metadata["attempted"] for e in rejects] == ["register", "approve", "promote"]
    for event in rejects:
        assert (event.actor.id, event.subject.type, event.subject.id) == (
            "auditor.kim",
            "principal",
            "auditor.kim",
        )
        assert event.outcome == "failure"
        assert event.metadata["scope"] == MODEL
        assert "holds viewer" in event.metadata["reasons"][0]
    assert [e.subject.id for e in gov.events(action="register", subject_type="model_version")] == [
        VERSION
    ]
    assert gov.events(action="approve") == []
    assert gov.stage() == "none"


def test_a_refused_version_stores_nothing_and_its_refusal_is_logged(gov: Gov) -> None:
    """Whether the files come as a directory or as a stored manifest, missing or present,
    a viewer is refused (and the refusal logged) before anything else happens."""
    gov.admin.add_principal("auditor.lee", display_name="Lee (auditor)", roles=["viewer"])
    viewer = gov.as_("auditor.lee")
    folder = gov.work / "refused-model"
    folder.mkdir()
    (folder / "weights.json").write_text('{"refused": true}')
    stored = gov.admin.get_version(VERSION)["manifest_sha256"]
    before = gov.last_seq()

    with pytest.raises(AccessDeniedError, match="needs role admin or contributor"):
        viewer.add_version(MODEL, folder, run=RUN)
    with pytest.raises(AccessDeniedError, match="needs role admin or contributor"):
        viewer.add_version(MODEL, manifest=stored, run=RUN)
    with pytest.raises(AccessDeniedError, match="needs role admin or contributor"):
        viewer.add_version(MODEL, manifest="0" * 64, run=RUN)
    with pytest.raises(AccessDeniedError, match="needs role admin or contributor"):
        viewer.add_version(MODEL)

    weights = hashlib.sha256(b'{"refused": true}').hexdigest()
    assert not gov.admin.store.exists(weights), "a refused caller's files are not stored"
    appended = [e for e in gov.events() if e.seq > before]
    assert [(e.action, e.actor.id) for e in appended] == [("reject", "auditor.lee")] * 4


def test_a_refused_batch_of_versions_stores_nothing_and_its_refusal_is_logged(gov: Gov) -> None:
    """add_versions refuses as add_version does: once per call, before anything else
    happens, whatever the batch holds (directories, stored manifests, missing ones, none,
    too many)."""
    gov.admin.add_principal("auditor.lee", display_name="Lee (auditor)", roles=["viewer"])
    viewer = gov.as_("auditor.lee")
    folder = gov.work / "refused-batch"
    folder.mkdir()
    (folder / "weights.json").write_text('{"refused": "batch"}')
    stored = VersionSpec(manifest=gov.admin.get_version(VERSION)["manifest_sha256"], run=RUN)
    before = gov.last_seq()

    for batch in (
        [stored, VersionSpec(path=folder, run=RUN)],
        [stored],
        [stored, VersionSpec(manifest="0" * 64, run=RUN)],
        [],
        [stored] * (MAX_VERSIONS_PER_CALL + 1),
    ):
        with pytest.raises(AccessDeniedError, match="needs role admin or contributor"):
            viewer.add_versions(MODEL, batch)

    weights = hashlib.sha256(b'{"refused": "batch"}').hexdigest()
    assert not gov.admin.store.exists(weights), "a refused caller's files are not stored"
    appended = [e for e in gov.events() if e.seq > before]
    assert [(e.action, e.actor.id, e.metadata["scope"]) for e in appended] == [
        ("reject", "auditor.lee", MODEL)
    ] * 5


def test_contributor_on_one_model_cannot_register_another(gov: Gov) -> None:
    gov.admin.register_model("fraud", description="Card-not-present fraud score")
    gov.admin.add_principal("ds.intern", display_name="Intern")
    gov.admin.grant("ds.intern", "contributor", scope=MODEL)
    intern = gov.as_("ds.intern")
    folder = gov.work / "intern-model"
    folder.mkdir()
    (folder / "weights.json").write_text('{"w": [1]}')

    assert intern.add_version(MODEL, folder).event.subject.id == "model:churn:v2"
    before = gov.last_seq()
    with pytest.raises(AccessDeniedError, match="model 'fraud'"):
        intern.add_version("fraud", folder)
    reject = gov.events(action="reject")[-1]
    assert reject.seq > before
    assert (reject.actor.id, reject.metadata["attempted"], reject.metadata["scope"]) == (
        "ds.intern",
        "register",
        "fraud",
    )
    assert "holds no role" in reject.metadata["reasons"][0]
    assert gov.admin.list_versions("fraud") == []


def test_issue_token_stores_only_its_sha256(gov: Gov) -> None:
    token, done = gov.admin.issue_token("svc.ci")
    digest = sha256_hex(token.encode())
    assert done.event.metadata["token_sha256"] == digest
    assert token not in json.dumps(done.event.to_wire())
    with gov.admin.db.read() as conn:
        assert access.principal_by_token(conn, digest) == "svc.ci"
    for reg in gov.handles:  # flush every connection before reading the files
        reg.close()
    gov.handles.clear()

    stored = b"".join(p.read_bytes() for p in sorted(gov.root.rglob("*")) if p.is_file())
    assert digest.encode() in stored, "the hash is stored (the scan does see the database)"
    assert token.encode() not in stored


# --- signed approvals ---------------------------------------------------------------------------


def test_signed_approvals(gov: Gov) -> None:
    assert gov.admin.set_policy(SIGNED_APPROVALS).event.metadata["version"] == 2
    gov.attest_tests()
    lead = gov.as_("lead.ds")
    with pytest.raises(VerificationError, match=r"key of lead\.ds"):  # another principal's key
        lead.approve(VERSION, stage=PRODUCTION, private_key=gov.keys["risk.officer"])
    with pytest.raises(VerificationError):  # a key nobody registered
        lead.approve(VERSION, stage=PRODUCTION, private_key=generate_key())
    assert gov.events(action="approve") == []

    signed = gov.approve("lead.ds", private_key=gov.keys["lead.ds"])
    envelope = signed.metadata["signature"]
    statement = intoto.open_statement(envelope, [gov.keys["lead.ds"].public_key()])
    assert intoto.matches_subject(statement, gov.admin.get_version(VERSION)["manifest_sha256"])
    assert statement.predicate["approver"] == {"id": "lead.ds", "name": "Dana Kim"}
    unsigned = gov.approve("risk.officer")

    approvals = {a["event"]: a for a in gov.admin.compliance_evidence(VERSION)["approvals"]}
    assert approvals[signed.seq]["signed"] and approvals[signed.seq]["signature_verified"]
    assert not approvals[unsigned.seq]["signed"]

    error = gov.refused()
    failed_rule(
        error,
        "approvals",
        "1 of 2",
        f"lead.ds (#{signed.seq})",
        f"risk.officer (#{unsigned.seq}): not signed",
    )
    assert failed_rules(error) == {"approvals"}
    gov.approve("risk.officer", private_key=gov.keys["risk.officer"])
    gov.as_("svc.ci").promote(VERSION, to=PRODUCTION)
    assert gov.stage() == PRODUCTION


# --- `mltrail policy check` ---------------------------------------------------------------------


def test_policy_check_cli(
    gov: Gov, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "240")
    base = [
        "-r",
        str(gov.root),
        "--actor",
        gov.admin_id,
        "policy",
        "check",
        "churn:v1",
        "--to",
        PRODUCTION,
    ]
    size = gov.last_seq()

    capsys.readouterr()
    assert main(base) == 6
    out = capsys.readouterr().out
    for rule in ("integrity", "approvals", "attestation[0]:unit-tests", "metric:auc"):
        assert rule in out
    assert "NO" in out and "policy churn/production v1" in out

    assert main([*base, "--json"]) == 6
    result = json.loads(capsys.readouterr().out)
    assert result["allowed"] is False
    assert result["policy"]["version"] == 1
    assert result["policy"]["digest"] == result["policy_digest"] == Policy.parse(POLICY).digest
    holds = {r["rule"]: r["ok"] for r in result["rules"]}
    assert holds == {
        "integrity": True,
        "approvals": False,
        "attestation[0]:unit-tests": False,
        "metric:auc": True,
    }
    assert gov.last_seq() == size, "a dry run appends nothing"

    gov.attest_tests()
    gov.approve("lead.ds")
    gov.approve("risk.officer")
    assert main([*base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["allowed"] is True
    assert gov.stage() == "none"
