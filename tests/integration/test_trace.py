"""The seed's Example 1 built for real and traced backwards (DESIGN §6), on both backends.

Prediction P123 was served by deployment D45, running model:churn:v2, trained by run R678
on dataset DS:2024-05-15 with commit c1a2b… in a captured environment. The trace must give
exactly that chain, with every digest equal to one computed here from the original files,
and the CLI must render it as JSON, Graphviz dot and Mermaid.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from mltrail.artifacts.manifest import Manifest
from mltrail.cli.main import main
from mltrail.errors import NotFoundError
from mltrail.service import Registry

COMMIT = "c1a2b7f3e9d04a6b8c2e5f1a7d3b9c0e4f6a8b2d"
REPOSITORY = "git@git.example.com:ml/churn-features.git"
PARAMS = {"lr": 0.05, "epochs": 80, "features": ["tenure", "monthly_charges"]}
METRICS = {"auc": 0.91}
CHAIN = ["P123", "D45", "model:churn:v2", "R678", "DS:2024-05-15"]


@dataclass
class Example:
    reg: Registry
    env_id: str
    requirements: bytes
    dataset_dir: Path
    v1_dir: Path
    v2_dir: Path


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def example(registry: Registry, tmp_path: Path) -> Example:
    """Example 1: v1 (run R601 on DS:2024-05-01) served first, then v2 (R678) on D45."""
    reg = registry
    old_data = _write(tmp_path / "ds-0501", {"events.csv": "tenure,churned\n3,1\n40,0\n"})
    data = _write(
        tmp_path / "ds-0515",
        {
            "events.csv": "tenure,churned\n5,1\n41,0\n7,1\n",
            "schema/columns.json": '["tenure", "churned"]',
        },
    )
    project = _write(
        tmp_path / "project", {"requirements.txt": "numpy==2.1.0\nscikit-learn==1.5.2\n"}
    )
    v1 = _write(
        tmp_path / "model-v1",
        {"weights.json": '{"tenure": -0.1}', "score.py": "def predict(x): ..."},
    )
    v2 = _write(
        tmp_path / "model-v2",
        {"weights.json": '{"tenure": -0.2}', "score.py": "def predict(x): ..."},
    )

    reg.register_dataset("DS:2024-05-01", name="churn-events", version="2024-05-01", path=old_data)
    reg.register_dataset(
        "DS:2024-05-15",
        name="churn-events",
        version="2024-05-15",
        uri="s3://lake/churn/2024-05-15/",
        path=data,
    )
    reg.register_code(repository=REPOSITORY, commit=COMMIT)
    env_id = reg.register_environment(project_dir=project).event.subject.id
    reg.register_run(
        "R601",
        params={"lr": 0.1},
        metrics={"auc": 0.84},
        datasets=["DS:2024-05-01"],
        commit=COMMIT,
        environment=env_id,
    )
    reg.register_run(
        "R678",
        params=PARAMS,
        metrics=METRICS,
        datasets=["DS:2024-05-15"],
        commit=COMMIT,
        environment=env_id,
    )
    reg.register_model("churn", description="customer churn propensity")
    assert reg.add_version("churn", v1, run="R601").event.subject.id == "model:churn:v1"
    assert reg.add_version("churn", v2, run="R678").event.subject.id == "model:churn:v2"

    reg.deploy("D45", "churn:v1", target="k8s/prod/churn-api")
    reg.log_predictions(
        [
            {"prediction_id": f"P{i}", "deployment": "D45", "input": {"tenure": i}, "output": 0.5}
            for i in range(100, 110)
        ]
    )
    reg.deploy("D45", "churn:v2", target="k8s/prod/churn-api")
    reg.log_predictions(
        [
            {"prediction_id": f"P{i}", "deployment": "D45", "input": {"tenure": i}, "output": 0.25}
            for i in range(120, 130)
        ]
    )
    return Example(reg, env_id, (project / "requirements.txt").read_bytes(), data, v1, v2)


def test_trace_prediction_gives_exactly_the_chain(example: Example) -> None:
    trace = example.reg.trace_prediction("P123")

    assert trace["chain"] == CHAIN
    assert trace["prediction"]["prediction_id"] == "P123"
    assert trace["prediction"]["output"] == 0.25
    assert trace["prediction"]["input_hmac"] == example.reg.input_hmac({"tenure": 123})
    assert trace["deployment"]["deployment_id"] == "D45"
    assert trace["deployment"]["version_id"] == "model:churn:v2"
    assert trace["model_version"]["version_id"] == "model:churn:v2"
    assert trace["run"]["run_id"] == "R678"
    assert [d["dataset_id"] for d in trace["datasets"]] == ["DS:2024-05-15"]
    assert trace["commit"]["commit_id"] == COMMIT
    assert trace["commit"]["repository"] == REPOSITORY
    assert trace["environment"]["environment_id"] == example.env_id
    assert trace["parameters"] == PARAMS
    assert trace["run"]["metrics"] == METRICS


def test_trace_digests_equal_those_of_the_original_files(example: Example) -> None:
    trace = example.reg.trace_prediction("P123")

    requirements_sha256 = hashlib.sha256(example.requirements).hexdigest()
    assert trace["environment"]["lockfile_sha256"] == requirements_sha256
    assert (
        trace["model_version"]["manifest_sha256"] == Manifest.from_directory(example.v2_dir).digest
    )
    assert trace["datasets"][0]["digest"] == Manifest.from_directory(example.dataset_dir).digest
    assert (
        trace["model_version"]["manifest_sha256"] != Manifest.from_directory(example.v1_dir).digest
    )


def test_trace_edges_are_exactly_the_upstream_graph(example: Example) -> None:
    trace = example.reg.trace_prediction("P123")

    edges = {(e["from"], e["role"], e["to"]) for e in trace["edges"]}
    assert edges == {
        ("model_version:model:churn:v2", "version_of", "model:churn"),
        ("model_version:model:churn:v2", "produced_by", "run:R678"),
        ("run:R678", "used", "dataset:DS:2024-05-15"),
        ("run:R678", "built_from", f"commit:{COMMIT}"),
        ("run:R678", "ran_in", f"environment:{example.env_id}"),
    }


def test_prediction_served_before_the_redeploy_traces_to_the_version_it_used(
    example: Example,
) -> None:
    trace = example.reg.trace_prediction("P105")

    assert trace["chain"] == ["P105", "D45", "model:churn:v1", "R601", "DS:2024-05-01"]
    assert trace["parameters"] == {"lr": 0.1}


def test_trace_of_unknown_prediction_is_not_found(example: Example) -> None:
    with pytest.raises(NotFoundError, match="P999"):
        example.reg.trace_prediction("P999")


def _cli(reg: Registry, *args: str) -> list[str]:
    return ["-r", str(reg.root), "--actor", "alice", *args]


def test_cli_trace_json(example: Example, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_cli(example.reg, "trace", "prediction", "P123", "--json")) == 0

    out = json.loads(capsys.readouterr().out)
    assert out["chain"] == CHAIN
    assert out["commit"]["commit_id"] == COMMIT
    assert out["environment"]["environment_id"] == example.env_id
    assert out["parameters"] == PARAMS


# One (from, role, to) triple per edge the renderings must show: the prediction's hop to
# its deployment and version, then the upstream graph of the version.
def _expected_edges(env_id: str) -> set[tuple[str, str, str]]:
    return {
        ("prediction:P123", "served_by", "deployment:D45"),
        ("deployment:D45", "served", "model_version:model:churn:v2"),
        ("model_version:model:churn:v2", "version_of", "model:churn"),
        ("model_version:model:churn:v2", "produced_by", "run:R678"),
        ("run:R678", "used", "dataset:DS:2024-05-15"),
        ("run:R678", "built_from", f"commit:{COMMIT}"),
        ("run:R678", "ran_in", f"environment:{env_id}"),
    }


def _parse_dot(text: str) -> set[tuple[str, str, str]]:
    labels = dict(re.findall(r'^\s*(n\d+) \[label="([^"]*)"\];$', text, re.M))
    edges = re.findall(r'^\s*(n\d+) -> (n\d+) \[label="([^"]*)"\];$', text, re.M)
    return {(labels[a], role, labels[b]) for a, b, role in edges}


def _parse_mermaid(text: str) -> set[tuple[str, str, str]]:
    labels: dict[str, str] = {}
    edges = []
    for line in text.splitlines()[1:]:
        match = re.fullmatch(
            r'\s*(n\d+)(?:\["([^"]*)"\])? -->\|([^|]*)\| (n\d+)(?:\["([^"]*)"\])?', line
        )
        assert match, f"not a mermaid edge: {line!r}"
        a, a_label, role, b, b_label = match.groups()
        labels.update({k: v for k, v in ((a, a_label), (b, b_label)) if v})
        edges.append((a, role, b))
    return {(labels[a], role, labels[b]) for a, role, b in edges}


def test_cli_trace_dot(example: Example, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_cli(example.reg, "trace", "prediction", "P123", "--format", "dot")) == 0

    out = capsys.readouterr().out
    assert out.startswith('digraph "prediction P123" {')
    assert out.rstrip().endswith("}")
    assert _parse_dot(out) == _expected_edges(example.env_id)


def test_cli_trace_mermaid(example: Example, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_cli(example.reg, "trace", "prediction", "P123", "--format", "mermaid")) == 0

    out = capsys.readouterr().out
    assert out.splitlines()[0] == "flowchart LR"
    assert _parse_mermaid(out) == _expected_edges(example.env_id)


def test_cli_trace_text_names_the_chain(
    example: Example, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_cli(example.reg, "trace", "prediction", "P123")) == 0

    out = capsys.readouterr().out
    assert "prediction P123: " + " -> ".join(CHAIN) in out
