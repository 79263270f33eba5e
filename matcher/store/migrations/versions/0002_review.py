"""Review: sighting notes, decisions, the audit trail, and the needs_info candidate status.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD_STATUSES = "status IN ('pending', 'confirmed', 'rejected')"
NEW_STATUSES = "status IN ('pending', 'confirmed', 'rejected', 'needs_info')"


def _candidate_statuses(check: str) -> None:
    # Batch mode: SQLite cannot alter a CHECK in place, so the table is copied.
    with op.batch_alter_table("candidates") as batch:
        batch.drop_constraint(op.f("ck_candidates_status"), type_="check")
        batch.create_check_constraint("status", check)


def upgrade() -> None:
    op.add_column("sightings", sa.Column("note", sa.Text(), nullable=True))
    _candidate_statuses(NEW_STATUSES)
    op.create_table(
        "decisions",
        sa.Column("id", ID, nullable=False),
        sa.Column("candidate_id", ID, nullable=True),
        sa.Column("sighting_face_id", ID, nullable=False),
        sa.Column("case_id", ID, nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("api_key_id", ID, nullable=True),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "verdict IN ('match', 'not_match', 'needs_info')", name=op.f("ck_decisions_verdict")
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_decisions_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["candidates.id"],
            name=op.f("fk_decisions_candidate_id_candidates"), ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_decisions_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sighting_face_id"], ["faces.id"], name=op.f("fk_decisions_sighting_face_id_faces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index(op.f("ix_decisions_candidate_id"), "decisions", ["candidate_id"])
    op.create_index(op.f("ix_decisions_case_id"), "decisions", ["case_id"])
    op.create_index("ix_decisions_sighting_face_id_case_id", "decisions",
                    ["sighting_face_id", "case_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("api_key_id", ID, nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_object_type_object_id", "audit_events",
                    ["object_type", "object_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_object_type_object_id", table_name="audit_events")
    op.drop_index("ix_audit_events_at", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_decisions_sighting_face_id_case_id", table_name="decisions")
    op.drop_index(op.f("ix_decisions_case_id"), table_name="decisions")
    op.drop_index(op.f("ix_decisions_candidate_id"), table_name="decisions")
    op.drop_table("decisions")
    op.execute("UPDATE candidates SET status = 'pending' WHERE status = 'needs_info'")
    _candidate_statuses(OLD_STATUSES)
    with op.batch_alter_table("sightings") as batch:
        batch.drop_column("note")
