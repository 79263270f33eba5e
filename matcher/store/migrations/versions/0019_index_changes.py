"""The index change log: several serving processes keep their indexes equal to the store
(issue 23).

Every change to the faces that can be matched is a row of `index_changes`, numbered in commit
order (matcher/store/index_log.py); each process applies the rows it has not seen. The log
starts empty: a process that starts reads its indexes from the store, as before.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | None = None
depends_on: str | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KINDS = ("case_faces", "case_in", "case_out", "case_faces_gone", "sighting_faces",
         "sighting_faces_gone")


def upgrade() -> None:
    listed = ", ".join(f"'{kind}'" for kind in KINDS)
    op.create_table(
        "index_changes",
        sa.Column("id", Id, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.Column("face_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN ({listed})", name=op.f("ck_index_changes_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_changes")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_index_changes_created_at", "index_changes", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_index_changes_created_at", table_name="index_changes")
    op.drop_table("index_changes")
