"""Environment fingerprints: real packages, lockfiles, image digests, accelerators, diffs."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from mltrail.capture import (
    Environment,
    Lockfile,
    capture_environment,
    diff_environments,
    normalize_name,
)
from mltrail.errors import ConfigError, FormatError, InvalidInputError, NotFoundError

IMAGE = "sha256:" + "ab" * 32
NVIDIA_SMI = "NVIDIA A100-SXM4-80GB, 535.104.05\nNVIDIA A100-SXM4-80GB, 535.104.05\n"
NVCC = (
    "nvcc: NVIDIA (R) Cuda compiler driver\n"
    "Cuda compilation tools, release 12.4, V12.4.131\n"
    "Build cuda_12.4.r12.4/compiler.34097967_0\n"
)


def no_tools(argv: Sequence[str]) -> str | None:
    return None


def gpu_tools(argv: Sequence[str]) -> str | None:
    return {"nvidia-smi": NVIDIA_SMI, "nvcc": NVCC}.get(argv[0])


def base(**changes: Any) -> Environment:
    fields: dict[str, Any] = {
        "python_version": "3.11.9",
        "python_implementation": "CPython",
        "system": "linux",
        "machine": "x86_64",
        "libc": "glibc 2.36",
        "packages": ["numpy==1.26.4", "pandas==2.2.2"],
        "lockfiles": [Lockfile("uv.lock", "11" * 32)],
    }
    return Environment(**{**fields, **changes})


def test_lists_the_real_version_of_an_installed_package() -> None:
    env = capture_environment(run=no_tools)
    assert f"pytest=={metadata.version('pytest')}" in env.packages
    assert f"hypothesis=={metadata.version('hypothesis')}" in env.packages
    assert list(env.packages) == sorted(env.packages)
    assert all(name == normalize_name(name) for name, _, _ in map(_split, env.packages))


def test_records_python_and_platform() -> None:
    data = capture_environment(run=no_tools).to_dict()
    assert data["python"] == {
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
    }
    assert data["platform"]["machine"] == platform.machine()


def test_fingerprint_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("version = 1\n")
    first = capture_environment(tmp_path, env={"IMAGE_DIGEST": IMAGE})
    second = capture_environment(tmp_path, env={"IMAGE_DIGEST": IMAGE})
    assert first == second
    assert first.environment_id == second.environment_id == "sha256:" + first.digest
    assert len(first.digest) == 64


def test_fingerprint_holds_no_path_or_host(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy==1.26.4\n")
    text = str(capture_environment(tmp_path, run=no_tools).to_dict())
    assert str(tmp_path) not in text
    assert platform.node() not in text


def test_digest_changes_when_a_lockfile_changes(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text("numpy 1.26.4\n")
    before = capture_environment(tmp_path, run=no_tools)
    lock.write_text("numpy 2.0.0\n")
    after = capture_environment(tmp_path, run=no_tools)
    assert before.digest != after.digest
    assert after.lockfiles == (Lockfile("uv.lock", hashlib.sha256(b"numpy 2.0.0\n").hexdigest()),)


def test_finds_every_kind_of_lockfile_and_nothing_else(tmp_path: Path) -> None:
    wanted = [
        "conda-lock.yml", "environment.yaml", "environment.yml", "poetry.lock",
        "pylock.gpu.toml", "pylock.toml", "requirements-dev.txt", "requirements.txt", "uv.lock",
    ]  # fmt: skip
    for name in [*wanted, "README.md", "pyproject.toml", "requirements.in", "uv.lock.bak"]:
        (tmp_path / name).write_text(name)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "uv.lock").write_text("nested")
    env = capture_environment(tmp_path, run=no_tools)
    assert [lock.name for lock in env.lockfiles] == wanted
    digests = {lock.name: lock.sha256 for lock in env.lockfiles}
    assert digests["requirements-dev.txt"] == hashlib.sha256(b"requirements-dev.txt").hexdigest()


def test_missing_project_dir_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        capture_environment(tmp_path / "nope", run=no_tools)


def test_no_project_dir_records_no_lockfiles() -> None:
    assert capture_environment(run=no_tools).to_dict()["lockfiles"] == []


@pytest.mark.parametrize("name", ["MLTRAIL_IMAGE_DIGEST", "IMAGE_DIGEST"])
def test_image_digest_from_the_passed_env(name: str) -> None:
    assert capture_environment(env={name: IMAGE}, run=no_tools).image_digest == IMAGE


def test_mltrail_variable_wins_and_argument_beats_env() -> None:
    other = "sha256:" + "cd" * 32
    env = {"IMAGE_DIGEST": other, "MLTRAIL_IMAGE_DIGEST": IMAGE}
    assert capture_environment(env=env, run=no_tools).image_digest == IMAGE
    assert capture_environment(image_digest=other, env=env, run=no_tools).image_digest == other


def test_image_digest_absent_without_env() -> None:
    data = capture_environment(run=no_tools).to_dict()
    assert "image_digest" in data
    assert data["image_digest"] is None


BAD_DIGESTS = [
    "ab" * 32,
    "sha256:" + "AB" * 32,
    "sha256:" + "ab" * 31,
    "sha512:" + "ab" * 32,
    "docker.io/library/python@sha256:" + "ab" * 32,
    "",
]


@pytest.mark.parametrize(
    "digest", BAD_DIGESTS, ids=["no-prefix", "upper", "short", "sha512", "reference", "empty"]
)
def test_invalid_image_digest_is_rejected(digest: str) -> None:
    with pytest.raises(InvalidInputError):
        capture_environment(image_digest=digest, run=no_tools)


def test_invalid_image_digest_in_env_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="MLTRAIL_IMAGE_DIGEST"):
        capture_environment(env={"MLTRAIL_IMAGE_DIGEST": "latest"}, run=no_tools)


def test_gpu_fields_are_null_when_absent() -> None:
    data = capture_environment(env={}, run=no_tools).to_dict()
    for key in ("gpu", "gpu_driver", "cuda", "cudnn"):
        assert key in data
        assert data[key] is None


def test_gpu_fields_are_read_from_the_tools_and_env() -> None:
    env = capture_environment(env={"CUDNN_VERSION": "9.1.0.70"}, run=gpu_tools)
    assert env.gpu == ("NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB")
    assert (env.gpu_driver, env.cuda, env.cudnn) == ("535.104.05", "12.4.131", "9.1.0.70")


def test_cuda_version_falls_back_to_env_without_nvcc() -> None:
    env = capture_environment(env={"CUDA_VERSION": "12.4.1"}, run=no_tools)
    assert env.cuda == "12.4.1"
    assert env.gpu is None


def test_the_real_probes_run() -> None:
    # Whatever this machine has, the fields are present (null or a version string).
    data = capture_environment().to_dict()
    assert all(data[key] is None or isinstance(data[key], str | list) for key in ("gpu", "cuda"))


def test_round_trip_through_dict(tmp_path: Path) -> None:
    (tmp_path / "poetry.lock").write_text("x")
    env = capture_environment(tmp_path, image_digest=IMAGE, env={}, run=gpu_tools)
    assert Environment.from_dict(env.to_dict()) == env
    assert Environment.from_dict(env.to_dict()).digest == env.digest


def test_unknown_fields_are_kept_and_hashed() -> None:
    data = {**base().to_dict(), "tpu": {"kind": "v5e"}}
    env = Environment.from_dict(data)
    assert env.to_dict() == data
    assert env.digest != base().digest


def test_packages_are_sorted_on_construction() -> None:
    env = base(packages=["zlib==1", "attrs==2"])
    assert env.packages == ("attrs==2", "zlib==1")


@pytest.mark.parametrize(
    "packages",
    [["numpy"], ["NumPy==1.0"], ["numpy==1", "numpy==2"], ["numpy=="], ["==1.0"], [3]],
    ids=["no-version", "not-normalized", "duplicate", "empty-version", "no-name", "not-text"],
)
def test_malformed_packages_are_rejected(packages: list[Any]) -> None:
    with pytest.raises(InvalidInputError):
        base(packages=packages)


@pytest.mark.parametrize(
    "change",
    [
        {"python": None},
        {"packages": "numpy==1"},
        {"lockfiles": [{"name": "uv.lock"}]},
        {"lockfiles": [{"name": "/etc/uv.lock", "sha256": "11" * 32}]},
        {"gpu": []},
        {"image_digest": "latest"},
    ],
    ids=["python-null", "packages-text", "lock-no-digest", "lock-absolute", "gpu-empty", "image"],
)
def test_from_dict_rejects_malformed_fingerprints(change: dict[str, Any]) -> None:
    with pytest.raises(FormatError):
        Environment.from_dict({**base().to_dict(), **change})


def test_from_dict_requires_null_fields_to_be_present() -> None:
    data = base().to_dict()
    del data["gpu"]
    with pytest.raises(FormatError, match="gpu"):
        Environment.from_dict(data)


def test_diff_of_equal_environments_is_empty() -> None:
    assert diff_environments(base().to_dict(), base().to_dict()) == []


def test_diff_reports_version_change_addition_and_removal() -> None:
    old = base(packages=["numpy==1.26.4", "pandas==2.2.2", "six==1.16.0"])
    new = base(packages=["numpy==2.0.0", "pandas==2.2.2", "torch==2.3.1"])
    assert diff_environments(old.to_dict(), new.to_dict()) == [
        "package numpy: 1.26.4 -> 2.0.0",
        "package removed: six (1.16.0)",
        "package added: torch (2.3.1)",
    ]


def test_diff_reports_python_platform_lockfile_and_accelerators() -> None:
    old = base()
    new = base(
        python_version="3.12.3",
        machine="aarch64",
        lockfiles=[Lockfile("uv.lock", "22" * 32), Lockfile("requirements.txt", "33" * 32)],
        image_digest=IMAGE,
        gpu=["NVIDIA L4"],
        cuda="12.4.131",
    )
    lines = diff_environments(old.to_dict(), new.to_dict())
    assert "python: CPython 3.11.9 -> CPython 3.12.3" in lines
    assert "platform: linux x86_64 glibc 2.36 -> linux aarch64 glibc 2.36" in lines
    assert f"image_digest: None -> {IMAGE}" in lines
    assert "gpu: none -> NVIDIA L4" in lines
    assert "cuda: None -> 12.4.131" in lines
    assert f"lockfile uv.lock: sha256 {'11' * 32} -> {'22' * 32}" in lines
    assert f"lockfile added: requirements.txt (sha256 {'33' * 32})" in lines
    assert len(lines) == 7


def test_diff_reports_unknown_fields() -> None:
    new = {**base().to_dict(), "tpu": "v5e"}
    assert diff_environments(base().to_dict(), new) == ['tpu: none -> "v5e"']


def test_diff_rejects_something_that_is_not_a_fingerprint() -> None:
    with pytest.raises(FormatError):
        diff_environments({"packages": []}, base().to_dict())


def _split(package: str) -> tuple[str, str, str]:
    return package.partition("==")
