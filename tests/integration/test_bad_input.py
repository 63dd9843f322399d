"""Bad input is refused with a clear error, and the log is left exactly as it was.

Each case runs one command that must fail on a registry holding churn:v1 on D45 with
prediction P123 logged. The error must be the right `RegistryError` subclass, its message
must name the offending thing, and the log must keep its size and its latest signed
checkpoint: nothing of a refused command is written, not even the good half of a batch.
The same refusals through the CLI exit non-zero with an error and a hint, no traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mltrail.cli.main import main
from mltrail.errors import ConflictError, InvalidInputError, NotFoundError, RegistryError
from mltrail.service import Registry

DATASET = "DS:2024-05-15"


def _record(pid: str, deployment: str = "D45", **extra: Any) -> dict[str, Any]:
    return {
        "prediction_id": pid,
        "deployment": deployment,
        "input": {"tenure": 3},
        "output": 0.7,
        **extra,
    }


def _populate(registry: Registry, tmp_path: Path) -> Registry:
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_text("tenure,churned\n3,1\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.json").write_text('{"tenure": -0.1}')
    registry.register_dataset(DATASET, name="churn-events", version="2024-05-15", path=data)
    registry.register_run("R678", params={"lr": 0.1}, datasets=[DATASET])
    registry.register_model("churn")
    registry.add_version("churn", model, run="R678")
    registry.deploy("D45", "churn:v1", target="k8s/prod/churn-api")
    registry.log_predictions([_record("P123")])
    return registry


@pytest.fixture
def reg(registry: Registry, tmp_path: Path) -> Registry:
    """churn:v1 (run R678 on DS:2024-05-15) on D45, with P123 logged; both backends."""
    return _populate(registry, tmp_path)


@pytest.fixture
def sqlite_reg(sqlite_registry: Registry, tmp_path: Path) -> Registry:
    """The same on SQLite only: rendering an error does not depend on the backend."""
    return _populate(sqlite_registry, tmp_path)


def _state(reg: Registry) -> tuple[int, str]:
    """The log's size and its latest signed checkpoint note."""
    return reg.log.size(), reg.checkpoint()[1]


def _new_model_dir(reg: Registry) -> Path:
    folder = reg.root.parent / "model-new"
    folder.mkdir(exist_ok=True)
    (folder / "weights.json").write_text('{"tenure": -0.3}')
    return folder


Command = Callable[[Registry], object]

BAD = [
    # (id, command, error class, text the message must contain)
    (
        "prediction-unknown-deployment",
        lambda r: r.log_predictions([_record("P200", "D99")]),
        NotFoundError,
        "D99",
    ),
    (
        "batch-good-and-unknown-deployment",
        lambda r: r.log_predictions([_record("P201"), _record("P202", "D99")]),
        NotFoundError,
        "D99",
    ),
    (
        "batch-good-and-no-output",
        lambda r: r.log_predictions(
            [_record("P201"), {"prediction_id": "P202", "deployment": "D45", "input": [1]}]
        ),
        InvalidInputError,
        "P202",
    ),
    (
        "batch-good-and-already-logged",
        lambda r: r.log_predictions([_record("P201"), _record("P123")]),
        ConflictError,
        "P123",
    ),
    (
        "duplicate-prediction-id",
        lambda r: r.log_predictions([_record("P123")]),
        ConflictError,
        "P123",
    ),
    (
        "prediction-id-twice-in-batch",
        lambda r: r.log_predictions([_record("P300"), _record("P300")]),
        InvalidInputError,
        "P300",
    ),
    (
        "prediction-id-with-space",
        lambda r: r.log_predictions([_record("P 301")]),
        InvalidInputError,
        "P 301",
    ),
    (
        "prediction-unregistered-version",
        lambda r: r.log_predictions([_record("P302", version="model:churn:v9")]),
        NotFoundError,
        "model:churn:v9",
    ),
    (
        "prediction-malformed-version",
        lambda r: r.log_predictions([_record("P303", version="churn-v1")]),
        InvalidInputError,
        "churn-v1",
    ),
    ("empty-batch", lambda r: r.log_predictions([]), InvalidInputError, "no prediction"),
    (
        "dataset-different-content",
        lambda r: r.register_dataset(
            DATASET, name="churn-events", version="2024-05-15", digest="f" * 64
        ),
        ConflictError,
        DATASET,
    ),
    (
        "dataset-neither-path-nor-digest",
        lambda r: r.register_dataset("DS:new", name="x", version="1"),
        InvalidInputError,
        "DS:new",
    ),
    (
        "add-version-missing-run",
        lambda r: r.add_version("churn", _new_model_dir(r), run="R999"),
        NotFoundError,
        "R999",
    ),
    (
        "add-version-missing-model",
        lambda r: r.add_version("ranker", _new_model_dir(r)),
        NotFoundError,
        "ranker",
    ),
    (
        "malformed-version-deploy",
        lambda r: r.deploy("D46", "churn:v0", target="k8s"),
        InvalidInputError,
        "churn:v0",
    ),
    (
        "malformed-version-alias",
        lambda r: r.set_alias("churn-v1", "champion"),
        InvalidInputError,
        "churn-v1",
    ),
    (
        "malformed-version-get",
        lambda r: r.get_version("model:churn"),
        InvalidInputError,
        "model:churn",
    ),
    (
        "unknown-version-deploy",
        lambda r: r.deploy("D46", "churn:v9", target="k8s"),
        NotFoundError,
        "model:churn:v9",
    ),
    (
        "bad-run-status",
        lambda r: r.register_run("R700", status="done"),
        InvalidInputError,
        "'done'",
    ),
    (
        "run-unknown-dataset",
        lambda r: r.register_run("R700", datasets=["DS:nope"]),
        NotFoundError,
        "DS:nope",
    ),
    (
        "run-unknown-commit",
        lambda r: r.register_run("R700", commit="0" * 40),
        NotFoundError,
        "0" * 40,
    ),
    ("run-id-with-space", lambda r: r.register_run("R 700"), InvalidInputError, "R 700"),
    (
        "run-bad-start-time",
        lambda r: r.register_run("R700", started_at="yesterday"),
        InvalidInputError,
        "yesterday",
    ),
    (
        "rollback-with-nothing-before",
        lambda r: r.rollback("D45", reason="bad"),
        NotFoundError,
        "D45",
    ),
    (
        "rollback-unknown-deployment",
        lambda r: r.rollback("D99", reason="bad"),
        NotFoundError,
        "D99",
    ),
    ("bad-model-name", lambda r: r.register_model("churn model"), InvalidInputError, "churn model"),
]


