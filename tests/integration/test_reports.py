"""The auditor's evidence on the demo registry: seed Example 3 (who approved model:fraud:v5,
under which policy, with which attestations) and Example 2 (the churn incident timeline),
through the service and through `mltrail report`, `export evidence` and `verify-bundle`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mltrail.attest import dsse
from mltrail.canonical import canonicalize, loads
from mltrail.cli.main import main
from mltrail.demo.story import POLICY_FRAUD, DemoResult, build_demo
from mltrail.errors import VerificationError
from mltrail.events import Actor
from mltrail.ledger import merkle
from mltrail.ledger.checkpoint import Checkpoint, open_note
from mltrail.policy import Policy
from mltrail.service import Registry
from mltrail.service.governance import FAIRNESS_PREDICATE

ADMIN = "mlops.alex"
FRAUD_V5 = "model:fraud:v5"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """Built once for the module (about ten seconds). Tests only append to it (reading
    evidence logs an `access` event); none changes what is already there."""
    return build_demo(tmp_path_factory.mktemp("demo"), predictions=500)


@pytest.fixture
def reg(demo: DemoResult) -> Iterator[Registry]:
    with Registry.open(demo.registry, actor=Actor("user", ADMIN)) as opened:
        yield opened


@pytest.fixture
def evidence(reg: Registry) -> dict[str, Any]:
    return reg.compliance_evidence("fraud:v5")


def _statement(envelope: dict[str, Any]) -> dict[str, Any]:
    return loads(base64.b64decode(envelope["payload"]))  # type: ignore[no-any-return]


def _proven_checkpoint(note: str, verifier_key: str) -> Checkpoint:
    return Checkpoint.from_text(open_note(note, [verifier_key]))


# --- seed Example 3: the compliance evidence of model:fraud:v5 --------------------------------


def test_compliance_evidence_names_the_policy_in_force(evidence: dict[str, Any]) -> None:
    policy = evidence["policy"]
    assert (policy["scope"], policy["stage"], policy["version"]) == ("fraud", "production", 1)
    assert policy["digest"] == Policy.parse(POLICY_FRAUD).digest
    assert Policy.from_dict(policy["document"]).digest == policy["digest"]

    events = {item["index"]: item for item in evidence["events"]}
    policy_event = events[policy["event"]]
    assert policy_event["role"] == "policy"
    assert policy_event["event"]["action"] == "set_policy"
    assert policy_event["event"]["metadata"]["document_sha256"] == policy["digest"]
    assert policy_event["event"]["metadata"]["version"] == 1

    production = [d for d in evidence["decisions"] if d["to_stage"] == "production"]
    assert len(production) == 1
    decision = production[0]
    assert decision["allowed"] is True and decision["override"] is False
    assert {k: decision["policy"][k] for k in ("version", "digest", "event")} == {
        k: policy[k] for k in ("version", "digest", "event")
    }
    assert events[decision["event"]]["event"]["action"] == "promote"
    assert events[decision["event"]]["event"]["metadata"]["to_stage"] == "production"


def test_compliance_evidence_lists_approvals_and_attestations(
    evidence: dict[str, Any], demo: DemoResult
) -> None:
    version = evidence["version"]
    assert version["version_id"] == FRAUD_V5 and version["stage"] == "production"
    digest = version["manifest_sha256"]
    events = {item["index"]: item for item in evidence["events"]}
    roles = [item["role"] for item in evidence["events"]]
    assert "registration" in roles and "promotion" in roles

    approvals = evidence["approvals"]
    assert [(a["approver"]["id"], a["approver"]["name"]) for a in approvals] == [
        ("lead.ds", "Dana Kim (lead data scientist)"),
        ("risk.officer", "Sam Okafor (model risk officer)"),
    ]
    for approval in approvals:
        assert approval["meaning"] == "approval" and approval["stage"] == "production"
        assert approval["kind"] == "manual"
        assert approval["version_sha256"] == digest
        assert approval["signed"] and approval["signature_verified"]
        event = events[approval["event"]]["event"]
        assert event["action"] == "approve" and event["timestamp"] == approval["at"]
        assert event["actor"]["id"] == approval["approver"]["id"]
    assert approvals[0]["at"] < approvals[1]["at"]

    attestations = {a["predicate_type"]: a for a in evidence["attestations"]}
    assert set(attestations) == {TEST_RESULT, FAIRNESS_PREDICATE}
    keys = [
        dsse.load_public_key(k["public_key"])
        for k in evidence["keys"]
        if k["principal_id"] == "svc.ci"
    ]
    for item in attestations.values():
        assert item["verified"] and item["signer"] == "svc.ci"
        assert hashlib.sha256(canonicalize(item["envelope"])).hexdigest() == item["envelope_sha256"]
        event = events[item["event"]]["event"]
        assert event["subject"]["id"] == item["envelope_sha256"]
        assert event["integrity"]["artifact_sha256"] == item["envelope_sha256"]
        dsse.verify_envelope(item["envelope"], keys)  # independently, with the bundled key
        subjects = _statement(item["envelope"])["subject"]
        assert [s["digest"]["sha256"] for s in subjects] == [digest]
    assert attestations[TEST_RESULT]["name"] == "unit-tests"
    assert attestations[TEST_RESULT]["result"] == "PASSED"

    fairness = _statement(attestations[FAIRNESS_PREDICATE]["envelope"])["predicate"]
    assert len(fairness) <= 6, "the seed's mini challenge: under 6 fields"
    assert {"evaluator", "evaluated_at", "report"} <= set(fairness)
    assert fairness["evaluator"] == "svc.ci"
    assert fairness["report"]["sha256"] == demo.facts["bias_report_sha256"]

    decision = next(d for d in evidence["decisions"] if d["to_stage"] == "production")
    used = {rule["rule"]: rule["evidence"] for rule in decision["rules"]}
    assert used["approvals"] == [a["event"] for a in approvals]
    assert used["attestation[0]:unit-tests"] == [attestations[TEST_RESULT]["event"]]
    assert used["attestation[1]:fairness"] == [attestations[FAIRNESS_PREDICATE]["event"]]


def test_every_evidence_event_is_proven_against_the_checkpoint(
    evidence: dict[str, Any], reg: Registry
) -> None:
    assert evidence["registry"]["verifier_key"] == reg.verifier_key
    checkpoint = _proven_checkpoint(evidence["checkpoint"], reg.verifier_key)
    assert evidence["events"]
    for item in evidence["events"]:
        data = base64.b64decode(item["canonical"])
        digest = hashlib.sha256(data).digest()
        assert item["event"]["integrity"]["event_sha256"] == digest.hex()
        assert loads(data)["seq"] == item["index"] < checkpoint.size
        proof = [bytes.fromhex(h) for h in item["proof"]]
        merkle.verify_inclusion(
            merkle.leaf_hash(digest), item["index"], checkpoint.size, proof, checkpoint.root_hash
        )

    item = next(i for i in evidence["events"] if i["role"] == "approval")
    flipped = bytearray(base64.b64decode(item["canonical"]))
    flipped[len(flipped) // 2] ^= 0x01
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(
            merkle.leaf_hash(hashlib.sha256(flipped).digest()),
            item["index"],
            checkpoint.size,
            [bytes.fromhex(h) for h in item["proof"]],
            checkpoint.root_hash,
        )


# --- seed Example 2: the incident timeline ------------------------------------------------------


def test_incident_timeline_tells_the_story_in_order(reg: Registry) -> None:
    timeline = reg.incident_timeline("churn", "2024-06-01T07:00:00Z", "2024-06-01T12:00:00Z")
    _proven_checkpoint(timeline["checkpoint"], reg.verifier_key)
    entries = timeline["entries"]
    indexes = [e["index"] for e in entries]
    assert indexes == sorted(set(indexes))
    assert all("2024-06-01T07:00" <= e["timestamp"] <= "2024-06-01T12:00" for e in entries)

    def position(**want: str) -> int:
        found = [
            i
            for i, e in enumerate(entries)
            if all(str(e[k]).startswith(v) for k, v in want.items())
        ]
        assert len(found) == 1, f"expected one entry like {want}, found {len(found)}"
        return found[0]

    drift = position(action="validate", subject="dataset:DS:2024-06-01")
    assert "drift check WARNED" in entries[drift]["summary"]
    automated = position(action="approve", subject="model_version:model:churn:v3")
    assert entries[automated]["summary"].startswith("automated approval")
    promotion = position(action="promote", timestamp="2024-06-01T09:03")
    assert entries[promotion]["actor"] == "svc.ci"
    assert entries[promotion]["subject"] == "model_version:model:churn:v3"
    rollback = position(action="rollback", timestamp="2024-06-01T10:10")
    assert "model:churn:v3 -> model:churn:v2" in entries[rollback]["summary"]
    policy = position(action="set_policy", timestamp="2024-06-01T11:30")
    assert "*/production v2" in entries[policy]["summary"]
    refused = position(action="reject", subject="model_version:model:churn:v3")
    assert entries[refused]["outcome"] == "failure"
    assert "condition:drift_warning" in entries[refused]["summary"]
    assert "manual approval" in entries[refused]["summary"]
    assert drift < automated < promotion < rollback < policy < refused


# --- the CLI: reports, export, offline verification ------------------------------------------


class Cli:
    """`mltrail -r DEMO --actor mlops.alex ...` in process: (exit code, stdout, stderr)."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str, registry: bool = True) -> tuple[int, str, str]:
        self.capsys.readouterr()
        prefix = ["-r", str(self.root), "--actor", ADMIN] if registry else []
        code = main([*prefix, *args])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    def ok(self, *args: str, registry: bool = True) -> str:
        code, out, err = self(*args, registry=registry)
        assert code == 0, err
        return out


