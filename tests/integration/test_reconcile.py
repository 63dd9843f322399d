"""Seed step 7 and the self-check "if someone re-uploads a file under the same path, would
your checksum change and raise an alert?": a model file changed or deleted in storage makes
P123 not reproducible, `reconcile` reports it, flags the version `integrity_failed` (no
promotion, no deployment) and alerts; once the bytes are restored, `--resolve` clears it.

Each test works on its own copy of the demo registry and plays someone with write access
to the artifact directory (committed files are read-only, so it makes them writable first).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from demo_registry import cli

from mltrail.artifacts.local import LocalArtifactStore
from mltrail.artifacts.manifest import Manifest
from mltrail.canonical import loads
from mltrail.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    PolicyError,
    StorageError,
)
from mltrail.events import Event
from mltrail.ledger.log import EventFilter
from mltrail.service import Registry

V2 = "model:churn:v2"


def stored(reg: Registry, version: str, name: str) -> tuple[str, Path]:
    """The digest of file ``name`` of ``version``, and where its bytes are committed."""
    manifest = Manifest.from_dict(
        loads(reg.store.read_bytes(reg.get_version(version)["manifest_sha256"]))
    )
    digest = next(f.digest for f in manifest.files if f.path == name)
    assert isinstance(reg.store, LocalArtifactStore)
    return digest, reg.store.path_of(digest)


def overwrite(path: Path, data: bytes) -> None:
    """Replace a committed (read-only) file's bytes in place, as an intruder or a bad sync."""
    path.chmod(0o644)
    path.write_bytes(data)
    path.chmod(0o444)


def same_size_change(data: bytes) -> bytes:
    """One digit changed: the size stays, so only re-hashing notices."""
    changed = data.replace(b"1", b"2", 1)
    assert changed != data and len(changed) == len(data)
    return changed


def first(reg: Registry, **where: str) -> Event:
    """The first event matching ``where`` (an `EventFilter`'s fields)."""
    found = list(reg.events(EventFilter(**where)))  # type: ignore[arg-type]
    assert found, where
    return found[0]


@pytest.fixture
def weights(reg: Registry) -> Iterator[tuple[str, Path, bytes]]:
    """model:churn:v2's weights.json: its digest, its stored path, its original bytes."""
    digest, path = stored(reg, V2, "weights.json")
    yield digest, path, path.read_bytes()


# -- a changed model file -------------------------------------------------------------------


