"""Environment fingerprints: what is really installed in the running interpreter.

An :class:`Environment` records every installed distribution (``name==version``, names
normalized per PEP 503), the Python version and implementation, the platform (OS, machine,
libc), the lockfiles found in the project with their SHA-256, the container image digest,
and the GPU, driver, CUDA and cuDNN versions. Whatever is absent is recorded as ``null``,
never left out, so that "no GPU" is a fact in the record and not a gap in it.

The fingerprint is content-addressed (``environment_id`` is ``sha256:`` + the digest of its
RFC 8785 bytes), so it holds nothing that changes between two captures of the same
environment: no timestamps, host names or absolute paths.

>>> env = capture_environment(env={"IMAGE_DIGEST": "sha256:" + "ab" * 32})
>>> env.image_digest == "sha256:" + "ab" * 32, env.environment_id.startswith("sha256:")
(True, True)
>>> sorted(env.to_dict())  # doctest: +NORMALIZE_WHITESPACE
['cuda', 'cudnn', 'gpu', 'gpu_driver', 'image_digest', 'lockfiles', 'packages',
 'platform', 'python']
>>> Environment.from_dict(env.to_dict()) == env
True
>>> diff_environments(env.to_dict(), env.to_dict())
[]
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mltrail.canonical import canonicalize
from mltrail.errors import ConfigError, FormatError, InvalidInputError, NotFoundError

__all__ = [
    "IMAGE_DIGEST_VARIABLES",
    "LOCKFILE_PATTERNS",
    "Environment",
    "Lockfile",
    "ToolRunner",
    "capture_environment",
    "check_image_digest",
    "diff_environments",
    "find_lockfiles",
    "installed_packages",
    "normalize_name",
    "run_tool",
]

LOCKFILE_PATTERNS = (
    "pylock.toml", "pylock.*.toml", "uv.lock", "poetry.lock", "requirements*.txt",
    "environment.yml", "environment.yaml", "conda-lock.yml",
)  # fmt: skip
"""File names (``fnmatch`` patterns) looked for at the top of the project directory."""

IMAGE_DIGEST_VARIABLES = ("MLTRAIL_IMAGE_DIGEST", "IMAGE_DIGEST")
"""Environment variables read, in this order, for the container image digest."""

TOOL_TIMEOUT = 5.0
"""Seconds a probe (``nvidia-smi``, ``nvcc``) may run before it counts as absent."""

ToolRunner = Callable[[Sequence[str]], str | None]
"""Runs a command line and returns its stdout, or None when the tool is absent or fails."""

_NVIDIA_SMI = ("nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader")
_NVCC = ("nvcc", "--version")
_IMAGE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NVCC_VERSION = re.compile(r"release \S+, V(\S+)|release (\S+?),")
_FIELDS = frozenset(
    {"python", "platform", "packages", "lockfiles", "image_digest", "gpu", "gpu_driver",
     "cuda", "cudnn"}
)  # fmt: skip
_SCALARS = ("image_digest", "gpu_driver", "cuda", "cudnn")


def normalize_name(name: str) -> str:
    """A distribution name normalized per PEP 503 (``Foo_Bar.baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, slots=True)
class Lockfile:
    """A lockfile of the project: its name relative to the project and its SHA-256.

    Raises:
        InvalidInputError: the name is empty or not relative, or the digest is not 64
            lowercase hex characters.
    """

    name: str
    sha256: str

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
            raise InvalidInputError(f"lockfile name {name!r} must be a relative path")
        if not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            raise InvalidInputError(f"lockfile {name} sha256 must be 64 lowercase hex digits")


