"""Sightings that answer an alert, and how far and how long after the last sighting of the
person a sighting was.

A tip app may send `alert_case_id` with a sighting (its user tapped "I saw this child"). The
face search ranks cases by likeness alone, so the case the reporter named could fall below the
top k, and an investigator would never see the report: that case is therefore proposed for
every fit face of the sighting, whatever its rank, and marked `reported_for_alert`. A sighting
far from where the person was last seen is never dropped for it: children are moved far; the
distance and the hours are shown for the investigator to weigh.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from matcher.index import OwnerHits
from matcher.service.alert_areas import distance_km
from matcher.service.runtime import Runtime
from matcher.store import InvalidRecord, NewCandidate
from matcher.store.alerts import has_shown_alert


@dataclass(frozen=True)
class LastSeenGap:
    """Between a sighting and the case's last-seen point and moment (None where either side
    does not say)."""

    km: float | None  # great-circle distance
    hours: float | None  # from the last-seen moment to the sighting (negative: before it)


def last_seen_gap(lat: float | None, lon: float | None, seen_at: dt.datetime,
                  case_lat: float | None, case_lon: float | None,
                  case_seen_at: dt.datetime | None) -> LastSeenGap:
    """The gap of a sighting (its point, and when it was taken, else uploaded) to the case's
    last-seen point and moment."""
    km = None
    if lat is not None and lon is not None and case_lat is not None and case_lon is not None:
        km = round(distance_km(lat, lon, case_lat, case_lon), 3)
    hours = None if case_seen_at is None else round(
        (seen_at - case_seen_at).total_seconds() / 3600, 3)
    return LastSeenGap(km, hours)


def check_reportable(matcher: Runtime, case_id: int) -> None:
    """A sighting may answer only an alert apps are shown (active, or resolved within the
    window): InvalidRecord otherwise, before anything is decoded or stored. Tip apps learn
    nothing from it that the feed does not say."""
    window = dt.timedelta(hours=matcher.settings.alert_resolved_hours)
    with matcher.sessions() as session:
        if not has_shown_alert(session, case_id, matcher.clock() - window):
            raise InvalidRecord(f"alert_case_id {case_id} names no alert of the feed")


def reported_hits(matcher: Runtime, vectors: NDArray[np.float32], case_id: int) -> OwnerHits:
    """The closest face of the reported case to each searched face (none while the case is
    out of matching)."""
    return matcher.index.search(vectors, k=1, owners=np.asarray([case_id], dtype=np.int64))


def with_reported(rows: Sequence[NewCandidate], face_ids: Sequence[int], hits: OwnerHits,
                  case_id: int, model_id: str, threshold: float) -> list[NewCandidate]:
    """The search's candidates with the reported case marked, and added after the others for
    each face whose top k left it out."""
    kept = [replace(row, reported_for_alert=True) if row.case_id == case_id else row
            for row in rows]
    for query, face_id in enumerate(face_ids):
        if hits.owners[query, 0] != case_id or any(
                row.sighting_face_id == face_id and row.case_id == case_id for row in kept):
            continue
        rank = 1 + sum(row.sighting_face_id == face_id for row in kept)
        kept.append(NewCandidate(
            sighting_face_id=face_id, case_id=case_id, case_face_id=int(hits.face_ids[query, 0]),
            distance=float(hits.distances[query, 0]), rank=rank, model_id=model_id,
            threshold=threshold, reported_for_alert=True))
    return kept
