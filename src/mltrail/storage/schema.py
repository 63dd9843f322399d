"""The SQL schema, one for both dialects (SQLAlchemy Core).

Ledger tables (`ledger_*`) are insert-only: triggers on SQLite and PostgreSQL refuse
UPDATE, DELETE and TRUNCATE (see `triggers.py`). Every other table is a projection of the
log that `mltrail rebuild` re-derives.

>>> sorted(t for t in metadata.tables if t.startswith("ledger_"))
['ledger_checkpoints', 'ledger_events', 'ledger_meta', 'ledger_nodes']
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# A 64-bit sequence number. On SQLite it is declared INTEGER, so that as a primary key it is
# the table's rowid: one B-tree instead of a rowid table plus a separate key index, which
# roughly halves the cost of each insert into the log.
Sequence64 = BigInteger().with_variant(Integer(), "sqlite")

# -- the ledger (insert-only) ------------------------------------------------------------------

ledger_events = Table(
    "ledger_events",
    metadata,
    # seq is the 0-based Merkle leaf index; gapless because appends are serialized.
    Column("seq", Sequence64, primary_key=True, autoincrement=False),
    Column("event_id", Text, nullable=False, unique=True),
    # SHA-256 of `body`; the Merkle leaf data (DESIGN §2: the 32-byte digest).
    Column("event_sha256", LargeBinary, nullable=False),
    Column("body", LargeBinary, nullable=False),  # RFC 8785 canonical bytes: the record
    # Derived from `body` for queries; `verify` checks them against the bytes.
    Column("action", Text, nullable=False),
    Column("actor_id", Text, nullable=False),
    Column("subject_type", Text, nullable=False),
    Column("subject_id", Text, nullable=False),
    Column("ts", Text, nullable=False),
)
# No index on the subject: it would take a random insert on every append and grow with the
# log. The registry finds a subject's events through `event_refs` (see `Log.events`).
Index("ix_ledger_events_ts", ledger_events.c.ts)

LEDGER_NODES_MIN_LEVEL = 4
"""Subtrees below this level are not stored: a proof rehashes one from at most 2**4 leaf
digests read in one range, and an append writes a sixteenth as many node rows."""

ledger_nodes = Table(
    "ledger_nodes",
    metadata,
    # Hash of the complete subtree (level, idx) covering leaves [idx*2^level, (idx+1)*2^level)
    # for level >= LEDGER_NODES_MIN_LEVEL; lower levels are rehashed from
    # ledger_events.event_sha256 when a proof needs them.
    Column("level", SmallInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    PrimaryKeyConstraint("level", "idx"),
    sqlite_with_rowid=False,
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("size", Sequence64, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),  # C2SP signed note
    Column("created_at", Text, nullable=False),
)

ledger_meta = Table(
    "ledger_meta",
    metadata,
    # Write-once facts about this log: origin, verifier key, secrets' key ids.
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

LEDGER_TABLES = ("ledger_events", "ledger_nodes", "ledger_checkpoints", "ledger_meta")

# -- projections (rebuilt from the log by `mltrail rebuild`) --------------------------------------

PROJECTION_TABLES: list[Table] = []


def _projection(
    name: str,
    *items: Column[object] | Index | PrimaryKeyConstraint | UniqueConstraint,
    **options: Any,
) -> Table:
    table = Table(name, metadata, *items, **options)
    PROJECTION_TABLES.append(table)
    return table


# Every catalog row remembers the event that made it (`seq`) and a digest of the content
# it was registered with, so re-registering identical content is a no-op and different
# content under the same id is refused.
datasets = _projection(
    "catalog_datasets",
    Column("dataset_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("uri", Text),
    Column("digest", Text),  # SHA-256 of the dataset's manifest
    Column("files", Integer),
    Column("size", BigInteger),
    Column("content_sha256", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

commits = _projection(
    "catalog_commits",
    Column("commit_id", Text, primary_key=True),
    Column("repository", Text, nullable=False),
    Column("dirty", Integer, nullable=False),
    Column("diff_sha256", Text),
    Column("content_sha256", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

environments = _projection(
    "catalog_environments",
    Column("environment_id", Text, primary_key=True),  # "sha256:<fingerprint digest>"
    Column("python", Text),
    Column("platform", Text),
    Column("lockfile_sha256", Text),
    Column("image_digest", Text),
    Column("document_sha256", Text, nullable=False),  # the fingerprint JSON in the store
    Column("content_sha256", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

runs = _projection(
    "catalog_runs",
    Column("run_id", Text, primary_key=True),
    Column("params", Text, nullable=False),  # canonical JSON
    Column("metrics", Text, nullable=False),  # canonical JSON
    Column("commit_id", Text),
    Column("environment_id", Text),
    Column("status", Text, nullable=False),
    Column("started_at", Text),
    Column("ended_at", Text),
    Column("author", Text),
    Column("content_sha256", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

models = _projection(
    "catalog_models",
    Column("name", Text, primary_key=True),
    Column("description", Text),
    Column("owner", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

versions = _projection(
    "catalog_versions",
    Column("version_id", Text, primary_key=True),  # model:<name>:v<number>
    Column("model", Text, nullable=False),
    Column("number", Integer, nullable=False),
    Column("manifest_sha256", Text, nullable=False),
    Column("run_id", Text),
    Column("entrypoint", Text),
    Column("stage", Text, nullable=False),
    Column("registered_by", Text, nullable=False),
    Column(
        "flags", Text, nullable=False
    ),  # canonical JSON list: integrity_failed, override_pending…
    Column("seq", BigInteger, nullable=False),
    Column("stage_seq", BigInteger, nullable=False),
    UniqueConstraint("model", "number"),
)
# Registering a version asks whether the same files from the same run are registered
# already; without this index that is a scan of every version of the model.
Index("ix_versions_manifest", versions.c.model, versions.c.manifest_sha256)

aliases = _projection(
    "catalog_aliases",
    Column("model", Text, nullable=False),
    Column("alias", Text, nullable=False),
    Column("version_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("model", "alias"),
)

deployments = _projection(
    "catalog_deployments",
    Column("deployment_id", Text, primary_key=True),
    Column("version_id", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("config_sha256", Text),
    Column("status", Text, nullable=False),  # active, retired
    Column("seq", BigInteger, nullable=False),
)

prediction_batches = _projection(
    "catalog_prediction_batches",
    Column("batch_id", Text, primary_key=True),
    Column("deployment_id", Text, nullable=False),
    Column("version_id", Text, nullable=False),
    Column("count", Integer, nullable=False),
    Column("root", Text, nullable=False),  # hex Merkle root over the batch's records
    Column("first_at", Text, nullable=False),
    Column("last_at", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    # The records' SHA-256 digests in leaf order, 32 bytes each (the tree's leaf data), set
    # by the ingest that projects the records: a proof reads one row, not one per record.
    Column("digests", LargeBinary),
    # The artifact holding the batch's canonical records, newline-separated in leaf order
    # (the event's artifact_sha256): each prediction row points into it.
    Column("records_sha256", Text, nullable=False),
)
Index("ix_batches_version", prediction_batches.c.version_id)
Index("ix_batches_deployment", prediction_batches.c.deployment_id)
Index("ix_batches_seq", prediction_batches.c.seq, unique=True)

# The table that grows fastest, a row per prediction, holds only where the record is, not
# the record (its batch's records artifact holds that): a narrow row keyed by the id alone
# (no rowid on SQLite) is one B-tree insert of about 40 bytes per prediction.
predictions = _projection(
    "catalog_predictions",
    Column("prediction_id", Text, primary_key=True),
    Column("batch_seq", BigInteger, nullable=False),  # the batch's log_predictions event
    Column("position", Integer, nullable=False),  # leaf index inside the batch's tree
    Column("record_offset", BigInteger, nullable=False),  # its bytes in the records artifact
    Column("record_size", Integer, nullable=False),
    sqlite_with_rowid=False,
)

event_refs = _projection(
    "event_refs",
    # Every subject and related reference of every event: `mltrail history` in one lookup.
    Column("ref_type", Text, nullable=False),
    Column("ref_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("ref_type", "ref_id", "seq"),
)

lineage_edges = _projection(
    "lineage_edges",
    Column("src_type", Text, nullable=False),
    Column("src_id", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("dst_type", Text, nullable=False),
    Column("dst_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("src_type", "src_id", "role", "dst_type", "dst_id"),
)
Index("ix_lineage_dst", lineage_edges.c.dst_type, lineage_edges.c.dst_id)

# -- governance ----------------------------------------------------------------------------------

principals = _projection(
    "access_principals",
    Column("principal_id", Text, primary_key=True),
    Column("type", Text, nullable=False),  # user, service
    Column("display_name", Text, nullable=False),
    Column("roles", Text, nullable=False),  # canonical JSON list of global roles
    Column("status", Text, nullable=False),  # active, revoked
    Column("seq", BigInteger, nullable=False),
)

principal_keys = _projection(
    "access_keys",
    Column("key_id", Text, primary_key=True),
    Column("principal_id", Text, nullable=False),
    Column("algorithm", Text, nullable=False),
    Column("public_key", Text, nullable=False),  # PEM
    Column("status", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

grants = _projection(
    "access_grants",
    Column("principal_id", Text, nullable=False),
    Column("scope", Text, nullable=False),  # a model name, or "*" for every model
    Column("role", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("principal_id", "scope", "role"),
)

tokens = _projection(
    "access_tokens",
    Column("token_sha256", Text, primary_key=True),  # only the hash of an API token is kept
    Column("principal_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

policies = _projection(
    "policy_documents",
    Column("scope", Text, nullable=False),  # a model name, or "*"
    Column("stage", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("document_sha256", Text, nullable=False),
    Column("document", Text, nullable=False),  # canonical JSON of the parsed YAML
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("scope", "stage"),
)

attestations = _projection(
    "attest_attestations",
    Column("envelope_sha256", Text, primary_key=True),
    Column("subject_type", Text, nullable=False),
    Column("subject_id", Text, nullable=False),
    Column("subject_sha256", Text, nullable=False),
    Column("predicate_type", Text, nullable=False),
    Column("name", Text),  # test name: fairness, drift, unit-tests…
    Column("result", Text),
    Column("signer_key_id", Text, nullable=False),
    Column("signer", Text, nullable=False),
    Column("issued_at", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)
Index("ix_attestations_subject", attestations.c.subject_type, attestations.c.subject_id)

approvals = _projection(
    "governance_approvals",
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("version_id", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("approver", Text, nullable=False),
    Column("meaning", Text, nullable=False),
    Column("version_sha256", Text, nullable=False),
    Column("kind", Text, nullable=False),  # manual, automated
    Column("signed", Integer, nullable=False),
    Column("at", Text, nullable=False),
)
Index("ix_approvals_version", approvals.c.version_id, approvals.c.stage)

holds = _projection(
    "privacy_holds",
    Column("subject", Text, primary_key=True),  # TYPE:ID or a data-subject key hash
    Column("reason", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

# -- the payload store (not a projection: erasable, never hashed into the log) ------------------

payloads = Table(
    "payload_store",
    metadata,
    # Raw values kept for reproduction (prediction inputs); the log holds only their HMAC.
    Column("payload_id", Text, primary_key=True),  # e.g. prediction:P123:input
    Column("record_class", Text, nullable=False),  # retention class: prediction_input, …
    Column("subject_key", Text),  # keyed hash of the data subject, for erasure requests
    Column("created_at", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),  # canonical JSON
)
Index("ix_payloads_subject", payloads.c.subject_key)
Index("ix_payloads_class_created", payloads.c.record_class, payloads.c.created_at)
