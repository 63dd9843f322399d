"""The ledger and artifact commands end to end, through `main([...])` (DESIGN §3, STYLE §6)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from mltrail.cli.main import main
from mltrail.ledger import merkle
from mltrail.ledger.checkpoint import Checkpoint, open_note
from mltrail.ledger.log import parse_receipt
from mltrail.storage import migrate
from mltrail.storage.database import Database
from mltrail.storage.triggers import drop_statements

ORIGIN = "test.mltrail/cli"


class Cli:
    """Runs `mltrail -r REGISTRY ...` in process and returns (exit code, stdout, stderr)."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["-r", str(self.root), "--actor", "user:alice", *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, err
        assert "Traceback" not in err
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, code: int, *args: str) -> str:
        """The command exits with ``code`` and explains itself without a traceback."""
        got, _, err = self(*args)
        assert got == code, err
        assert "error:" in err and "hint:" in err
        assert "Traceback" not in err
        return err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    run = Cli(tmp_path / "registry", capsys)
    run.ok("init", "--origin", ORIGIN)
    return run


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights " * 1000)
    return path


def _size(cli: Cli) -> int:
    return int(cli.json("checkpoint")["size"])


# -- happy paths ------------------------------------------------------------------------------


def test_init_prints_the_registry_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Cli(tmp_path / "fresh", capsys)

    info = run.json("init", "--origin", ORIGIN)

    assert info["origin"] == ORIGIN
    assert Path(info["registry"]) == (tmp_path / "fresh").absolute()
    assert info["verifier_key"].startswith(ORIGIN + "+")
    assert info["database"].startswith("sqlite:///")
    assert (tmp_path / "fresh" / "config.json").is_file()


def test_init_twice_is_refused(cli: Cli) -> None:
    err = cli.fails(4, "init", "--origin", ORIGIN)
    assert "already exists" in err


def test_init_prints_a_table_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = Cli(tmp_path / "fresh", capsys).ok("init", "--origin", ORIGIN)
    assert "registry created" in out and ORIGIN in out


def test_log_lists_and_filters_events(cli: Cli, model_file: Path) -> None:
    cli.ok("artifact", "put", str(model_file))

    events = cli.json("log")
    registered = cli.json("log", "--action", "register", "--subject", "artifact:x")
    artifacts = cli.json(
        "log", "--action", "register", "--actor", "alice", "--reverse", "--limit", "1"
    )
    table = cli.ok("log", "--action", "init")

    assert events[0]["action"] == "init" and events[0]["seq"] == 0
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert all(e["integrity"]["event_sha256"] for e in events)
    assert registered == []
    assert len(artifacts) == 1
    assert artifacts[0]["subject"]["type"] == "artifact"
    assert artifacts[0]["seq"] == events[-1]["seq"]
    assert "init" in table and "register" not in table


def test_log_refuses_a_malformed_subject_and_time(cli: Cli) -> None:
    assert "TYPE:ID" in cli.fails(2, "log", "--subject", "nonsense")
    assert "RFC 3339" in cli.fails(2, "log", "--since", "yesterday")


def test_show_an_event_by_index_and_by_id(cli: Cli) -> None:
    first = cli.json("show", "0")
    again = cli.json("show", first["event_id"])
    text = cli.ok("show", "0")

    assert first == again
    assert first["action"] == "init" and first["subject"]["id"] == ORIGIN
    assert len(first["integrity"]["event_sha256"]) == 64
    assert "event 0" in text and first["event_id"] in text


def test_checkpoint_is_a_note_signed_by_the_registry(cli: Cli) -> None:
    info = cli.json("checkpoint")
    note = cli.ok("checkpoint")

    assert note == info["note"]
    body = Checkpoint.from_text(open_note(note, [info["verifier_key"]]))
    assert (body.origin, body.size, body.root_hash.hex()) == (ORIGIN, info["size"], info["root"])


def test_prove_event_gives_a_receipt_that_verifies(cli: Cli, model_file: Path) -> None:
    cli.ok("artifact", "put", str(model_file))
    key = cli.json("checkpoint")["verifier_key"]

    text = cli.ok("prove", "event", "0")
    proof = cli.json("prove", "event", "0")

    receipt = parse_receipt(text)
    receipt.verify([key])
    assert receipt.index == proof["index"] == 0
    assert (
        receipt.event_sha256
        == proof["event_sha256"]
        == cli.json("show", "0")["integrity"]["event_sha256"]
    )
    assert [h.hex() for h in receipt.proof] == proof["proof"]


