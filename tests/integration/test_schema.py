"""The migrations build exactly the schema the code declares, on both dialects."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from mltrail.canonical import canonicalize
from mltrail.errors import AccessDeniedError, ConfigError, StorageError
from mltrail.events import Actor
from mltrail.ledger import merkle
from mltrail.service import Registry
from mltrail.storage import migrate
from mltrail.storage.database import Database
from mltrail.storage.migrate import current_revision, head_revision, upgrade
from mltrail.storage.schema import LEDGER_NODES_MIN_LEVEL, metadata

FIX = (
    "the schema in mltrail/storage/schema.py and the migrations disagree; add a revision with "
    "alembic's autogenerate against a database at head (see storage/migrate.py) and review it"
)


def test_migrations_match_the_declared_schema(database_url: str) -> None:
    db = Database.connect(database_url)
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"{FIX}:\n" + "\n".join(map(str, diff))
        assert current_revision(db) == head_revision()
    finally:
        db.dispose()


def test_upgrade_twice_is_harmless(database_url: str) -> None:
    db = Database.connect(database_url)
    try:
        upgrade(db)
        upgrade(db)
        assert current_revision(db) == head_revision()
    finally:
        db.dispose()


def test_logged_predictions_survive_migration_0004_both_ways(
    registry: Registry, tmp_path: Path
) -> None:
    """Down to 0003 each prediction row gets its record digest back; up again the digests
    move into their batch, and the predictions still prove and rebuild."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.json").write_text("[1]")
    registry.register_model("churn")
    registry.add_version("churn", model)
    registry.deploy("D45", "churn:v1", target="k8s/prod")
    registry.log_predictions(
        [
            {"prediction_id": f"P{i}", "deployment": "D45", "input": i, "output": 0.5}
            for i in range(5)
        ]
    )
    config = _config(registry)

    with registry.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
        rows = conn.execute(sa.text("SELECT record, record_sha256 FROM catalog_predictions"))
        assert all(hashlib.sha256(bytes(r)).digest() == bytes(d) for r, d in rows)
    with registry.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")

    assert registry.prove_prediction("P3")["batch"]["index"] == 3
    assert registry.rebuild()["equal"]


