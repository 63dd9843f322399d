"""Code versions: the git commit a run was trained from, and whether the tree was dirty.

:func:`capture_commit` asks the ``git`` binary (no GitPython) for the repository (the
``origin`` URL with any credentials removed, else the checkout's directory name), the full
commit SHA, the branch, and whether the working tree differs from the commit. A dirty tree
is recorded with the SHA-256 of its changes (``git diff HEAD`` plus every untracked,
non-ignored file), so two different sets of uncommitted edits never look the same.

:func:`explicit_commit` records a commit a user names instead, for code that is not in a
checkout at capture time.

>>> code = explicit_commit("https://bot:s3cret@git.example.com/ml/fraud.git", "9fceb02")
>>> code.repository, code.commit, code.dirty, code.source
('https://git.example.com/ml/fraud.git', '9fceb02', False, 'explicit')
>>> CodeVersion.from_dict(code.to_dict()) == code
True
>>> explicit_commit("ml/fraud", "main")
Traceback (most recent call last):
...
mltrail.errors.InvalidInputError: commit 'main' is not a SHA (7 to 64 hex digits)
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from mltrail.errors import FormatError, InvalidInputError, NotFoundError

__all__ = [
    "CodeVersion",
    "Source",
    "capture_commit",
    "diff_digest",
    "explicit_commit",
    "strip_credentials",
]

Source = Literal["git", "explicit"]
"""How a code version was learnt: read from a checkout, or given by the user."""

GIT_TIMEOUT = 60.0
"""Seconds one git command may run (``status`` on a huge tree is the slow one)."""

_SHA = re.compile(r"[0-9a-f]{7,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SOURCES = ("git", "explicit")
_FIELDS = ("repository", "commit", "branch", "dirty", "diff_sha256", "source")

# Pin every option that user or system config could change, so that the same changes
# give the same bytes (hence the same digest) on every machine.
_CONFIG = ("-c", "core.quotePath=true", "-c", "diff.suppressBlankEmpty=false")
_DIFF = (
    "diff", "HEAD", "--binary", "--full-index", "--no-color", "--no-ext-diff", "--no-textconv",
    "--no-renames", "--no-relative", "--diff-algorithm=myers", "--indent-heuristic",
    "--unified=3", "--inter-hunk-context=0", "--src-prefix=a/", "--dst-prefix=b/",
)  # fmt: skip
_NOT_A_CHECKOUT_HINT = (
    "run it inside a git checkout, or record the commit explicitly (explicit_commit)"
)


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """The version of the code: repository, commit and the state of the working tree.

    Args:
        repository: the ``origin`` URL without credentials, or the checkout's name.
        commit: the commit SHA, lowercase hex (full when captured, 7 to 64 digits when
            given explicitly).
        branch: the checked-out branch; None when HEAD is detached or unknown.
        dirty: whether the working tree differed from the commit.
        diff_sha256: SHA-256 hex of the uncommitted changes; only when dirty.
        source: ``"git"`` when read from a checkout, ``"explicit"`` when given.
        unrecognized_fields: JSON fields a newer version wrote; kept and written back.

    Raises:
        InvalidInputError: a field is malformed, or ``diff_sha256`` is set on a clean tree.
    """

    repository: str
    commit: str
    branch: str | None = None
    dirty: bool = False
    diff_sha256: str | None = None
    source: Source = "git"
    unrecognized_fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.repository, str) or not self.repository:
            raise InvalidInputError("code version repository must be a non-empty string")
        _check_sha(self.commit)
        if self.branch is not None and (not isinstance(self.branch, str) or not self.branch):
            raise InvalidInputError("code version branch must be None or a non-empty string")
        if not isinstance(self.dirty, bool):
            raise InvalidInputError(f"code version dirty must be a boolean, not {self.dirty!r}")
        _check_diff(self.diff_sha256, self.dirty)
        if self.source not in _SOURCES:
            raise InvalidInputError(f"code version source must be one of {_SOURCES}")
        extra = self.unrecognized_fields
        if not isinstance(extra, Mapping) or set(extra) & set(_FIELDS):
            raise InvalidInputError("unrecognized_fields must not repeat a known field")
        object.__setattr__(self, "unrecognized_fields", copy.deepcopy(dict(extra)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object; ``branch`` and ``diff_sha256`` are written as null when unset."""
        result: dict[str, Any] = {key: getattr(self, key) for key in _FIELDS}
        result.update(copy.deepcopy(dict(self.unrecognized_fields)))
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodeVersion:
        """Build from the JSON object ``to_dict`` writes; unknown fields are kept.

        Raises:
            FormatError: the object is not a code version.
        """
        if not isinstance(data, Mapping):
            raise FormatError("a code version must be a JSON object")
        missing = [key for key in _FIELDS if key not in data]
        if missing:
            raise FormatError(f"code version has no {', '.join(map(repr, missing))} field")
        extra = {key: value for key, value in data.items() if key not in _FIELDS}
        with _format_errors():
            return cls(**{key: data[key] for key in _FIELDS}, unrecognized_fields=extra)