def test_prove_consistency_between_two_signed_sizes(cli: Cli, model_file: Path) -> None:
    old = _size(cli)
    cli.ok("artifact", "put", str(model_file))
    new = _size(cli)

    proof = cli.json("prove", "consistency", str(old), str(new))
    text = cli.ok("prove", "consistency", str(old))

    key = cli.json("checkpoint")["verifier_key"]
    one = Checkpoint.from_text(open_note(proof["checkpoint1"], [key]))
    two = Checkpoint.from_text(open_note(proof["checkpoint2"], [key]))
    merkle.verify_consistency(
        old, new, [bytes.fromhex(h) for h in proof["proof"]], one.root_hash, two.root_hash
    )
    assert (proof["size1"], proof["size2"]) == (old, new)
    assert f"consistent: {old} -> {new}" in text


def test_verify_passes_on_an_untouched_registry(cli: Cli, model_file: Path, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted.note"
    trusted.write_text(cli.ok("checkpoint"))
    cli.ok("artifact", "put", str(model_file))

    text = cli.ok("verify")
    report = cli.json("verify")
    with_trusted = cli.json("verify", "--trusted", str(trusted))

    assert text.startswith("ok:")
    assert report["ok"] is True and report["problems"] == []
    assert report["size"] == report["checkpoint_size"] == _size(cli)
    assert with_trusted["ok"] is True and with_trusted["trusted_size"] == report["size"] - 1


def test_witness_accepts_growth_and_verify_trusts_it(
    cli: Cli, model_file: Path, tmp_path: Path
) -> None:
    witness = tmp_path / "witness"

    first = cli.json("witness", str(witness), "--init")
    cli.ok("artifact", "put", str(model_file))
    second = cli.json("witness", str(witness))
    again = cli.ok("witness", str(witness))
    report = cli.json("verify", "--trusted", str(witness))

    assert first["previous_size"] is None
    assert (second["previous_size"], second["accepted_size"]) == (
        first["accepted_size"],
        _size(cli),
    )
    assert "checkpoint witnessed and cosigned" in again
    assert report["ok"] is True and report["trusted_size"] == _size(cli)


def test_artifact_put_get_verify(cli: Cli, model_file: Path, tmp_path: Path) -> None:
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()

    stored = cli.json("artifact", "put", str(model_file))
    out = cli.ok("artifact", "get", digest, "-o", str(tmp_path / "copy.onnx"))
    checked = cli.json("artifact", "verify")
    checked_one = cli.ok("artifact", "verify", digest)

    assert stored["sha256"] == digest and stored["size"] == model_file.stat().st_size
    assert cli.json("show", str(stored["event"]))["integrity"]["artifact_sha256"] == digest
    assert (tmp_path / "copy.onnx").read_bytes() == model_file.read_bytes()
    assert "(verified)" in out
    assert checked == {"checked": 1, "problems": {}}
    assert "1 artifacts checked, 0 failed" in checked_one
    assert cli.json("log", "--action", "access")[0]["integrity"]["artifact_sha256"] == digest


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref", ["999", "0190f000-0000-7000-8000-000000000000"], ids=["index", "event-id"]
)
def test_unknown_event_is_an_error_with_a_hint(cli: Cli, ref: str) -> None:
    assert "not in the log" in cli.fails(3, "show", ref)
    assert "not in the log" in cli.fails(3, "prove", "event", ref)


@pytest.mark.parametrize(
    "args",
    [
        ("log",),
        ("show", "0"),
        ("checkpoint",),
        ("verify",),
        ("prove", "event", "0"),
        ("artifact", "verify"),
    ],
    ids=["log", "show", "checkpoint", "verify", "prove", "artifact"],
)
def test_no_registry_is_an_error_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    err = Cli(tmp_path / "nowhere", capsys).fails(9, *args)
    assert "no mltrail registry" in err and "mltrail init" in err
    assert not (tmp_path / "nowhere").exists()


def test_verify_with_a_missing_trusted_file_is_an_error(cli: Cli, tmp_path: Path) -> None:
    err = cli.fails(2, "verify", "--trusted", str(tmp_path / "missing.note"))
    assert "does not exist" in err


