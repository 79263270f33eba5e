"""The investigators' review: the queue of likely matches, decisions, a case's confirmed
matches, and the links between sightings of one person.

Every candidate shown is audited (one `read candidate` row each) and every decision too, in
the same transaction as the read or the change: a page that could not be audited is not shown.
Results are plain dataclasses built while the session is open; the API turns ids into URLs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.orm import Session

from matcher.service.alert_reports import last_seen_gap
from matcher.service.decision_notes import require_note_for_change
from matcher.service.retro import sighting_neighbours
from matcher.service.runtime import Runtime
from matcher.store import (
    AuditEntry,
    Case,
    CaseNotFound,
    Decision,
    Face,
    Sighting,
    get_sighting,
    record,
    session_scope,
)
from matcher.store.cases import case_status
from matcher.store.decisions import decide, decisions_on
from matcher.store.review import (
    Cursor,
    ReviewQuery,
    ReviewRow,
    cursor_after,
    review_row,
    review_rows,
)
from matcher.store.sightings import fit_sighting_faces, sightings_by_id
from matcher.vocabulary import Actor, CandidateStatus, CaseStatus, Category, Verdict

log = logging.getLogger(__name__)

YEAR_DAYS = 365.2425
MAX_PAGE = 200


@dataclass(frozen=True)
class Place:
    """Where and when a sighting was made."""

    sighting_id: int
    taken_at: dt.datetime | None
    uploaded_at: dt.datetime
    lat: float | None
    lon: float | None
    burst_group: int | None = None  # near-identical shots of one moment share it (repeats.py)


@dataclass(frozen=True)
class SightingLink:
    """Another sighting with a face within the threshold of this one's."""

    place: Place
    face_id: int  # the other sighting's closest face
    from_face_id: int  # the face of this sighting it is close to
    distance: float


@dataclass(frozen=True)
class CaseSummary:
    id: int
    name: str
    category: Category
    status: CaseStatus
    last_seen_place: str | None
    last_seen_lat: float | None
    last_seen_lon: float | None
    missing_since: dt.date
    last_seen_at: dt.datetime | None = None


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    candidate_id: int | None
    sighting_face_id: int
    case_id: int
    verdict: Verdict
    note: str
    reviewer: str
    created_at: dt.datetime

    @classmethod
    def of(cls, row: Decision) -> DecisionRecord:
        return cls(row.id, row.candidate_id, row.sighting_face_id, row.case_id, row.verdict,
                   row.note, row.reviewer, row.created_at)


@dataclass(frozen=True)
class ReviewEntry:
    """One candidate as a reviewer sees it."""

    candidate_id: int
    status: CandidateStatus
    distance: float
    rank: int
    model_id: str
    threshold: float
    created_at: dt.datetime
    reviewed_at: dt.datetime | None
    reviewed_by: str | None
    sighting_face_id: int
    case_face_id: int
    case_photo_id: int | None
    sighting: Place
    case: CaseSummary
    age_gap_years: float | None
    decisions: list[DecisionRecord] = field(default_factory=list)
    seen: list[SightingLink] = field(default_factory=list)
    false_match_rate: float | None = None  # calibrated, per compared face: the queue's order
    reported_for_alert: bool = False  # the sighting answered the case's alert
    # From the case's last-seen point and moment to the sighting (alert_reports.py).
    km_from_last_seen: float | None = None
    hours_since_last_seen: float | None = None


@dataclass(frozen=True)
class ReviewPage:
    entries: list[ReviewEntry]
    next_cursor: str | None  # None on the last page


@dataclass(frozen=True)
class DecisionResult:
    decision: DecisionRecord
    candidate_status: CandidateStatus
    also_updated: list[int]  # the pair's other open candidate rows (other models)