def capture_commit(path: Path) -> CodeVersion:
    """Read the code version of the git checkout that contains ``path``.

    Side effects: runs ``git`` (``rev-parse``, ``config``, ``symbolic-ref``, ``status``,
    ``diff``, ``ls-files``) and, when the tree is dirty, reads its untracked files.

    Args:
        path: a directory or file inside the checkout.

    Raises:
        NotFoundError: ``path`` does not exist or is not in a git checkout, the checkout
            has no commit yet, or ``git`` is not installed.
    """
    start = path if path.is_dir() else path.parent
    if not start.is_dir():
        raise NotFoundError(f"path {str(path)!r} does not exist", hint=_NOT_A_CHECKOUT_HINT)
    top = Path(_text(_git(start, "rev-parse", "--show-toplevel")))
    commit = _text(_git(top, "rev-parse", "--verify", "HEAD^{commit}"))
    dirty = bool(_git(top, "status", "--porcelain", "-z", "--untracked-files=normal"))
    return CodeVersion(
        repository=_repository(top),
        commit=commit,
        branch=_optional_text(_git(top, "symbolic-ref", "--short", "-q", "HEAD", optional=True)),
        dirty=dirty,
        diff_sha256=diff_digest(top) if dirty else None,
        source="git",
    )


def explicit_commit(repository: str, commit: str) -> CodeVersion:
    """A code version given by the user rather than read from a checkout.

    Args:
        repository: the repository URL or name; credentials in a URL are removed.
        commit: the commit SHA, 7 to 64 hex digits (case is ignored).

    Raises:
        InvalidInputError: ``commit`` is not a hex SHA or ``repository`` is empty.
    """
    if not isinstance(repository, str) or not repository.strip():
        raise InvalidInputError("repository must be a non-empty URL or name")
    sha = commit.strip().lower() if isinstance(commit, str) else commit
    _check_sha(sha, shown=commit)
    return CodeVersion(
        repository=strip_credentials(repository.strip()), commit=sha, source="explicit"
    )


def strip_credentials(url: str) -> str:
    """``url`` without the secrets a remote URL can carry.

    ``https://user:token@host/repo`` becomes ``https://host/repo`` (a lone user name in an
    HTTP URL is usually a token, so it goes too); ``ssh://git:pw@host/repo`` keeps the
    user name ``git``. scp-like ``git@host:repo`` and local paths have no secrets.

    >>> strip_credentials("https://x-access-token:ghp_abc@github.com/o/r.git")
    'https://github.com/o/r.git'
    """
    if "://" not in url:
        return url
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    user = userinfo.partition(":")[0]
    keep_user = parts.scheme.lower() in ("ssh", "git+ssh", "ssh+git") and user
    netloc = f"{user}@{host}" if keep_user else host
    return urlunsplit(parts._replace(netloc=netloc))


