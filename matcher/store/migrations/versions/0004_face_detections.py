"""Faces keep their detection (the detector's name and its five keypoints), so a reindex to a
model that uses the same detector embeds stored faces again without detecting them again.

Faces stored before this revision have neither: a reindex detects their photos again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("faces", sa.Column("detector", sa.String(length=32), nullable=True))
    op.add_column("faces", sa.Column("keypoints", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("keypoints")
        batch.drop_column("detector")