def age_gap_years(
    seen_on: dt.date, taken_on: dt.date | None, age_at_photo: float | None,
    date_of_birth: dt.date | None, age_when_missing: float | None, missing_since: dt.date,
) -> float | None:
    """Years between the case photo and the sighting (negative: the sighting is older).

    The photo's date is `taken_on`, else estimated from the age on it: the date of birth plus
    that age, or the day the person went missing less the years between the two ages.
    """
    photo_on = taken_on
    try:
        if photo_on is None and age_at_photo is not None:
            if date_of_birth is not None:
                photo_on = date_of_birth + dt.timedelta(days=age_at_photo * YEAR_DAYS)
            elif age_when_missing is not None:
                photo_on = missing_since - dt.timedelta(
                    days=(age_when_missing - age_at_photo) * YEAR_DAYS)
    except OverflowError:  # dates stored before the API refused implausible ones
        return None
    if photo_on is None:
        return None
    return round((seen_on - photo_on).days / YEAR_DAYS, 2)


def _place(sighting: Sighting) -> Place:
    return Place(sighting.id, sighting.taken_at, sighting.uploaded_at, sighting.lat,
                 sighting.lon, sighting.burst_of)


def _case(case: Case) -> CaseSummary:
    return CaseSummary(case.id, case.name, case.category, case.status, case.last_seen_place,
                       case.last_seen_lat, case.last_seen_lon, case.missing_since,
                       case.last_seen_at)


def _links(matcher: Runtime, session: Session, faces: Sequence[Face]) -> list[list[SightingLink]]:
    """The sighting links of each sighting face, from one batched search."""
    own = [face.vector_for(matcher.model_id) for face in faces]
    usable = [i for i, face in enumerate(faces) if face.sighting_id is not None
              and (vector := own[i]) is not None and vector.size == matcher.sighting_index.dim]
    out: list[list[SightingLink]] = [[] for _ in faces]
    if not usable:
        return out
    vectors = np.stack([own[i] for i in usable])  # type: ignore[misc]
    found = sighting_neighbours(
        matcher, [(faces[i].id, int(faces[i].sighting_id or 0)) for i in usable], vectors)
    places = sightings_by_id(session, {n.sighting_id for row in found for n in row})
    for i, neighbours in zip(usable, found, strict=True):
        out[i] = [SightingLink(_place(places[n.sighting_id]), n.face_id, faces[i].id, n.distance)
                  for n in neighbours if n.sighting_id in places]
    return out


def _entries(matcher: Runtime, session: Session, rows: Sequence[ReviewRow]) -> list[ReviewEntry]:
    decisions = decisions_on(session, {(r.sighting.id, r.case.id) for r in rows})
    links = _links(matcher, session, [r.sighting_face for r in rows])
    entries = []
    for row, seen in zip(rows, links, strict=True):
        c, case, photo = row.candidate, row.case, row.case_photo
        gap = age_gap_years(
            row.seen_at.date(), photo.taken_on if photo else None,
            photo.age_at_photo if photo else None, case.date_of_birth, case.age_when_missing,
            case.missing_since)
        far = last_seen_gap(row.sighting.lat, row.sighting.lon, row.seen_at,
                            case.last_seen_lat, case.last_seen_lon, case.last_seen_at)
        entries.append(ReviewEntry(
            candidate_id=c.id, status=c.status, distance=c.distance, rank=c.rank,
            model_id=c.model_id, threshold=c.threshold, created_at=c.created_at,
            reviewed_at=c.reviewed_at, reviewed_by=c.reviewed_by,
            sighting_face_id=c.sighting_face_id, case_face_id=c.case_face_id,
            case_photo_id=photo.id if photo else None, sighting=_place(row.sighting),
            case=_case(case), age_gap_years=gap,
            decisions=[DecisionRecord.of(d) for d in decisions[(row.sighting.id, case.id)]],
            seen=seen, false_match_rate=c.false_match_rate,
            reported_for_alert=c.reported_for_alert, km_from_last_seen=far.km,
            hours_since_last_seen=far.hours,
        ))
    return entries


def _audit_reads(session: Session, actor: Actor, entries: Sequence[ReviewEntry],
                 via: str) -> None:
    record(session, actor, *(AuditEntry("read", "candidate", e.candidate_id, {
        "via": via, "case_id": e.case.id, "sighting_id": e.sighting.sighting_id,
        "seen": [link.place.sighting_id for link in e.seen]}) for e in entries))


