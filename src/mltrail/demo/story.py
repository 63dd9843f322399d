"""`mltrail demo`: a registry that plays the seed's three worked examples for real.

- Example 1: prediction P123, served by deployment D45 of model:churn:v2, trained by run
  R678 on dataset DS:2024-05-15 with feature-pipeline commit c1a2b…, can be traced and
  re-scored.
- Example 2: on 2024-06-01 a new pipeline commit and a drifted dataset produce
  model:churn:v3; a drift warning is recorded, the policy of the day lets a service account
  promote it on automated approval at 09:03, D45 serves it from 09:05, CTR drops, and D45
  is rolled back at 10:10. The lesson becomes policy v2: drift requires manual approval.
- Example 3: model:fraud:v5 is in production with a test attestation, a fairness
  attestation carrying the bias report's hash, and two approvals.

The registry's clock is simulated (`SimClock`) so the stories carry the seed's dates; the
clock only moves forward, and every timestamp is still the registry's, not a client's.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mltrail.attest import dsse, intoto
from mltrail.demo.model import auc, make_rows, rows_to_csv, score, train, write_model
from mltrail.errors import PolicyError
from mltrail.events import Actor, format_timestamp
from mltrail.service import Origin, Registry
from mltrail.service.governance import FAIRNESS_PREDICATE, fairness_predicate

__all__ = ["DemoResult", "SimClock", "build_demo"]

Progress = Callable[[str, int], None]
COMMIT_C1 = "c1a2b7f3e9d04a6b8c2e5f1a7d3b9c0e4f6a8b2d"
COMMIT_C2 = "c2f8e1d0a9b3c4d5e6f708192a3b4c5d6e7f8091"
COMMIT_F1 = "f7a3c9e2b1d04f6a8e5c3b7d9a1f2e4c6b8d0a3f"
PREDICTIONS = 100_000

POLICY_PROD_V1 = """\
apiVersion: mltrail/v1
kind: PromotionPolicy
scope: "*"
stage: production
approvals:
  count: 1
  role: approver
metrics:
  - name: auc
    source: run
    min: 0.8
"""

POLICY_PROD_V2 = (
    POLICY_PROD_V1
    + """\
conditions:
  - when: drift_warning
    require: manual_approval
"""
)

POLICY_FRAUD = """\
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
    max_age_days: 30
  - predicate_type: https://mltrail.dev/attestation/fairness/v1
    name: fairness
    result: PASSED
    signer_role: ci
metrics:
  - name: auc
    source: run
    min: 0.7
"""


@dataclass
class SimClock:
    """The demo registry's clock: set to a moment, then ticks a millisecond per reading."""

    now: datetime = field(default_factory=lambda: datetime(2024, 4, 1, 8, 0, tzinfo=UTC))

    def set(self, text: str) -> None:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        self.now = max(moment, self.now)

    def __call__(self) -> str:
        self.now += timedelta(milliseconds=1)
        return format_timestamp(self.now)


@dataclass
class DemoResult:
    registry: Path
    facts: dict[str, Any]


