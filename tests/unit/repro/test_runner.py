"""Re-running a model's scoring: entry points, in-process and isolated scoring, offline envs."""

from __future__ import annotations

import doctest
import hashlib
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wheels import build_wheel

import mltrail.repro
from mltrail.errors import ConfigError, InvalidInputError, NotFoundError
from mltrail.repro import runner
from mltrail.repro.runner import (
    ScoringError,
    build_isolated_env,
    load_entrypoint,
    score_in_process,
    score_isolated,
)

PYTHON = Path(sys.executable)


def model(tmp_path: Path, source: str, name: str = "score.py", dirname: str = "model") -> Path:
    """A model directory holding one scoring file."""
    model_dir = tmp_path / dirname
    (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
    (model_dir / name).write_text(textwrap.dedent(source))
    return model_dir


SCORE = """
    def predict(features):
        return {"score": round(features["x"] * 0.5, 6), "label": "churn"}
"""


# -- entry points ---------------------------------------------------------------------------


def test_file_entrypoint_scores_in_process(tmp_path: Path) -> None:
    model_dir = model(tmp_path, SCORE)
    assert score_in_process(model_dir, "score.py:predict", {"x": 1.462402}) == {
        "score": 0.731201,
        "label": "churn",
    }


def test_file_in_a_subdirectory_and_a_dotted_function(tmp_path: Path) -> None:
    model_dir = model(
        tmp_path,
        """
        class Model:
            @staticmethod
            def predict(x):
                return x + 1
    """,
        name="serving/entry.py",
    )
    assert score_in_process(model_dir, "serving/entry.py:Model.predict", 41) == 42


def test_two_versions_of_the_same_file_do_not_clash(tmp_path: Path) -> None:
    v1 = model(tmp_path, "VERSION = 1\ndef predict(x):\n    return VERSION\n", dirname="v1")
    v2 = model(tmp_path, "VERSION = 2\ndef predict(x):\n    return VERSION\n", dirname="v2")
    first, second = load_entrypoint(v1, "score.py:predict"), load_entrypoint(v2, "score.py:predict")
    assert (first(None), second(None)) == (1, 2)
    assert first.__module__ != second.__module__
    assert sys.modules[first.__module__].__file__ == str((v1 / "score.py").resolve())


def test_loading_writes_no_bytecode_into_the_model_directory(tmp_path: Path) -> None:
    model_dir = model(tmp_path, SCORE)
    score_in_process(model_dir, "score.py:predict", {"x": 1})
    assert sorted(p.name for p in model_dir.iterdir()) == ["score.py"]


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A uniquely named package on sys.path, removed from sys.modules afterwards."""
    name = f"mltrail_test_model_{tmp_path.name.replace('-', '_')}"
    package = tmp_path / "site" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "scoring.py").write_text("def predict(x):\n    return {'doubled': x * 2}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield name
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def test_module_entrypoint_scores_in_process(tmp_path: Path, importable: str) -> None:
    assert score_in_process(tmp_path, f"{importable}.scoring:predict", 21) == {"doubled": 42}


@pytest.mark.parametrize(
    "entrypoint",
    [
        "../evil.py:predict",
        "/etc/evil.py:predict",
        "sub/../../evil.py:predict",
        "..\\evil.py:predict",
        "C:\\evil.py:predict",
        "C:evil.py:predict",
    ],
    ids=[
        "dotdot",
        "absolute",
        "nested-dotdot",
        "backslash-dotdot",
        "windows-absolute",
        "windows-drive",
    ],
)
def test_file_outside_the_model_directory_is_refused(tmp_path: Path, entrypoint: str) -> None:
    model_dir = model(tmp_path, SCORE)
    (tmp_path / "evil.py").write_text("def predict(x):\n    return 'pwned'\n")
    for attempt in (load_entrypoint, lambda d, e: score_isolated(PYTHON, d, e, {})):
        with pytest.raises(InvalidInputError, match="inside the model directory"):
            attempt(model_dir, entrypoint)


def test_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    model_dir = model(tmp_path, SCORE)
    (tmp_path / "evil.py").write_text("def predict(x):\n    return 'pwned'\n")
    (model_dir / "link.py").symlink_to(tmp_path / "evil.py")
    with pytest.raises(InvalidInputError, match="outside the model directory"):
        load_entrypoint(model_dir, "link.py:predict")


@pytest.mark.parametrize(
    "entrypoint",
    [
        "score.py",
        "score.py:",
        ":predict",
        "score.py:1st",
        "score.py:predict()",
        "not a module:f",
        "pkg..mod:f",
    ],
    ids=[
        "no-function",
        "empty-function",
        "no-target",
        "bad-identifier",
        "call-syntax",
        "spaces",
        "empty-module-part",
    ],
)
def test_malformed_entrypoints_are_refused(tmp_path: Path, entrypoint: str) -> None:
    with pytest.raises(InvalidInputError, match="entry point"):
        load_entrypoint(model(tmp_path, SCORE), entrypoint)


def test_missing_things_are_not_found(tmp_path: Path) -> None:
    model_dir = model(tmp_path, SCORE)
    with pytest.raises(NotFoundError, match=r"other\.py"):
        load_entrypoint(model_dir, "other.py:predict")
    with pytest.raises(NotFoundError, match="'score' is not defined"):
        load_entrypoint(model_dir, "score.py:score")
    with pytest.raises(NotFoundError, match="is not installed"):
        load_entrypoint(model_dir, "mltrail_no_such_module:predict")
    with pytest.raises(NotFoundError, match="model directory"):
        load_entrypoint(tmp_path / "absent", "score.py:predict")


def test_a_non_callable_entrypoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not callable"):
        load_entrypoint(model(tmp_path, "predict = 3\n"), "score.py:predict")


def test_a_missing_dependency_is_a_config_error(tmp_path: Path) -> None:
    model_dir = model(tmp_path, "import mltrail_absent_dependency\ndef predict(x):\n    return x\n")
    with pytest.raises(ConfigError, match="mltrail_absent_dependency") as caught:
        load_entrypoint(model_dir, "score.py:predict")
    assert "isolated environment" in caught.value.hint()
    assert not [
        m
        for m in sys.modules
        if m.startswith("mltrail_model_")
        and getattr(sys.modules[m], "__file__", "") == str(model_dir / "score.py")
    ]


def test_a_module_that_fails_to_import_is_a_scoring_error(tmp_path: Path) -> None:
    with pytest.raises(ScoringError, match="ZeroDivisionError"):
        load_entrypoint(model(tmp_path, "1 / 0\n"), "score.py:predict")


def test_a_failing_model_is_a_scoring_error(tmp_path: Path) -> None:
    model_dir = model(tmp_path, "def predict(x):\n    raise ValueError('bad feature')\n")
    with pytest.raises(ScoringError, match="raised ValueError: bad feature"):
        score_in_process(model_dir, "score.py:predict", {})


def test_outputs_are_normalized_to_json(tmp_path: Path) -> None:
    model_dir = model(
        tmp_path,
        """
        class Array:
            def tolist(self):
                return [0.25, 0.75]
        class Frame:
            def to_dict(self, orient):
                return [{"orient": orient}]
        def predict(x):
            return {"array": Array(), "frame": Frame(), "pair": (1, 2)}
        def broken(x):
            return {"set": {1}}
        def nan(x):
            return float("nan")
    """,
    )
    assert score_in_process(model_dir, "score.py:predict", None) == {
        "array": [0.25, 0.75],
        "frame": [{"orient": "records"}],
        "pair": [1, 2],
    }
    with pytest.raises(ScoringError, match="non-JSON"):
        score_in_process(model_dir, "score.py:broken", None)
    with pytest.raises(ScoringError, match="non-JSON"):
        score_in_process(model_dir, "score.py:nan", None)


def test_pyfunc_without_mlflow_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    for entrypoint in ("mlflow", "mlflow:pyfunc"):
        with pytest.raises(ConfigError, match="needs MLflow") as caught:
            load_entrypoint(tmp_path, entrypoint)
        assert "pip install mlflow" in caught.value.hint()


def test_pyfunc_models_are_loaded_from_the_model_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[str] = []

    class FakeModel:
        def predict(self, data: Any) -> Any:
            return {"rows": len(data), "type": type(data).__name__}

    def load_model(uri: str) -> FakeModel:
        loaded.append(uri)
        return FakeModel()

    pyfunc = types.ModuleType("mlflow.pyfunc")
    pyfunc.load_model = load_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlflow", types.ModuleType("mlflow"))
    monkeypatch.setitem(sys.modules, "mlflow.pyfunc", pyfunc)
    assert score_in_process(tmp_path, "mlflow:pyfunc", ({"a": 1}, {"a": 2})) == {
        "rows": 2,
        "type": "tuple",
    }  # the input is passed as given
    assert loaded == [str(tmp_path)]


# -- isolated scoring (in a child interpreter) ------------------------------------------------


def test_isolated_scoring_runs_in_a_child_without_mltrail(tmp_path: Path) -> None:
    model_dir = model(
        tmp_path,
        """
        import os, sys
        import helpers
        def predict(features):
            print("noise on stdout")
            return {"score": helpers.half(features["x"]), "cwd": os.getcwd(),
                    "mltrail": sorted(m for m in sys.modules if m.split(".")[0] == "mltrail")}
    """,
    )
    (model_dir / "helpers.py").write_text("def half(x):\n    return x / 2\n")
    result = score_isolated(PYTHON, model_dir, "score.py:predict", {"x": 1.462402})
    assert result == {"score": 0.731201, "cwd": str(model_dir.resolve()), "mltrail": []}
    assert not (model_dir / "__pycache__").exists()


def test_isolated_module_entrypoint(tmp_path: Path) -> None:
    model_dir = model(tmp_path, "def predict(x):\n    return x * 3\n", name="scoring.py")
    assert score_isolated(PYTHON, model_dir, "scoring:predict", 14) == 42


def test_isolated_failure_carries_the_stderr_tail(tmp_path: Path) -> None:
    model_dir = model(tmp_path, "def predict(x):\n    raise KeyError('customer_tenure')\n")
    with pytest.raises(ScoringError, match="exit code 1: KeyError: 'customer_tenure'") as caught:
        score_isolated(PYTHON, model_dir, "score.py:predict", {})
    assert caught.value.errors[0].startswith("Traceback")
    assert len(caught.value.errors) <= 20


def test_isolated_scoring_times_out(tmp_path: Path) -> None:
    model_dir = model(tmp_path, "import time\ndef predict(x):\n    time.sleep(30)\n")
    with pytest.raises(ScoringError, match=r"timed out after 0\.5 s"):
        score_isolated(PYTHON, model_dir, "score.py:predict", {}, timeout=0.5)


def test_isolated_output_must_be_json(tmp_path: Path) -> None:
    model_dir = model(tmp_path, "def predict(x):\n    return float('inf')\n")
    with pytest.raises(ScoringError, match="exit code 1: ValueError"):
        score_isolated(PYTHON, model_dir, "score.py:predict", {})


def test_missing_interpreter_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot run interpreter"):
        score_isolated(tmp_path / "no-python", model(tmp_path, SCORE), "score.py:predict", {})


def test_runner_script_does_not_import_mltrail() -> None:
    assert "mltrail" not in runner._RUNNER.replace("mltrail_model_", "")


# -- building isolated environments (refusals happen before anything is created) --------------


def test_environment_refusals(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinydep==0.1\n")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("")
    with pytest.raises(InvalidInputError, match="not empty"):
        build_isolated_env(requirements, [], busy)
    with pytest.raises(InvalidInputError, match="pip options are not accepted"):
        build_isolated_env(None, ["--index-url=https://example.com"], tmp_path / "env")
    with pytest.raises(InvalidInputError, match="list of specifiers"):
        build_isolated_env(None, "tinydep==0.1", tmp_path / "env")
    with pytest.raises(NotFoundError, match="wheel directory"):
        build_isolated_env(requirements, [], tmp_path / "env", wheel_dir=tmp_path / "absent")
    (tmp_path / "uv.lock").write_text("version = 1\n")
    with pytest.raises(InvalidInputError, match="not a supported format"):
        build_isolated_env(tmp_path / "uv.lock", [], tmp_path / "env")
    requirements.write_text("tinydep @ https://example.com/tinydep-0.1-py3-none-any.whl\n")
    with pytest.raises(InvalidInputError, match="line 1 names a URL"):
        build_isolated_env(requirements, [], tmp_path / "env", wheel_dir=tmp_path)
    assert not (tmp_path / "env").exists()


def test_module_docstring_examples_run() -> None:
    for module in (runner, mltrail.repro):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0
        assert result.failed == 0


# -- building isolated environments offline (slow: creates virtualenvs) ------------------------


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


TINYDEP_MODEL = """
    import tinydep
    def predict(features):
        return {"tripled": tinydep.triple(features["x"]), "from": tinydep.__file__}
"""


@pytest.mark.slow
@pytest.mark.parametrize("lock_name", ["requirements.txt", "pylock.toml"])
def test_environment_is_rebuilt_offline_from_a_wheel_directory(
    tmp_path: Path, lock_name: str
) -> None:
    wheel = build_wheel(tmp_path / "wheels")
    lockfile = tmp_path / lock_name
    if lock_name == "requirements.txt":
        lockfile.write_text(f"tinydep==0.1 \\\n    --hash=sha256:{sha256_of(wheel)}\n")
    else:
        lockfile.write_text(
            textwrap.dedent(f"""\
            lock-version = "1.0"
            created-by = "mltrail-tests"
            [[packages]]
            name = "tinydep"
            version = "0.1"
            marker = "python_version >= '3'"
            wheels = [{{ name = "{wheel.name}", hashes = {{ sha256 = "{sha256_of(wheel)}" }} }}]
        """)
        )
    model_dir = model(tmp_path, TINYDEP_MODEL)
    with pytest.raises(ScoringError, match="No module named 'tinydep'"):
        score_isolated(PYTHON, model_dir, "score.py:predict", {"x": 14})

    python = build_isolated_env(lockfile, [], tmp_path / "env", wheel_dir=tmp_path / "wheels")

    assert python == tmp_path / "env" / "bin" / "python"
    result = score_isolated(python, model_dir, "score.py:predict", {"x": 14})
    assert result["tripled"] == 42
    assert result["from"].startswith(str(tmp_path / "env"))


@pytest.mark.slow
def test_offline_build_fails_clearly_when_a_wheel_is_missing(tmp_path: Path) -> None:
    build_wheel(tmp_path / "wheels")
    lockfile = tmp_path / "requirements.txt"
    lockfile.write_text("tinydep==0.1\nabsentdep==1.0\n")
    with pytest.raises(ConfigError, match="installing the locked requirements failed") as caught:
        build_isolated_env(lockfile, [], tmp_path / "env", wheel_dir=tmp_path / "wheels")
    assert any("absentdep" in line for line in caught.value.errors)
    assert "pip download" in caught.value.hint()


def test_command_entry_point_scores_over_stdin_and_stdout(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "score_cli.py").write_text(
        "import json, sys\nx = json.load(sys.stdin)\nprint(json.dumps({'score': x['a'] * 2}))\n"
    )
    entry = f"cmd:{sys.executable} score_cli.py"
    assert score_in_process(model, entry, {"a": 21}) == {"score": 42}
    assert score_isolated(Path(sys.executable), model, "cmd:python score_cli.py", {"a": 2}) == {
        "score": 4
    }


def test_command_entry_point_failure_is_a_scoring_error(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "fail.py").write_text("import sys\nsys.exit('boom')\n")
    with pytest.raises(ScoringError, match="boom"):
        score_in_process(model, f"cmd:{sys.executable} fail.py", {})
