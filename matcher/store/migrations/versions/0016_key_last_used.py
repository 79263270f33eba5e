"""API keys get the moment they were last used (issue 21, item 5).

An operator deciding which key to revoke asks first whether anything still uses it. The column
is nullable (never used, or not since this revision) and written at most once a minute per key
(matcher/service/key_use.py), so an authenticated request seldom writes the store.

Adding a nullable column needs no table copy; dropping it on SQLite does (batch mode, keeping
the AUTOINCREMENT of revision 0007).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None

NO_ID_REUSE = {"sqlite_autoincrement": True}  # revision 0007: keep it through a table copy


def upgrade() -> None:
    op.add_column("api_keys",
                  sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_column("last_used_at")
