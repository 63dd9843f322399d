"""Compliance and incident reports in Markdown, HTML and JSON, from real evidence."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from report_scenario import APPROVERS, COMMENT, ROLLBACK_REASON, Scenario

from mltrail.errors import FormatError, InvalidInputError, VerificationError
from mltrail.ledger.checkpoint import Checkpoint, split_note
from mltrail.report import render_compliance, render_incident
from mltrail.report.page import Mark, Page, Section, Table

FORMATS = ["markdown", "html"]


def _checkpoint(evidence: dict[str, Any]) -> Checkpoint:
    return Checkpoint.from_text(split_note(evidence["checkpoint"])[0])


# --- compliance ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_event_is_listed_with_its_digest_and_proof(scenario: Scenario, fmt: str) -> None:
    evidence = scenario.evidence
    text = render_compliance(evidence, fmt)
    checkpoint = _checkpoint(evidence)
    index = "**{}**" if fmt == "markdown" else "<strong>{}</strong>"
    for item in evidence["events"]:
        assert index.format(item["index"]) in text
        assert item["event"]["integrity"]["event_sha256"] in text
    assert text.count(f"verifies against signed checkpoint size {checkpoint.size}") >= len(
        evidence["events"]
    )
    assert checkpoint.root_hash.hex() in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_auditors_questions_are_answered(scenario: Scenario, fmt: str) -> None:
    evidence = scenario.evidence
    text = render_compliance(evidence, fmt)
    marks = ("\\<", "\\>") if fmt == "markdown" else ("&lt;", "&gt;")

    def escape(text: str) -> str:
        return text.replace("<", marks[0]).replace(">", marks[1])

    for approver_id, name in APPROVERS.items():  # who, by printed name and id
        assert f"{escape(name)} ({approver_id})" in text
    for approval in evidence["approvals"]:  # when
        assert approval["at"] in text
    assert "signed, verified with the approver&#x27;s registered key" in text or (
        "signed, verified with the approver's registered key" in text
    )
    assert evidence["policy"]["digest"] in text  # under which policy
    assert evidence["version"]["manifest_sha256"] in text  # which exact artifact
    assert evidence["attestations"][0]["envelope_sha256"] in text  # with which evidence
    assert "DS:fraud-2024-04" in text and evidence["lineage"]["datasets"][0]["digest"] in text
    assert "model:fraud:v1 → RF5 → DS:fraud-2024-04" in text
    assert "D77" in text  # deployments


def test_rules_show_their_evidence_indexes(scenario: Scenario) -> None:
    text = render_compliance(scenario.evidence, "markdown")
    approvals = ", ".join(f"#{a['event']}" for a in scenario.evidence["approvals"])
    assert re.search(rf"\| approvals \| ✓ ok \| .* \| {approvals} \|", text)


def test_html_is_one_self_contained_escaped_page(scenario: Scenario) -> None:
    page = render_compliance(scenario.evidence, "html")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the approval comment
    for external in ("src=", "href=", "<link", "@import", "url("):
        assert external not in page
    assert "default-src 'none'" in page  # CSP: no script, no fetch, even if one slipped in


def test_markdown_escapes_html(scenario: Scenario) -> None:
    text = render_compliance(scenario.evidence, "markdown")
    assert "<script>" not in text and "<b>" not in text
    assert COMMENT.replace("<", "\\<").replace(">", "\\>") in text


def test_json_is_the_evidence(scenario: Scenario) -> None:
    assert json.loads(render_compliance(scenario.evidence, "json")) == scenario.fresh()


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_override_is_called_out_loudly(scenario: Scenario, fmt: str) -> None:
    text = render_compliance(scenario.override_evidence, fmt)
    assert "BREAK-GLASS OVERRIDE" in text and "ALLOWED BY OVERRIDE" in text
    assert "hotfix for chargeback spike" in text
    assert "break-glass override of a failing policy gate" in text  # the page's first lines
    assert "✗ FAILED" in text
    if fmt == "html":
        assert 'class="alert"' in text


def test_another_versions_override_is_not_this_versions(scenario: Scenario) -> None:
    # v1 and v2 share a run and a policy, but v1's evidence holds only v1's events: v2's
    # overridden promotion is neither listed nor said to be v1's.
    text = render_compliance(scenario.evidence, "markdown")
    assert "model:fraud:v2 to production" not in text
    assert "break-glass override of a failing policy gate" not in text
    overridden = render_compliance(scenario.override_evidence, "markdown")
    assert "break-glass override of a failing policy gate" in overridden


def test_an_unknown_format_is_refused(scenario: Scenario) -> None:
    with pytest.raises(InvalidInputError, match="'pdf' is not one of markdown, html, json"):
        render_compliance(scenario.evidence, "pdf")


def test_malformed_evidence_is_a_format_error(scenario: Scenario) -> None:
    evidence = scenario.fresh()
    del evidence["approvals"][0]["meaning"]
    with pytest.raises(FormatError, match="missing the field 'meaning'"):
        render_compliance(evidence, "markdown")


@pytest.mark.parametrize("part", ["proof", "canonical", "wire", "checkpoint"])
def test_evidence_that_does_not_prove_itself_is_refused(scenario: Scenario, part: str) -> None:
    evidence = scenario.fresh()
    item = evidence["events"][2]
    if part == "proof":
        item["proof"][0] = "ff" * 32
    elif part == "canonical":
        item["canonical"] = evidence["events"][3]["canonical"]
    elif part == "wire":
        item["event"]["actor"]["id"] = "someone.else"
    else:
        evidence["checkpoint"] = evidence["checkpoint"].replace("\n\n", "\nx\n\n", 1)
    with pytest.raises(VerificationError, match=f"event {item['index']}|signature|trusted key"):
        render_compliance(evidence, "json")


# --- incident ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_incident_timeline_sums_up_the_window(scenario: Scenario, fmt: str) -> None:
    timeline = scenario.timeline
    text = render_incident(timeline, fmt)
    bold = "**" if fmt == "markdown" else ""
    for item in timeline["entries"]:
        assert (
            f"**{item['index']}**" if fmt == "markdown" else f"<strong>{item['index']}</strong>"
        ) in text
    counts = {
        c: sum(e["category"] == c for e in timeline["entries"])
        for c in ("promotion", "override", "rollback")
    }
    assert counts == {"promotion": 2, "override": 1, "rollback": 1}
    if fmt == "markdown":
        assert "- **promotions:** 2 — " in text
        assert f"- **overrides:** {bold}1 — " in text
        assert f"- **drift warnings:** {bold}1 — " in text
        assert f"- **rollbacks:** {bold}1 — " in text
    else:
        assert "<dt>drift warnings</dt>" in text and "<dt>overrides</dt>" in text
    assert str(_checkpoint({"checkpoint": timeline["checkpoint"]}).size) in text


def test_incident_html_escapes_every_value(scenario: Scenario) -> None:
    page = render_incident(scenario.timeline, "html")
    assert "<script" not in page.lower()
    assert ROLLBACK_REASON.replace("<", "&lt;").replace(">", "&gt;") in page


def test_incident_json_is_the_timeline(scenario: Scenario) -> None:
    assert json.loads(render_incident(scenario.timeline, "json")) == json.loads(
        json.dumps(scenario.timeline)
    )


def test_incident_entries_are_in_log_order() -> None:
    entries = [
        {
            "index": 9,
            "timestamp": "2024-06-01T10:10:00.000000Z",
            "action": "rollback",
            "actor": "mlops.alex",
            "subject": "deployment:D45",
            "summary": "v3 -> v2",
            "outcome": "success",
            "category": "rollback",
        },
        {
            "index": 4,
            "timestamp": "2024-06-01T09:03:00.000000Z",
            "action": "promote",
            "actor": {"type": "service", "id": "svc.ci"},
            "subject": {"type": "model_version", "id": "model:churn:v3"},
            "summary": "automated approval on AUC",
            "outcome": "success",
            "category": "promotion",
        },
        {
            "index": 2,
            "timestamp": "2024-06-01T08:40:00.000000Z",
            "action": "validate",
            "actor": "ds.maria",
            "subject": "dataset:DS:2024-06-01",
            "summary": "drift check",
            "result": "WARNED",
            "outcome": "success",
            "category": "validation",
        },
    ]
    timeline = {
        "model": "churn",
        "from": "2024-06-01T08:00:00Z",
        "to": "2024-06-01T12:00:00Z",
        "checkpoint": None,
        "entries": entries,
    }
    text = render_incident(timeline, "markdown")
    assert text.index("| **2** |") < text.index("| **4** |") < text.index("| **9** |")
    assert "- **drift warnings:** **1 — 2024-06-01T08:40:00.000000Z #2 by ds.maria**" in text
    assert "- **promotions:** 1 — 2024-06-01T09:03:00.000000Z #4 by svc.ci" in text
    assert "model\\_version model:churn:v3" not in text  # "_" inside a word stays readable
    assert "model_version model:churn:v3" in text


def test_incident_refuses_an_unknown_format_and_malformed_input() -> None:
    with pytest.raises(InvalidInputError):
        render_incident({}, "txt")
    with pytest.raises(FormatError, match="incident timeline is missing the field 'entries'"):
        render_incident({"model": "churn"}, "markdown")


# --- the page ------------------------------------------------------------------------------------


def test_markdown_cells_cannot_break_the_table() -> None:
    page = Page(
        "t", sections=(Section("s", (Table(("a", "b"), (("x | y\nz", Mark("ab|`c", "code")),)),)),)
    )
    row = page.to_markdown().splitlines()[-1]
    assert row == "| x \\| y z | ``ab\\|`c`` |"
