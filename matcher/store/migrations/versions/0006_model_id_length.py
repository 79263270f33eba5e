"""Model ids get room for 128 characters (from 64) in face_vectors and candidates.

A projected ensemble's id is already 62 characters (`<base>+proj-<12 hex>`); one more suffix
would have been refused by PostgreSQL alone, since SQLite does not enforce the length. Going
down fails on PostgreSQL while any stored id is longer than 64, which keeps it rather than
cutting it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("face_vectors", "candidates")


def _resize_model_id(old: int, new: int) -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("model_id", existing_type=sa.String(length=old),
                               type_=sa.String(length=new), existing_nullable=False)


def upgrade() -> None:
    _resize_model_id(64, 128)


def downgrade() -> None:
    _resize_model_id(128, 64)
