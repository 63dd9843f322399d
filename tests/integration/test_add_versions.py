"""Registering many versions in one call: `Registry.add_versions`, `mltrail model add-versions`.

A batch must end exactly as `add_version` called once per item, in order, would end, with
two differences: it is all or nothing, and it is one append, so the whole batch shares
one durable commit and one signed checkpoint (group commit).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mltrail.artifacts.manifest import Manifest
from mltrail.canonical import canonicalize
from mltrail.cli.main import main
from mltrail.errors import InvalidInputError, NotFoundError, RegistryError
from mltrail.events import Event
from mltrail.service import MAX_VERSIONS_PER_CALL, Registry, VersionSpec
from mltrail.storage.schema import ledger_checkpoints

MODEL = "churn"


def _folder(work: Path, tag: str) -> Path:
    folder = work / f"model-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.json").write_text(json.dumps({"tag": tag, "w": [0.5, -1]}))
    return folder


def _stored(reg: Registry, folder: Path) -> str:
    """Store ``folder``'s files and their manifest; the manifest's SHA-256."""
    found = Manifest.from_directory(folder, reg.store)
    return reg.store.put_bytes(canonicalize(found.to_dict())).digest


def _world(reg: Registry, work: Path) -> list[VersionSpec]:
    """Runs R1 and R2, model churn with v1 (files "a" from R1), and a batch of six items."""
    reg.register_run("R1")
    reg.register_run("R2")
    reg.register_model(MODEL)
    reg.add_version(MODEL, _folder(work, "a"), run="R1")
    return [
        VersionSpec(path=_folder(work, "b"), run="R1", entrypoint="score.py:predict"),
        VersionSpec(manifest=_stored(reg, _folder(work, "c"))),
        VersionSpec(path=_folder(work, "a"), run="R1"),  # registered before the batch: v1
        VersionSpec(path=_folder(work, "b"), run="R1"),  # the first item again: v2
        VersionSpec(path=_folder(work, "a"), run="R2"),  # v1's files from another run: new
        VersionSpec(manifest=_stored(reg, _folder(work, "d")), run="R2", entrypoint="m:f"),
    ]


EXPECTED = ["v2", "v3", "v1", "v2", "v4", "v5"]
NEW = 4  # v2 … v5


def _ids(done: list[Any]) -> list[str]:
    return [d.event.subject.id.removeprefix(f"model:{MODEL}:") for d in done]


def _content(event: Event) -> tuple[Any, ...]:
    """An event without what differs between two registries doing the same (id, time)."""
    return (
        event.seq,
        event.action,
        event.actor,
        event.subject,
        event.related,
        dict(event.metadata),
        event.artifact_sha256,
    )


def _checkpoints(reg: Registry) -> int:
    with reg.db.read() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(ledger_checkpoints)).one()[0]
        )


def _state(reg: Registry) -> tuple[int, str, int, list[dict[str, Any]]]:
    """Log size, latest signed checkpoint, checkpoints stored, the model's versions."""
    return reg.log.size(), reg.checkpoint()[1], _checkpoints(reg), reg.list_versions(MODEL)


# -- the service ------------------------------------------------------------------------------


