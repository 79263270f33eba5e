"""Partners and the outbox of their webhook deliveries (issue 22, item 4).

`partners` holds each partner app (webhook URL, HMAC secret, categories, optional home area);
`partner_deliveries` each alert event for each partner, committed with the change it tells of,
sent in order per partner and kept as the log. `alerts.next_step_at` says when an alert's area
next grows while the partners have not been told of that step: active alerts get the first step
after their issue, so those issued before this revision are told of how far they reach now.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-14
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NO_ID_REUSE = {"sqlite_autoincrement": True}  # revision 0007: keep it through a table copy


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("home_lat", sa.Float(), nullable=True),
        sa.Column("home_lon", sa.Float(), nullable=True),
        sa.Column("home_radius_km", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("home_lat IS NULL OR (home_lat >= -90 AND home_lat <= 90)",
                           name=op.f("ck_partners_home_lat")),
        sa.CheckConstraint("home_lon IS NULL OR (home_lon >= -180 AND home_lon <= 180)",
                           name=op.f("ck_partners_home_lon")),
        sa.CheckConstraint("(home_lat IS NULL) = (home_lon IS NULL)",
                           name=op.f("ck_partners_home_lat_lon_together")),
        sa.CheckConstraint("(home_lat IS NULL) = (home_radius_km IS NULL)",
                           name=op.f("ck_partners_home_area")),
        sa.CheckConstraint("home_radius_km IS NULL OR home_radius_km > 0",
                           name=op.f("ck_partners_home_radius_km")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "partner_deliveries",
        sa.Column("id", Id, nullable=False),
        sa.Column("partner_id", Id, nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("alert_id", Id, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('issued', 'widened', 'resolved')",
                           name=op.f("ck_partner_deliveries_kind")),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed', 'cancelled')",
                           name=op.f("ck_partner_deliveries_status")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], ondelete="CASCADE",
                                name=op.f("fk_partner_deliveries_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_deliveries")),
        sa.UniqueConstraint("partner_id", "event_key", name="uq_partner_deliveries_event_key"),
        sa.UniqueConstraint("event_id", name="uq_partner_deliveries_event_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_partner_deliveries_status_partner_id_id", "partner_deliveries",
                    ["status", "partner_id", "id"])
    op.create_index("ix_partner_deliveries_partner_id_id", "partner_deliveries",
                    ["partner_id", "id"])
    op.add_column("alerts", sa.Column("next_step_at", sa.DateTime(timezone=True),
                                      nullable=True))
    op.create_index("ix_alerts_status_next_step_at", "alerts", ["status", "next_step_at"])
    alerts = sa.table("alerts", sa.column("id", Id), sa.column("status", sa.String()),
                      sa.column("issued_at", sa.DateTime(timezone=True)),
                      sa.column("schedule", sa.JSON()),
                      sa.column("next_step_at", sa.DateTime(timezone=True)))
    connection = op.get_bind()
    for id_, issued_at, schedule in connection.execute(
            sa.select(alerts.c.id, alerts.c.issued_at, alerts.c.schedule)
            .where(alerts.c.status == "active")).all():
        issued = issued_at if issued_at.tzinfo else issued_at.replace(tzinfo=dt.UTC)
        later = [issued + dt.timedelta(hours=float(hour)) for hour, _ in schedule if hour > 0]
        if later:
            connection.execute(sa.update(alerts).where(alerts.c.id == id_)
                               .values(next_step_at=min(later)))


def downgrade() -> None:
    op.drop_index("ix_alerts_status_next_step_at", table_name="alerts")
    with op.batch_alter_table("alerts", table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_column("next_step_at")
    op.drop_index("ix_partner_deliveries_partner_id_id", table_name="partner_deliveries")
    op.drop_index("ix_partner_deliveries_status_partner_id_id", table_name="partner_deliveries")
    op.drop_table("partner_deliveries")
    op.drop_table("partners")