def test_artifact_tampered_on_disk_fails_verify_and_get(
    cli: Cli, model_file: Path, tmp_path: Path
) -> None:
    digest = cli.json("artifact", "put", str(model_file))["sha256"]
    [blob] = list((cli.root / "artifacts").rglob(digest))
    os.chmod(blob, stat.S_IRUSR | stat.S_IWUSR)
    blob.write_bytes(b"poisoned " * 1000)

    err = cli.fails(7, "artifact", "verify")
    code, out, _ = cli("artifact", "verify", "--json")
    get_err = cli.fails(7, "artifact", "get", digest, "-o", str(tmp_path / "copy.onnx"))

    assert digest in err and "1 of 1 artifacts" in err
    assert code == 7 and list(json.loads(out)["problems"]) == [digest]
    assert digest in get_err
    assert not (tmp_path / "copy.onnx").exists()


def _tamper_event(cli: Cli, seq: int) -> None:
    config = json.loads((cli.root / "config.json").read_text())
    engine = sa.create_engine(config["database"])
    try:
        with engine.begin() as conn:
            for statement in drop_statements("sqlite", "ledger_events"):
                conn.execute(sa.text(statement))
            body = conn.execute(
                sa.text("SELECT body FROM ledger_events WHERE seq = :s"), {"s": seq}
            ).scalar_one()
            conn.execute(
                sa.text("UPDATE ledger_events SET body = :b WHERE seq = :s"),
                {"b": bytes(body).replace(b"success", b"failure"), "s": seq},
            )
    finally:
        engine.dispose()


def test_verify_after_tampering_fails_and_names_the_event(cli: Cli, model_file: Path) -> None:
    cli.ok("artifact", "put", str(model_file))
    seq = _size(cli) - 1
    _tamper_event(cli, seq)

    err = cli.fails(7, "verify")
    code, out, json_err = cli("verify", "--json")

    assert f"index {seq}: digest mismatch" in err
    assert code == 7 and "Traceback" not in json_err
    report = json.loads(out)
    assert report["ok"] is False
    assert {"index": seq, "kind": "digest mismatch"}.items() <= report["problems"][0].items()


def test_verify_of_a_rolled_back_log_against_a_witness_fails(
    cli: Cli, model_file: Path, tmp_path: Path
) -> None:
    database, older = cli.root / "registry.db", tmp_path / "older.db"
    with (
        contextlib.closing(sqlite3.connect(database)) as live,
        contextlib.closing(sqlite3.connect(older)) as copy,
    ):
        live.backup(copy)
    cli.ok("artifact", "put", str(model_file))
    cli.ok("witness", str(tmp_path / "witness"), "--init")
    for suffix in ("", "-wal", "-shm"):  # put the older file back in place of the database
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(older, database)

    assert cli.json("verify")["ok"] is True  # on its own, the older copy is a valid log
    err = cli.fails(7, "verify", "--trusted", str(tmp_path / "witness"))
    witness_err = cli.fails(7, "witness", str(tmp_path / "witness"))

    assert "rollback" in err and "rollback" in witness_err


def test_log_by_subject_and_history_list_the_subject_s_events(cli: Cli, model_file: Path) -> None:
    cli.ok("artifact", "put", str(model_file))
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    subject = f"artifact:{digest}"

    by_subject = cli.json("log", "--subject", subject)
    history = cli.json("history", subject)
    table = cli.ok("history", subject)

    assert [e["action"] for e in by_subject] == ["register"]
    assert by_subject[0]["subject"] == {"type": "artifact", "id": digest, "digest": digest}
    assert [e["seq"] for e in history] == [e["seq"] for e in by_subject]
    assert f"history of {subject}" in table and "register" in table


def test_upgrade_migrates_an_older_registry_and_says_when_there_is_nothing_to_do(
    cli: Cli,
) -> None:
    assert "nothing to do" in cli.ok("upgrade")
    db = Database.connect(f"sqlite:///{cli.root / 'registry.db'}")
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    db.dispose()

    refused = cli.fails(9, "log")
    upgraded = cli.json("upgrade")

    assert "schema revision 0002" in refused and "mltrail upgrade" in refused
    assert upgraded["action"] == "upgrade" and upgraded["subject"].startswith("registry:")
    assert cli.json("log", "--action", "upgrade")[0]["metadata"]["from_schema"] == "0002"
    assert cli.json("upgrade") == {"upgraded": False}
    cli.ok("verify")
