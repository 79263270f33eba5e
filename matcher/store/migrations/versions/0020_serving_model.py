"""The model every process serves is in the store (issue 23).

A reindex recorded the model it swapped in as `serving.json` in the data dir of the process it
ran in: other processes of the store never learned of it. `serving_model` holds it (one row),
and the index change log gets the kind `model`, written with it, which moves every process to
the new model. The first start after the upgrade moves an existing `serving.json` into the
row (matcher/service/serving.py); going down, the row is dropped (the file is not written back:
the process then serves its environment's model) with the `model` changes.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | None = None
depends_on: str | None = None

NO_ID_REUSE = {"sqlite_autoincrement": True}  # revision 0007: keep it through a table copy
KINDS = ("case_faces", "case_in", "case_out", "case_faces_gone", "sighting_faces",
         "sighting_faces_gone")


def _kinds(words: tuple[str, ...]) -> None:
    listed = ", ".join(f"'{word}'" for word in words)
    with op.batch_alter_table("index_changes", table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_constraint(op.f("ck_index_changes_kind"), type_="check")
        batch.create_check_constraint("kind", f"kind IN ({listed})")


def upgrade() -> None:
    op.create_table(
        "serving_model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_serving_model_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_serving_model")),
    )
    _kinds((*KINDS, "model"))


def downgrade() -> None:
    op.execute("DELETE FROM index_changes WHERE kind = 'model'")
    _kinds(KINDS)
    op.drop_table("serving_model")
