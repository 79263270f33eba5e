"""Face descriptors move to face_vectors, one row per face and model, so a reindex can write
the next model's vectors beside the serving ones.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SIZE = "dim > 0 AND length(descriptor) = 4 * dim"


def upgrade() -> None:
    op.create_table(
        "face_vectors",
        sa.Column("face_id", ID, nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("descriptor", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(SIZE, name=op.f("ck_face_vectors_descriptor_size")),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"],
                                name=op.f("fk_face_vectors_face_id_faces"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("face_id", "model_id", name=op.f("pk_face_vectors")),
    )
    op.create_index("ix_face_vectors_model_id_face_id", "face_vectors", ["model_id", "face_id"])
    op.execute("INSERT INTO face_vectors (face_id, model_id, dim, descriptor) "
               "SELECT id, model_id, dim, descriptor FROM faces")
    op.drop_index("ix_faces_model_id_case_photo_id", table_name="faces")
    with op.batch_alter_table("faces") as batch:
        batch.drop_constraint(op.f("ck_faces_descriptor_size"), type_="check")
        batch.drop_column("descriptor")
        batch.drop_column("dim")
        batch.drop_column("model_id")


def downgrade() -> None:
    # A face keeps one descriptor: the one of its smallest model id, when it has several.
    with op.batch_alter_table("faces") as batch:
        batch.add_column(sa.Column("model_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("dim", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("descriptor", sa.LargeBinary(), nullable=True))
    first = ("(SELECT {col} FROM face_vectors v WHERE v.face_id = faces.id "
             "ORDER BY v.model_id LIMIT 1)")
    op.execute("UPDATE faces SET " + ", ".join(
        f"{col} = {first.format(col=col)}" for col in ("model_id", "dim", "descriptor")))
    op.execute("DELETE FROM faces WHERE descriptor IS NULL")
    with op.batch_alter_table("faces") as batch:
        batch.alter_column("model_id", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("dim", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("descriptor", existing_type=sa.LargeBinary(), nullable=False)
        batch.create_check_constraint("descriptor_size", SIZE)
    op.create_index("ix_faces_model_id_case_photo_id", "faces", ["model_id", "case_photo_id"])
    op.drop_index("ix_face_vectors_model_id_face_id", table_name="face_vectors")
    op.drop_table("face_vectors")
