"""The tables of cases: a missing person's case and its photos."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from matcher.store.models.base import (
    NO_ID_REUSE,
    Base,
    Id,
    enum_type,
    one_of,
    position_checks,
    utcnow,
)
from matcher.vocabulary import CaseStatus, Category, Sex

if TYPE_CHECKING:
    from matcher.store.models.faces import Face


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        one_of("category", Category),
        one_of("sex", Sex),
        one_of("status", CaseStatus),
        CheckConstraint(
            "date_of_birth IS NOT NULL OR age_when_missing IS NOT NULL", name="dob_or_age"
        ),
        CheckConstraint(
            "age_when_missing IS NULL OR (age_when_missing >= 0 AND age_when_missing < 150)",
            name="age_when_missing",
        ),
        *position_checks("last_seen_"),
        Index("ix_cases_status_category", "status", "category"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    category: Mapped[Category] = mapped_column(enum_type(Category))
    name: Mapped[str] = mapped_column(String(200))
    sex: Mapped[Sex] = mapped_column(enum_type(Sex), default=Sex.UNKNOWN)
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
    status: Mapped[CaseStatus] = mapped_column(enum_type(CaseStatus), default=CaseStatus.ACTIVE)
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
