"""The tables of the investigators' review: candidates (a case proposed for a sighting face)
and the decisions on them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from matcher.store.models.base import (
    MODEL_ID_LENGTH,
    NO_ID_REUSE,
    Base,
    Id,
    enum_type,
    fitting_model_id,
    one_of,
    utcnow,
)
from matcher.store.models.cases import Case
from matcher.store.models.faces import Face
from matcher.vocabulary import CandidateStatus, Verdict

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
        one_of("status", CandidateStatus),
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
        enum_type(CandidateStatus), default=CandidateStatus.PENDING
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column()
    reviewed_by: Mapped[str | None] = mapped_column(String(200))  # the reviewer key's name

    sighting_face: Mapped[Face] = relationship(foreign_keys=[sighting_face_id])
    case_face: Mapped[Face] = relationship(foreign_keys=[case_face_id])
    case: Mapped[Case] = relationship()

    @validates("model_id")
    def _check_model_id(self, _key: str, model_id: str) -> str:
        return fitting_model_id(model_id)


class Decision(Base):
    """One investigator decision on a candidate; the latest one sets the candidate's status.

    Keyed on the sighting face and the case (not on the candidate row or a vector id), so a
    `not_match` outlives re-matching and reindexing with another model.
    """

    __tablename__ = "decisions"
    __table_args__ = (
        one_of("verdict", Verdict),
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
    verdict: Mapped[Verdict] = mapped_column(enum_type(Verdict))
    note: Mapped[str] = mapped_column(Text, default="")
    api_key_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    reviewer: Mapped[str] = mapped_column(String(200))  # the deciding key's name
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
