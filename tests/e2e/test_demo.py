"""`mltrail demo` builds the seed's three stories, and the CLI answers their questions.

One demo registry (3,000 predictions) serves every test in this module: building it is
the slow part. The tests then ask what an engineer would after an incident: trace P123,
verify the log, and what was in production at 09:30 and at 10:30 on 2024-06-01.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from mltrail.cli.main import main

pytestmark = pytest.mark.slow

CHAIN = "P123 -> D45 -> model:churn:v2 -> R678 -> DS:2024-05-15"
ACTOR = ["--actor", "mlops.alex"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """The demo registry's directory, and the exit code and stdout of `mltrail demo`."""
    directory = tmp_path_factory.mktemp("demo") / "d"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:  # capsys is per test; this runs once
        patch.setattr(sys, "stdout", out)
        code = main(["demo", str(directory), "--predictions", "3000"])
    return directory / "registry", code, out.getvalue()


def _run(demo: tuple[Path, int, str], *args: str) -> list[str]:
    return ["-r", str(demo[0]), *ACTOR, *args]


def test_demo_builds_and_prints_the_p123_chain(demo: tuple[Path, int, str]) -> None:
    root, code, out = demo

    assert code == 0
    assert (root / "config.json").is_file()
    assert "Example 1 — trace of prediction P123:" in out
    assert CHAIN in out
    assert "commit c1a2b7f3e9d04a6b8c2e5f1a7d3b9c0e4f6a8b2d" in out
    assert "verify: ok" in out


def test_demo_refuses_to_overwrite(
    demo: tuple[Path, int, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", str(demo[0].parent), "--predictions", "10"])

    assert code == 4
    err = capsys.readouterr().err
    assert "error:" in err and "--force" in err


def test_trace_p123_json(demo: tuple[Path, int, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_run(demo, "trace", "prediction", "P123", "--json")) == 0

    trace = json.loads(capsys.readouterr().out)
    assert " -> ".join(trace["chain"]) == CHAIN
    assert trace["commit"]["commit_id"] == "c1a2b7f3e9d04a6b8c2e5f1a7d3b9c0e4f6a8b2d"
    assert trace["environment"]["environment_id"].startswith("sha256:")
    assert trace["parameters"]["epochs"] == 80
    assert trace["deployment"]["deployment_id"] == "D45"


def test_verify_exits_zero(demo: tuple[Path, int, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_run(demo, "verify")) == 0
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("at", "production", "d45"),
    [
        ("2024-06-01T09:30:00Z", "model:churn:v3", "model:churn:v3"),
        ("2024-06-01T10:30:00Z", "model:churn:v2", "model:churn:v2"),
        ("2024-06-01T09:04:00Z", "model:churn:v3", "model:churn:v2"),
    ],
    ids=["during-incident", "after-rollback", "promoted-not-yet-deployed"],
)
def test_production_at(
    demo: tuple[Path, int, str],
    capsys: pytest.CaptureFixture[str],
    at: str,
    production: str,
    d45: str,
) -> None:
    assert main(_run(demo, "production", "churn", "--at", at, "--json")) == 0

    state = json.loads(capsys.readouterr().out)
    assert state["production"] == production
    assert state["deployments"]["D45"]["version"] == d45
