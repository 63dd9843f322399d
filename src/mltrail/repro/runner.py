"""Re-run a model's scoring on a recorded input, in this process or in a rebuilt environment.

An entry point names the scoring function of a model directory:

- ``file.py:function``: a file inside the model directory (``..`` and absolute paths are
  refused), loaded under a unique module name so two versions never meet in ``sys.modules``;
- ``module:function``: an importable module;
- ``mlflow`` or ``mlflow:pyfunc``: an MLflow pyfunc model, scored with its ``predict``.

Outputs are normalized to JSON (numpy and pandas values through ``tolist``/``to_dict``) so
both modes return what :func:`compare_outputs` compares with the recorded output.

>>> import tempfile
>>> model_dir = Path(tempfile.mkdtemp())
>>> _ = (model_dir / "score.py").write_text("def predict(x):\\n    return {'score': x['a'] * 2}\\n")
>>> score_in_process(model_dir, "score.py:predict", {"a": 0.3655})
{'score': 0.731}
>>> score_isolated(Path(sys.executable), model_dir, "score.py:predict", {"a": 0.3655})
{'score': 0.731}
>>> compare_outputs({"score": 0.731201}, {"score": 0.731305})
(False, 'output.score: recorded 0.731201, now 0.731305')

Isolated reproduction first rebuilds the recorded environment, offline from a wheel
directory if asked: ``python = build_isolated_env(Path("requirements.txt"), [], dest,
wheel_dir=Path("wheels"))``, then ``score_isolated(python, model_dir, entrypoint, input)``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import ModuleType
from typing import Any, Literal, cast

from mltrail.canonical import canonicalize, loads
from mltrail.errors import (
    ConfigError,
    FormatError,
    InvalidInputError,
    NotFoundError,
    RegistryError,
)
from mltrail.repro.compare import compare_outputs
from mltrail.repro.lockfile import check_offline, lockfile_format, pylock_requirements

__all__ = [
    "BUILD_TIMEOUT",
    "ScoringError",
    "build_isolated_env",
    "compare_outputs",
    "load_entrypoint",
    "score_in_process",
    "score_isolated",
]

BUILD_TIMEOUT = 900.0
"""Seconds that creating the virtualenv, and then installing into it, may each take."""

_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_PYFUNC = ("mlflow", "mlflow:pyfunc")
# Offline builds hand pip a proxy that leads nowhere, so a URL hidden in a lockfile fails
# fast instead of reaching the network (--no-index alone does not cover URL requirements).
_NOWHERE = "http://127.0.0.1:9"
_TAIL_LINES = 20
_ONLINE_HINT = "check the lockfile's pins, and that the package index is reachable"
_OFFLINE_HINT = (
    "the wheel directory must hold a wheel for every pinned distribution; fill it "
    "with `pip download -r LOCKFILE -d WHEEL_DIR` where the network is allowed"
)

# Runs inside the isolated interpreter, which does not have mltrail: stdlib only, and old
# syntax so any Python 3 can run it. argv: model_dir kind target function; stdin: input
# JSON; stdout: output JSON. The model's own prints go to stderr (fd 1 is redirected).
_RUNNER = r"""
import importlib, importlib.util, json, os, sys

def load(model_dir, kind, target, function):
    if kind == "pyfunc":
        return importlib.import_module("mlflow.pyfunc").load_model(model_dir).predict
    if kind == "file":
        name = "mltrail_model_" + os.urandom(8).hex()
        module = importlib.util.module_from_spec(
            importlib.util.spec_from_file_location(name, target))
        sys.modules[name] = module
        with open(target, "rb") as handle:
            exec(compile(handle.read(), target, "exec", dont_inherit=True), module.__dict__)
    else:
        module = importlib.import_module(target)
    for part in function.split("."):
        module = getattr(module, part)
    return module

def plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict(orient="records")
    raise TypeError("output of type %s is not JSON" % type(value).__name__)

def main():
    model_dir, kind, target, function = sys.argv[1:5]
    payload = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.path.insert(0, model_dir)
    result = load(model_dir, kind, target, function)(payload)
    text = json.dumps(result, default=plain, allow_nan=False, ensure_ascii=False)
    sys.stdout.flush()
    out.write(text)
    out.close()

main()
"""


class ScoringError(RegistryError):
    """A model's scoring code failed to load or run, or returned something that is not JSON."""

    default_hint = "run the entry point by hand on the recorded input to see the full traceback"


@dataclass(frozen=True, slots=True)
class _Entrypoint:
    kind: Literal["file", "module", "pyfunc"]
    target: str  # absolute path of the file, the module name, or "" for pyfunc
    function: str


