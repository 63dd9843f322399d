"""Read the lockfiles an isolated environment is rebuilt from: pip requirements and PEP 751.

``requirements*.txt`` files go to pip as they are (``--hash=`` pins included); a
``pylock.toml`` becomes one pinned requirement line per ``[[packages]]`` entry, with its
environment marker and the sha256 of every archive the lock lists, so pip installs exactly
the locked files.

>>> import tempfile
>>> lock = Path(tempfile.mkdtemp()) / "pylock.toml"
>>> _ = lock.write_text('[[packages]]\\nname = "tinydep"\\nversion = "0.1"\\n')
>>> lockfile_format(lock), pylock_requirements(lock)
('pylock', ['tinydep==0.1'])
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from mltrail.errors import FormatError, InvalidInputError, NotFoundError

__all__ = ["LockfileFormat", "check_offline", "lockfile_format", "pylock_requirements"]

LockfileFormat = Literal["requirements", "pylock"]

_REQUIREMENTS = "requirements*.txt"
_PYLOCK = ("pylock.toml", "pylock.*.toml")  # PEP 751 file names
_PACKAGE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9.+!_-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_URL = re.compile(r"[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def lockfile_format(path: Path) -> LockfileFormat:
    """Which supported format ``path`` is, judged by its name.

    Raises:
        NotFoundError: the file does not exist.
        InvalidInputError: neither ``requirements*.txt`` nor ``pylock[.*].toml``.
    """
    if not path.is_file():
        raise NotFoundError(f"lockfile {path} does not exist")
    if any(fnmatch.fnmatchcase(path.name, pattern) for pattern in _PYLOCK):
        return "pylock"
    if fnmatch.fnmatchcase(path.name, _REQUIREMENTS):
        return "requirements"
    raise InvalidInputError(
        f"lockfile {path.name} is not a supported format (requirements*.txt or pylock.toml)",
        hint="export the lock as requirements.txt (`uv export`, `poetry export`) or pylock.toml",
    )


def check_offline(path: Path) -> None:
    """Refuse a requirements file that names a URL (an index, a VCS or archive link).

    Local ``file://`` links are allowed. Nested ``-r`` files are not read here; the offline
    pip run itself cannot reach the network either.

    Raises:
        InvalidInputError: a line names a non-``file`` URL.
    """
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("#"):
            continue
        found = _URL.search(line.split(" #", 1)[0])
        if found and found.group().lower() != "file://":
            raise InvalidInputError(
                f"lockfile {path.name} line {number} names a URL; an offline build installs "
                "only from the wheel directory",
                hint="put that distribution's wheel in the wheel directory and pin it by name",
            )


def pylock_requirements(path: Path) -> list[str]:
    """One pip requirement line per package of a PEP 751 lock: ``name==version ; marker
    --hash=sha256:…``.

    Raises:
        FormatError: the file is not TOML, has no ``[[packages]]``, or a package lacks a
            name and version (directory and VCS packages cannot be pinned).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"lockfile {path.name} is not valid TOML: {exc}") from exc
    packages = data.get("packages")
    if not isinstance(packages, list):
        raise FormatError(f"lockfile {path.name} has no [[packages]] array (PEP 751)")
    return [_requirement(path.name, i, package) for i, package in enumerate(packages)]


def _requirement(name: str, index: int, package: Any) -> str:
    if not isinstance(package, dict):
        raise FormatError(f"lockfile {name}: packages[{index}] is not a table")
    pkg, version, marker = package.get("name"), package.get("version"), package.get("marker")
    if not (
        isinstance(pkg, str)
        and _PACKAGE.fullmatch(pkg)
        and isinstance(version, str)
        and _VERSION.fullmatch(version)
    ):
        raise FormatError(
            f"lockfile {name}: packages[{index}] needs a name and a version (got {pkg!r}, "
            f"{version!r}); directory and VCS packages cannot be pinned"
        )
    line = f"{pkg}=={version}"
    if marker is not None:
        # One line per package: a newline or comment in a marker would smuggle in options.
        if not isinstance(marker, str) or any(c in marker for c in "\r\n#"):
            raise FormatError(f"lockfile {name}: packages[{index}].marker is malformed")
        line += f" ; {marker}"
    hashes = _hashes(package, f"lockfile {name}: packages[{index}]")
    return line + "".join(f" --hash=sha256:{digest}" for digest in hashes)


def _hashes(package: dict[str, Any], where: str) -> list[str]:
    """The sha256 of every archive the lock lists for a package (wheels, sdist, archive)."""
    wheels = package.get("wheels")
    archives = [
        *(wheels if isinstance(wheels, list) else []),
        package.get("sdist"),
        package.get("archive"),
    ]
    digests = []
    for archive in archives:
        hashes = archive.get("hashes") if isinstance(archive, dict) else None
        digest = hashes.get("sha256") if isinstance(hashes, dict) else None
        if digest is None:
            continue
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise FormatError(f"{where} has a malformed sha256 hash {digest!r}")
        digests.append(digest)
    return digests