@dataclass(frozen=True, slots=True)
class Environment:
    """A deterministic fingerprint of a Python environment.

    Args:
        python_version: e.g. ``"3.11.9"``.
        python_implementation: e.g. ``"CPython"``.
        system: ``sys.platform``, e.g. ``"linux"``.
        machine: ``platform.machine()``, e.g. ``"x86_64"``.
        libc: e.g. ``"glibc 2.36"``; None when it cannot be told (musl, macOS).
        packages: ``name==version`` strings; stored sorted.
        lockfiles: the project's lockfiles; stored sorted by name.
        image_digest: the container image, ``sha256:<64 hex>``, or None.
        gpu: the GPU names, one per device, or None when there is no GPU.
        gpu_driver: the NVIDIA driver version, or None.
        cuda: the CUDA toolkit version, or None.
        cudnn: the cuDNN version, or None.
        unrecognized_fields: JSON fields a newer version wrote; kept and written back.

    Raises:
        InvalidInputError: a field is malformed (a package that is not ``name==version``
            with a PEP 503 normalized name, a duplicate package, a bad image digest).
    """

    python_version: str
    python_implementation: str
    system: str
    machine: str
    libc: str | None = None
    packages: Sequence[str] = ()
    lockfiles: Sequence[Lockfile] = ()
    image_digest: str | None = None
    gpu: Sequence[str] | None = None
    gpu_driver: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    unrecognized_fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for attr in ("python_version", "python_implementation", "system", "machine"):
            _check_text(getattr(self, attr), attr)
        for attr in ("libc", "gpu_driver", "cuda", "cudnn"):
            _check_text(getattr(self, attr), attr, optional=True)
        _set(self, "packages", _check_packages(self.packages))
        _set(self, "lockfiles", _check_lockfiles(self.lockfiles))
        if self.image_digest is not None:
            check_image_digest(self.image_digest)
        if self.gpu is not None:
            _set(self, "gpu", _check_gpu(self.gpu))
        extra = self.unrecognized_fields
        if not isinstance(extra, Mapping) or set(extra) & _FIELDS:
            raise InvalidInputError("unrecognized_fields must not repeat a known field")
        _set(self, "unrecognized_fields", copy.deepcopy(dict(extra)))

    @property
    def digest(self) -> str:
        """SHA-256 hex of the RFC 8785 bytes of ``to_dict()``."""
        return hashlib.sha256(canonicalize(self.to_dict())).hexdigest()

    @property
    def environment_id(self) -> str:
        """The content address, ``sha256:<64 hex>`` (never truncated)."""
        return "sha256:" + self.digest

    def to_dict(self) -> dict[str, Any]:
        """The JSON object; absent values are written as ``null``."""
        result: dict[str, Any] = {
            "python": {"implementation": self.python_implementation,
                       "version": self.python_version},
            "platform": {"system": self.system, "machine": self.machine, "libc": self.libc},
            "packages": list(self.packages),
            "lockfiles": [{"name": lock.name, "sha256": lock.sha256} for lock in self.lockfiles],
            "image_digest": self.image_digest,
            "gpu": None if self.gpu is None else list(self.gpu),
            "gpu_driver": self.gpu_driver,
            "cuda": self.cuda,
            "cudnn": self.cudnn,
        }  # fmt: skip
        result.update(copy.deepcopy(dict(self.unrecognized_fields)))
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Environment:
        """Build from the JSON object ``to_dict`` writes; unknown fields are kept.

        Raises:
            FormatError: the object is not an environment fingerprint.
        """
        with _format_errors():
            python = _object(_require(data, "python"), "python")
            plat = _object(_require(data, "platform"), "platform")
            lockfiles = _list(_require(data, "lockfiles"), "lockfiles")
            gpu = _require(data, "gpu")
            return cls(
                python_version=_require(python, "version"),
                python_implementation=_require(python, "implementation"),
                system=_require(plat, "system"),
                machine=_require(plat, "machine"),
                libc=_require(plat, "libc"),
                packages=_list(_require(data, "packages"), "packages"),
                lockfiles=[Lockfile(**_lockfile_fields(item)) for item in lockfiles],
                gpu=None if gpu is None else _list(gpu, "gpu"),
                unrecognized_fields={k: v for k, v in data.items() if k not in _FIELDS},
                **{key: _require(data, key) for key in _SCALARS},
            )


def check_image_digest(value: object, source: str = "image digest") -> str:
    """Return ``value`` if it is ``sha256:`` followed by 64 lowercase hex digits.

    Raises:
        InvalidInputError: it is not.
    """
    if not isinstance(value, str) or not _IMAGE_DIGEST.fullmatch(value):
        raise InvalidInputError(
            f"{source} {value!r} is not of the form sha256:<64 lowercase hex digits>",
            hint="pass the image's content digest, e.g. from `docker inspect --format "
            "'{{index .RepoDigests 0}}'` (the part after '@')",
        )
    return value