def test_migration_0007_moves_records_out_of_prediction_rows_and_back(
    registry: Registry, tmp_path: Path
) -> None:
    """Down to 0006 each prediction row holds its record again, copied from its batch's
    records artifact; up again the rows point into it exactly as an ingest writes them,
    and traces and proofs are unchanged."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.json").write_text("[1]")
    registry.register_model("churn")
    registry.add_version("churn", model)
    for deployment in ("D1", "D2"):
        registry.deploy(deployment, "churn:v1", target=f"k8s/{deployment}")
    registry.log_predictions(
        {"prediction_id": f"P{i}", "deployment": f"D{1 + i % 2}", "input": i, "output": [i]}
        for i in range(9)
    )
    rows = "SELECT * FROM catalog_predictions ORDER BY prediction_id"
    with registry.db.engine.connect() as conn:
        before = [tuple(r) for r in conn.execute(sa.text(rows))]
    proofs = {f"P{i}": registry.prove_prediction(f"P{i}") for i in range(9)}

    _set_revision(registry, "0006")
    with registry.db.engine.connect() as conn:
        old = conn.execute(
            sa.text("SELECT prediction_id, position, record FROM catalog_predictions")
        )
        held = {pid: (position, bytes(record)) for pid, position, record in old}
    assert held == {
        pid: (proof["batch"]["index"], canonicalize(proof["record"]))
        for pid, proof in proofs.items()
    }
    migrate.upgrade(registry.db)

    with registry.db.engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text(rows))] == before
    assert {pid: registry.prove_prediction(pid) for pid in proofs} == proofs
    assert registry.trace_prediction("P4")["prediction"]["output"] == [4]
    assert registry.rebuild()["equal"]


def test_a_log_written_before_migration_0003_keeps_its_rows_and_verifies(
    registry: Registry,
) -> None:
    """Down to 0002 (BIGINT keys, the subject index back) and up again: on SQLite the
    ledger tables are rebuilt, so every row must come through, the triggers must be
    reinstalled, and the log must still verify and take appends."""
    registry.register_model("churn")
    registry.register_model("fraud")
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    count = "SELECT count(*), max(seq) FROM ledger_events"
    with registry.db.engine.connect() as conn:
        before = conn.execute(sa.text(count)).one()

    with registry.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    migrate.upgrade(registry.db)

    with registry.db.engine.connect() as conn:
        assert conn.execute(sa.text(count)).one() == before
    assert registry.verify().ok
    registry.register_model("credit")
    assert registry.verify().ok
    with pytest.raises(StorageError, match="append-only"), registry.db.write() as conn:
        conn.execute(sa.text("DELETE FROM ledger_events WHERE seq = 0"))


def test_migration_0005_keeps_only_high_subtrees_and_proofs_still_hold(
    registry: Registry,
) -> None:
    """Down to 0004 every subtree is stored again (rehashed from the digests), as a 0004 log
    stored them; up again only levels >= 4 remain, and proofs equal those from the leaves."""
    for i in range(40):
        registry.register_model(f"m{i}")
    log = registry.log
    nodes = "SELECT level, idx, hash FROM ledger_nodes ORDER BY level, idx"
    with registry.db.engine.connect() as conn:
        before = [tuple(r) for r in conn.execute(sa.text(nodes))]
    assert before and min(level for level, _, _ in before) == LEDGER_NODES_MIN_LEVEL
    leaves = [merkle.leaf_hash(bytes.fromhex(e.event_sha256)) for e in log.events()]
    levels = merkle.subtree_levels(leaves)

    _set_revision(registry, "0004")
    with registry.db.engine.connect() as conn:
        every = [tuple(r) for r in conn.execute(sa.text(nodes))]
    assert every == [
        (lv, idx, node) for lv in range(1, len(levels)) for idx, node in enumerate(levels[lv])
    ]
    migrate.upgrade(registry.db)

    with registry.db.engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text(nodes))] == before
    size = len(leaves)
    for i in (0, 7, 21, size - 1):
        assert log.inclusion_proof(i, size) == merkle.inclusion_proof(leaves, i)
        assert log.consistency_proof(i + 1, size) == merkle.consistency_proof(leaves, i + 1)
    assert registry.verify().ok


def _config(registry: Registry) -> Config:
    """Alembic's configuration as `migrate` makes it, with the artifact reader a downgrade
    below 0007 needs."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    config.attributes["read_artifact"] = registry.store.read_bytes
    return config


def _set_revision(registry: Registry, revision: str) -> None:
    config = _config(registry)
    with registry.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_an_older_registry_is_refused_until_an_admin_upgrades_it(
    registry: Registry,
) -> None:
    registry.register_model("churn")
    root, admin, size = registry.root, registry.actor, registry.log.size()
    _set_revision(registry, "0002")
    registry.close()

    with pytest.raises(ConfigError, match="schema revision 0002") as refused:
        Registry.open(root)
    assert "mltrail upgrade" in refused.value.hint()

    with pytest.raises(AccessDeniedError):  # a non-admin cannot, and changes nothing
        Registry.upgrade(root, actor=Actor("user", "mallory"))
    with pytest.raises(ConfigError, match="schema revision 0002"):
        Registry.open(root)

    done = Registry.upgrade(root, actor=admin)
    assert done is not None
    assert (done.event.action, done.event.subject.type) == ("upgrade", "registry")
    assert done.event.metadata["from_schema"] == "0002"
    assert done.event.metadata["to_schema"] == head_revision()
    assert Registry.upgrade(root, actor=admin) is None  # already current
    with Registry.open(root) as reopened:
        assert reopened.log.size() == size + 2  # mallory's refusal, then the upgrade
        assert reopened.verify().ok
        assert [e.subject.id for e in reopened.history("model", "churn")] == ["churn"]


def test_a_registry_a_newer_mltrail_upgraded_is_refused(registry: Registry) -> None:
    root = registry.root
    with registry.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    registry.close()

    for attempt in (Registry.open, Registry.upgrade):
        with pytest.raises(ConfigError, match="does not know") as refused:
            attempt(root)
        assert "newer version" in refused.value.hint()
