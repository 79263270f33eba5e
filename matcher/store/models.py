"""The tables: cases, their photos, sightings, faces, candidates and API keys (SQLAlchemy 2).

The schema itself is created by the Alembic migrations in `matcher/store/migrations`; these
classes must match them (tests/store/test_migrations.py compares the two).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.types import TypeDecorator

from matcher.store.errors import InvalidRecord

# The words these columns hold are defined in matcher/vocabulary.py, which every layer may
# import; scripts that import them from here still find them.
from matcher.vocabulary import CandidateStatus, CaseStatus, Category, Role, Sex, Verdict

# Named constraints, so later migrations (batch mode on SQLite) can find and alter them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Room for a model id: the longest today, a projected ensemble, is 62 characters; revision 0006
# widened the columns from 64 so one more suffix cannot fail on PostgreSQL alone.
MODEL_ID_LENGTH = 128

# 64-bit ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER (also 64-bit).
Id = BigInteger().with_variant(Integer(), "sqlite")

# Table option of every table whose rows have their own id and can be deleted: SQLite then never
# hands out an id again (without it, the next row takes the largest id + 1, the id of the newest
# row deleted), as PostgreSQL's sequences never do. Ids outlive their rows: in index files and
# tombstones, in the audit trail, in clients. Revision 0007.
NO_ID_REUSE = {"sqlite_autoincrement": True}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes in and out (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise InvalidRecord("datetimes must be timezone-aware")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _enum(kind: type[StrEnum]) -> Enum:
    # VARCHAR plus a named CHECK (declared in __table_args__): portable and easy to extend.
    return Enum(
        kind, native_enum=False, create_constraint=False, length=16, validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


def _fitting_model_id(model_id: str) -> str:
    # SQLite would store a longer id and PostgreSQL refuse it: refuse it on both, saying why.
    if not 0 < len(model_id) <= MODEL_ID_LENGTH:
        raise InvalidRecord(f"a model id must have 1 to {MODEL_ID_LENGTH} characters, "
                            f"got {len(model_id)}: {model_id[:80]!r}...")
    return model_id


def _one_of(column: str, kind: type[StrEnum]) -> CheckConstraint:
    values = ", ".join(f"'{m.value}'" for m in kind)
    return CheckConstraint(f"{column} IN ({values})", name=column)


def _lat_lon(prefix: str = "") -> tuple[CheckConstraint, ...]:
    lat, lon = f"{prefix}lat", f"{prefix}lon"
    return (
        CheckConstraint(f"{lat} IS NULL OR ({lat} >= -90 AND {lat} <= 90)", name=lat),
        CheckConstraint(f"{lon} IS NULL OR ({lon} >= -180 AND {lon} <= 180)", name=lon),
        CheckConstraint(f"({lat} IS NULL) = ({lon} IS NULL)", name=f"{prefix}lat_lon_together"),
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UtcDateTime()}


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        _one_of("category", Category),
        _one_of("sex", Sex),
        _one_of("status", CaseStatus),
        CheckConstraint(
            "date_of_birth IS NOT NULL OR age_when_missing IS NOT NULL", name="dob_or_age"
        ),
        CheckConstraint(
            "age_when_missing IS NULL OR (age_when_missing >= 0 AND age_when_missing < 150)",
            name="age_when_missing",
        ),
        *_lat_lon("last_seen_"),
        Index("ix_cases_status_category", "status", "category"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    category: Mapped[Category] = mapped_column(_enum(Category))
    name: Mapped[str] = mapped_column(String(200))
    sex: Mapped[Sex] = mapped_column(_enum(Sex), default=Sex.UNKNOWN)
    date_of_birth: Mapped[dt.date | None] = mapped_column(Date)
    age_when_missing: Mapped[float | None] = mapped_column(Float)  # years
    missing_since: Mapped[dt.date] = mapped_column(Date)
    last_seen_place: Mapped[str | None] = mapped_column(Text)
    last_seen_lat: Mapped[float | None] = mapped_column(Float)
    last_seen_lon: Mapped[float | None] = mapped_column(Float)
    # When the person was last seen (revision 0011): an alert widens from it and a sighting is
    # hours after it; missing_since is only the day.
    last_seen_at: Mapped[dt.datetime | None] = mapped_column()
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[CaseStatus] = mapped_column(_enum(CaseStatus), default=CaseStatus.ACTIVE)
    public_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    photos: Mapped[list[CasePhoto]] = relationship(
        back_populates="case", cascade="all, delete-orphan", passive_deletes=True,
        order_by="CasePhoto.id",
    )


class CasePhoto(Base):
    __tablename__ = "case_photos"
    __table_args__ = (
        UniqueConstraint("case_id", "sha256", name="uq_case_photos_case_id_sha256"),
        CheckConstraint("age_at_photo IS NULL OR age_at_photo >= 0", name="age_at_photo"),
        Index("ix_case_photos_sha256", "sha256"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))  # of the stored JPEG; names the file
    path: Mapped[str] = mapped_column(String(200))  # relative to the data dir
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    taken_on: Mapped[dt.date | None] = mapped_column(Date)
    age_at_photo: Mapped[float | None] = mapped_column(Float)  # years, when the date is unknown
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="photos")
    faces: Mapped[list[Face]] = relationship(
        back_populates="case_photo", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Face.id",
    )


class Sighting(Base):
    __tablename__ = "sightings"
    __table_args__ = (
        *_lat_lon(),
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
        return _fitting_model_id(model_id)

    @property
    def vector(self) -> NDArray[np.float32]:
        return descriptor_from_bytes(self.descriptor, self.dim)


# A threshold of 0 (a calibration that vouches for no distance) divides as this: the ratio
# stays finite and still grows with the distance.
SMALLEST_THRESHOLD = 1e-9


def distance_ratio(distance: float, threshold: float) -> float:
    """A candidate's distance over the threshold in force: under 1 is under the threshold, and
    it compares candidates whatever scale their model's distances are on."""
    return float(distance) / max(float(threshold), SMALLEST_THRESHOLD)