def test_a_batch_ends_as_one_call_per_item_would(
    registry: Registry, make_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    """Compared with add_version item by item on a second registry (SQLite): same version
    ids, numbers, digests, events (but for ids and times) and projections."""
    sequential = make_registry(name="sequential")
    one_by_one = [
        sequential.add_version(
            MODEL, s.path, manifest=s.manifest, run=s.run, entrypoint=s.entrypoint
        )
        for s in _world(sequential, tmp_path / "sequential")
    ]

    batch = registry.add_versions(MODEL, _world(registry, tmp_path / "batch"))

    assert _ids(batch) == _ids(one_by_one) == EXPECTED
    assert [d.event.seq for d in batch] == [d.event.seq for d in one_by_one]
    assert [d.event.subject.digest for d in batch] == [d.event.subject.digest for d in one_by_one]
    assert registry.list_versions(MODEL) == sequential.list_versions(MODEL)
    assert [v["number"] for v in registry.list_versions(MODEL)] == [1, 2, 3, 4, 5]
    after_init = [_content(e) for e in registry.events() if e.action != "init"]
    assert after_init == [_content(e) for e in sequential.events() if e.action != "init"]
    assert registry.rebuild()["equal"]
    assert sequential.rebuild()["equal"]
    assert registry.verify().ok


def test_a_batch_is_one_append_under_one_signed_checkpoint(
    registry: Registry, tmp_path: Path
) -> None:
    specs = _world(registry, tmp_path)
    size, _, checkpoints, _ = _state(registry)

    done = registry.add_versions(MODEL, specs)

    assert registry.log.size() == size + NEW
    assert _checkpoints(registry) == checkpoints + 1
    new = [d for d in done if d.event.seq >= size]
    assert {d.receipt.checkpoint for d in new} == {registry.checkpoint()[1]}
    with pytest.raises(NotFoundError, match="no checkpoint was signed"):
        registry.log.checkpoint_at(size + 1)  # no tree head between the batch's events
    for d in done:
        d.receipt.verify([registry.verifier_key])


def test_repeated_items_get_the_event_registered_first(registry: Registry, tmp_path: Path) -> None:
    specs = _world(registry, tmp_path)
    v1 = registry.get_version(f"{MODEL}:v1")

    done = registry.add_versions(MODEL, specs)

    assert done[2].event.seq == v1["seq"], "v1's files from v1's run are v1"
    assert done[3].event == done[0].event, "an item repeated in the batch is registered once"
    assert done[3].event.metadata["entrypoint"] == "score.py:predict", "as first registered"
    assert done[2].receipt.index == v1["seq"]
    again = registry.add_versions(MODEL, specs)
    assert [d.event for d in again] == [d.event for d in done], "a batch repeated is a no-op"


def test_a_batch_of_one_is_add_version(registry: Registry, tmp_path: Path) -> None:
    specs = _world(registry, tmp_path)

    [done] = registry.add_versions(MODEL, specs[:1])

    assert done.event.subject.id == f"model:{MODEL}:v2"
    assert registry.add_version(MODEL, specs[0].path, run="R1").event == done.event


Specs = Callable[[list[VersionSpec], Path], list[VersionSpec]]

FAILING: list[tuple[str, Specs, type[RegistryError], str]] = [
    # (id, the batch made from _world's items and the work directory, error, message text)
    (
        "manifest-not-stored",
        lambda s, w: [s[0], VersionSpec(manifest="0" * 64, run="R1"), s[1]],
        NotFoundError,
        "item 2 of 3: artifact sha256:0000",
    ),
    (
        "directory-missing",
        lambda s, w: [s[0], VersionSpec(path=w / "nowhere"), s[1]],
        NotFoundError,
        "item 2 of 3: directory",
    ),
    (
        "neither-path-nor-manifest",
        lambda s, w: [s[0], VersionSpec(run="R1"), s[1]],
        InvalidInputError,
        "item 2 of 3: a version needs exactly one of a directory or a stored manifest",
    ),
    (
        "run-not-registered",
        lambda s, w: [s[0], VersionSpec(path=_folder(w, "e"), run="R999"), s[1]],
        NotFoundError,
        "run 'R999' is not registered",
    ),
    ("empty", lambda s, w: [], InvalidInputError, "no versions to register"),
    (
        "over-the-limit",
        lambda s, w: [s[1]] * (MAX_VERSIONS_PER_CALL + 1),
        InvalidInputError,
        f"the limit is {MAX_VERSIONS_PER_CALL}",
    ),
]


@pytest.mark.parametrize(
    ("batch", "error", "named"), [c[1:] for c in FAILING], ids=[c[0] for c in FAILING]
)
def test_a_refused_batch_writes_nothing(
    registry: Registry,
    tmp_path: Path,
    batch: Specs,
    error: type[RegistryError],
    named: str,
) -> None:
    specs = _world(registry, tmp_path)
    before = _state(registry)

    with pytest.raises(error) as caught:
        registry.add_versions(MODEL, batch(specs, tmp_path))

    assert type(caught.value) is error
    assert named in caught.value.message
    assert caught.value.hint()
    assert _state(registry) == before, "no event, checkpoint or projection row was written"
    assert registry.rebuild()["equal"]
    assert _ids(registry.add_versions(MODEL, specs[:2])) == ["v2", "v3"], "no number was used"


def test_a_batch_for_an_unregistered_model_writes_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    specs = _world(registry, tmp_path)
    before = registry.log.size(), registry.checkpoint()[1]

    with pytest.raises(NotFoundError, match="model 'ranker' is not registered"):
        registry.add_versions("ranker", specs)

    assert (registry.log.size(), registry.checkpoint()[1]) == before
    assert registry.rebuild()["equal"]


# -- the CLI ----------------------------------------------------------------------------------


def _cli(reg: Registry, *args: str) -> list[str]:
    return ["-r", str(reg.root), "--actor", "alice", *args]


def test_cli_registers_a_file_of_versions(
    sqlite_registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = sqlite_registry
    specs = _world(reg, tmp_path / "work")
    listed = tmp_path / "work" / "versions.jsonl"
    lines = [{**s.to_dict(), "path": s.path.name} if s.path else s.to_dict() for s in specs]
    listed.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")  # relative paths
    size = reg.log.size()

    code = main(_cli(reg, "model", "add-versions", MODEL, str(listed), "--json"))

    out, err = capsys.readouterr()
    assert code == 0, err
    rows = json.loads(out)
    assert [r["version"].removeprefix(f"model:{MODEL}:") for r in rows] == EXPECTED
    versions = {v["version_id"]: v for v in reg.list_versions(MODEL)}
    assert [r["manifest_sha256"] for r in rows] == [
        versions[r["version"]]["manifest_sha256"] for r in rows
    ]
    assert [r["event"] for r in rows] == [versions[r["version"]]["seq"] for r in rows]
    assert reg.log.size() == size + NEW

    as_list = tmp_path / "versions.json"
    as_list.write_text(json.dumps([s.to_dict() for s in specs]))  # absolute paths
    assert main(_cli(reg, "model", "add-versions", MODEL, str(as_list))) == 0
    out, _ = capsys.readouterr()
    assert "versions registered" in out and f"model:{MODEL}:v5" in out
    assert reg.log.size() == size + NEW, "the same versions again are a no-op"


CLI_BAD = [
    # (id, the file's text ({dir}: a directory holding model files), exit code, message text)
    ("not-json", '{"path": "{dir}"}\n{"path": \n', 2, "versions.txt, line 2: invalid JSON"),
    ("unknown-field", '{"path": "{dir}", "rnu": "R1"}\n', 2, "unknown version field 'rnu'"),
    ("not-an-object", '[{"path": "{dir}"}, 5]', 2, "versions.txt, item 2: a version should be"),
    ("not-a-string", '{"path": "{dir}", "run": 1}', 2, "version field 'run' should be a string"),
    ("empty", "\n\n", 2, "versions.txt lists no versions"),
    ("missing-run", '{"path": "{dir}"}\n{"path": "{dir}", "run": "R9"}\n', 3, "'R9'"),
    ("missing-manifest", '{"path": "{dir}"}\n{"manifest": "' + "0" * 64 + '"}', 3, "item 2 of 2"),
]


@pytest.mark.parametrize(
    ("text", "code", "named"), [c[1:] for c in CLI_BAD], ids=[c[0] for c in CLI_BAD]
)
def test_cli_refuses_a_bad_file_and_writes_nothing(
    sqlite_registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    code: int,
    named: str,
) -> None:
    reg = sqlite_registry
    reg.register_model(MODEL)
    listed = tmp_path / "versions.txt"
    listed.write_text(text.replace("{dir}", str(_folder(tmp_path, "x"))))
    before = _state(reg)

    exit_code = main(_cli(reg, "model", "add-versions", MODEL, str(listed)))

    out, err = capsys.readouterr()
    assert exit_code == code, err
    assert "error:" in err and "hint:" in err
    assert named in err
    assert "Traceback" not in out + err
    assert _state(reg) == before


def test_cli_refuses_a_file_that_is_not_text(
    sqlite_registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "versions.jsonl"
    listed.write_bytes(b"\xff\xfe{}")

    assert main(_cli(sqlite_registry, "model", "add-versions", MODEL, str(listed))) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_version_spec_round_trips() -> None:
    spec = VersionSpec(path=Path("models/v2"), run="R1", entrypoint="score.py:predict")

    assert VersionSpec.from_dict(spec.to_dict()) == spec
    assert VersionSpec.from_dict({"manifest": "ab" * 32}).to_dict() == {"manifest": "ab" * 32}