@pytest.mark.parametrize(
    ("command", "error", "named"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_refused_and_log_unchanged(
    reg: Registry, command: Command, error: type[RegistryError], named: str
) -> None:
    before = _state(reg)

    with pytest.raises(error) as caught:
        command(reg)

    assert type(caught.value) is error
    assert named in caught.value.message
    assert caught.value.hint()
    assert _state(reg) == before


@pytest.mark.parametrize(
    "batch",
    [
        [_record("P201"), _record("P202", "D99")],
        [_record("P201"), _record("P123")],
    ],
    ids=["unknown-deployment", "already-logged"],
)
def test_the_good_half_of_a_refused_batch_is_not_logged(
    reg: Registry, batch: list[dict[str, Any]]
) -> None:
    with pytest.raises(RegistryError):
        reg.log_predictions(batch)

    with pytest.raises(NotFoundError, match="P201"):
        reg.trace_prediction("P201")
    assert reg.trace_prediction("P123")["chain"][:3] == ["P123", "D45", "model:churn:v1"]
    assert reg.rebuild()["equal"]
    assert reg.verify().ok


def test_a_record_may_name_its_version_in_short_form(reg: Registry) -> None:
    reg.log_predictions([_record("P304", version="churn:v1")])

    assert reg.trace_prediction("P304")["chain"] == [
        "P304",
        "D45",
        "model:churn:v1",
        "R678",
        DATASET,
    ]


def test_same_dataset_with_identical_content_is_a_no_op(reg: Registry, tmp_path: Path) -> None:
    first = next(e for e in reg.history("dataset", DATASET) if e.action == "register")
    before = _state(reg)

    again = reg.register_dataset(
        DATASET, name="churn-events", version="2024-05-15", path=tmp_path / "data"
    )

    assert again.event == first
    assert again.receipt.index == first.seq
    assert _state(reg) == before


def test_same_version_files_from_the_same_run_is_a_no_op(reg: Registry, tmp_path: Path) -> None:
    before = _state(reg)

    again = reg.add_version("churn", tmp_path / "model", run="R678")

    assert again.event.subject.id == "model:churn:v1"
    assert _state(reg) == before


def _cli(reg: Registry, *args: str) -> list[str]:
    return ["-r", str(reg.root), "--actor", "alice", *args]


def _jsonl(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


CLI_BAD = [
    # (id, arguments after the global options (may use {tmp}), exit code, text in the message)
    ("malformed-version", ["deploy", "D46", "churn:v0", "--target", "k8s"], 2, "churn:v0"),
    ("unknown-version", ["deploy", "D46", "churn:v9", "--target", "k8s"], 3, "model:churn:v9"),
    ("bad-run-status", ["run", "register", "R700", "--status", "done"], 2, "done"),
    (
        "dataset-conflict",
        ["dataset", "register", DATASET, "--name", "x", "--version", "y", "--digest", "f" * 64],
        4,
        DATASET,
    ),
    (
        "add-version-missing-run",
        ["model", "add-version", "churn", "{tmp}/model", "--run", "R999"],
        3,
        "R999",
    ),
    ("prediction-unknown-deployment", ["predictions", "log", "{tmp}/unknown.jsonl"], 3, "D99"),
    ("prediction-duplicate", ["predictions", "log", "{tmp}/duplicate.jsonl"], 4, "P123"),
]


@pytest.mark.parametrize(
    ("args", "code", "named"), [case[1:] for case in CLI_BAD], ids=[case[0] for case in CLI_BAD]
)
def test_cli_refuses_with_error_and_hint(
    sqlite_reg: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    named: str,
) -> None:
    reg = sqlite_reg
    _jsonl(tmp_path / "unknown.jsonl", [_record("P200"), _record("P201", "D99")])
    _jsonl(tmp_path / "duplicate.jsonl", [_record("P123")])
    before = _state(reg)

    exit_code = main(_cli(reg, *(a.format(tmp=tmp_path) for a in args)))

    captured = capsys.readouterr()
    assert exit_code == code
    assert "error:" in captured.err
    assert named in captured.err
    assert "hint:" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert _state(reg) == before
