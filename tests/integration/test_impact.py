"""Impact analysis walks lineage downstream (DESIGN §6), on both backends.

Two datasets feed three runs (one run uses both). Their versions go to four deployments,
one of which is redeployed from a version of one dataset to a version of the other, and
predictions are split between them. `impact_of_dataset` must find exactly what each
dataset influenced, count predictions per deployment and version, and leave out
everything else, including a version with no run at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mltrail.cli.main import main
from mltrail.errors import NotFoundError
from mltrail.service import Registry


def _files(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "weights.json").write_text(json.dumps({"name": name}))
    return folder


def _predict(reg: Registry, deployment: str, prefix: str, count: int) -> None:
    reg.log_predictions(
        [
            {
                "prediction_id": f"{prefix}{i}",
                "deployment": deployment,
                "input_hmac": f"{i:064x}",
                "output": i % 2,
            }
            for i in range(count)
        ]
    )


@pytest.fixture
def reg(registry: Registry, tmp_path: Path) -> Registry:
    """DS:A → R1 → churn:v1;  DS:B → R2 → churn:v2;  DS:A + DS:B → R3 → fraud:v1;
    churn:v3 has no run.  D1 serves churn:v1 (5 predictions), then churn:v2 (4);
    D2 serves churn:v2 (7);  D3 serves fraud:v1 (3);  D4 serves churn:v3 (6)."""
    reg = registry
    reg.register_dataset("DS:A", name="events-a", version="a", digest="a" * 64)
    reg.register_dataset("DS:B", name="events-b", version="b", digest="b" * 64)
    reg.register_run("R1", datasets=["DS:A"])
    reg.register_run("R2", datasets=["DS:B"])
    reg.register_run("R3", datasets=["DS:A", "DS:B"])
    reg.register_model("churn")
    reg.register_model("fraud")
    reg.add_version("churn", _files(tmp_path, "churn-1"), run="R1")
    reg.add_version("churn", _files(tmp_path, "churn-2"), run="R2")
    reg.add_version("fraud", _files(tmp_path, "fraud-1"), run="R3")
    reg.add_version("churn", _files(tmp_path, "churn-3"))

    reg.deploy("D1", "churn:v1", target="k8s/a")
    _predict(reg, "D1", "P1-", 5)
    reg.deploy("D1", "churn:v2", target="k8s/a")
    _predict(reg, "D1", "P1b-", 4)
    reg.deploy("D2", "churn:v2", target="k8s/b")
    _predict(reg, "D2", "P2-", 7)
    reg.deploy("D3", "fraud:v1", target="k8s/c")
    _predict(reg, "D3", "P3-", 3)
    reg.deploy("D4", "churn:v3", target="k8s/d")
    _predict(reg, "D4", "P4-", 6)
    return reg


def test_impact_of_a_dataset_finds_exactly_what_it_influenced(reg: Registry) -> None:
    impact = reg.impact_of_dataset("DS:A")

    assert impact["dataset"] == "DS:A"
    assert impact["runs"] == ["R1", "R3"]
    assert impact["model_versions"] == ["model:churn:v1", "model:fraud:v1"]
    assert impact["deployments"] == ["D1", "D3"]
    assert impact["predictions"] == [
        {"deployment": "D1", "model_version": "model:churn:v1", "count": 5},
        {"deployment": "D3", "model_version": "model:fraud:v1", "count": 3},
    ]
    assert impact["prediction_total"] == 8


def test_impact_of_the_other_dataset(reg: Registry) -> None:
    impact = reg.impact_of_dataset("DS:B")

    assert impact["runs"] == ["R2", "R3"]
    assert impact["model_versions"] == ["model:churn:v2", "model:fraud:v1"]
    assert impact["deployments"] == ["D1", "D2", "D3"]
    assert impact["predictions"] == [
        {"deployment": "D1", "model_version": "model:churn:v2", "count": 4},
        {"deployment": "D2", "model_version": "model:churn:v2", "count": 7},
        {"deployment": "D3", "model_version": "model:fraud:v1", "count": 3},
    ]
    assert impact["prediction_total"] == 14


def test_impact_edges_lead_back_to_the_dataset(reg: Registry) -> None:
    """Every edge found is on a path to DS:A, and nothing of churn:v2, churn:v3 or D2/D4 is."""
    edges = reg.impact_of_dataset("DS:A")["edges"]

    nodes = {e["from"] for e in edges} | {e["to"] for e in edges}
    assert {
        "run:R2",
        "model_version:model:churn:v2",
        "model_version:model:churn:v3",
        "deployment:D2",
        "deployment:D4",
        "dataset:DS:B",
    }.isdisjoint(nodes)
    assert {(e["from"], e["role"], e["to"]) for e in edges if e["depth"] <= 2} == {
        ("run:R1", "used", "dataset:DS:A"),
        ("run:R3", "used", "dataset:DS:A"),
        ("model_version:model:churn:v1", "produced_by", "run:R1"),
        ("model_version:model:fraud:v1", "produced_by", "run:R3"),
    }


def test_a_dataset_nothing_used_has_no_impact(reg: Registry) -> None:
    reg.register_dataset("DS:C", name="events-c", version="c", digest="c" * 64)

    impact = reg.impact_of_dataset("DS:C")

    assert (impact["runs"], impact["model_versions"], impact["deployments"]) == ([], [], [])
    assert (impact["predictions"], impact["prediction_total"], impact["edges"]) == ([], 0, [])


def test_impact_of_an_unknown_dataset_is_not_found(reg: Registry) -> None:
    with pytest.raises(NotFoundError, match="DS:Z"):
        reg.impact_of_dataset("DS:Z")


def test_cli_trace_dataset_json(reg: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-r", str(reg.root), "--actor", "alice", "trace", "dataset", "DS:A", "--json"])

    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["deployments"] == ["D1", "D3"]
    assert out["prediction_total"] == 8