def load_entrypoint(model_dir: Path, entrypoint: str) -> Callable[[Any], Any]:
    """The scoring function that ``entrypoint`` names in ``model_dir``.

    Side effects: imports the module (a file entry point is registered in ``sys.modules``
    under a fresh ``mltrail_model_<hex>`` name; no bytecode is written into ``model_dir``).

    Raises:
        InvalidInputError: the entry point is malformed, leaves ``model_dir``, or is not
            callable.
        NotFoundError: ``model_dir``, the file, the module or the function does not exist.
        ConfigError: a dependency is not installed (MLflow for pyfunc models).
        ScoringError: executing the model's module failed.
    """
    if entrypoint.startswith(COMMAND_PREFIX):
        return _command(model_dir, entrypoint.removeprefix(COMMAND_PREFIX))
    spec = _parse_entrypoint(model_dir, entrypoint)
    if spec.kind == "pyfunc":
        return _load_pyfunc(model_dir)
    if spec.kind == "file":
        module = _load_file(Path(spec.target), entrypoint)
    else:
        module = _import(spec.target, entrypoint)
    return _attribute(module, spec.function, entrypoint)


def score_in_process(model_dir: Path, entrypoint: str, input: Any) -> Any:
    """Score ``input`` (passed as given) with the entry point and return the output as JSON.

    Raises:
        ScoringError: the function raised, or its output is not JSON.
        (and whatever :func:`load_entrypoint` raises)
    """
    predict = load_entrypoint(model_dir, entrypoint)
    try:
        output = predict(input)
    except Exception as exc:
        raise ScoringError(
            f"entry point {entrypoint!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return json.loads(json.dumps(output, default=_plain, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ScoringError(f"entry point {entrypoint!r} returned a non-JSON value: {exc}") from exc


def build_isolated_env(
    lockfile: Path | None,
    requirements: Sequence[str],
    dest: Path,
    *,
    wheel_dir: Path | None = None,
    python: str = sys.executable,
) -> Path:
    """Create a fresh virtualenv at ``dest`` and install the lockfile's pins into it.

    ``lockfile`` is a ``requirements*.txt`` (pip format, ``--hash=`` pins honoured) or a PEP
    751 ``pylock.toml`` (each package installed as ``name==version``, with its marker and
    sha256 hashes). ``requirements`` are extra specifiers installed in the same pip run.
    With ``wheel_dir`` the build is offline: ``--no-index --find-links wheel_dir``, and a
    lockfile that names a URL is refused. pip runs with ``--isolated`` (no user config).

    Side effects: runs ``python -m venv`` and pip; writes ``dest``.

    Returns:
        The path of the new environment's interpreter.

    Raises:
        InvalidInputError: ``dest`` is not empty, the lockfile format is not supported, or
            a requirement is not a plain specifier.
        NotFoundError: the lockfile or ``wheel_dir`` does not exist.
        FormatError: the lockfile cannot be parsed.
        ConfigError: ``python`` cannot run, or venv or pip failed (stderr tail included).
    """
    extra = _check_requirements(requirements)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInputError(
            f"environment directory {dest} exists and is not empty",
            hint="pass a new directory for the environment",
        )
    if wheel_dir is not None and not wheel_dir.is_dir():
        raise NotFoundError(
            f"wheel directory {wheel_dir} does not exist",
            hint="pass the directory that holds the pinned wheels",
        )
    pins = None
    if lockfile is not None and lockfile_format(lockfile) == "pylock":
        pins = pylock_requirements(lockfile)
    elif lockfile is not None and wheel_dir is not None:
        check_offline(lockfile)
    _run(
        [python, "-m", "venv", str(dest)],
        f"creating a virtualenv in {dest}",
        ConfigError,
        BUILD_TIMEOUT,
        hint=f"check that {python} can run `-m venv` and {dest} is writable",
    )
    venv_python = dest / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    args = [*_lock_arguments(lockfile, pins, dest), *extra]
    if args:
        argv = [str(venv_python), "-m", "pip", "install", *_pip_options(wheel_dir), *args]
        _run(
            argv,
            "installing the locked requirements",
            ConfigError,
            BUILD_TIMEOUT,
            hint=_OFFLINE_HINT if wheel_dir is not None else _ONLINE_HINT,
        )
    return venv_python


def score_isolated(
    python: Path, model_dir: Path, entrypoint: str, input: Any, timeout: float = 120
) -> Any:
    """Score ``input`` with the entry point in another interpreter (e.g. an isolated env).

    The child runs ``python -I -B -c <runner>`` with ``model_dir`` as working directory and
    first on ``sys.path``; the input goes in as JSON on stdin and the output comes back as
    JSON on stdout. The runner imports nothing from mltrail.

    Raises:
        InvalidInputError: the entry point is malformed or leaves ``model_dir``.
        NotFoundError: ``model_dir`` or the entry point file does not exist.
        FormatError: ``input`` is not JSON.
        ScoringError: the child failed, timed out or printed no JSON (stderr tail included).
    """
    if entrypoint.startswith(COMMAND_PREFIX):  # the env's bin/ first, so `python` is its own
        bin_dir = str(Path(python).parent)
        path = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
        return _command(
            model_dir, entrypoint.removeprefix(COMMAND_PREFIX), timeout, {"PATH": path}
        )(input)
    spec = _parse_entrypoint(model_dir, entrypoint)
    root = str(model_dir.resolve())
    argv = [str(python), "-I", "-B", "-c", _RUNNER, root, spec.kind, spec.target, spec.function]
    done = _run(
        argv,
        f"scoring with {entrypoint!r} in {python}",
        ScoringError,
        timeout,
        stdin=canonicalize(input),
        cwd=root,
    )
    try:
        return loads(done.stdout)
    except FormatError as exc:
        raise ScoringError(
            f"entry point {entrypoint!r} did not return JSON: {exc.message}",
            errors=_tail(done.stderr),
        ) from exc


# -- entry points ---------------------------------------------------------------------------


COMMAND_PREFIX = "cmd:"
"""An entry point ``cmd:ARGV`` runs ARGV in the model directory: the input as JSON on its
standard input, the output as JSON on its standard output."""


def _command(
    model_dir: Path, command: str, timeout: float = 120, env: dict[str, str] | None = None
) -> Callable[[Any], Any]:
    argv = shlex.split(command)
    if not argv:
        raise InvalidInputError(
            "entry point 'cmd:' names no command", hint="e.g. cmd:python score.py"
        )
    if not model_dir.is_dir():
        raise NotFoundError(f"model directory {model_dir} does not exist")

    def run(value: Any) -> Any:
        try:
            done = subprocess.run(
                argv,
                cwd=model_dir,
                input=json.dumps(value).encode(),
                capture_output=True,
                timeout=timeout,
                check=False,
                env={**os.environ, **env} if env else None,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ScoringError(f"scoring command {command!r} could not run: {exc}") from exc
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-500:]
            raise ScoringError(f"scoring command {command!r} exited {done.returncode}: {tail}")
        try:
            return json.loads(done.stdout)
        except ValueError as exc:
            raise ScoringError(f"scoring command {command!r} printed no JSON: {exc}") from exc

    return run


def _parse_entrypoint(model_dir: Path, entrypoint: str) -> _Entrypoint:
    if not model_dir.is_dir():
        raise NotFoundError(f"model directory {model_dir} does not exist")
    if entrypoint in _PYFUNC:
        return _Entrypoint("pyfunc", "", "predict")
    target, sep, function = entrypoint.rpartition(":")
    if not sep or not target or not _NAME.fullmatch(function):
        raise InvalidInputError(
            f"entry point {entrypoint!r} must be 'file.py:function', 'module:function' or "
            "'mlflow:pyfunc'"
        )
    if target.endswith(".py"):
        return _Entrypoint("file", str(_model_file(model_dir, target)), function)
    if not _NAME.fullmatch(target):
        raise InvalidInputError(f"entry point {entrypoint!r}: {target!r} is not a module name")
    return _Entrypoint("module", target, function)


def _model_file(model_dir: Path, relative: str) -> Path:
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or PureWindowsPath(relative).drive or ".." in pure.parts:
        raise InvalidInputError(
            f"entry point file {relative!r} must be a relative path inside the model directory",
            hint="name the file relative to the model directory, without '..'",
        )
    root = model_dir.resolve()
    path = (root / pure).resolve()
    if not path.is_relative_to(root):
        raise InvalidInputError(f"entry point file {relative!r} links outside the model directory")
    if not path.is_file():
        raise NotFoundError(f"entry point file {relative!r} does not exist in {model_dir}")
    return path


def _load_file(path: Path, entrypoint: str) -> ModuleType:
    name = f"mltrail_model_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:  # pragma: no cover - a .py path always has a loader
        raise InvalidInputError(f"entry point {entrypoint!r}: {path.name} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        # Compile the source ourselves: the loader would read and write __pycache__ in the
        # model directory, whose files are verified against the registered manifest.
        exec(compile(path.read_bytes(), str(path), "exec", dont_inherit=True), module.__dict__)
    except Exception as exc:
        del sys.modules[name]
        raise _load_failed(entrypoint, exc) from exc
    return module


def _import(name: str, entrypoint: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise NotFoundError(
                f"entry point {entrypoint!r}: module {name!r} is not installed",
                hint="install the model's package, or use 'file.py:function'",
            ) from exc
        raise _load_failed(entrypoint, exc) from exc
    except Exception as exc:
        raise _load_failed(entrypoint, exc) from exc


def _load_failed(entrypoint: str, exc: Exception) -> RegistryError:
    message = f"loading entry point {entrypoint!r} failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, ImportError):
        return ConfigError(
            message,
            hint="the model needs packages this environment lacks; "
            "reproduce in an isolated environment built from its lockfile",
        )
    return ScoringError(message)


def _attribute(module: ModuleType, function: str, entrypoint: str) -> Callable[[Any], Any]:
    found: Any = module
    for part in function.split("."):
        if not hasattr(found, part):
            raise NotFoundError(f"entry point {entrypoint!r}: {function!r} is not defined")
        found = getattr(found, part)
    if not callable(found):
        raise InvalidInputError(f"entry point {entrypoint!r}: {function!r} is not callable")
    return cast(Callable[[Any], Any], found)


def _load_pyfunc(model_dir: Path) -> Callable[[Any], Any]:
    try:
        pyfunc = importlib.import_module("mlflow.pyfunc")
    except ImportError as exc:
        raise ConfigError(
            "entry point 'mlflow:pyfunc' needs MLflow, which is not installed",
            hint="pip install mlflow (the version the model was logged with)",
        ) from exc
    try:
        model = pyfunc.load_model(str(model_dir))
    except Exception as exc:
        raise ScoringError(f"MLflow could not load the pyfunc model in {model_dir}: {exc}") from exc
    return cast(Callable[[Any], Any], model.predict)


def _plain(value: Any) -> Any:
    """JSON for array-likes, as the runner script does: numpy via tolist, pandas via to_dict."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict(orient="records")
    raise TypeError(f"output of type {type(value).__name__} is not JSON")


# -- isolated environments ------------------------------------------------------------------


def _check_requirements(requirements: Sequence[str]) -> list[str]:
    if isinstance(requirements, str):
        raise InvalidInputError("requirements must be a list of specifiers, not one string")
    for item in requirements:
        if (
            not isinstance(item, str)
            or not item.strip()
            or item.lstrip().startswith("-")
            or "\n" in item
            or "\r" in item
        ):
            raise InvalidInputError(
                f"requirement {item!r} must be a single specifier such as 'numpy==1.26.4' "
                "(pip options are not accepted)"
            )
    return list(requirements)


def _lock_arguments(lockfile: Path | None, pins: list[str] | None, dest: Path) -> list[str]:
    """``-r FILE`` for pip: the requirements file itself, or one written from a pylock."""
    if lockfile is None or pins == []:
        return []
    if pins is None:
        return ["-r", str(lockfile.resolve())]
    generated = dest / "mltrail-requirements.txt"
    generated.write_text("".join(line + "\n" for line in pins), encoding="utf-8")
    return ["-r", str(generated)]


def _pip_options(wheel_dir: Path | None) -> list[str]:
    options = ["--isolated", "--disable-pip-version-check", "--no-input"]
    if wheel_dir is not None:
        options += [
            "--no-index",
            "--find-links",
            str(wheel_dir.resolve()),
            "--proxy",
            _NOWHERE,
            "--retries",
            "0",
        ]
    return options


def _run(
    argv: Sequence[str],
    what: str,
    error: type[RegistryError],
    timeout: float,
    *,
    stdin: bytes | None = None,
    cwd: str | None = None,
    hint: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a child process; any failure becomes ``error`` carrying the child's stderr tail."""
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, timeout=timeout, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise error(
            f"{what} timed out after {timeout:g} s", errors=_tail(exc.stderr), hint=hint
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"{what}: cannot run interpreter {argv[0]!r}: {exc}",
            hint="pass the path of an existing Python interpreter",
        ) from exc
    if done.returncode != 0:
        tail = _tail(done.stderr)
        last = tail[-1] if tail else "no output on stderr"
        raise error(
            f"{what} failed with exit code {done.returncode}: {last}", errors=tail, hint=hint
        )
    return done


def _tail(stderr: bytes | str | None) -> list[str]:
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", errors="replace")
    return (stderr or "").rstrip().splitlines()[-_TAIL_LINES:]
