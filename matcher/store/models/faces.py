"""The tables of faces: sightings, the faces found in sightings and case photos, and each
model's descriptor of a face."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from matcher.store.errors import InvalidRecord
from matcher.store.models.base import (
    MODEL_ID_LENGTH,
    NO_ID_REUSE,
    Base,
    Id,
    fitting_model_id,
    position_checks,
    utcnow,
)

if TYPE_CHECKING:
    from matcher.store.models.cases import CasePhoto


class Sighting(Base):
    __tablename__ = "sightings"
    __table_args__ = (
        *position_checks(),
        Index("ix_sightings_uploaded_at", "uploaded_at"),
        Index("ix_sightings_sha256", "sha256"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    taken_at: Mapped[dt.datetime | None] = mapped_column()
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    app: Mapped[str] = mapped_column(String(200))  # the tip app that sent it (its key's name)
    api_key_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )
    reporter_contact: Mapped[str | None] = mapped_column(Text)  # private: never log, never list
    note: Mapped[str | None] = mapped_column(Text)  # the reporter's words; investigators only
    # The case whose alert the reporter answered ("I saw this child"; revision 0013): that case
    # is among the candidates of each of its fit faces, whatever its rank.
    alert_case_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("cases.id", ondelete="SET NULL"), index=True)
    # Burst shots of one moment (revision 0017): the photo's perceptual hash, and the first
    # sighting of its group (that one's own id too, once another joined it); None: alone.
    phash: Mapped[int | None] = mapped_column(BigInteger)
    burst_of: Mapped[int | None] = mapped_column(
        Id, ForeignKey("sightings.id", ondelete="SET NULL"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(200))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)

    faces: Mapped[list[Face]] = relationship(
        back_populates="sighting", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Face.id",
    )


class Face(Base):
    """A face in a case photo or in a sighting (exactly one): one id space for every index.

    Where it is and how fit it is; its descriptors live in `face_vectors`, one per model, so a
    reindex can add the next model's beside the serving one and decisions (keyed on face ids)
    survive any model change.
    """

    __tablename__ = "faces"
    __table_args__ = (
        CheckConstraint(
            "(case_photo_id IS NULL) <> (sighting_id IS NULL)", name="one_owner"
        ),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_photo_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("case_photos.id", ondelete="CASCADE"), index=True
    )
    sighting_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("sightings.id", ondelete="CASCADE"), index=True
    )
    box: Mapped[list[float]] = mapped_column(JSON)  # [left, top, right, bottom], photo px
    landmarks: Mapped[list[list[float]]] = mapped_column(JSON)  # [[x, y] x 5], photo px
    score: Mapped[float] = mapped_column(Float)  # detection score
    # The detection it came from: the detector's name and, where it has them, its own five
    # keypoints (photo px). A reindex with the same detector embeds from these, without
    # detecting again. NULL for faces stored before revision 0004.
    detector: Mapped[str | None] = mapped_column(String(32))
    keypoints: Mapped[list[list[float]] | None] = mapped_column(JSON)
    size_px: Mapped[float] = mapped_column(Float)
    sharpness: Mapped[float] = mapped_column(Float)
    unfit_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    fit: Mapped[bool] = mapped_column(Boolean)

    case_photo: Mapped[CasePhoto | None] = relationship(back_populates="faces")
    sighting: Mapped[Sighting | None] = relationship(back_populates="faces")
    vectors: Mapped[list[FaceVector]] = relationship(
        back_populates="face", cascade="all, delete-orphan", passive_deletes=True,
        order_by="FaceVector.model_id",
    )

    def vector_for(self, model_id: str) -> NDArray[np.float32] | None:
        """This face's descriptor from `model_id`, None when that model has not embedded it."""
        row = next((v for v in self.vectors if v.model_id == model_id), None)
        return None if row is None else row.vector


class FaceVector(Base):
    """One model's descriptor of one face."""

    __tablename__ = "face_vectors"
    __table_args__ = (
        CheckConstraint("dim > 0 AND length(descriptor) = 4 * dim", name="descriptor_size"),
        Index("ix_face_vectors_model_id_face_id", "model_id", "face_id"),
    )

    face_id: Mapped[int] = mapped_column(
        Id, ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_LENGTH), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float32 x dim

    face: Mapped[Face] = relationship(back_populates="vectors")

    @validates("model_id")
    def _check_model_id(self, _key: str, model_id: str) -> str:
        return fitting_model_id(model_id)

    @property
    def vector(self) -> NDArray[np.float32]:
        return descriptor_from_bytes(self.descriptor, self.dim)


def descriptor_to_bytes(vector: ArrayLike) -> tuple[bytes, int]:
    """A 1-d descriptor as little-endian float32 bytes, and its dimension."""
    array = np.asarray(vector)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.floating):
        raise InvalidRecord(f"a descriptor must be a non-empty 1-d float array, got "
                            f"{array.dtype} of shape {array.shape}")
    array = array.astype("<f4", copy=False)
    if not np.all(np.isfinite(array)):
        raise InvalidRecord("a descriptor must be finite")
    return array.tobytes(), int(array.size)


def descriptor_from_bytes(data: bytes, dim: int) -> NDArray[np.float32]:
    if len(data) != 4 * dim:
        raise InvalidRecord(f"descriptor of {len(data)} bytes cannot hold {dim} float32")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def descriptors_from_bytes(rows: list[bytes], dim: int) -> NDArray[np.float32]:
    """Many descriptors of one dimension as an (n, dim) float32 array, in one copy."""
    if not rows:
        return np.empty((0, dim), dtype=np.float32)
    if any(len(row) != 4 * dim for row in rows):
        raise InvalidRecord(f"a descriptor does not hold {dim} float32")
    return np.frombuffer(b"".join(rows), dtype="<f4").reshape(len(rows), dim).astype(np.float32)