class _Story:
    """The scripted steps, each as the principal who would really do it."""

    def __init__(self, directory: Path, progress: Progress) -> None:
        self.dir = directory
        self.clock = SimClock()
        self.progress = progress
        self.root = directory / "registry"
        self.keys: dict[str, Any] = {}
        self.facts: dict[str, Any] = {}
        admin = Registry.init(
            self.root,
            origin="mltrail.demo/registry",
            actor=Actor("user", "mlops.alex"),
            interface=Origin("demo"),
            clock=self.clock,
        )
        admin.close()

    def as_(self, who: str, kind: str = "user") -> Registry:
        return Registry.open(
            self.root,
            actor=Actor(kind, who),
            origin=Origin("demo"),
            clock=self.clock,
        )

    # -- people, keys, policies ---------------------------------------------------------------

    def people(self) -> None:
        with self.as_("mlops.alex") as reg:
            for pid, name, roles, kind in (
                ("ds.maria", "Maria Lopez (data scientist)", ["contributor"], "user"),
                ("lead.ds", "Dana Kim (lead data scientist)", ["approver"], "user"),
                ("risk.officer", "Sam Okafor (model risk officer)", ["approver"], "user"),
                ("svc.ci", "CI pipeline", ["contributor", "ci", "approver", "deployer"], "service"),
                ("svc.serving", "Serving gateway", ["deployer"], "service"),
                ("svc.autoapprove", "Auto-approval bot (AUC threshold)", ["approver"], "service"),
            ):
                reg.add_principal(pid, display_name=name, kind=kind, roles=roles)
            for pid, curve in (
                ("svc.ci", "p256"),
                ("lead.ds", "ed25519"),
                ("risk.officer", "ed25519"),
            ):
                key = (
                    ec.generate_private_key(ec.SECP256R1())
                    if curve == "p256"
                    else ed25519.Ed25519PrivateKey.generate()
                )
                self.keys[pid] = key
                reg.add_key(pid, dsse.public_key_pem(key.public_key()))
            reg.set_policy(POLICY_PROD_V1)
            reg.set_policy(POLICY_FRAUD)

    # -- Example 1: churn v1, v2, D45, P123 -----------------------------------------------------

    def churn(self) -> None:
        self.clock.set("2024-05-01T09:00:00Z")
        env_id = self._environment()
        with self.as_("ds.maria") as reg:
            reg.register_model("churn", description="Customer churn propensity")
            reg.register_code(
                repository="git@git.example.com:ml/churn-features.git", commit=COMMIT_C1
            )
            self._dataset(reg, "churn", "DS:2024-05-01", seed=501, shift=0.0)
            self.clock.set("2024-05-02T10:00:00Z")
            self._train(
                reg, "churn", "R601", "DS:2024-05-01", COMMIT_C1, env_id, seed=501, epochs=40
            )
        self._release("churn:v1", "2024-05-03T09:00:00Z")
        self.clock.set("2024-05-15T06:00:00Z")
        with self.as_("ds.maria") as reg:
            self._dataset(reg, "churn", "DS:2024-05-15", seed=515, shift=0.0)
            self.clock.set("2024-05-15T11:00:00Z")
            self._train(
                reg, "churn", "R678", "DS:2024-05-15", COMMIT_C1, env_id, seed=515, epochs=80
            )
        self._release("churn:v2", "2024-05-16T09:00:00Z")
        self.progress("churn v1, v2 registered, approved, promoted, deployed to D45", 15)

    def _release(self, version: str, when: str) -> None:
        """The lead data scientist approves (signed), CI promotes, CI deploys to D45."""
        self.clock.set(when)
        with self.as_("lead.ds") as reg:
            reg.approve(
                version,
                stage="production",
                comment="offline metrics reviewed",
                private_key=self.keys["lead.ds"],
            )
        with self.as_("svc.ci", "service") as reg:
            reg.promote(version, to="production")
            self.clock.now += timedelta(minutes=10)
            reg.deploy(
                "D45",
                version,
                target="k8s/prod/churn-api",
                config={"replicas": 3, "timeout_ms": 150},
            )

    def _environment(self) -> str:
        (self.dir / "requirements.txt").write_text(
            "# the demo models need only the standard library\n"
        )
        with self.as_("svc.ci", "service") as reg:
            done = reg.register_environment(project_dir=self.dir)
        return str(done.event.subject.id)

    def _dataset(
        self, reg: Registry, kind: str, dataset_id: str, *, seed: int, shift: float
    ) -> None:
        folder = self.dir / "data" / dataset_id.replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{kind}.csv").write_text(
            rows_to_csv(kind, make_rows(kind, 2000, seed=seed, shift=shift))
        )
        reg.register_dataset(
            dataset_id,
            name=f"{kind}-events",
            version=dataset_id.split(":", 1)[1],
            uri=f"s3://example-datalake/{kind}/{dataset_id.split(':', 1)[1]}/",
            path=folder,
        )

    def _train(
        self,
        reg: Registry,
        kind: str,
        run_id: str,
        dataset: str,
        commit: str,
        env_id: str,
        *,
        seed: int,
        epochs: int,
    ) -> str:
        rows = make_rows(kind, 2000, seed=seed)
        params = {"lr": 0.5, "epochs": epochs, "features": list(rows[0]["features"])}
        started = self.clock()
        weights = train(kind, rows, epochs=epochs)
        reg.register_run(
            run_id,
            params=params,
            metrics={"auc": auc(weights, rows)},
            datasets=[dataset],
            commit=commit,
            environment=env_id,
            started_at=started,
            ended_at=self.clock(),
        )
        folder = write_model(self.dir / "models" / run_id, weights)
        self.facts.setdefault("weights", {})[run_id] = weights
        return reg.add_version(
            kind, folder, run=run_id, entrypoint="score.py:predict"
        ).event.subject.id

    def predictions(self, count: int) -> None:
        rng = random.Random(123)
        rows = make_rows("churn", 500, seed=999)
        weights = self.facts["weights"]["R678"]
        start = datetime(2024, 5, 20, 0, 0, tzinfo=UTC)
        batch: list[dict[str, Any]] = []
        with self.as_("svc.serving", "service") as reg:
            for i in range(count):
                pid = "P123" if i == 123 else f"P{1000 + i}"
                features = rows[rng.randrange(len(rows))]["features"]
                when = format_timestamp(start + timedelta(seconds=i * 2))
                batch.append(
                    {
                        "prediction_id": pid,
                        "deployment": "D45",
                        "timestamp": when,
                        "input": features,
                        "output": score(weights, features),
                    }
                )
                if len(batch) == 10_000 or i == count - 1:
                    self.clock.set(batch[-1]["timestamp"])
                    reg.log_predictions(batch)
                    batch = []
                    self.progress(f"{i + 1:,} predictions logged", 15 + int(45 * (i + 1) / count))

    # -- Example 2: the incident ------------------------------------------------------------------

    def incident(self) -> None:
        self.clock.set("2024-06-01T07:30:00Z")
        env_id = self._environment()
        with self.as_("ds.maria") as reg:
            reg.register_code(
                repository="git@git.example.com:ml/churn-features.git", commit=COMMIT_C2
            )
            self._dataset(reg, "churn", "DS:2024-06-01", seed=601, shift=1.5)
            reg.record_validation(
                "DS:2024-06-01",
                check="drift",
                result="WARNED",
                details={"feature": "monthly_charges", "psi": 0.31, "threshold": 0.2},
            )
            self.clock.set("2024-06-01T08:30:00Z")
            version = self._train(
                reg, "churn", "R702", "DS:2024-06-01", COMMIT_C2, env_id, seed=601, epochs=80
            )
        self.clock.set("2024-06-01T09:02:00Z")
        with self.as_("svc.autoapprove", "service") as reg:
            reg.approve(
                version,
                stage="production",
                comment="auto-approved: auc above 0.8",
                kind="automated",
            )
        self.clock.set("2024-06-01T09:03:00Z")
        with self.as_("svc.ci", "service") as reg:
            reg.promote(version, to="production")
            self.clock.set("2024-06-01T09:05:00Z")
            reg.deploy(
                "D45",
                version,
                target="k8s/prod/churn-api",
                config={"replicas": 3, "timeout_ms": 150},
            )
        weights = self.facts["weights"]["R702"]
        rows = make_rows("churn", 200, seed=603, shift=1.5)
        with self.as_("svc.serving", "service") as reg:
            records = [
                {
                    "prediction_id": f"P6{i:05d}",
                    "deployment": "D45",
                    "input": r["features"],
                    "output": score(weights, r["features"]),
                    "timestamp": format_timestamp(
                        datetime(2024, 6, 1, 9, 6, tzinfo=UTC) + timedelta(seconds=15 * i)
                    ),
                }
                for i, r in enumerate(rows)
            ]
            self.clock.set(records[-1]["timestamp"])
            reg.log_predictions(records)
        self.clock.set("2024-06-01T10:10:00Z")
        with self.as_("mlops.alex") as reg:
            reg.rollback("D45", reason="CTR dropped 8% after model:churn:v3 (alert INC-2291)")
            self.clock.set("2024-06-01T11:30:00Z")
            reg.set_policy(POLICY_PROD_V2)
        self.clock.set("2024-06-01T11:45:00Z")
        with self.as_("svc.ci", "service") as reg:  # the new rule holds: refused, and logged
            try:
                reg.promote(version, to="production")
            except PolicyError as exc:
                self.facts["refused"] = exc.errors
        self.facts["incident_version"] = version
        self.progress("incident: drift warning, automated promotion 09:03, rollback 10:10", 75)

    # -- Example 3: fraud v1..v5 ---------------------------------------------------------------

    def fraud_models(self) -> None:
        self.clock.set("2024-04-02T09:00:00Z")
        env_id = self._environment()
        with self.as_("ds.maria") as reg:
            reg.register_model("fraud", description="Card-not-present fraud score")
            reg.register_code(repository="git@git.example.com:ml/fraud.git", commit=COMMIT_F1)
            self._dataset(reg, "fraud", "DS:fraud-2024-04", seed=706, shift=0.0)
            versions = [
                self._train(
                    reg,
                    "fraud",
                    f"RF{n}",
                    "DS:fraud-2024-04",
                    COMMIT_F1,
                    env_id,
                    seed=706,
                    epochs=10 + 10 * n,
                )
                for n in range(1, 6)
            ]
        self.facts["fraud_version"] = versions[-1]
        self.progress("fraud v1..v5 registered", 10)

    def fraud_release(self) -> None:
        v5 = self.facts["fraud_version"]
        self.clock.set("2024-06-10T09:00:00Z")
        with self.as_("svc.ci", "service") as reg:
            reg.promote(v5, to="staging")
            self._attest_fraud(reg, v5)
        self.clock.set("2024-06-11T14:00:00Z")
        for who, at in (
            ("lead.ds", "2024-06-11T14:00:00Z"),
            ("risk.officer", "2024-06-12T10:30:00Z"),
        ):
            self.clock.set(at)
            with self.as_(who) as reg:
                reg.approve(
                    v5,
                    stage="production",
                    comment="reviewed tests and bias report",
                    private_key=self.keys[who],
                )
        self.clock.set("2024-06-12T11:00:00Z")
        with self.as_("svc.ci", "service") as reg:
            reg.promote(v5, to="production")
            reg.deploy("D77", v5, target="k8s/prod/fraud-api", config={"replicas": 6})
        self.progress("fraud v5: tests, bias report, two approvals, production", 90)

    def _attest_fraud(self, reg: Registry, version: str) -> None:
        report = json.dumps(
            {"metric": "demographic_parity_difference", "groups": ["A", "B"], "value": 0.03},
            sort_keys=True,
        ).encode()
        report_digest = reg.store.put_bytes(report).digest
        key = self.keys["svc.ci"]
        tests = intoto.test_result_predicate(
            "PASSED",
            [{"name": "unit-tests", "digest": {"sha256": report_digest}}],
            passed_tests=["test_schema", "test_auc_floor", "test_latency"],
        )
        reg.attest(version, predicate_type=intoto.TEST_RESULT, predicate=tests, private_key=key)
        fairness = fairness_predicate(
            evaluator="svc.ci",
            evaluated_at=self.clock(),
            report_sha256=report_digest,
            metric="demographic_parity_difference",
            value=0.03,
            result="PASSED",
        )
        reg.attest(version, predicate_type=FAIRNESS_PREDICATE, predicate=fairness, private_key=key)
        self.facts["bias_report_sha256"] = report_digest


def build_demo(
    directory: Path,
    *,
    predictions: int = PREDICTIONS,
    progress: Progress = lambda message, percent: None,
) -> DemoResult:
    """Build the demo registry in ``directory`` (which must not hold one yet)."""
    story = _Story(directory, progress)
    story.people()
    progress("principals, keys and policies", 5)
    story.fraud_models()
    story.churn()
    story.predictions(predictions)
    story.incident()
    story.fraud_release()
    with story.as_("mlops.alex") as reg:
        report = reg.verify()
        report.raise_for_problems()
    story.facts.pop("weights", None)
    story.facts["events"] = report.size
    progress("verified", 100)
    return DemoResult(story.root, story.facts)
