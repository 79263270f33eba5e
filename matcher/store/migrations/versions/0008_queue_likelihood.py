"""The review queue orders candidates by what their distance means, not by the distance.

A reindex to a model with another scale (a PLDA projection's distances are about ten times a
unit-length descriptor's) interleaved the two models' candidates wrongly when the queue sorted
raw distances. candidates gets `false_match_rate` (the calibrated false match rate per compared
face of the distance, null without a calibration: the service fills it on insert and, for the
serving model's open candidates, at start) and `distance_ratio` (distance / threshold in force,
filled here for every row). The queue's two indexes become (status, false_match_rate,
distance_ratio, id) and (case_id, status, ...), so a page still walks an index in order.

SQLite cannot make a column NOT NULL in place: candidates is copied (batch mode), keeping the
AUTOINCREMENT of revision 0007.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

NO_ID_REUSE = {"sqlite_autoincrement": True}  # revision 0007: keep it through a table copy
SMALLEST_THRESHOLD = 1e-9  # matcher.store.models.SMALLEST_THRESHOLD when this was written


def upgrade() -> None:
    with op.batch_alter_table("candidates", table_kwargs=NO_ID_REUSE) as batch:
        batch.add_column(sa.Column("false_match_rate", sa.Float(), nullable=True))
        batch.add_column(sa.Column("distance_ratio", sa.Float(), nullable=True))
    op.execute(sa.text(
        "UPDATE candidates SET distance_ratio = distance / CASE WHEN threshold > :floor "
        "THEN threshold ELSE :floor END").bindparams(floor=SMALLEST_THRESHOLD))
    with op.batch_alter_table("candidates", table_kwargs=NO_ID_REUSE) as batch:
        batch.alter_column("distance_ratio", existing_type=sa.Float(), nullable=False)
    op.create_index("ix_candidates_status_likelihood", "candidates",
                    ["status", "false_match_rate", "distance_ratio", "id"])
    op.create_index("ix_candidates_case_id_status_likelihood", "candidates",
                    ["case_id", "status", "false_match_rate", "distance_ratio", "id"])
    op.drop_index("ix_candidates_case_id_status_distance_id", table_name="candidates")
    op.drop_index("ix_candidates_status_distance_id", table_name="candidates")


def downgrade() -> None:
    op.create_index("ix_candidates_status_distance_id", "candidates",
                    ["status", "distance", "id"])
    op.create_index("ix_candidates_case_id_status_distance_id", "candidates",
                    ["case_id", "status", "distance", "id"])
    op.drop_index("ix_candidates_case_id_status_likelihood", table_name="candidates")
    op.drop_index("ix_candidates_status_likelihood", table_name="candidates")
    with op.batch_alter_table("candidates", table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_column("distance_ratio")
        batch.drop_column("false_match_rate")
