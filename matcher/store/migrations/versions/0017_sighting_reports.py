"""Tips that repeat (issue 22, item 6): the reports of a sighting, and burst groups.

The same photo sent twice was two sightings, each with its own candidates: investigators
reviewed it twice. `sighting_reports` keeps each upload of a sighting's photo (who sent it,
when, from where, with what words); every sighting stored before gets the report of its own
upload. `sightings.phash` (a perceptual hash of the photo) and `sightings.burst_of` (the first
sighting of its group) link near-identical photos of one moment.

SQLite adds a column with a foreign key only by copying the table (batch mode, keeping the
AUTOINCREMENT of revision 0007).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None

NO_ID_REUSE = {"sqlite_autoincrement": True}  # revision 0007: keep it through a table copy
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COPIED = ("uploaded_at", "taken_at", "lat", "lon", "app", "api_key_id", "reporter_contact",
          "note", "alert_case_id")


def upgrade() -> None:
    with op.batch_alter_table("sightings", table_kwargs=NO_ID_REUSE) as batch:
        batch.add_column(sa.Column("phash", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("burst_of", Id, nullable=True))
        batch.create_foreign_key(op.f("fk_sightings_burst_of_sightings"), "sightings",
                                 ["burst_of"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_sightings_burst_of", ["burst_of"])
    op.create_table(
        "sighting_reports",
        sa.Column("id", Id, nullable=False),
        sa.Column("sighting_id", Id, nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("app", sa.String(length=200), nullable=False),
        sa.Column("api_key_id", Id, nullable=True),
        sa.Column("reporter_contact", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("alert_case_id", Id, nullable=True),
        sa.CheckConstraint("lat IS NULL OR (lat >= -90 AND lat <= 90)",
                           name=op.f("ck_sighting_reports_lat")),
        sa.CheckConstraint("lon IS NULL OR (lon >= -180 AND lon <= 180)",
                           name=op.f("ck_sighting_reports_lon")),
        sa.CheckConstraint("(lat IS NULL) = (lon IS NULL)",
                           name=op.f("ck_sighting_reports_lat_lon_together")),
        sa.ForeignKeyConstraint(["sighting_id"], ["sightings.id"], ondelete="CASCADE",
                                name=op.f("fk_sighting_reports_sighting_id_sightings")),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], ondelete="SET NULL",
                                name=op.f("fk_sighting_reports_api_key_id_api_keys")),
        sa.ForeignKeyConstraint(["alert_case_id"], ["cases.id"], ondelete="SET NULL",
                                name=op.f("fk_sighting_reports_alert_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sighting_reports")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sighting_reports_sighting_id_id", "sighting_reports",
                    ["sighting_id", "id"])
    columns = ", ".join(COPIED)
    op.execute(f"INSERT INTO sighting_reports (sighting_id, {columns}) "
               f"SELECT id, {columns} FROM sightings ORDER BY id")


def downgrade() -> None:
    op.drop_index("ix_sighting_reports_sighting_id_id", table_name="sighting_reports")
    op.drop_table("sighting_reports")
    with op.batch_alter_table("sightings", table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_index("ix_sightings_burst_of")
        batch.drop_constraint(op.f("fk_sightings_burst_of_sightings"), type_="foreignkey")
        batch.drop_column("burst_of")
        batch.drop_column("phash")