def _page(matcher: Runtime, actor: Actor, query: ReviewQuery, limit: int,
          cursor: str | None, via: str) -> ReviewPage:
    limit = max(1, min(limit, MAX_PAGE))
    after = Cursor.decode(cursor, query.order) if cursor else None
    with session_scope(matcher.sessions) as session:
        rows = review_rows(session, query, limit + 1, after)  # one more: is there a next page?
        more, rows = len(rows) > limit, rows[:limit]
        entries = _entries(matcher, session, rows)
        _audit_reads(session, actor, entries, via)
    following = cursor_after(rows[-1], query.order).encode() if more else None
    return ReviewPage(entries, following)


def review_queue(matcher: Runtime, actor: Actor, query: ReviewQuery | None = None,
                 limit: int = 50, cursor: str | None = None) -> ReviewPage:
    """A page of the queue (by default: pending, under their threshold, most likely first:
    `matcher.store.review.Likelihood`)."""
    return _page(matcher, actor, query or ReviewQuery(), limit, cursor, "queue")


def review_candidate(matcher: Runtime, actor: Actor, candidate_id: int) -> ReviewEntry:
    """One candidate, whatever its status (CandidateNotFound)."""
    with session_scope(matcher.sessions) as session:
        entries = _entries(matcher, session, [review_row(session, candidate_id)])
        _audit_reads(session, actor, entries, "candidate")
    return entries[0]


def case_matches(matcher: Runtime, actor: Actor, case_id: int, limit: int = 50,
                 cursor: str | None = None) -> ReviewPage:
    """A case's confirmed candidates, newest sighting first (CaseNotFound)."""
    with matcher.sessions() as session:
        if case_status(session, case_id) is None:
            raise CaseNotFound(f"no case {case_id}")
    query = ReviewQuery(statuses=(CandidateStatus.CONFIRMED,), under_threshold=False,
                        case_id=case_id, order="recent")
    return _page(matcher, actor, query, limit, cursor, "case_matches")


def decide_candidate(matcher: Runtime, actor: Actor, candidate_id: int,
                     verdict: Verdict | str, note: str = "") -> DecisionResult:
    """Stores the decision, sets the candidate's status and reviewer, audits it: one
    transaction. A `not_match` keeps the pair out of every later re-match (`matchable`); a
    change of the pair's verdict without a note is refused (NoteRequired), storing nothing."""
    with session_scope(matcher.sessions) as session:
        done = decide(session, candidate_id, verdict, note, actor.key_id, actor.name)
        require_note_for_change(session, done.decision)
        record(session, actor, AuditEntry("decide", "candidate", candidate_id, {
            "verdict": done.decision.verdict.value, "case_id": done.candidate.case_id,
            "sighting_face_id": done.candidate.sighting_face_id, "also": done.also}))
        result = DecisionResult(DecisionRecord.of(done.decision), done.candidate.status,
                                done.also)
    log.info("candidate %d (case %d): %s by key %s", candidate_id, result.decision.case_id,
             result.decision.verdict.value, actor.key_id)
    return result


def sighting_links(matcher: Runtime, actor: Actor, sighting_id: int) -> list[SightingLink]:
    """Other sightings with a face within the threshold of one of this sighting's fit faces,
    closest first, one link per other sighting (SightingNotFound)."""
    with session_scope(matcher.sessions) as session:
        get_sighting(session, sighting_id)
        per_face = _links(matcher, session, fit_sighting_faces(session, sighting_id,
                                                                matcher.model_id))
        best: dict[int, SightingLink] = {}
        for link in (link for links in per_face for link in links):
            known = best.get(link.place.sighting_id)
            if known is None or link.distance < known.distance:
                best[link.place.sighting_id] = link
        links = sorted(best.values(), key=lambda link: (link.distance, link.place.sighting_id))
        record(session, actor, AuditEntry("read", "sighting_links", sighting_id, {
            "linked": [link.place.sighting_id for link in links]}))
    return links