def _distance_ratio_of_row(context: DefaultExecutionContext) -> float:
    row = context.get_current_parameters()
    return distance_ratio(row["distance"], row["threshold"])


class Candidate(Base):
    """A case proposed for a sighting face, waiting for (or after) an investigator's review."""

    __tablename__ = "candidates"
    __table_args__ = (
        _one_of("status", CandidateStatus),
        CheckConstraint("rank >= 1", name="rank"),
        UniqueConstraint(
            "sighting_face_id", "case_id", "model_id",
            name="uq_candidates_sighting_face_id_case_id_model_id",
        ),
        # The review queue (one status, most likely first, keyset-paged) reads an index in
        # order instead of sorting: the whole queue, and one case's (which would otherwise walk
        # the first index past every other case's rows). The second also serves every lookup
        # by case: a case's matches, the cascade when a case is deleted. Revisions 0005, 0008.
        Index("ix_candidates_status_likelihood", "status", "false_match_rate",
              "distance_ratio", "id"),
        Index("ix_candidates_case_id_status_likelihood", "case_id", "status",
              "false_match_rate", "distance_ratio", "id"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sighting_face_id: Mapped[int] = mapped_column(Id, ForeignKey("faces.id", ondelete="CASCADE"))
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id", ondelete="CASCADE"))
    case_face_id: Mapped[int] = mapped_column(
        Id, ForeignKey("faces.id", ondelete="CASCADE"), index=True
    )
    distance: Mapped[float] = mapped_column(Float)
    rank: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_LENGTH))
    threshold: Mapped[float] = mapped_column(Float)  # the threshold in force when it was found
    # What the distance means on one scale for every model (revision 0008): the false match
    # rate per compared face of the calibration of the case's category (else `any`) of the
    # model that found it; None without one. The queue orders by it, then by distance_ratio.
    false_match_rate: Mapped[float | None] = mapped_column(Float)
    # distance / threshold in force, set from the two on every insert (ORM or Core): the order
    # of the candidates without a rate, and of ties.
    distance_ratio: Mapped[float] = mapped_column(Float, default=_distance_ratio_of_row)
    # The sighting answered this case's alert: proposed whatever its rank (revision 0013).
    reported_for_alert: Mapped[bool] = mapped_column(Boolean, default=False,
                                                     server_default=false())
    status: Mapped[CandidateStatus] = mapped_column(
        _enum(CandidateStatus), default=CandidateStatus.PENDING
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column()
    reviewed_by: Mapped[str | None] = mapped_column(String(200))  # the reviewer key's name

    sighting_face: Mapped[Face] = relationship(foreign_keys=[sighting_face_id])
    case_face: Mapped[Face] = relationship(foreign_keys=[case_face_id])
    case: Mapped[Case] = relationship()

    @validates("model_id")
    def _check_model_id(self, _key: str, model_id: str) -> str:
        return _fitting_model_id(model_id)


class Decision(Base):
    """One investigator decision on a candidate; the latest one sets the candidate's status.

    Keyed on the sighting face and the case (not on the candidate row or a vector id), so a
    `not_match` outlives re-matching and reindexing with another model.
    """

    __tablename__ = "decisions"
    __table_args__ = (
        _one_of("verdict", Verdict),
        Index("ix_decisions_sighting_face_id_case_id", "sighting_face_id", "case_id"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    candidate_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("candidates.id", ondelete="SET NULL"), index=True
    )
    sighting_face_id: Mapped[int] = mapped_column(Id, ForeignKey("faces.id", ondelete="CASCADE"))
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id", ondelete="CASCADE"),
                                         index=True)
    verdict: Mapped[Verdict] = mapped_column(_enum(Verdict))
    note: Mapped[str] = mapped_column(Text, default="")
    api_key_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    reviewer: Mapped[str] = mapped_column(String(200))  # the deciding key's name
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Who read or changed what, when and from where. Rows are only ever added."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_object_type_object_id", "object_type", "object_id"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    api_key_id: Mapped[int | None] = mapped_column(Id)  # no foreign key: the trail outlives keys
    actor: Mapped[str] = mapped_column(String(200))  # the key's name
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))  # read, decide, create, update, delete...
    object_type: Mapped[str] = mapped_column(String(32))  # candidate, case, case_photo, ...
    object_id: Mapped[str] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))  # address the request came from
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored, with a short non-secret prefix to look it up."""

    __tablename__ = "api_keys"
    __table_args__ = (_one_of("role", Role), NO_ID_REUSE)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the whole key
    role: Mapped[Role] = mapped_column(_enum(Role))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    # Written at most once a minute per key (matcher/service/key_use.py): a coarse "still in
    # use?" for the operator deciding on a revocation, not a log of requests.
    last_used_at: Mapped[dt.datetime | None] = mapped_column()


class StoreHolder(Base):
    """A process that holds the store: a server for its lifetime (several may), a reindex for
    its run (one at a time). `beat_at` is renewed while the process lives (matcher/service/
    holders.py decides when a row is stale). The id is the holder's own random token, never
    reused, so the table keeps no id sequence."""

    __tablename__ = "store_holders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # serve, reindex
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


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


