"""Tips that repeat (issue 22, item 6): the same photo sent again is a report of the sighting
it already is; near-identical photos of one moment are sightings linked in a burst group.

"The same photo": the same pixels. Every photo is decoded and re-encoded before it is stored
(no metadata), and stored under the SHA-256 of that JPEG: two uploads of one file, from one
app or several, whatever their names, EXIF or upload times, give one hash. A photo resized or
recompressed by an app is not the same pixels: it is a burst shot at most.

"The same moment": two photos whose perceptual hashes (matcher/embed/phash.py, 64 bits)
differ in at most `BURST_BITS` bits, taken (else uploaded) at most `BURST_SECONDS` apart. Two
unrelated portraits differ in 15 bits or more (30 on median) over the research photos; a photo
and itself resized, recompressed, brightened or cropped by 2% in 0 to 2, shifted by 5% in 9.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from matcher.embed.phash import dhash, hamming
from matcher.embed.types import Image
from matcher.index import OwnerHits
from matcher.service.alert_reports import with_reported
from matcher.store import NewCandidate, NewSighting, Sighting
from matcher.store.candidates import candidate_pairs
from matcher.store.reports import (
    SightingReport,
    add_report,
    join_burst,
    mark_reported,
    recent_shots,
    set_phash,
)

BURST_BITS = 10
BURST_SECONDS = 60.0
# Sightings uploaded this long before (or after) a new one are compared with it: a phone
# offline for a while still sends its burst shots the same day.
LOOKBACK = dt.timedelta(hours=24)


@dataclass(frozen=True)
class ReportRecord:
    """One upload of a sighting's photo, as investigators see it (never the contact)."""

    uploaded_at: dt.datetime
    taken_at: dt.datetime | None
    lat: float | None
    lon: float | None
    app: str
    note: str | None
    alert_case_id: int | None

    @classmethod
    def of(cls, row: SightingReport) -> ReportRecord:
        return cls(row.uploaded_at, row.taken_at, row.lat, row.lon, row.app, row.note,
                   row.alert_case_id)


def link_burst(session: Session, sighting_id: int, image: Image, seen_at: dt.datetime,
               now: dt.datetime) -> int | None:
    """Stores the photo's perceptual hash and joins the sighting to the group of the first
    earlier shot of the same moment; returns the group (its first sighting), or None."""
    phash = dhash(image)
    set_phash(session, sighting_id, phash)
    same = [shot for shot in recent_shots(session, now - LOOKBACK)
            if shot.id != sighting_id and hamming(shot.phash, phash) <= BURST_BITS
            and abs((shot.seen_at - seen_at).total_seconds()) <= BURST_SECONDS]
    if not same:
        return None
    first = min(same, key=lambda shot: shot.burst_of or shot.id)
    group = first.burst_of or first.id
    join_burst(session, sighting_id, group)
    return group


def report_again(session: Session, twin: Sighting, new: NewSighting,
                 answer: OwnerHits | None, model_id: str, threshold: float
                 ) -> list[NewCandidate]:
    """A repeat of `twin`'s photo: one more report of it; when the repeat answers an alert,
    that case's existing candidates of the sighting are marked reported and the candidates it
    lacks are returned, to be stored as a new sighting's are (the faces are the twin's: the
    same pixels, detected again, give the same faces in the same order)."""
    add_report(session, twin.id, new)
    case_id = new.alert_case_id
    if case_id is None or answer is None:
        return []
    fit = [face.id for face in twin.faces if face.fit]
    if len(fit) != len(answer.owners):  # a reindex to another detector since: leave it be
        return []
    had = candidate_pairs(session, case_id, fit)
    mark_reported(session, case_id, had)
    return [row for row in with_reported([], fit, answer, case_id, model_id, threshold)
            if row.sighting_face_id not in had]