def diff_digest(top: Path) -> str:
    """SHA-256 hex of the uncommitted changes of the checkout at ``top``.

    Hashes the bytes of ``git diff HEAD`` (binary-safe, with every output option pinned)
    framed by their length, then each untracked, non-ignored file in sorted name order
    as ``untracked NUL name NUL sha256-hex NUL`` (a symlink hashes its target).

    Raises:
        NotFoundError: git is missing or failed.
    """
    digest = hashlib.sha256()
    diff = _git(top, *_DIFF)
    digest.update(b"git-diff\0%d\0" % len(diff) + diff)
    listed = _git(top, "ls-files", "-z", "--others", "--exclude-standard")
    for name in sorted(item for item in listed.split(b"\0") if item):
        digest.update(b"untracked\0" + name + b"\0" + _file_sha256(top, name) + b"\0")
    return digest.hexdigest()


def _file_sha256(top: Path, name: bytes) -> bytes:
    path = top / os.fsdecode(name)
    if path.is_symlink():
        return hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest().encode()
    if not path.is_file():
        # A nested repository is listed as "dir/"; its name alone marks it.
        return b"directory"
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest().encode()


def _repository(top: Path) -> str:
    url = _optional_text(_git(top, "config", "--get", "remote.origin.url", optional=True))
    return strip_credentials(url) if url else top.name


def _git(cwd: Path, *args: str, optional: bool = False) -> bytes:
    """Run git in ``cwd``; with ``optional``, exit status 1 ("unset") gives b""."""
    executable = shutil.which("git")
    if executable is None:
        raise NotFoundError(
            "the git executable is not on PATH",
            hint="install git, or record the commit explicitly (explicit_commit)",
        )
    try:
        done = subprocess.run(
            [executable, *_CONFIG, "-C", str(cwd), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NotFoundError(f"git {args[0]} could not run in {cwd}: {exc}") from exc
    if optional and done.returncode == 1:
        return b""
    if done.returncode != 0:
        raise NotFoundError(_git_failure(cwd, args, done.stderr), hint=_NOT_A_CHECKOUT_HINT)
    return done.stdout


def _git_failure(cwd: Path, args: tuple[str, ...], stderr: bytes) -> str:
    reason = stderr.decode("utf-8", errors="replace").strip() or "no message"
    if args[:1] == ("rev-parse",) and "--show-toplevel" in args:
        return f"{str(cwd)!r} is not inside a git checkout ({reason})"
    if args[:1] == ("rev-parse",):
        return f"the git checkout at {str(cwd)!r} has no commit yet ({reason})"
    return f"git {' '.join(args[:2])} failed in {str(cwd)!r}: {reason}"


def _text(output: bytes) -> str:
    return output.decode("utf-8", errors="replace").removesuffix("\n")


def _optional_text(output: bytes) -> str | None:
    return _text(output) or None


def _check_sha(value: object, *, shown: object = None) -> None:
    if not isinstance(value, str) or not _SHA.fullmatch(value):
        shown = value if shown is None else shown
        raise InvalidInputError(f"commit {shown!r} is not a SHA (7 to 64 hex digits)")


def _check_diff(diff_sha256: object, dirty: bool) -> None:
    if diff_sha256 is None:
        return
    if not dirty:
        raise InvalidInputError("a clean code version cannot carry a diff_sha256")
    if not isinstance(diff_sha256, str) or not _SHA256.fullmatch(diff_sha256):
        raise InvalidInputError("code version diff_sha256 must be 64 lowercase hex digits")


@contextmanager
def _format_errors() -> Iterator[None]:
    """Report invariant failures met while parsing as the one FormatError of STYLE §4."""
    try:
        yield
    except FormatError:
        raise
    except InvalidInputError as exc:
        raise FormatError(f"invalid code version: {exc.message}") from exc
