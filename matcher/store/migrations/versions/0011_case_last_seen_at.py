"""Cases get the moment the person was last seen, not only the day they went missing.

An alert's area widens by the hour (issue 22) and an investigator weighs a sighting by the hours
since the person was last seen: `missing_since` (a date) cannot say either. `last_seen_at` is
nullable: cases registered before it keep their day only, and an alert asks for the moment.

Adding a nullable column needs no table copy; dropping it on SQLite does (batch mode, keeping
the AUTOINCREMENT of revision 0007).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

NO_ID_REUSE = {"sqlite_autoincrement": True}  # revision 0007: keep it through a table copy


def upgrade() -> None:
    op.add_column("cases", sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases", table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_column("last_seen_at")
