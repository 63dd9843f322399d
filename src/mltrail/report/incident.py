"""The incident report: what happened to a model in a time window (seed Example 2).

"CTR dropped 8% after a model update": the timeline shows the promotion at 09:03 by a
service account on automated approval, the data validation that flagged drift, the policy
that allowed an override, the deployment, and the rollback at 10:10. The header sums up
the window: promotions, overrides, drift warnings and rollbacks, each with its time, log
index and actor, so the root cause reads off the first screen.

The input is the timeline dict `service.Registry.incident_timeline` builds.

>>> timeline = {"model": "churn", "from": "2024-06-01T08:00:00Z", "to": "2024-06-01T12:00:00Z",
...             "checkpoint": None, "entries": [
...     {"index": 7, "timestamp": "2024-06-01T09:03:00.000000Z", "action": "promote",
...      "actor": {"type": "service", "id": "svc.ci"}, "subject": "model:churn:v3",
...      "summary": "promoted to production on automated approval (auc 0.91)",
...      "outcome": "success", "category": "promotion"}]}
>>> text = render_incident(timeline, "markdown")
>>> "- **promotions:** 1 — 2024-06-01T09:03:00.000000Z #7 by svc.ci" in text
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mltrail.errors import InvalidInputError
from mltrail.ledger.checkpoint import Checkpoint, split_note
from mltrail.report.compliance import FORMATS, malformed
from mltrail.report.page import (
    Alert,
    Block,
    Inline,
    Mark,
    Page,
    Paragraph,
    Section,
    Table,
    show,
    show_ref,
)

__all__ = ["CATEGORIES", "render_incident"]

CATEGORIES = (
    "validation",
    "decision",
    "override",
    "promotion",
    "deployment",
    "rollback",
    "policy",
    "rejection",
    "predictions",
)
_LOUD = {"override": "⚠ OVERRIDE", "rollback": "ROLLBACK", "rejection": "REJECTED"}
_DRIFT_WORDS = ("warn", "fail", "flag")


def render_incident(timeline: Mapping[str, Any], fmt: str = "markdown") -> str:
    """Render the timeline of a model's events in a window.

    Args:
        timeline: ``{"model", "from", "to", "checkpoint", "entries": [...]}``, each entry
            with ``index, timestamp, action, actor, subject, summary, outcome, category``.
        fmt: ``markdown``, ``html`` (one self-contained page) or ``json`` (the timeline).

    Returns:
        The report text, entries in log order.

    Raises:
        InvalidInputError: ``fmt`` is not a known format.
        FormatError: the timeline lacks a field or has one of the wrong type.
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"report format {fmt!r} is not one of {', '.join(FORMATS)}")
    with malformed("incident timeline"):
        if fmt == "json":
            return json.dumps(timeline, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        page = _page(timeline)
    return page.to_markdown() if fmt == "markdown" else page.to_html()


def _page(timeline: Mapping[str, Any]) -> Page:
    entries = sorted(timeline["entries"], key=lambda e: int(e["index"]))
    facts: list[tuple[str, Inline]] = [
        ("model", Mark(str(timeline["model"]), "strong")),
        ("window", f"{show(timeline['from'])} → {show(timeline['to'])}"),
        ("events in window", str(len(entries))),
    ]
    facts += _summary(entries)
    facts += _checkpoint_facts(timeline.get("checkpoint"))
    blocks: list[Block] = [
        Alert((f"{_first(e)}: {show(e['summary'])}",))
        for e in entries
        if e["category"] == "override"
    ]
    blocks.append(_timeline_table(entries))
    return Page(
        title=f"Incident timeline: {timeline['model']}",
        facts=tuple(facts),
        sections=(Section("Timeline", tuple(blocks)),),
        notes=(
            Paragraph(
                (
                    "Each entry names its log index; prove any of them with ",
                    Mark("mltrail prove event INDEX", "code"),
                    " and check the whole log with ",
                    Mark("mltrail verify", "code"),
                    ".",
                )
            ),
        ),
    )


def _summary(entries: Sequence[Mapping[str, Any]]) -> list[tuple[str, Inline]]:
    groups = {
        "promotions": [e for e in entries if e["category"] == "promotion"],
        "overrides": [e for e in entries if e["category"] == "override"],
        "drift warnings": [e for e in entries if _is_drift_warning(e)],
        "rollbacks": [e for e in entries if e["category"] == "rollback"],
    }
    facts: list[tuple[str, Inline]] = []
    for label, group in groups.items():
        text = f"{len(group)}" + "".join(
            f"{' —' if i == 0 else ';'} {_first(e)}" for i, e in enumerate(group)
        )
        loud = group and label in ("overrides", "drift warnings", "rollbacks")
        facts.append((label, Mark(text, "bad") if loud else text))
    return facts


def _is_drift_warning(entry: Mapping[str, Any]) -> bool:
    """A validation entry about drift that did not pass (result WARNED or FAILED)."""
    if entry["category"] != "validation":
        return False
    summary = show(entry.get("summary")).lower()
    if "drift" not in summary and "shift" not in summary:
        return False
    result = entry.get("result")
    if isinstance(result, str):
        return result.upper() in ("WARNED", "FAILED")
    return entry.get("outcome") == "failure" or any(w in summary for w in _DRIFT_WORDS)


def _first(entry: Mapping[str, Any]) -> str:
    return f"{entry['timestamp']} #{entry['index']} by {_who(entry['actor'])}"


def _who(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("id", show(value)))
    return show(value)


def _checkpoint_facts(note: Any) -> list[tuple[str, Inline]]:
    if not note:
        return []
    # Shown for reference: the timeline's checkpoint is not verified here (no trusted key is
    # given); `mltrail verify` and `mltrail verify-bundle` do that.
    body = Checkpoint.from_text(split_note(note)[0])
    return [
        ("as of checkpoint", f"{body.origin}, size {body.size} (signature not checked here)"),
        ("checkpoint root (hex)", Mark(body.root_hash.hex(), "code")),
    ]


def _timeline_table(entries: Sequence[Mapping[str, Any]]) -> Table:
    headers = ("time", "log index", "category", "action", "actor", "subject", "outcome", "summary")
    rows = [
        (
            show(e["timestamp"]),
            Mark(str(e["index"]), "strong"),
            _category(e["category"]),
            show(e["action"]),
            show_ref(e["actor"]),
            show_ref(e["subject"]),
            _outcome(e.get("outcome")),
            show(e["summary"]),
        )
        for e in entries
    ]
    return Table(headers, tuple(rows))


def _category(category: Any) -> Inline:
    text = show(category)
    return Mark(_LOUD[text], "bad") if text in _LOUD else text


def _outcome(outcome: Any) -> Inline:
    text = show(outcome if outcome is not None else "success")
    return text if text == "success" else Mark(text.upper(), "bad")
