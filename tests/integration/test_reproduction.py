"""Seed Example 1 and practical project 3: given a prediction id, `reproduce` prints the chain
to the dataset version, fetches the model by digest and re-scores the recorded input, in
this process or in a virtualenv rebuilt offline from the recorded lockfile. Every outcome
is appended to the log as a `reproduce` event, through the service and through `mltrail repro`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from demo_registry import ADMIN, cli
from wheels import build_wheel

from mltrail.canonical import loads
from mltrail.demo.story import COMMIT_C1
from mltrail.errors import NotFoundError
from mltrail.ledger.log import EventFilter
from mltrail.service import Registry

CHAIN = ["P123", "D45", "model:churn:v2", "R678", "DS:2024-05-15"]


def reproductions(reg: Registry, prediction_id: str) -> list[int]:
    found = reg.events(EventFilter(subject_id=prediction_id, action="reproduce"))
    return [e.seq for e in found]


def log_like_p123(reg: Registry, prediction_id: str, output: Any, *, keep: bool = True) -> None:
    """Log another prediction on D45 with P123's recorded input and the given output."""
    features = loads(reg.payload("prediction:P123:input") or b"null")
    assert features is not None
    record = {"prediction_id": prediction_id, "deployment": "D45", "input": features}
    reg.log_predictions([{**record, "output": output}], keep_inputs=keep)


# -- seed Example 1 ----------------------------------------------------------------------------


def test_p123_reproduces_through_its_chain_and_the_attempt_is_logged(reg: Registry) -> None:
    size = reg.log.size()
    proven = reg.prove_prediction("P123")["record"]["output"]

    result = reg.reproduce("P123")

    assert result["chain"] == CHAIN
    assert result["outcome"] == "reproduced"
    assert result["output"] == result["recorded_output"] == proven
    assert result["difference"] is None
    assert result["environment_differences"] == []
    assert reg.log.size() == size + 1
    assert reproductions(reg, "P123") == [result["event"]]
    event = reg.event(result["event"])
    assert (event.action, event.subject.type, event.subject.id) == (
        "reproduce",
        "prediction",
        "P123",
    )
    assert event.actor == ADMIN
    assert event.metadata["result"] == "reproduced"
    assert event.outcome == "success"
    assert event.metadata["isolated"] is False
    version = reg.get_version("model:churn:v2")
    assert [(r.type, r.id, r.role, r.digest) for r in event.related] == [
        ("model_version", "model:churn:v2", "reproduced_with", version["manifest_sha256"])
    ]
    assert reg.verify().ok


def test_the_trace_names_commit_parameters_and_environment(reg: Registry) -> None:
    trace = reg.trace_prediction("P123")

    assert trace["chain"] == CHAIN
    assert trace["run"]["commit_id"] == COMMIT_C1
    assert trace["run"]["params"]["epochs"] == 80
    assert trace["run"]["environment_id"].startswith("sha256:")
    assert trace["datasets"][0]["digest"]


