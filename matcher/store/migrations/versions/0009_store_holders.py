"""Which processes hold the store: servers for their lifetime, a reindex for its run.

`store_holders` has one row per holder with a heartbeat (matcher/service/holders.py): a
reindex is refused while another reindex or a server it does not run in holds the store. A
`matcher reindex` swapped serving.json under a running server, and two at once raced to write
it (issue 19, defect 12).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "store_holders",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_holders")),
    )


def downgrade() -> None:
    op.drop_table("store_holders")
