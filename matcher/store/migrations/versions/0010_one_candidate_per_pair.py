"""One candidate row per sighting face and case: merges the pairs proposed by two models.

A reindex's new model searched a reopened case (or a new case photo) against the stored
sightings and proposed again the pairs an older model's rows still held open: the queue showed
those pairs twice, once per model (issue 19, item 15). The service now proposes a pair once,
whatever model holds it (`candidate_pairs`); this revision merges the pairs stored twice
before that. Of each pair it keeps the newest row (the later model's measurement), gives it
the review state of the pair's most recently reviewed row (a `needs_info` stays one), points
the pair's decisions at it, and deletes the others. Going down keeps the merged rows: the
duplicates were a defect, not data.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    connection = op.get_bind()
    pairs = connection.execute(sa.text(
        "SELECT sighting_face_id, case_id FROM candidates "
        "GROUP BY sighting_face_id, case_id HAVING COUNT(*) > 1")).all()
    for face, case in pairs:
        rows = connection.execute(sa.text(
            "SELECT id, status, reviewed_at, reviewed_by FROM candidates "
            "WHERE sighting_face_id = :face AND case_id = :case ORDER BY id"),
            {"face": face, "case": case}).all()
        kept = rows[-1].id
        reviewed = [row for row in rows if row.reviewed_at is not None]
        if reviewed:
            latest = max(reviewed, key=lambda row: (row.reviewed_at, row.id))
            connection.execute(sa.text(
                "UPDATE candidates SET status = :status, reviewed_at = :at, "
                "reviewed_by = :by WHERE id = :id"),
                {"status": latest.status, "at": latest.reviewed_at, "by": latest.reviewed_by,
                 "id": kept})
        dropped = [row.id for row in rows[:-1]]
        connection.execute(
            sa.text("UPDATE decisions SET candidate_id = :kept WHERE candidate_id IN :dropped")
            .bindparams(sa.bindparam("dropped", expanding=True)),
            {"kept": kept, "dropped": dropped})
        connection.execute(
            sa.text("DELETE FROM candidates WHERE id IN :dropped")
            .bindparams(sa.bindparam("dropped", expanding=True)), {"dropped": dropped})


def downgrade() -> None:
    """Nothing to undo: the merged rows stay merged."""
