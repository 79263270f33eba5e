"""Sightings that answer an alert (issue 22, item 5).

A tip app may say which alert its user answered ("I saw this child"): `sightings.alert_case_id`
(set to NULL if that case is erased) keeps it, and the candidates proposed for that case,
whatever their rank, are marked `candidates.reported_for_alert` (false for every earlier row),
so the review queue can list them.

SQLite adds a column with a foreign key only by copying the table (batch mode, keeping the
AUTOINCREMENT of revision 0007).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

NO_ID_REUSE = {"sqlite_autoincrement": True}  # revision 0007: keep it through a table copy
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sightings", table_kwargs=NO_ID_REUSE) as batch:
        batch.add_column(sa.Column("alert_case_id", Id, nullable=True))
        batch.create_foreign_key(op.f("fk_sightings_alert_case_id_cases"), "cases",
                                 ["alert_case_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_sightings_alert_case_id", ["alert_case_id"])
    op.add_column("candidates", sa.Column("reported_for_alert", sa.Boolean(), nullable=False,
                                          server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("candidates", table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_column("reported_for_alert")
    with op.batch_alter_table("sightings", table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_index("ix_sightings_alert_case_id")
        batch.drop_constraint(op.f("fk_sightings_alert_case_id_cases"), type_="foreignkey")
        batch.drop_column("alert_case_id")
