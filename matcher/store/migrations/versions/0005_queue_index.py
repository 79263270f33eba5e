"""The review queue walks an index instead of reading and sorting every candidate of a status.

candidates (status, distance, id) lists a status closest first. A case's page of the queue
needs (case_id, status, distance, id): without it SQLite (which has no ANALYZE statistics
here) walks the first index for that page too, filtering the whole queue for one case's rows.
That index also serves whatever (case_id) and (status, case_id) served, so both go.
scripts/bench_queue.py measured the two revisions (docs/store.md; since 0008 it compares
the queue without and with its indexes).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_candidates_status_distance_id", "candidates",
                    ["status", "distance", "id"])
    op.create_index("ix_candidates_case_id_status_distance_id", "candidates",
                    ["case_id", "status", "distance", "id"])
    op.drop_index("ix_candidates_status_case_id", table_name="candidates")
    op.drop_index("ix_candidates_case_id", table_name="candidates")


def downgrade() -> None:
    op.create_index("ix_candidates_case_id", "candidates", ["case_id"])
    op.create_index("ix_candidates_status_case_id", "candidates", ["status", "case_id"])
    op.drop_index("ix_candidates_case_id_status_distance_id", table_name="candidates")
    op.drop_index("ix_candidates_status_distance_id", table_name="candidates")