@pytest.fixture
def cli(
    demo: DemoResult, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    monkeypatch.setenv("COLUMNS", "200")
    return Cli(demo.registry, capsys)


def test_report_compliance_markdown(cli: Cli) -> None:
    out = cli.ok("report", "compliance", "fraud:v5", "--format", "markdown")
    assert out.startswith("# Compliance report: model:fraud:v5")
    for text in ("lead.ds", "risk.officer", "Dana Kim", Policy.parse(POLICY_FRAUD).digest[:12]):
        assert text in out


def test_report_compliance_html(cli: Cli, tmp_path: Path) -> None:
    page = tmp_path / "fraud-v5.html"
    cli.ok("report", "compliance", "fraud:v5", "--format", "html", "-o", str(page))
    html = page.read_text()
    assert html.lstrip().lower().startswith("<!doctype html>")
    for text in (FRAUD_V5, "lead.ds", "risk.officer", Policy.parse(POLICY_FRAUD).digest[:12]):
        assert text in html


def test_report_compliance_json(cli: Cli) -> None:
    report = json.loads(cli.ok("report", "compliance", "fraud:v5", "--format", "json"))
    assert report["version"]["version_id"] == FRAUD_V5
    assert report["policy"]["digest"] == Policy.parse(POLICY_FRAUD).digest
    assert [a["approver"]["id"] for a in report["approvals"]] == ["lead.ds", "risk.officer"]


@pytest.mark.parametrize("fmt", ["markdown", "html", "json"])
def test_report_incident(cli: Cli, fmt: str) -> None:
    out = cli.ok(
        "report",
        "incident",
        "--model",
        "churn",
        "--from",
        "2024-06-01T07:00:00Z",
        "--to",
        "2024-06-01T12:00:00Z",
        "--format",
        fmt,
    )
    if fmt == "json":
        actions = [e["action"] for e in json.loads(out)["entries"]]
        assert {"validate", "promote", "rollback", "set_policy", "reject"} <= set(actions)
    else:
        for text in ("model:churn:v3", "2024-06-01T09:03", "2024-06-01T10:10", "drift"):
            assert text in out


def test_export_evidence_and_verify_bundle_offline(cli: Cli, reg: Registry, tmp_path: Path) -> None:
    bundle = tmp_path / "fraud-v5-evidence"
    out = cli.ok("export", "evidence", "fraud:v5", "-o", str(bundle))
    assert reg.verifier_key in out
    key = reg.verifier_key
    assert "bundle verified" in cli.ok("verify-bundle", str(bundle), "--key", key, registry=False)

    approval = next(
        i
        for i in loads((bundle / "evidence.json").read_bytes())["events"]
        if i["role"] == "approval"
    )
    name = f"events/{approval['index']}.json"
    path = bundle / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    code, _, err = cli("verify-bundle", str(bundle), "--key", key, registry=False)
    assert code != 0
    assert name in err
