"""Initial schema: cases, case photos, sightings, faces, candidates, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('tip_app', 'investigator', 'case_manager', 'admin')",
            name=op.f("ck_api_keys_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sex", sa.String(length=16), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("age_when_missing", sa.Float(), nullable=True),
        sa.Column("missing_since", sa.Date(), nullable=False),
        sa.Column("last_seen_place", sa.Text(), nullable=True),
        sa.Column("last_seen_lat", sa.Float(), nullable=True),
        sa.Column("last_seen_lon", sa.Float(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("public_fields", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("category IN ('child', 'elderly')", name=op.f("ck_cases_category")),
        sa.CheckConstraint("sex IN ('female', 'male', 'unknown')", name=op.f("ck_cases_sex")),
        sa.CheckConstraint("status IN ('active', 'found', 'closed')", name=op.f("ck_cases_status")),
        sa.CheckConstraint(
            "(last_seen_lat IS NULL) = (last_seen_lon IS NULL)",
            name=op.f("ck_cases_last_seen_lat_lon_together"),
        ),
        sa.CheckConstraint(
            "age_when_missing IS NULL OR (age_when_missing >= 0 AND age_when_missing < 150)",
            name=op.f("ck_cases_age_when_missing"),
        ),
        sa.CheckConstraint(
            "date_of_birth IS NOT NULL OR age_when_missing IS NOT NULL",
            name=op.f("ck_cases_dob_or_age"),
        ),
        sa.CheckConstraint(
            "last_seen_lat IS NULL OR (last_seen_lat >= -90 AND last_seen_lat <= 90)",
            name=op.f("ck_cases_last_seen_lat"),
        ),
        sa.CheckConstraint(
            "last_seen_lon IS NULL OR (last_seen_lon >= -180 AND last_seen_lon <= 180)",
            name=op.f("ck_cases_last_seen_lon"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    op.create_index("ix_cases_status_category", "cases", ["status", "category"])

    op.create_table(
        "case_photos",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=200), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("taken_on", sa.Date(), nullable=True),
        sa.Column("age_at_photo", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "age_at_photo IS NULL OR age_at_photo >= 0", name=op.f("ck_case_photos_age_at_photo")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_photos_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_photos")),
        sa.UniqueConstraint("case_id", "sha256", name="uq_case_photos_case_id_sha256"),
    )
    op.create_index("ix_case_photos_sha256", "case_photos", ["sha256"])

    op.create_table(
        "sightings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("app", sa.String(length=200), nullable=False),
        sa.Column(
            "api_key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("reporter_contact", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=200), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(lat IS NULL) = (lon IS NULL)", name=op.f("ck_sightings_lat_lon_together")
        ),
        sa.CheckConstraint(
            "lat IS NULL OR (lat >= -90 AND lat <= 90)", name=op.f("ck_sightings_lat")
        ),
        sa.CheckConstraint(
            "lon IS NULL OR (lon >= -180 AND lon <= 180)", name=op.f("ck_sightings_lon")
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_sightings_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sightings")),
    )
    op.create_index(op.f("ix_sightings_api_key_id"), "sightings", ["api_key_id"])
    op.create_index("ix_sightings_sha256", "sightings", ["sha256"])
    op.create_index("ix_sightings_uploaded_at", "sightings", ["uploaded_at"])

    op.create_table(
        "faces",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "case_photo_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "sighting_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("box", sa.JSON(), nullable=False),
        sa.Column("landmarks", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("size_px", sa.Float(), nullable=False),
        sa.Column("sharpness", sa.Float(), nullable=False),
        sa.Column("unfit_reasons", sa.JSON(), nullable=False),
        sa.Column("fit", sa.Boolean(), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("descriptor", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "(case_photo_id IS NULL) <> (sighting_id IS NULL)", name=op.f("ck_faces_one_owner")
        ),
        sa.CheckConstraint(
            "dim > 0 AND length(descriptor) = 4 * dim", name=op.f("ck_faces_descriptor_size")
        ),
        sa.ForeignKeyConstraint(
            ["case_photo_id"],
            ["case_photos.id"],
            name=op.f("fk_faces_case_photo_id_case_photos"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sighting_id"],
            ["sightings.id"],
            name=op.f("fk_faces_sighting_id_sightings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faces")),
    )
    op.create_index(op.f("ix_faces_case_photo_id"), "faces", ["case_photo_id"])
    op.create_index("ix_faces_model_id_case_photo_id", "faces", ["model_id", "case_photo_id"])
    op.create_index(op.f("ix_faces_sighting_id"), "faces", ["sighting_id"])

    op.create_table(
        "candidates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "sighting_face_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "case_face_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'confirmed', 'rejected')", name=op.f("ck_candidates_status")
        ),
        sa.CheckConstraint("rank >= 1", name=op.f("ck_candidates_rank")),
        sa.ForeignKeyConstraint(
            ["case_face_id"],
            ["faces.id"],
            name=op.f("fk_candidates_case_face_id_faces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_candidates_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sighting_face_id"],
            ["faces.id"],
            name=op.f("fk_candidates_sighting_face_id_faces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
        sa.UniqueConstraint(
            "sighting_face_id",
            "case_id",
            "model_id",
            name="uq_candidates_sighting_face_id_case_id_model_id",
        ),
    )
    op.create_index(op.f("ix_candidates_case_face_id"), "candidates", ["case_face_id"])
    op.create_index("ix_candidates_case_id", "candidates", ["case_id"])
    op.create_index("ix_candidates_status_case_id", "candidates", ["status", "case_id"])


def downgrade() -> None:
    op.drop_index("ix_candidates_status_case_id", table_name="candidates")
    op.drop_index("ix_candidates_case_id", table_name="candidates")
    op.drop_index(op.f("ix_candidates_case_face_id"), table_name="candidates")

    op.drop_table("candidates")
    op.drop_index(op.f("ix_faces_sighting_id"), table_name="faces")
    op.drop_index("ix_faces_model_id_case_photo_id", table_name="faces")
    op.drop_index(op.f("ix_faces_case_photo_id"), table_name="faces")

    op.drop_table("faces")
    op.drop_index("ix_sightings_uploaded_at", table_name="sightings")
    op.drop_index("ix_sightings_sha256", table_name="sightings")
    op.drop_index(op.f("ix_sightings_api_key_id"), table_name="sightings")

    op.drop_table("sightings")
    op.drop_index("ix_case_photos_sha256", table_name="case_photos")

    op.drop_table("case_photos")
    op.drop_index("ix_cases_status_category", table_name="cases")

    op.drop_table("cases")
    op.drop_table("api_keys")