def test_repro_cli_prints_the_chain_and_exits_0(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(root, capsys, "repro", "P123")

    assert code == 0, err
    assert "chain: P123 -> D45 -> model:churn:v2 -> R678 -> DS:2024-05-15" in out
    assert "outcome: reproduced" in out
    assert "recorded {'label': 1, 'score': 0.797534}" in out


def test_repro_cli_json_is_logged_as_coming_from_the_cli(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(root, capsys, "repro", "P123", "--json")

    assert code == 0, err
    result = json.loads(out)
    assert result["chain"] == CHAIN
    assert result["outcome"] == "reproduced"
    assert result["output"] == result["recorded_output"]
    with Registry.open(root, actor=ADMIN) as reg:
        event = reg.event(result["event"])
        assert reproductions(reg, "P123") == [result["event"]]
    assert event.metadata["origin"] == {"interface": "cli"}


# -- outcomes other than "reproduced" ---------------------------------------------------------


def test_a_different_output_is_reported_and_exits_10(
    reg: Registry, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_like_p123(reg, "P-DIFF", {"label": 1, "score": 0.807534})

    result = reg.reproduce("P-DIFF")

    assert result["outcome"] == "different"
    assert result["difference"] == "output.score: recorded 0.807534, now 0.797534"
    event = reg.event(result["event"])
    assert (event.metadata["result"], event.outcome) == ("different", "failure")
    assert event.metadata["difference"] == result["difference"]
    code, out, _ = cli(root, capsys, "repro", "P-DIFF")
    assert code == 10
    assert "outcome: different (output.score: recorded 0.807534, now 0.797534)" in out


def test_a_tolerance_absorbs_float_noise_but_exact_is_the_default(
    reg: Registry, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_like_p123(reg, "P-NOISE", {"label": 1, "score": 0.7975341})

    assert reg.reproduce("P-NOISE")["outcome"] == "different"
    assert reg.reproduce("P-NOISE", tolerance=1e-6)["outcome"] == "reproduced"
    assert cli(root, capsys, "repro", "P-NOISE", "--tolerance", "1e-6")[0] == 0
    assert cli(root, capsys, "repro", "P-NOISE", "--tolerance", "1e-9")[0] == 10


def test_an_input_that_was_not_kept_is_not_reproducible_and_exits_11(
    reg: Registry, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_like_p123(reg, "P-NOKEEP", {"label": 1, "score": 0.797534}, keep=False)

    result = reg.reproduce("P-NOKEEP")

    assert result["outcome"] == "not reproducible"
    assert result["reason"] == "input was not kept for reproduction"
    assert "output" not in result
    event = reg.event(result["event"])
    assert (event.metadata["result"], event.outcome) == ("not reproducible", "failure")
    assert event.metadata["reason"] == result["reason"]
    code, out, _ = cli(root, capsys, "repro", "P-NOKEEP")
    assert code == 11
    assert "outcome: not reproducible (input was not kept for reproduction)" in out


def test_an_unknown_prediction_is_not_found_and_nothing_is_logged(
    reg: Registry, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    size = reg.log.size()

    with pytest.raises(NotFoundError, match="P-ABSENT"):
        reg.reproduce("P-ABSENT")

    code, _, err = cli(root, capsys, "repro", "P-ABSENT")
    assert code == 3
    assert "error:" in err and "Traceback" not in err
    assert reg.log.size() == size


# -- isolated reproduction, offline from the recorded lockfile (slow: builds virtualenvs) -------


TINYDEP_MODEL = """\
import tinydep


def predict(features):
    return {"tripled": tinydep.triple(features["x"])}
"""


@pytest.fixture
def tinydep(make_registry: Callable[..., Registry], tmp_path: Path) -> tuple[Registry, Path]:
    """A registry whose environment pins a hand-built wheel `tinydep==0.1` (not installed
    here), a model whose score.py imports it, and prediction P1 with its input kept.
    Returns the registry and the wheel directory."""
    wheels = tmp_path / "wheels"
    wheel = build_wheel(wheels)
    project = tmp_path / "project"
    project.mkdir()
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (project / "requirements.txt").write_text(f"tinydep==0.1 --hash=sha256:{wheel_sha}\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "score.py").write_text(TINYDEP_MODEL)

    reg = make_registry()
    env = reg.register_environment(project_dir=project).event.subject.id
    reg.register_run("R1", params={"factor": 3}, environment=env)
    reg.register_model("tripler")
    version = reg.add_version("tripler", model_dir, run="R1", entrypoint="score.py:predict")
    reg.deploy("D1", version.event.subject.id, target="local")
    reg.log_predictions(
        [{"prediction_id": "P1", "deployment": "D1", "input": {"x": 14}, "output": {"tripled": 42}}]
    )
    return reg, wheels


@pytest.mark.slow
def test_isolated_reproduction_rebuilds_the_recorded_environment_offline(
    tinydep: tuple[Registry, Path],
) -> None:
    reg, wheels = tinydep
    here = reg.reproduce("P1")
    assert here["outcome"] == "not reproducible"  # tinydep is not installed in this process
    assert "tinydep" in here["reason"]

    result = reg.reproduce("P1", isolated=True, wheel_dir=wheels)

    assert result["chain"] == ["P1", "D1", "model:tripler:v1", "R1"]
    assert result["outcome"] == "reproduced", result.get("reason")
    assert result["output"] == result["recorded_output"] == {"tripled": 42}
    event = reg.event(result["event"])
    assert event.metadata["isolated"] is True
    assert (event.metadata["result"], event.outcome) == ("reproduced", "success")


@pytest.mark.slow
def test_isolated_reproduction_without_the_pinned_wheel_is_not_reproducible(
    tinydep: tuple[Registry, Path], tmp_path: Path
) -> None:
    reg, _ = tinydep
    empty = tmp_path / "no-wheels"
    empty.mkdir()

    result = reg.reproduce("P1", isolated=True, wheel_dir=empty)

    assert result["outcome"] == "not reproducible"
    assert result["reason"].startswith("scoring failed: installing the locked requirements failed")


def _no_network_prefix() -> list[str]:
    """``unshare -rn``: a new user and network namespace with no interface up, not even
    loopback. Skips unless unshare runs here; checks that a host socket is out of reach."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    trial = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=60)
    if trial.returncode != 0:
        pytest.skip(f"unshare -rn is not permitted here: {trial.stderr.decode()[-200:]}")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)"
        outside = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)
        inside = subprocess.run(
            ["unshare", "-rn", sys.executable, "-c", probe], capture_output=True, timeout=60
        )
    assert outside.returncode == 0, outside.stderr
    assert inside.returncode != 0
    assert b"Network is unreachable" in inside.stderr
    return ["unshare", "-rn"]


@pytest.mark.slow
def test_isolated_reproduction_runs_without_any_network(tinydep: tuple[Registry, Path]) -> None:
    reg, wheels = tinydep
    sandbox = _no_network_prefix()
    entry = "import sys; from mltrail.cli.main import main; sys.exit(main(sys.argv[1:]))"
    args = ["-r", str(reg.root), "--actor", "alice", "repro", "P1", "--isolated"]

    done = subprocess.run(
        [*sandbox, sys.executable, "-c", entry, *args, "--wheel-dir", str(wheels), "--json"],
        capture_output=True,
        timeout=900,
    )

    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result = json.loads(done.stdout)
    assert result["outcome"] == "reproduced"
    assert result["isolated"] is True
    assert reproductions(reg, "P1") == [result["event"]]
