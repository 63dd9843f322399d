"""Key files: Go's private-key encoding, mode 0600, no overwrites, no open permissions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from mltrail.errors import ConfigError, FormatError
from mltrail.ledger.checkpoint import NoteSigner
from mltrail.ledger.keys import load_signer, parse_private_key, render_private_key, save_signer

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"


@pytest.fixture(scope="module")
def gomod(vectors: Path) -> dict[str, Any]:
    path = vectors / "signed-note/golang-mod-sumdb-note.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_go_private_key_parses_and_round_trips(gomod: dict[str, Any]) -> None:
    signer = parse_private_key(gomod["signer_key"])
    assert signer.name == "PeterNeumann"
    assert signer.verifier_key == gomod["verifier_keys"]["PeterNeumann"]
    assert render_private_key(signer) == gomod["signer_key"]


def test_rendered_key_matches_go_for_zero_seed(gomod: dict[str, Any]) -> None:
    signer = NoteSigner.from_seed("EnochRoot", bytes(32))
    skey = render_private_key(signer)
    assert skey.startswith("PRIVATE+KEY+EnochRoot+af0cfe78+")
    assert parse_private_key(skey).verifier_key == gomod["verifier_keys"]["EnochRoot"]


@pytest.mark.parametrize(
    "skey",
    [
        pytest.param(PETER_SKEY.removeprefix("PRIVATE+KEY+"), id="no-prefix"),
        pytest.param(PETER_SKEY.replace("PRIVATE+KEY", "PUBLIC+KEY"), id="wrong-prefix"),
        pytest.param(PETER_SKEY.replace("c74f20a3", "c74f20a4"), id="key-id-mismatch"),
        pytest.param(PETER_SKEY.replace("c74f20a3", "C74F20A3"), id="uppercase-key-id"),
        pytest.param(PETER_SKEY.replace("+c74f20a3", ""), id="no-key-id"),
        pytest.param(PETER_SKEY.replace("+AYEK", "+AoEK"), id="wrong-type"),
        pytest.param(PETER_SKEY[:-4], id="short-seed"),
        pytest.param(PETER_SKEY + "AAAA", id="long-seed"),
        pytest.param(PETER_SKEY[:-1] + "y", id="changed-seed"),
        pytest.param("PRIVATE+KEY+PeterNeumann+c74f20a3+AB==", id="noncanonical-base64"),
        pytest.param(PETER_SKEY[:-1] + "!", id="bad-base64"),
        pytest.param(PETER_SKEY.replace("PeterNeumann", "Peter Neumann"), id="space-in-name"),
        pytest.param(PETER_SKEY.replace("PeterNeumann", ""), id="empty-name"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_private_keys_are_rejected(skey: str) -> None:
    with pytest.raises(FormatError):
        parse_private_key(skey)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    signer = parse_private_key(PETER_SKEY)
    path = tmp_path / "log.key"
    save_signer(path, signer)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8") == PETER_SKEY + "\n"
    loaded = load_signer(path)
    assert (loaded.seed, loaded.verifier_key) == (signer.seed, signer.verifier_key)


def test_key_without_final_newline_loads(tmp_path: Path) -> None:
    # Go tools write the bare key; accept it as well as our newline-terminated file.
    path = tmp_path / "go.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(PETER_SKEY)
    assert load_signer(path).name == "PeterNeumann"


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    save_signer(path, parse_private_key(PETER_SKEY))
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        save_signer(path, NoteSigner.from_seed("other", bytes(32)))
    assert path.read_text(encoding="utf-8") == PETER_SKEY + "\n"


def test_save_refuses_to_follow_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "log.key").symlink_to(target)
    with pytest.raises(ConfigError):
        save_signer(tmp_path / "log.key", parse_private_key(PETER_SKEY))
    assert not target.exists()


def test_save_into_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write"):
        save_signer(tmp_path / "missing" / "log.key", parse_private_key(PETER_SKEY))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644], ids=oct)
def test_load_refuses_open_permissions(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "log.key"
    save_signer(path, parse_private_key(PETER_SKEY))
    path.chmod(mode)
    with pytest.raises(ConfigError, match="group or others") as info:
        load_signer(path)
    assert info.value.hint() == f"chmod 600 {path}"


def test_load_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_signer(tmp_path / "absent.key")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not a key\n", id="garbage"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param((PETER_SKEY + "\n\n").encode(), id="two-newlines"),
        pytest.param(b"", id="empty"),
    ],
)
def test_load_malformed_file_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(content)
    with pytest.raises(ConfigError, match="does not hold a valid"):
        load_signer(path)
