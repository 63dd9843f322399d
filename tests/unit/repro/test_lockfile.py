"""Reading lockfiles for isolated environments: formats, PEP 751 locks, offline checks."""

from __future__ import annotations

import doctest
import textwrap
from pathlib import Path

import pytest

from mltrail.errors import FormatError, InvalidInputError, NotFoundError
from mltrail.repro import lockfile
from mltrail.repro.lockfile import check_offline, lockfile_format, pylock_requirements

SHA_A, SHA_B = "a" * 64, "b" * 64


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("requirements.txt", "requirements"),
        ("requirements-lock.txt", "requirements"),
        ("pylock.toml", "pylock"),
        ("pylock.serving.toml", "pylock"),
    ],
)
def test_supported_formats_by_name(tmp_path: Path, name: str, kind: str) -> None:
    assert lockfile_format(write(tmp_path, name, "")) == kind


@pytest.mark.parametrize("name", ["uv.lock", "poetry.lock", "environment.yml", "reqs.txt"])
def test_other_lockfiles_are_refused_with_a_hint(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInputError, match="not a supported format") as caught:
        lockfile_format(write(tmp_path, name, ""))
    assert "requirements.txt" in caught.value.hint()


def test_a_missing_lockfile_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        lockfile_format(tmp_path / "requirements.txt")


def test_pylock_packages_become_pinned_lines_with_markers_and_hashes(tmp_path: Path) -> None:
    lock = write(
        tmp_path,
        "pylock.toml",
        f"""\
        lock-version = "1.0"
        created-by = "uv"
        [[packages]]
        name = "numpy"
        version = "1.26.4"
        wheels = [
          {{ name = "numpy-1.26.4-cp311-cp311-manylinux.whl", hashes = {{ sha256 = "{SHA_A}" }} }},
          {{ name = "numpy-1.26.4-cp311-cp311-macosx.whl", hashes = {{ sha256 = "{SHA_B}" }} }},
        ]
        [[packages]]
        name = "pywin32"
        version = "306"
        marker = "sys_platform == 'win32'"
        [packages.sdist]
        name = "pywin32-306.tar.gz"
        hashes = {{ sha256 = "{SHA_A}" }}
        [[packages]]
        name = "tinydep"
        version = "0.1"
    """,
    )
    assert pylock_requirements(lock) == [
        f"numpy==1.26.4 --hash=sha256:{SHA_A} --hash=sha256:{SHA_B}",
        f"pywin32==306 ; sys_platform == 'win32' --hash=sha256:{SHA_A}",
        "tinydep==0.1",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml [", "not valid TOML"),
        ('lock-version = "1.0"\n', "no \\[\\[packages\\]\\]"),
        ('packages = ["numpy"]\n', "is not a table"),
        (
            '[[packages]]\nname = "local-project"\n[packages.directory]\npath = "."\n',
            "needs a name and a version",
        ),
        (
            '[[packages]]\nname = "x\\n--index-url https://evil"\nversion = "1"\n',
            "needs a name and a version",
        ),
        ('[[packages]]\nname = "x"\nversion = "1 --pre"\n', "needs a name and a version"),
        ('[[packages]]\nname = "x"\nversion = "1"\nmarker = "a\\n-e ."\n', "marker is malformed"),
        (
            '[[packages]]\nname = "x"\nversion = "1"\n'
            '[packages.sdist]\nhashes = { sha256 = "zz" }\n',
            "malformed sha256",
        ),
    ],
    ids=[
        "not-toml",
        "no-packages",
        "package-not-table",
        "directory-package",
        "injected-name",
        "injected-version",
        "injected-marker",
        "bad-hash",
    ],
)
def test_malformed_pylock_is_a_format_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        pylock_requirements(write(tmp_path, "pylock.toml", text))


def test_offline_check_refuses_urls_but_not_local_files(tmp_path: Path) -> None:
    fine = write(
        tmp_path,
        "requirements.txt",
        """\
        # from https://pypi.org, exported by uv
        tinydep==0.1 --hash=sha256:{SHA_A}  # see https://example.com
        local @ file:///srv/wheels/local-1.0-py3-none-any.whl
        --find-links ./wheels
    """,
    )
    check_offline(fine)
    for line in (
        "--extra-index-url https://pypi.example.com/simple",
        "-e git+https://github.com/org/repo#egg=repo",
        "tinydep @ HTTPS://example.com/tinydep.whl",
    ):
        bad = write(tmp_path, "requirements.txt", f"tinydep==0.1\n{line}\n")
        with pytest.raises(InvalidInputError, match="line 2 names a URL"):
            check_offline(bad)


def test_module_docstring_examples_run() -> None:
    result = doctest.testmod(lockfile)
    assert result.attempted > 0
    assert result.failed == 0
