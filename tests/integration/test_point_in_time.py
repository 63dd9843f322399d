"""Point-in-time answers come from the log (DESIGN §6: "what served traffic at 09:30?").

A controllable clock (`SimClock`) gives the registry the seed's morning of 2024-06-01:
churn v1 in production and on D45; v2 promoted at 09:03 and deployed at 09:05; D46 put on
v2 at 09:40; D45 rolled back to v1 at 10:10. `state_at` must answer for any instant,
before, during and after the rollback, on both backends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from mltrail.demo.story import SimClock
from mltrail.errors import InvalidInputError, NotFoundError
from mltrail.events import format_timestamp, parse_timestamp
from mltrail.ledger.log import EventFilter
from mltrail.service import Registry

V1, V2 = "model:churn:v1", "model:churn:v2"


@dataclass
class Morning:
    reg: Registry
    clock: SimClock
    d45: list[int]  # seq of every event that mentions deployment D45, in order
    rollback_at: str


def _files(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "weights.json").write_text(f'{{"name": "{name}"}}')
    return folder


@pytest.fixture
def morning(make_registry: Callable[..., Registry], database_url: str, tmp_path: Path) -> Morning:
    clock = SimClock()
    clock.set("2024-06-01T07:00:00Z")
    reg = make_registry(database_url, clock=clock)
    reg.register_model("churn")
    reg.add_version("churn", _files(tmp_path, "v1"))
    reg.add_version("churn", _files(tmp_path, "v2"))
    reg.register_model("fraud")
    reg.add_version("fraud", _files(tmp_path, "fraud-v1"))
    d45: list[int] = []

    clock.set("2024-06-01T08:00:00Z")
    reg.promote(V1, to="production")
    clock.set("2024-06-01T08:10:00Z")
    d45.append(reg.deploy("D45", V1, target="k8s/prod/churn-api").event.seq)
    clock.set("2024-06-01T08:20:00Z")
    reg.deploy(
        "D77", "fraud:v1", target="k8s/prod/fraud-api"
    )  # another model: never in churn's state
    clock.set("2024-06-01T08:30:00Z")
    d45 += [
        d.event.seq
        for d in reg.log_predictions(
            [{"prediction_id": "P1", "deployment": "D45", "input_hmac": "1" * 64, "output": 0}]
        )
    ]
    clock.set("2024-06-01T09:03:00Z")
    reg.promote(V2, to="production")
    clock.set("2024-06-01T09:05:00Z")
    d45.append(reg.deploy("D45", V2, target="k8s/prod/churn-api").event.seq)
    clock.set("2024-06-01T09:40:00Z")
    reg.deploy("D46", V2, target="k8s/canary/churn-api")
    clock.set("2024-06-01T09:50:00Z")
    d45 += [
        d.event.seq
        for d in reg.log_predictions(
            [{"prediction_id": "P2", "deployment": "D45", "input_hmac": "2" * 64, "output": 1}]
        )
    ]
    clock.set("2024-06-01T10:10:00Z")
    rollback = reg.rollback("D45", reason="CTR dropped 8% (INC-2291)").event
    d45.append(rollback.seq)
    clock.set("2024-06-01T10:30:00Z")
    return Morning(reg, clock, d45, rollback.timestamp)


def _served(state: dict[str, object]) -> dict[str, str]:
    deployments = state["deployments"]
    assert isinstance(deployments, dict)
    return {d: v["version"] for d, v in deployments.items()}


@pytest.mark.parametrize(
    ("at", "production", "served"),
    [
        ("2024-06-01T06:00:00Z", None, {}),
        ("2024-06-01T08:05:00Z", V1, {}),
        ("2024-06-01T08:30:00Z", V1, {"D45": V1}),
        ("2024-06-01T09:04:00Z", V2, {"D45": V1}),
        ("2024-06-01T09:30:00Z", V2, {"D45": V2}),
        ("2024-06-01T10:00:00Z", V2, {"D45": V2, "D46": V2}),
        ("2024-06-01T10:30:00Z", V1, {"D45": V1, "D46": V2}),
        ("2030-01-01T00:00:00+01:00", V1, {"D45": V1, "D46": V2}),
    ],
    ids=[
        "before-anything",
        "promoted-not-deployed",
        "v1-serving",
        "v2-promoted",
        "v2-serving",
        "canary",
        "after-rollback",
        "far-future-offset",
    ],
)
def test_state_at(
    morning: Morning, at: str, production: str | None, served: dict[str, str]
) -> None:
    state = morning.reg.state_at("churn", at)

    assert state["model"] == "churn"
    assert state["at"] == format_timestamp(parse_timestamp(at))
    assert state["production"] == production
    assert _served(state) == served


def test_state_at_the_rollback_instant_includes_it(morning: Morning) -> None:
    moment = parse_timestamp(morning.rollback_at)
    just_before = format_timestamp(moment.replace(microsecond=moment.microsecond - 1))

    before = morning.reg.state_at("churn", just_before)
    at = morning.reg.state_at("churn", morning.rollback_at)

    assert (before["production"], _served(before)["D45"]) == (V2, V2)
    assert (at["production"], _served(at)["D45"]) == (V1, V1)
    assert at["deployments"]["D45"]["since"] == morning.rollback_at


def test_state_at_agrees_with_the_live_projection_now(morning: Morning) -> None:
    state = morning.reg.state_at("churn", "2030-01-01T00:00:00Z")

    assert morning.reg.resolve_version("churn@production") == state["production"]
    assert morning.reg.get_version(V2)["stage"] == "rolled_back"


def test_state_at_of_another_model_is_separate(morning: Morning) -> None:
    state = morning.reg.state_at("fraud", "2024-06-01T10:30:00Z")

    assert state["production"] is None
    assert _served(state) == {"D77": "model:fraud:v1"}


def test_state_after_a_deployment_is_retired(morning: Morning) -> None:
    morning.clock.set("2024-06-01T11:00:00Z")
    morning.reg.retire_deployment("D46", reason="canary finished")

    assert _served(morning.reg.state_at("churn", "2024-06-01T10:59:00Z")) == {"D45": V1, "D46": V2}
    assert _served(morning.reg.state_at("churn", "2024-06-01T11:30:00Z")) == {"D45": V1}


def test_state_after_a_deployment_moves_to_another_model(morning: Morning) -> None:
    morning.clock.set("2024-06-01T11:00:00Z")
    morning.reg.deploy("D46", "fraud:v1", target="k8s/canary/fraud-api")

    assert _served(morning.reg.state_at("churn", "2024-06-01T11:30:00Z")) == {"D45": V1}
    assert _served(morning.reg.state_at("fraud", "2024-06-01T11:30:00Z")) == {
        "D46": "model:fraud:v1",
        "D77": "model:fraud:v1",
    }
    assert _served(morning.reg.state_at("churn", "2024-06-01T10:59:00Z")) == {"D45": V1, "D46": V2}


def test_history_of_the_deployment_lists_every_event_in_order(morning: Morning) -> None:
    events = morning.reg.history("deployment", "D45")

    assert [e.seq for e in events] == morning.d45
    assert [e.action for e in events] == [
        "deploy",
        "log_predictions",
        "deploy",
        "log_predictions",
        "rollback",
    ]
    assert [e.metadata.get("version") for e in events if e.action == "deploy"] == [V1, V2]
    assert events[-1].metadata["from_version"] == V2
    assert events[-1].metadata["to_version"] == V1
    assert events[-1].metadata["reason"] == "CTR dropped 8% (INC-2291)"
    times = [e.timestamp for e in events]
    assert times == sorted(times)


def test_history_of_nothing_is_not_found(morning: Morning) -> None:
    with pytest.raises(NotFoundError, match="D99"):
        morning.reg.history("deployment", "D99")


@pytest.mark.parametrize(
    ("model", "at"),
    [("churn", "09:30"), ("churn!", "2024-06-01T09:30:00Z")],
    ids=["bad-time", "bad-model"],
)
def test_state_at_refuses_bad_input(morning: Morning, model: str, at: str) -> None:
    with pytest.raises(InvalidInputError):
        morning.reg.state_at(model, at)


@pytest.mark.parametrize(("kind", "ident"), [("deployment", "D45"), ("model_version", V2)])
def test_subject_filter_through_the_reference_index_equals_a_scan(
    morning: Morning, kind: str, ident: str
) -> None:
    # The log keeps no subject index; the registry answers through event_refs, which also
    # lists events that merely mention the subject. Only the subject's own events count.
    everything = list(morning.reg.events())
    scanned = [e.seq for e in everything if (e.subject.type, e.subject.id) == (kind, ident)]
    mentioned = [e.seq for e in everything if any(r.id == ident for r in e.related)]

    indexed = morning.reg.events(EventFilter(subject_type=kind, subject_id=ident))

    assert [e.seq for e in indexed] == scanned
    assert scanned and mentioned and not set(mentioned) <= set(scanned)
    # And the answer does come through the index: without the subject's rows there
    # (a projection, rebuilt by `mltrail rebuild`), the registry finds nothing.
    with morning.reg.db.write() as conn:
        conn.execute(
            sa.text("DELETE FROM event_refs WHERE ref_type = :t AND ref_id = :i"),
            {"t": kind, "i": ident},
        )
    assert list(morning.reg.events(EventFilter(subject_type=kind, subject_id=ident))) == []
