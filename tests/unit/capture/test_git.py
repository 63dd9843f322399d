"""Code versions read from real git checkouts built in tmp_path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mltrail.capture import CodeVersion, capture_commit, explicit_commit, strip_credentials
from mltrail.errors import FormatError, InvalidInputError, NotFoundError


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, check=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The user's ~/.gitconfig (signing, hooks) must not leak in, and git must not find a
    # repository above tmp_path.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "fraud-model"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    (path / "train.py").write_text("print('train')\n")
    (path / "weights.bin").write_bytes(bytes(range(256)))
    (path / ".gitignore").write_text("*.log\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


def test_clean_tree(repo: Path) -> None:
    code = capture_commit(repo)
    assert code.commit == git(repo, "rev-parse", "HEAD")
    assert len(code.commit) == 40
    assert (code.dirty, code.diff_sha256, code.branch) == (False, None, "main")
    assert code.repository == "fraud-model"
    assert code.source == "git"


def test_path_inside_the_checkout(repo: Path) -> None:
    (repo / "src").mkdir()
    assert capture_commit(repo / "train.py").commit == capture_commit(repo / "src").commit


def test_ignored_files_do_not_make_the_tree_dirty(repo: Path) -> None:
    (repo / "train.log").write_text("epoch 1\n")
    assert capture_commit(repo).dirty is False


def test_modified_file_is_dirty_with_a_diff_digest(repo: Path) -> None:
    (repo / "train.py").write_text("print('train harder')\n")
    code = capture_commit(repo)
    assert code.dirty is True
    assert code.diff_sha256 is not None and len(code.diff_sha256) == 64
    assert capture_commit(repo).diff_sha256 == code.diff_sha256


def test_different_changes_give_different_digests(repo: Path) -> None:
    (repo / "train.py").write_text("print('one')\n")
    first = capture_commit(repo).diff_sha256
    (repo / "train.py").write_text("print('two')\n")
    second = capture_commit(repo).diff_sha256
    assert first != second


def test_binary_change_is_hashed(repo: Path) -> None:
    (repo / "weights.bin").write_bytes(bytes(range(255, -1, -1)))
    first = capture_commit(repo).diff_sha256
    (repo / "weights.bin").write_bytes(bytes(range(1, 256)) + b"\0")
    second = capture_commit(repo).diff_sha256
    assert first is not None and second is not None and first != second


def test_untracked_file_makes_the_tree_dirty(repo: Path) -> None:
    (repo / "notes").mkdir()
    (repo / "notes" / "todo.txt").write_text("tune lr\n")
    code = capture_commit(repo)
    assert code.dirty is True
    assert code.diff_sha256 is not None
    (repo / "notes" / "todo.txt").write_text("tune batch size\n")
    assert capture_commit(repo).diff_sha256 != code.diff_sha256


def test_staged_change_is_dirty(repo: Path) -> None:
    (repo / "train.py").write_text("print('staged')\n")
    git(repo, "add", "train.py")
    assert capture_commit(repo).dirty is True


def test_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    code = capture_commit(repo)
    assert code.branch is None
    assert code.commit == git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://alice:s3cret@github.com/acme/fraud.git", "https://github.com/acme/fraud.git"),
        ("https://ghp_token@github.com/acme/fraud.git", "https://github.com/acme/fraud.git"),
        ("https://github.com/acme/fraud.git", "https://github.com/acme/fraud.git"),
        ("ssh://git:pw@git.example.com:2222/fraud.git", "ssh://git@git.example.com:2222/fraud.git"),
        ("git@github.com:acme/fraud.git", "git@github.com:acme/fraud.git"),
    ],
    ids=["user-password", "token", "plain", "ssh-password", "scp-like"],
)
def test_remote_url_credentials_are_stripped(repo: Path, url: str, expected: str) -> None:
    git(repo, "remote", "add", "origin", url)
    assert capture_commit(repo).repository == expected
    assert strip_credentials(url) == expected


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotFoundError, match="not inside a git checkout") as info:
        capture_commit(plain)
    assert "explicit" in info.value.hint()


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        capture_commit(tmp_path / "missing" / "deeper")


def test_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(NotFoundError, match="no commit yet"):
        capture_commit(tmp_path)


def test_git_missing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo))
    with pytest.raises(NotFoundError, match="git executable"):
        capture_commit(repo)


def test_round_trip(repo: Path) -> None:
    (repo / "train.py").write_text("changed\n")
    code = capture_commit(repo)
    assert CodeVersion.from_dict(code.to_dict()) == code
    assert set(code.to_dict()) == {
        "repository", "commit", "branch", "dirty", "diff_sha256", "source",
    }  # fmt: skip


def test_from_dict_keeps_unknown_fields() -> None:
    data = {**explicit_commit("acme/fraud", "a" * 40).to_dict(), "tag": "v1"}
    assert CodeVersion.from_dict(data).to_dict() == data


@pytest.mark.parametrize(
    "change",
    [{"commit": "xyz1234"}, {"dirty": "no"}, {"diff_sha256": "11" * 32}, {"source": "svn"}],
    ids=["commit", "dirty", "diff-on-clean", "source"],
)
def test_from_dict_rejects_malformed(change: dict[str, object]) -> None:
    data = {**explicit_commit("acme/fraud", "a" * 40).to_dict(), **change}
    with pytest.raises(FormatError):
        CodeVersion.from_dict(data)


@pytest.mark.parametrize("sha", ["9fceb02", "A" * 40, "b" * 64], ids=["short", "upper", "sha256"])
def test_explicit_commit_accepts_hex_shas(sha: str) -> None:
    code = explicit_commit("https://u:p@example.com/r.git", sha)
    assert code.commit == sha.lower()
    assert code.repository == "https://example.com/r.git"
    assert (code.dirty, code.source, code.branch) == (False, "explicit", None)


@pytest.mark.parametrize(
    "sha",
    ["9fceb0", "a" * 65, "main", "g" * 40, "", "abc 1234"],
    ids=["too-short", "too-long", "branch-name", "not-hex", "empty", "space"],
)
def test_explicit_commit_rejects_non_shas(sha: str) -> None:
    with pytest.raises(InvalidInputError, match="not a SHA"):
        explicit_commit("acme/fraud", sha)


def test_explicit_commit_needs_a_repository() -> None:
    with pytest.raises(InvalidInputError):
        explicit_commit("  ", "a" * 40)
