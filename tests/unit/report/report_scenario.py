"""A small real registry for the report tests (the `scenario` fixture of conftest.py).

Seed Example 3 for model:fraud:v1 (a test attestation, two signed approvals, gated
promotions, a deployment), then an incident on model:fraud:v2 (a drift warning, a
break-glass override, a deployment, a rollback).

Everything is real: Ed25519 and P-256 keys, DSSE envelopes, the SQL log's proofs and
signed checkpoints; the evidence comes from `Registry.compliance_evidence`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mltrail.attest import dsse, intoto
from mltrail.events import Actor
from mltrail.service import Registry

POLICY = """\
apiVersion: mltrail/v1
kind: PromotionPolicy
scope: fraud
stage: production
allowed_from: [staging]
approvals:
  count: 2
  role: approver
  meanings: [approval]
attestations:
  - predicate_type: https://in-toto.io/attestation/test-result/v0.1
    name: unit-tests
    result: PASSED
    signer_role: ci
"""
COMMIT = "f7a3c9e2b1d04f6a8e5c3b7d9a1f2e4c6b8d0a3f"
APPROVERS = {"lead.ds": "Dana Kim", "risk.officer": "Sam <b>Okafor</b>"}
COMMENT = "reviewed tests and bias report <script>alert(1)</script>"
ROLLBACK_REASON = "CTR dropped 8% <script>alert(2)</script>"


@dataclass(frozen=True)
class Scenario:
    """The evidence of v1 (approved) and v2 (overridden), the incident timeline, the key."""

    evidence: dict[str, Any]
    override_evidence: dict[str, Any]
    timeline: dict[str, Any]
    verifier_key: str

    def fresh(self) -> dict[str, Any]:
        """A copy of v1's evidence that a test may change, shared parts unshared (as read
        back from JSON; the service's dicts share objects between sections)."""
        copied: dict[str, Any] = json.loads(json.dumps(self.evidence))
        return copied

    def fresh_override(self) -> dict[str, Any]:
        """A changeable copy of v2's evidence, whose promotion was a break-glass override."""
        copied: dict[str, Any] = json.loads(json.dumps(self.override_evidence))
        return copied


def _files(root: Path, name: str, content: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "weights.json").write_text(content)
    return folder


def build_scenario(root: Path) -> Scenario:
    admin = Registry.init(
        root / "registry", origin="test.mltrail/report", actor=Actor("user", "mlops.alex")
    )
    keys: dict[str, Any] = {
        "lead.ds": ed25519.Ed25519PrivateKey.generate(),
        "risk.officer": ed25519.Ed25519PrivateKey.generate(),
        "svc.ci": ec.generate_private_key(ec.SECP256R1()),
    }
    with admin as reg:
        reg.add_principal("ds.maria", display_name="Maria Lopez", roles=["contributor"])
        for pid, name in APPROVERS.items():
            reg.add_principal(pid, display_name=name, roles=["approver"])
        reg.add_principal(
            "svc.ci",
            display_name="CI pipeline",
            kind="service",
            roles=["contributor", "ci", "deployer"],
        )
        for pid, key in keys.items():
            reg.add_key(pid, dsse.public_key_pem(key.public_key()))
        reg.set_policy(POLICY)

    def as_(who: str, kind: str = "user") -> Any:
        return Registry.open(root / "registry", actor=Actor(kind, who))

    data = root / "data"
    data.mkdir()
    (data / "rows.csv").write_text("amount,label\n12.5,0\n999.0,1\n")
    with as_("ds.maria") as reg:
        reg.register_model("fraud", description="card-not-present fraud score")
        reg.register_code(repository="git@git.example.com:ml/fraud.git", commit=COMMIT)
        reg.register_dataset("DS:fraud-2024-04", name="fraud-events", version="2024-04", path=data)
        reg.register_run(
            "RF5",
            params={"lr": 0.5, "epochs": 60},
            metrics={"auc": 0.93},
            datasets=["DS:fraud-2024-04"],
            commit=COMMIT,
        )
        v1 = reg.add_version("fraud", _files(root, "m1", '{"w": [1]}'), run="RF5").event.subject.id
    with as_("svc.ci", "service") as reg:
        reg.promote(v1, to="staging")
        tests = intoto.test_result_predicate(
            "PASSED",
            [{"name": "unit-tests", "uri": "https://ci.example.com/runs/41"}],
            passed_tests=["test_schema", "test_auc_floor"],
        )
        reg.attest(
            v1, predicate_type=intoto.TEST_RESULT, predicate=tests, private_key=keys["svc.ci"]
        )
    for who in APPROVERS:
        with as_(who) as reg:
            reg.approve(v1, stage="production", comment=COMMENT, private_key=keys[who])
    with as_("svc.ci", "service") as reg:
        reg.promote(v1, to="production")
        reg.deploy("D77", v1, target="k8s/prod/fraud-api", config={"replicas": 3})
    # The incident: drift on the data, a version pushed through with a break-glass override.
    with as_("ds.maria") as reg:
        reg.record_validation(
            "DS:fraud-2024-04",
            check="drift",
            result="WARNED",
            details={"feature": "amount", "psi": 0.31},
        )
        v2 = reg.add_version("fraud", _files(root, "m2", '{"w": [2]}'), run="RF5").event.subject.id
    with as_("mlops.alex") as reg:
        reg.promote(v2, to="production", override_reason="hotfix for chargeback spike")
        reg.deploy("D77", v2, target="k8s/prod/fraud-api", config={"replicas": 3})
        reg.rollback("D77", reason=ROLLBACK_REASON)
        return Scenario(
            evidence=reg.compliance_evidence(v1),
            override_evidence=reg.compliance_evidence(v2),
            timeline=reg.incident_timeline("fraud", "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),
            verifier_key=reg.verifier_key,
        )