def capture_environment(
    project_dir: Path | None = None,
    *,
    image_digest: str | None = None,
    env: Mapping[str, str] | None = None,
    run: ToolRunner | None = None,
) -> Environment:
    """Fingerprint the running interpreter, its project and its accelerators.

    Side effects: reads the installed distributions' metadata and the lockfiles, and
    runs ``nvidia-smi`` and ``nvcc --version`` when they are on PATH (each with a
    timeout of ``TOOL_TIMEOUT`` seconds). Nothing heavy (torch, tensorflow) is imported.

    Args:
        project_dir: where to look for lockfiles (``LOCKFILE_PATTERNS``, top level only);
            None records no lockfiles.
        image_digest: the container image digest; when None it is looked up in ``env``.
        env: environment variables to consult (the CLI passes ``os.environ``) for the
            image digest (``IMAGE_DIGEST_VARIABLES``), ``CUDA_VERSION`` (when ``nvcc``
            is absent) and ``CUDNN_VERSION``; None consults none.
        run: runs the probes; defaults to :func:`run_tool`. Tests pass a fake.

    Raises:
        InvalidInputError: ``image_digest`` is malformed.
        ConfigError: an image digest variable in ``env`` is malformed.
        NotFoundError: ``project_dir`` is not a directory.
    """
    variables: Mapping[str, str] = env or {}
    probe = run or run_tool
    gpu, driver = _parse_nvidia_smi(probe(_NVIDIA_SMI))
    libc_name, libc_version = platform.libc_ver()
    return Environment(
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        system=sys.platform,
        machine=platform.machine(),
        libc=f"{libc_name} {libc_version}".strip() or None,
        packages=installed_packages(),
        lockfiles=find_lockfiles(project_dir) if project_dir is not None else (),
        image_digest=_image_digest(image_digest, variables),
        gpu=gpu,
        gpu_driver=driver,
        cuda=_parse_nvcc(probe(_NVCC)) or variables.get("CUDA_VERSION") or None,
        cudnn=variables.get("CUDNN_VERSION") or None,
    )


def installed_packages() -> list[str]:
    """Every distribution importable from ``sys.path``, as sorted ``name==version``.

    When a name is installed twice, the first on ``sys.path`` wins, as it does for
    ``importlib.metadata.version`` and for imports.
    """
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        # A broken install (an egg-info without Name or Version) cannot be pinned; skip it.
        name, version = _first(dist.metadata, "Name"), _first(dist.metadata, "Version")
        if name and version:
            found.setdefault(normalize_name(name), version.strip())
    return sorted(f"{name}=={version}" for name, version in found.items())


def find_lockfiles(project_dir: Path) -> list[Lockfile]:
    """The lockfiles at the top of ``project_dir``, each with its SHA-256.

    Raises:
        NotFoundError: ``project_dir`` is not a directory.
    """
    if not project_dir.is_dir():
        raise NotFoundError(
            f"project directory {str(project_dir)!r} does not exist",
            hint="pass the directory that holds the project's lockfiles",
        )
    found = []
    for path in sorted(project_dir.iterdir()):
        if path.is_file() and any(fnmatch.fnmatchcase(path.name, p) for p in LOCKFILE_PATTERNS):
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            found.append(Lockfile(name=path.name, sha256=digest))
    return found


