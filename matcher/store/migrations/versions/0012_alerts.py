"""Alerts with a lifecycle: issued for a case, widening with time, resolved (issue 22).

`alerts` holds each alert from its issue to its resolution, with the schedule of its area as
issued; `alert_sequence` is the one counter every alert change takes its number from, so a
tip app's `updated_since` cursor can say "every change up to n" (matcher/store/alerts.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", Id, nullable=False),
        sa.Column("case_id", Id, nullable=False),
        sa.Column("open_case_id", Id, nullable=True),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(length=200), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_seq", sa.BigInteger(), nullable=False),
        sa.Column("resolved_seq", sa.BigInteger(), nullable=True),
        sa.Column("changed_seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("category IN ('child', 'elderly')", name=op.f("ck_alerts_category")),
        sa.CheckConstraint("status IN ('active', 'resolved')", name=op.f("ck_alerts_status")),
        sa.CheckConstraint("outcome IN ('found', 'cancelled')", name=op.f("ck_alerts_outcome")),
        sa.CheckConstraint("(status = 'active') = (outcome IS NULL)",
                           name=op.f("ck_alerts_outcome_when_resolved")),
        sa.CheckConstraint("(status = 'active') = (resolved_at IS NULL)",
                           name=op.f("ck_alerts_resolved_at")),
        sa.CheckConstraint("(status = 'active') = (resolved_seq IS NULL)",
                           name=op.f("ck_alerts_resolved_seq")),
        sa.CheckConstraint("(status = 'active') = (open_case_id IS NOT NULL) AND "
                           "(open_case_id IS NULL OR open_case_id = case_id)",
                           name=op.f("ck_alerts_open_case_id")),
        sa.CheckConstraint("lat IS NULL OR (lat >= -90 AND lat <= 90)", name=op.f("ck_alerts_lat")),
        sa.CheckConstraint("lon IS NULL OR (lon >= -180 AND lon <= 180)",
                           name=op.f("ck_alerts_lon")),
        sa.CheckConstraint("(lat IS NULL) = (lon IS NULL)",
                           name=op.f("ck_alerts_lat_lon_together")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("open_case_id", name="uq_alerts_open_case_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_alerts_case_id", "alerts", ["case_id"])
    op.create_index("ix_alerts_changed_seq", "alerts", ["changed_seq"])
    sequence = op.create_table(
        "alert_sequence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_sequence")),
    )
    op.bulk_insert(sequence, [{"id": 1, "value": 0}])


def downgrade() -> None:
    op.drop_table("alert_sequence")
    op.drop_index("ix_alerts_changed_seq", table_name="alerts")
    op.drop_index("ix_alerts_case_id", table_name="alerts")
    op.drop_table("alerts")