def test_a_changed_model_file_makes_p123_not_reproducible(
    reg: Registry, root: Path, weights: tuple[str, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    digest, path, original = weights
    overwrite(path, same_size_change(original))

    result = reg.reproduce("P123")

    assert result["outcome"] == "not reproducible"
    assert result["reason"].startswith("model artifact digest mismatch:")
    assert digest in result["reason"]
    assert "output" not in result
    event = reg.event(result["event"])
    assert (event.metadata["result"], event.outcome) == ("not reproducible", "failure")
    code, out, _ = cli(root, capsys, "repro", "P123")
    assert code == 11
    assert "outcome: not reproducible (model artifact digest mismatch" in out


def test_reconcile_flags_the_version_and_blocks_it_until_resolved(
    reg: Registry, weights: tuple[str, Path, bytes]
) -> None:
    digest, path, original = weights
    assert reg.reconcile()["ok"]
    overwrite(path, same_size_change(original))

    report = reg.reconcile()

    assert not report["ok"]
    assert list(report["problems"]) == [digest]
    assert "is corrupt" in report["problems"][digest]
    assert report["failing_versions"] == [V2]
    assert report["checked"] == report["referenced"]
    event = reg.event(report["event"])
    assert event.action == "reconcile"
    assert event.metadata["problems"] == report["problems"]
    assert reg.get_version(V2)["flags"] == ["integrity_failed"]
    with pytest.raises(PolicyError) as refused:
        reg.promote(V2, to="production")
    assert any("integrity_failed" in reason for reason in refused.value.errors)
    with pytest.raises(ConflictError, match="failed an integrity check"):
        reg.deploy("D45", V2, target="k8s/prod/churn-api")
    with pytest.raises(IntegrityError, match="still has 1 missing or changed"):
        reg.resolve_integrity(V2, reason="not yet restored")

    overwrite(path, original)
    assert reg.reconcile()["ok"]
    assert reg.get_version(V2)["flags"] == ["integrity_failed"]  # only an operator clears it
    resolved = reg.resolve_integrity(V2, reason="restored from backup")

    assert resolved.event.action == "resolve"
    assert reg.get_version(V2)["flags"] == []
    assert reg.promote(V2, to="production").event.action == "promote"
    assert reg.deploy("D45", V2, target="k8s/prod/churn-api").event.action == "deploy"
    assert reg.reproduce("P123")["outcome"] == "reproduced"
    assert reg.verify().ok


def test_reconcile_cli_exits_7_and_resolve_clears_the_flag(
    reg: Registry, root: Path, weights: tuple[str, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    digest, path, original = weights
    assert cli(root, capsys, "reconcile")[0] == 0
    overwrite(path, same_size_change(original))

    code, out, err = cli(root, capsys, "reconcile", "--json")

    assert code == 7
    report = json.loads(out)
    assert list(report["problems"]) == [digest]
    assert report["failing_versions"] == [V2]
    assert f"versions flagged: {V2}" in err and "--resolve" in err
    code, _, err = cli(root, capsys, "reconcile", "--resolve", V2, "--reason", "too early")
    assert code == 7
    assert "still has 1 missing or changed artifacts" in err

    overwrite(path, original)
    code, out, err = cli(
        root, capsys, "reconcile", "--resolve", V2, "--reason", "restored", "--json"
    )

    assert code == 0, err
    assert json.loads(out)["action"] == "resolve"
    assert reg.get_version(V2)["flags"] == []
    assert reg.promote(V2, to="production").event.action == "promote"


def test_a_deleted_model_file_is_reported_missing(
    reg: Registry, weights: tuple[str, Path, bytes]
) -> None:
    digest, path, _ = weights
    path.unlink()

    report = reg.reconcile()
    result = reg.reproduce("P123")

    assert report["problems"] == {digest: "missing from storage"}
    assert report["failing_versions"] == [V2]
    assert result["outcome"] == "not reproducible"
    assert result["reason"].startswith("model artifact missing:")


def test_a_sample_rehashes_some_artifacts_but_checks_every_size(
    reg: Registry, root: Path, weights: tuple[str, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    changed, path, original = weights
    overwrite(path, same_size_change(original))
    grown, fraud = stored(reg, "model:fraud:v5", "weights.json")
    overwrite(fraud, fraud.read_bytes() + b"\n")

    sampled = reg.reconcile(sample=0)

    assert sampled["checked"] == 0
    assert list(sampled["problems"]) == [grown]  # the same-size change needs a re-hash
    size = fraud.stat().st_size
    assert sampled["problems"][grown] == f"size {size} differs from recorded {size - 1}"
    assert sampled["failing_versions"] == ["model:fraud:v5"]
    code, out, _ = cli(root, capsys, "reconcile", "--sample", "100000", "--json")
    assert code == 7
    everything = json.loads(out)
    assert everything["checked"] == everything["referenced"]
    assert sorted(everything["problems"]) == sorted([changed, grown])
    assert everything["failing_versions"] == ["model:churn:v2", "model:fraud:v5"]


def test_every_artifact_the_log_names_is_checked(reg: Registry) -> None:
    """Lockfiles, deployment configs and verification summaries are named only in event
    metadata; they are checked like model files and are never orphans."""
    environment = first(reg, subject_type="environment", action="register")
    lockfile = environment.metadata["lockfiles"]["requirements.txt"]
    config = first(reg, action="deploy").metadata["config_sha256"]
    promotion = first(reg, action="promote")
    summary = promotion.metadata["verification_attestation"]
    assert {lockfile, config, summary}.isdisjoint(reg.reconcile()["orphans"])
    assert isinstance(reg.store, LocalArtifactStore)

    reg.store.path_of(lockfile).unlink()
    report = reg.reconcile()

    assert report["problems"] == {lockfile: "missing from storage"}
    assert report["failing_versions"] == []


def test_orphans_are_listed_but_are_not_problems(reg: Registry) -> None:
    stray = reg.store.put_bytes(b"uploaded by hand, referenced by no event\n").digest

    report = reg.reconcile()

    assert stray in report["orphans"]
    assert report["ok"]
    assert reg.event(report["event"]).metadata["orphans"] == len(report["orphans"])


# -- alerts ---------------------------------------------------------------------------------


ALERT_SCRIPT = """\
import sys

with open(sys.argv[1], "wb") as out:
    out.write(sys.stdin.buffer.read())
"""


def test_alert_command_gets_the_json_report_on_stdin(
    root: Path, weights: tuple[str, Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest, path, original = weights
    script = tmp_path / "page_oncall.py"
    script.write_text(ALERT_SCRIPT)
    received = tmp_path / "alert.json"
    command = f"{sys.executable} {script} {received}"
    assert cli(root, capsys, "reconcile", "--alert-command", command)[0] == 0
    assert not received.exists()  # nothing to alert about
    overwrite(path, same_size_change(original))

    code, out, _ = cli(root, capsys, "reconcile", "--alert-command", command, "--json")

    assert code == 7
    alert = json.loads(received.read_bytes())
    assert alert == json.loads(out)
    assert list(alert["problems"]) == [digest]
    assert alert["failing_versions"] == [V2]


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """An HTTP server on 127.0.0.1 that records each POST: (path, content type, body)."""
    posts: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, self.headers["Content-Type"], body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads `posts`."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/registry", posts
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_webhook_receives_the_json_report(
    root: Path,
    weights: tuple[str, Path, bytes],
    receiver: tuple[str, list[tuple[str, str, bytes]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, posts = receiver
    digest, path, _ = weights
    assert cli(root, capsys, "reconcile", "--webhook", url)[0] == 0
    assert posts == []
    path.unlink()

    code, out, _ = cli(root, capsys, "reconcile", "--webhook", url, "--json")

    assert code == 7
    assert [(p, t) for p, t, _ in posts] == [("/hooks/registry", "application/json")]
    report = json.loads(posts[0][2])
    assert report == json.loads(out)
    assert report["problems"] == {digest: "missing from storage"}


def test_a_failing_alert_is_an_error_but_the_reconciliation_is_logged(
    reg: Registry, weights: tuple[str, Path, bytes], tmp_path: Path
) -> None:
    _, path, _ = weights
    path.unlink()
    size = reg.log.size()
    with pytest.raises(InvalidInputError, match="must be an http"):
        reg.reconcile(webhook="ftp://127.0.0.1/hook")
    with pytest.raises(StorageError, match="could not run"):
        reg.reconcile(alert_command=str(tmp_path / "no-such-pager"))

    assert reg.log.size() == size + 2
    assert [e.action for e in reg.events(EventFilter(start=size))] == ["reconcile", "reconcile"]
