"""Alerts tell apps and partners when what they show changed (issue 22).

A case manager who corrects a name, adds a better photo or stops publishing a field changes
what every app shows of an active alert; apps that poll with `updated_since`, and partners'
webhooks, must hear of it as they hear of an issue or a resolution. `alerts.updated_seq` is the
change number of the alert's latest such edit (None: none since it was issued), and a
partner's delivery may be of the kind `updated`.

Adding a nullable column needs no table copy; the kind's CHECK and dropping the column on
SQLite do (batch mode, keeping the AUTOINCREMENT of revision 0007). Going down, the `updated`
events not yet delivered are dropped (the older schema cannot hold them; the alert itself, as
apps read it, is unchanged).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | None = None
depends_on: str | None = None

NO_ID_REUSE = {"sqlite_autoincrement": True}  # revision 0007: keep it through a table copy
KINDS = ("issued", "widened", "resolved")


def _kinds(words: tuple[str, ...]) -> None:
    listed = ", ".join(f"'{word}'" for word in words)
    with op.batch_alter_table("partner_deliveries", table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_constraint(op.f("ck_partner_deliveries_kind"), type_="check")
        batch.create_check_constraint("kind", f"kind IN ({listed})")


def upgrade() -> None:
    op.add_column("alerts", sa.Column("updated_seq", sa.BigInteger(), nullable=True))
    _kinds((*KINDS, "updated"))


def downgrade() -> None:
    op.execute("DELETE FROM partner_deliveries WHERE kind = 'updated'")
    _kinds(KINDS)
    with op.batch_alter_table("alerts", table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_column("updated_seq")