def run_tool(argv: Sequence[str]) -> str | None:
    """Run a probe and return its stdout; None when it is not on PATH, fails or hangs.

    A probe that cannot answer means "not present": the fingerprint records null.
    """
    executable = shutil.which(argv[0])
    if executable is None:
        return None
    try:
        done = subprocess.run(
            [executable, *argv[1:]], capture_output=True, timeout=TOOL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def diff_environments(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Every difference between two fingerprints (``to_dict`` form), for people to read.

    Lists Python, platform, image, GPU/driver/CUDA/cuDNN, lockfile and package changes
    (added, removed, changed version), then any other field that differs.

    Raises:
        FormatError: either mapping is not an environment fingerprint.
    """
    old, new = Environment.from_dict(recorded), Environment.from_dict(current)
    lines = [
        *_diff_value("python", _python(old), _python(new)),
        *_diff_value("platform", _platform(old), _platform(new)),
        *_diff_value("gpu", _gpu(old), _gpu(new)),
        *(
            line
            for key in _SCALARS
            for line in _diff_value(key, getattr(old, key), getattr(new, key))
        ),
        *_diff_named("lockfile", _lock_map(old), _lock_map(new), "sha256 "),
        *_diff_named("package", _package_map(old), _package_map(new), ""),
    ]
    extra_keys = sorted(set(old.unrecognized_fields) | set(new.unrecognized_fields))
    for key in extra_keys:
        before, after = old.unrecognized_fields.get(key), new.unrecognized_fields.get(key)
        lines += _diff_value(key, _show(before), _show(after))
    return lines


def _first(meta: metadata.PackageMetadata, key: str) -> str | None:
    values = meta.get_all(key) or []
    return str(values[0]) if values else None


def _parse_nvidia_smi(output: str | None) -> tuple[list[str] | None, str | None]:
    rows = [line.rsplit(",", 1) for line in (output or "").splitlines() if "," in line]
    names = [row[0].strip() for row in rows if row[0].strip()]
    drivers = sorted({row[1].strip() for row in rows if row[1].strip()})
    return (names or None), (", ".join(drivers) or None)


def _parse_nvcc(output: str | None) -> str | None:
    match = _NVCC_VERSION.search(output or "")
    return (match.group(1) or match.group(2)) if match else None


def _image_digest(explicit: str | None, env: Mapping[str, str]) -> str | None:
    if explicit is not None:
        return check_image_digest(explicit)
    for name in IMAGE_DIGEST_VARIABLES:
        value = env.get(name)
        if value:
            try:
                return check_image_digest(value, f"environment variable {name}")
            except InvalidInputError as exc:
                hint = f"unset {name} or set it to the image's sha256:<64 hex> digest"
                raise ConfigError(exc.message, hint=hint) from exc
    return None


def _diff_value(label: str, before: str, after: str) -> list[str]:
    return [] if before == after else [f"{label}: {before} -> {after}"]


def _diff_named(kind: str, old: dict[str, str], new: dict[str, str], tag: str) -> list[str]:
    lines = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            lines.append(f"{kind} removed: {name} ({tag}{old[name]})")
        elif name not in old:
            lines.append(f"{kind} added: {name} ({tag}{new[name]})")
        elif old[name] != new[name]:
            lines.append(f"{kind} {name}: {tag}{old[name]} -> {new[name]}")
    return lines


def _python(env: Environment) -> str:
    return f"{env.python_implementation} {env.python_version}"


def _platform(env: Environment) -> str:
    return f"{env.system} {env.machine} {env.libc or 'libc unknown'}"


def _gpu(env: Environment) -> str:
    return "none" if env.gpu is None else ", ".join(env.gpu)


def _show(value: object) -> str:
    return "none" if value is None else canonicalize(value).decode("utf-8")


def _lock_map(env: Environment) -> dict[str, str]:
    return {lock.name: lock.sha256 for lock in env.lockfiles}


def _package_map(env: Environment) -> dict[str, str]:
    pairs = (package.partition("==") for package in env.packages)
    return {name: version for name, _, version in pairs}


def _check_text(value: object, attr: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"environment {attr} must be a non-empty string, not {value!r}")


def _check_packages(packages: object) -> tuple[str, ...]:
    checked: dict[str, str] = {}
    for item in _sequence(packages, "packages"):
        name, sep, version = item.partition("==") if isinstance(item, str) else ("", "", "")
        if not sep or not name or name != normalize_name(name) or not version.strip():
            raise InvalidInputError(
                f"package {item!r} must be 'name==version' with a PEP 503 normalized name"
            )
        if name in checked or version != version.strip():
            raise InvalidInputError(f"package {name!r} is listed twice or has blank padding")
        checked[name] = f"{name}=={version}"
    return tuple(sorted(checked.values()))


def _check_lockfiles(lockfiles: object) -> tuple[Lockfile, ...]:
    items = [item for item in _sequence(lockfiles, "lockfiles") if isinstance(item, Lockfile)]
    if len(items) != len(_sequence(lockfiles, "lockfiles")):
        raise InvalidInputError("environment lockfiles must be Lockfile objects")
    if len({item.name for item in items}) != len(items):
        raise InvalidInputError("environment lockfiles list a name twice")
    return tuple(sorted(items, key=lambda item: item.name))


def _check_gpu(gpu: object) -> tuple[str, ...]:
    items = _sequence(gpu, "gpu")
    names = tuple(item for item in items if isinstance(item, str) and item)
    if not names or len(names) != len(items):
        raise InvalidInputError("environment gpu must be None or a non-empty list of names")
    return names


def _sequence(value: object, what: str) -> Sequence[object]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidInputError(f"environment {what} must be a list")
    return value


def _set(instance: object, attr: str, value: object) -> None:
    # Frozen dataclasses normalise their own fields in __post_init__ this way.
    object.__setattr__(instance, attr, value)


@contextmanager
def _format_errors() -> Iterator[None]:
    """Report invariant failures met while parsing as the one FormatError of STYLE §4."""
    try:
        yield
    except FormatError:
        raise
    except InvalidInputError as exc:
        raise FormatError(f"invalid environment fingerprint: {exc.message}") from exc


def _require(data: Mapping[str, Any], key: str) -> Any:
    if not isinstance(data, Mapping):
        raise FormatError("an environment fingerprint must be a JSON object")
    if key not in data:
        raise FormatError(f"environment fingerprint has no {key!r} field")
    return data[key]


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FormatError(f"environment {what} must be a JSON object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise FormatError(f"environment {what} must be a JSON array")
    return list(value)


def _lockfile_fields(item: object) -> dict[str, Any]:
    fields = _object(item, "lockfile entry")
    if set(fields) != {"name", "sha256"}:
        raise FormatError("a lockfile entry must have exactly 'name' and 'sha256'")
    return dict(fields)
