"""SQLite never hands out an id twice: the tables whose rows have their own id and can be
deleted become AUTOINCREMENT tables.

Without it SQLite gives a new row the largest id + 1, which is the id of the newest row deleted:
a removed case photo's face id came back as another case's face, which a saved index could not
tell from the old one, and which an HNSW index (it keeps removed ids as tombstones) refused.
SQLite cannot add AUTOINCREMENT to a table, so each is copied into a new one (batch mode; the
environment turns foreign keys off meanwhile and checks them after). Copying the rows with their
ids sets each table's `sqlite_sequence` to its largest id, so new ids continue above it.
PostgreSQL's sequences never reuse an id: nothing to do there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

# face_vectors has no id of its own (its key is face id and model id).
TABLES = ("cases", "case_photos", "sightings", "faces", "candidates", "decisions",
          "audit_events", "api_keys")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
