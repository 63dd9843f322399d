"""Index catalog versions by (model, manifest digest).

Every registration of a version asks whether the same files from the same run are
registered already (`mltrail.catalog.queries.version_slot`). The only index on the model
was (model, number), so that question read every version of the model: about 80 µs at
600 versions, and growing with each one. With this index it is one lookup.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_versions_manifest", "catalog_versions", ["model", "manifest_sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_versions_manifest", table_name="catalog_versions")
