"""Seed "retention and privacy": configured-sensitive values never reach the log or an
evidence bundle; kept prediction inputs are erasable without breaking a proof; legal holds
defer erasure and purging; retention windows purge expired inputs and cannot be set below
six months.

The raw-bytes scans read the SQLite file (and its WAL) and every bundle file, for each
sensitive string and for the string as it appears inside base64 (a DSSE payload).
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from demo_registry import ADMIN, cli

from mltrail.attest import dsse
from mltrail.canonical import canonicalize, loads
from mltrail.cli.main import main
from mltrail.demo.story import SimClock
from mltrail.errors import ConfigError, NotFoundError
from mltrail.events import Actor
from mltrail.ledger.log import EventFilter
from mltrail.privacy.redaction import HASH_PREFIX, keyed_hash
from mltrail.service import Registry
from mltrail.settings import RedactionRule, load_settings

EMAIL = "ana@example.com"
CUSTOMER = "customer-8812"
SENSITIVE = (EMAIL, CUSTOMER)
RULES = [
    RedactionRule(field="email", action="hash"),
    RedactionRule(pattern=".*_email", action="drop"),
    RedactionRule(value_pattern=r"(?s).*[^@\s]+@[^@\s]+.*", action="hash"),
    RedactionRule(value_pattern=r"(?s).*customer-[0-9]+.*", action="hash"),
]


def encodings(needle: str) -> list[bytes]:
    """``needle`` as UTF-8, and the base64 characters it always becomes inside a longer
    base64 text, for each of the three alignments (standard and URL-safe alphabets)."""
    raw = needle.encode()
    forms = [raw]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        core = encoded[-(-8 * shift // 6) : 8 * (shift + len(raw)) // 6]
        forms += [core, core.replace(b"+", b"-").replace(b"/", b"_")]
    return forms


def leaks(data: bytes) -> list[str]:
    """The sensitive strings found in ``data``, in plain text or inside base64."""
    return [s for s in SENSITIVE if any(form in data for form in encodings(s))]


@pytest.mark.parametrize("prefix", ["", "x", "xy"], ids=["aligned", "shift-1", "shift-2"])
def test_the_scan_finds_a_value_hidden_in_base64(prefix: str) -> None:
    document = canonicalize({"comment": f"{prefix}questions to {EMAIL} or {CUSTOMER}"})
    assert leaks(document) == [EMAIL, CUSTOMER]
    assert leaks(base64.b64encode(document)) == [EMAIL, CUSTOMER]
    assert leaks(base64.urlsafe_b64encode(b"?" + document)) == [EMAIL, CUSTOMER]
    assert leaks(canonicalize({"comment": "hmac-sha256:" + "0" * 64})) == []


# -- a registry configured to redact, fed sensitive values through every free-form field -----


def configure(root: Path, **changes: Any) -> None:
    settings = load_settings(root)
    for name, value in changes.items():
        setattr(settings, name, value)
    settings.save(root)


@pytest.fixture
def sensitive(make_registry: Callable[..., Registry], tmp_path: Path) -> Iterator[Registry]:
    """A redacting registry that was handed EMAIL and CUSTOMER in run params and metrics,
    a validation, a signed approval comment, a rejection, prediction inputs and subjects,
    and a legal hold's reason. P-KEPT's input (with EMAIL) is kept; P-HMAC's is not."""
    make_registry().close()
    root = tmp_path / "registry"
    configure(root, redaction=RULES)
    key = ed25519.Ed25519PrivateKey.generate()
    data = tmp_path / "data"
    data.mkdir()
    (data / "churn.csv").write_text("tenure_months,churned\n3,1\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "score.py").write_text("def predict(x):\n    return {'score': 0.5}\n")
    with Registry.open(root, actor=Actor("user", "alice")) as reg:
        reg.add_key("alice", dsse.public_key_pem(key.public_key()))
        reg.register_dataset("DS:1", name="churn", version="1", uri="s3://lake/churn/", path=data)
        reg.record_validation(
            "DS:1",
            check="schema",
            result="PASSED",
            details={"email": EMAIL, "note": f"row 7 belongs to {CUSTOMER}"},
        )
        reg.register_run(
            "R1",
            params={"owner_email": EMAIL, "lr": 0.1, "contact": f"Ana <{EMAIL}>"},
            metrics={"auc": 0.91, "reviewed_by": EMAIL},
            datasets=["DS:1"],
        )
        reg.register_model("churn")
        version = reg.add_version("churn", model, run="R1", entrypoint="score.py:predict")
        vid = version.event.subject.id
        reg.reject_version(vid, stage="staging", reason=f"{CUSTOMER} reported a bad score")
        reg.approve(
            vid, stage="production", comment=f"approved; questions to {EMAIL}", private_key=key
        )
        reg.deploy("D1", vid, target="k8s/prod/churn-api")
        record = {
            "deployment": "D1",
            "input": {"email": EMAIL, "tenure_months": 3.0},
            "output": 0.5,
            "subject": CUSTOMER,
        }
        reg.log_predictions([{**record, "prediction_id": "P-KEPT"}])
        reg.log_predictions([{**record, "prediction_id": "P-HMAC"}], keep_inputs=False)
        reg.hold(f"subject:{CUSTOMER}", reason=f"litigation hold for {CUSTOMER}")
        reg.release(f"subject:{CUSTOMER}", reason="case closed")
        yield reg


def raw_database(root: Path) -> bytes:
    """The bytes of the SQLite file and its write-ahead log, as a disk image would hold them."""
    db = root / "registry.db"
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def compact(root: Path) -> None:
    """VACUUM and checkpoint the WAL, so deleted rows leave no bytes behind."""
    conn = sqlite3.connect(root / "registry.db")
    try:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def test_ledger_events_never_hold_a_sensitive_value(sensitive: Registry) -> None:
    with sensitive.db.engine.connect() as conn:
        bodies = [
            bytes(b) if not isinstance(b, str) else b.encode()
            for (b,) in conn.exec_driver_sql("SELECT body FROM ledger_events")
        ]

    assert len(bodies) == sensitive.log.size()
    assert [leaks(b) for b in bodies if leaks(b)] == []
    assert sensitive.verify().ok


def test_redacted_values_are_hashed_with_the_registry_key_or_dropped(sensitive: Registry) -> None:
    hashed = HASH_PREFIX + keyed_hash(sensitive.secret, EMAIL)
    validation = list(sensitive.events(EventFilter(action="validate")))[-1]
    run = list(sensitive.events(EventFilter(subject_type="run")))[-1]
    approval = list(sensitive.events(EventFilter(action="approve")))[-1]

    assert validation.metadata["details"]["email"] == hashed  # correlatable, not readable
    assert validation.metadata["details"]["note"].startswith(HASH_PREFIX)
    assert "owner_email" not in run.metadata["params"]  # dropped
    assert run.metadata["params"]["lr"] == 0.1  # untouched
    assert run.metadata["metrics"] == {"auc": 0.91, "reviewed_by": hashed}
    assert approval.metadata["comment"].startswith(HASH_PREFIX)
    signed = loads(base64.b64decode(approval.metadata["signature"]["payload"]))
    assert signed["predicate"]["comment"] == approval.metadata["comment"]
    record = sensitive.prove_prediction("P-HMAC")["record"]
    assert record["input_hmac"] == keyed_hash(
        sensitive.secret, {"email": EMAIL, "tenure_months": 3.0}
    )


def test_the_database_file_holds_no_sensitive_value_once_kept_inputs_are_erased(
    sensitive: Registry,
) -> None:
    root = sensitive.root
    assert sensitive.payload("prediction:P-KEPT:input") is not None
    sensitive.close()
    compact(root)
    assert leaks(raw_database(root)) == [EMAIL]  # the kept input: the scan sees the file

    with Registry.open(root, actor=Actor("user", "alice")) as reg:
        erased = reg.erase(data_subject=CUSTOMER, reason=f"GDPR art. 17 request from {EMAIL}")
        assert erased.event.metadata["status"] == "erased"
        assert reg.payload("prediction:P-KEPT:input") is None
    compact(root)

    assert leaks(raw_database(root)) == []
    with Registry.open(root, actor=Actor("user", "alice")) as reg:
        assert reg.verify().ok


def test_an_evidence_bundle_holds_no_sensitive_value_and_verifies(
    sensitive: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    args = ["-r", str(sensitive.root), "--actor", "alice"]

    assert main([*args, "export", "evidence", "churn:v1", "-o", str(bundle)]) == 0

    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    assert {"evidence.json", "report.md", "SHA256SUMS"} <= {p.name for p in files}
    assert any(p.parent.name == "events" for p in files)
    assert {
        p.relative_to(bundle).as_posix(): leaks(p.read_bytes())
        for p in files
        if leaks(p.read_bytes())
    } == {}
    capsys.readouterr()
    assert main(["verify-bundle", str(bundle), "--key", sensitive.verifier_key]) == 0, (
        capsys.readouterr().err
    )


# -- erasure, legal holds, retention on the demo registry ------------------------------------


def at(root: Path, year: int, month: int, day: int) -> Registry:
    """The registry as the admin, its clock set to that day (midnight UTC)."""
    clock = SimClock(datetime(year, month, day, tzinfo=UTC))
    return Registry.open(root, actor=ADMIN, clock=clock)


def kept(reg: Registry, prediction_id: str) -> bool:
    return reg.payload(f"prediction:{prediction_id}:input") is not None


def log_for(reg: Registry, subject: str, *prediction_ids: str) -> None:
    reg.log_predictions(
        {
            "prediction_id": p,
            "deployment": "D45",
            "input": {"n": i},
            "output": 0.5,
            "subject": subject,
        }
        for i, p in enumerate(prediction_ids)
    )


def test_erasing_p123_keeps_every_proof_and_makes_it_not_reproducible(reg: Registry) -> None:
    assert reg.reproduce("P123")["outcome"] == "reproduced"

    erased = reg.erase(prediction_id="P123", reason="GDPR art. 17 request #4411")

    assert erased.event.metadata["status"] == "erased"
    assert (erased.event.subject.type, erased.event.subject.id) == ("prediction", "P123")
    assert not kept(reg, "P123")
    assert reg.verify().ok
    assert reg.prove_prediction("P123")["record"]["prediction_id"] == "P123"
    result = reg.reproduce("P123")
    assert result["outcome"] == "not reproducible"
    assert result["reason"] == "input erased"
    with pytest.raises(NotFoundError, match="no kept payload"):
        reg.erase(prediction_id="P123", reason="asked twice")


def test_erasing_a_data_subject_removes_all_their_payloads(reg: Registry) -> None:
    log_for(reg, CUSTOMER, "P-C1", "P-C2", "P-C3")
    log_for(reg, "customer-9001", "P-OTHER")

    erased = reg.erase(data_subject=CUSTOMER, reason="GDPR art. 17 request #4412")

    assert [kept(reg, p) for p in ("P-C1", "P-C2", "P-C3")] == [False, False, False]
    assert kept(reg, "P-OTHER") and kept(reg, "P123")
    assert erased.event.metadata["keys"] == [f"subject:{reg.subject_key(CUSTOMER)}"]
    assert CUSTOMER.encode() not in canonicalize(dict(erased.event.metadata))
    assert reg.reproduce("P-C2")["reason"] == "input was not kept for reproduction"
    assert reg.verify().ok


def test_a_legal_hold_defers_erasure_until_released(reg: Registry) -> None:
    reg.hold("prediction:P123", reason="litigation 2024-117")

    deferred = reg.erase(prediction_id="P123", reason="GDPR art. 17 request #4411")

    assert deferred.event.outcome == "failure"
    assert deferred.event.metadata["status"] == "deferred"
    assert deferred.event.metadata["reasons"] == [
        "prediction:P123 is under legal hold: litigation 2024-117"
    ]
    assert kept(reg, "P123")
    assert reg.reproduce("P123")["outcome"] == "reproduced"  # a deferred erasure erased nothing

    reg.release("prediction:P123", reason="litigation settled")
    erased = reg.erase(prediction_id="P123", reason="GDPR art. 17 request #4411")

    assert (erased.event.outcome, erased.event.metadata["status"]) == ("success", "erased")
    assert not kept(reg, "P123")
    assert reg.reproduce("P123")["reason"] == "input erased"


def test_a_hold_on_a_data_subject_defers_their_erasure(reg: Registry) -> None:
    log_for(reg, CUSTOMER, "P-C1")
    reg.hold(f"subject:{CUSTOMER}", reason="case 2024-118")

    deferred = reg.erase(data_subject=CUSTOMER, reason="request #4413")

    assert deferred.event.metadata["status"] == "deferred"
    assert kept(reg, "P-C1")
    reg.release(f"subject:{CUSTOMER}", reason="case closed")
    assert (
        reg.erase(data_subject=CUSTOMER, reason="request #4413").event.metadata["status"]
        == "erased"
    )
    assert not kept(reg, "P-C1")


def test_hold_and_erase_through_the_cli(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(root, capsys, "hold", "prediction:P123", "--reason", "case 2024-117")[0] == 0

    code, out, err = cli(root, capsys, "erase", "--prediction", "P123", "--reason", "#4411")

    assert code == 0, err
    assert "erasure deferred" in out
    assert "deferred: prediction:P123 is under legal hold: case 2024-117" in out
    assert cli(root, capsys, "repro", "P123")[0] == 0
    assert cli(root, capsys, "hold", "prediction:P123", "--reason", "closed", "--release")[0] == 0
    code, out, err = cli(root, capsys, "erase", "--prediction", "P123", "--reason", "#4411")
    assert code == 0, err
    assert "erasure erased" in out
    code, out, _ = cli(root, capsys, "repro", "P123")
    assert code == 11
    assert "outcome: not reproducible (input erased)" in out


def test_retention_dry_run_reports_without_deleting(root: Path) -> None:
    with at(root, 2024, 11, 1) as reg:
        inside = reg.apply_retention(dry_run=True)["classes"]["prediction_input"]
    with at(root, 2024, 11, 25) as reg:
        size = reg.log.size()

        report = reg.apply_retention(dry_run=True)

        assert report["dry_run"] is True
        assert "event" not in report
        assert reg.log.size() == size
        assert kept(reg, "P123")
    assert inside["expired"] == 0  # 2024-05-20 is within 183 days of 2024-11-01
    window = report["classes"]["prediction_input"]
    assert window["cutoff"] == "2024-05-26T00:00:00.001000Z"
    assert (window["expired"], window["removable"], window["held"]) == (2000, 2000, 0)
    assert report["classes"]["prediction_log"]["expired"] == 0


def test_retention_purges_expired_payloads_but_not_held_ones(root: Path) -> None:
    with at(root, 2024, 6, 20) as reg:
        log_for(reg, CUSTOMER, "P-C1", "P-C2")
        reg.hold("prediction:P123", reason="litigation 2024-117")
        reg.hold(f"subject:{CUSTOMER}", reason="case 2024-118")
    with at(root, 2025, 1, 1) as reg:
        report = reg.apply_retention()

        window = report["classes"]["prediction_input"]
        assert (window["expired"], window["removable"], window["held"]) == (2202, 2199, 3)
        event = reg.event(report["event"])
        assert (event.action, event.metadata["status"]) == ("erase", "purged")
        assert event.metadata["retention"] == report["classes"]
        assert [kept(reg, p) for p in ("P123", "P-C1", "P-C2")] == [True, True, True]
        assert [kept(reg, p) for p in ("P1000", "P2999", "P600199")] == [False, False, False]
        assert reg.prove_prediction("P1000")["record"]["prediction_id"] == "P1000"
        assert reg.verify().ok
        assert "event" not in reg.apply_retention()  # nothing left to purge: nothing logged


def test_retention_through_the_cli(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(root, capsys, "retention", "apply", "--dry-run", "--json")
    assert code == 0
    assert json.loads(out)["classes"]["prediction_input"]["removable"] == 2200
    with Registry.open(root, actor=ADMIN) as reg:
        assert kept(reg, "P123")

    code, out, _ = cli(root, capsys, "retention", "apply", "--json")

    assert code == 0
    assert json.loads(out)["event"] >= 0
    with Registry.open(root, actor=ADMIN) as reg:
        assert not kept(reg, "P123")


@pytest.mark.parametrize(
    ("record_class", "days"),
    [("prediction_input", 182), ("prediction_log", 30), ("deployment_log", 0)],
    ids=["input-one-day-short", "log-a-month", "deployments-none"],
)
def test_a_retention_window_under_six_months_is_refused(
    root: Path, record_class: str, days: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused when the configuration is read, before any command can act on it.
    windows = {**load_settings(root).retention_days, record_class: days}
    config = root / "config.json"
    data = json.loads(config.read_text())
    good = config.read_text()
    config.write_text(json.dumps({**data, "retention_days": windows}))

    with pytest.raises(ConfigError) as refused:
        at(root, 2025, 1, 1)

    assert f"retention for {record_class} is {days} days" in refused.value.message
    assert cli(root, capsys, "retention", "apply")[0] == 9
    config.write_text(good)
    with Registry.open(root, actor=ADMIN) as reg:
        assert kept(reg, "P123")


def test_a_longer_retention_window_is_respected(root: Path) -> None:
    configure(root, retention_days={"prediction_input": 400})

    with at(root, 2025, 1, 1) as reg:
        report = reg.apply_retention()

        assert report["classes"]["prediction_input"]["expired"] == 0
        assert set(report["classes"]) == {"prediction_input", "prediction_log", "deployment_log"}
        assert kept(reg, "P123")
