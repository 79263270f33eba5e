"""The sighting index: sightings that came before a case, and sightings of one person.

Every fit face of a stored sighting is in `matcher.sighting_index` (owner: the sighting id).
- `index_sighting` adds a new sighting's fit faces once its row is committed (ingest).
- `retro_match` searches a new case photo's faces against it: a child sighted before the case
  was registered (or before this photo was added, or while the case was closed) gets a
  candidate like any new sighting would.
- `sighting_neighbours` finds the other sightings of a face (the "seen N times" links).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike
from sqlalchemy.orm import Session

from matcher.service.confidence import case_thresholds
from matcher.service.likelihood import rated
from matcher.service.retention import drop_faces
from matcher.service.runtime import Runtime
from matcher.store import NewCandidate, add_candidates, matchable
from matcher.store.candidates import candidate_distances, candidate_pairs
from matcher.store.cases import case_status
from matcher.store.faces import still_stored_faces
from matcher.vocabulary import CaseStatus

log = logging.getLogger(__name__)

WIDEN = 4  # a retro search short of new sightings asks for this many times more


def index_sighting(
    matcher: Runtime, sighting_id: int, face_ids: Sequence[int], vectors: ArrayLike
) -> None:
    """Adds a committed sighting's fit faces to the sighting index (nothing when none). The
    follower of the store's change log may have added them first (index_follow.py): adding
    what the index holds already changes nothing."""
    if not len(face_ids):
        return
    matcher.sighting_index.add_new(np.asarray(face_ids, dtype=np.int64),
                                   np.full(len(face_ids), sighting_id, dtype=np.int64), vectors)


def retro_match(
    matcher: Runtime, case_id: int, face_ids: Sequence[int], vectors: ArrayLike
) -> int:
    """Searches a case's new faces against every stored sighting; returns candidates added.

    Every sighting under the case's threshold in force (`case_thresholds`, as ingest) becomes
    a candidate, however many there are: a child sighted a hundred times while the case was
    closed must not be cut to the `match_top_k` closest. Beyond the threshold, the near misses
    stop at the top `match_top_k` of each case face, as ingest stores a sighting's top cases.
    Each is stored like ingest stores one: the sighting's closest face, the distance, the
    threshold, the calibrated false match rate (`rated`), and as rank the place among the
    candidates that sighting face already has. Pairs with a candidate row already (of any
    model: one queue entry per face and case) and pairs judged `match` or `not_match`
    (`matchable`) are left out before the cut, not after: a sighting that came in while the
    case was closed must not be crowded out by the older sightings it already has candidates
    from (`_new_pairs`).

    Takes no lock: add_photo calls it under `matcher.case_lock`, after the faces joined the
    case index, so a case closed meanwhile is seen closed.
    """
    if not len(face_ids) or len(matcher.sighting_index) == 0:
        return 0
    with matcher.sessions() as session:
        if case_status(session, case_id) is not CaseStatus.ACTIVE:
            return 0
        threshold = case_thresholds(matcher, session, [case_id]).get(
            case_id, matcher.match_threshold)
        rows, gone = _still_stored(session, _new_pairs(matcher, session, case_id, face_ids,
                                                       vectors, threshold))
        existing = candidate_distances(session, matcher.model_id,
                                       (c.sighting_face_id for c in rows))
        rows = rated(matcher, session, [
            replace(c, threshold=threshold,
                    rank=1 + sum(d < c.distance for d in existing[c.sighting_face_id]))
            for c in rows])
        add_candidates(session, rows)
        session.commit()
    if gone:
        # Purged by another process (`matcher purge` beside the server): this process's
        # index still held them. Drop them, or every later case photo near them would fail.
        log.warning("case %d: %d sighting faces in the index were gone from the store",
                    case_id, drop_faces(matcher.sighting_index, gone))
    under = sum(c.distance <= c.threshold for c in rows)
    log.info("case %d: retro-matched %d faces against %d sightings: %d candidates, %d under "
             "threshold", case_id, len(face_ids), matcher.sighting_index.owner_count, len(rows),
             under)
    return len(rows)


def _still_stored(session: Session, rows: list[NewCandidate]
                  ) -> tuple[list[NewCandidate], list[int]]:
    """The pairs whose sighting face the store still has, those faces held until the commit
    (`still_stored_faces`: a purge waits), and the faces gone."""
    wanted = [c.sighting_face_id for c in rows]
    stored = still_stored_faces(session, wanted)
    return ([c for c in rows if c.sighting_face_id in stored],
            sorted(set(wanted) - stored))


def _new_pairs(matcher: Runtime, session: Session, case_id: int, face_ids: Sequence[int],
               vectors: ArrayLike, threshold: float) -> list[NewCandidate]:
    """For each case face, every sighting within `threshold` and, beyond it, the closest ones
    up to `match_top_k` in all, counting only sightings whose closest face is not paired with
    the case yet (no candidate row of any model, no settling decision); at most one candidate
    per sighting face (its closest case face). The search widens until every case face has
    passed the threshold with that many, or has been compared with every sighting."""
    k = depth = matcher.settings.match_top_k
    paired: set[int] = set()  # sighting faces already paired with the case
    checked: set[int] = set()  # sighting faces asked about
    while True:
        hits = matcher.sighting_index.search(vectors, k=depth)
        found: dict[int, NewCandidate] = {}  # sighting face id -> its best pairing
        for query, case_face in enumerate(face_ids):
            for rank in range(depth):
                if hits.owners[query, rank] < 0:
                    break
                face, distance = int(hits.face_ids[query, rank]), float(
                    hits.distances[query, rank])
                if face not in found or distance < found[face].distance:
                    found[face] = NewCandidate(
                        sighting_face_id=face, case_id=case_id, case_face_id=int(case_face),
                        distance=distance, rank=1, model_id=matcher.model_id,
                        threshold=matcher.match_threshold)  # rank, threshold: the caller's
        unseen = [c for face, c in found.items() if face not in checked]
        taken = candidate_pairs(session, case_id, (c.sighting_face_id for c in unseen))
        kept = {c.sighting_face_id for c in matchable(
            session, [c for c in unseen if c.sighting_face_id not in taken])}
        paired |= {c.sighting_face_id for c in unseen} - kept
        checked |= {c.sighting_face_id for c in unseen}
        # Each query's unpaired sightings in distance order, as (face, distance).
        new = [[(int(face), float(distance)) for face, owner, distance in zip(
                    hits.face_ids[query], hits.owners[query], hits.distances[query], strict=True)
                if owner >= 0 and int(face) not in paired]
               for query in range(len(face_ids))]
        sightings = matcher.sighting_index.owner_count
        if depth >= sightings or all(
                hits.owners[query, -1] < 0  # every sighting seen
                or (len(row) >= k and float(hits.distances[query, -1]) > threshold)
                for query, row in enumerate(new)):
            wanted = {face for row in new
                      for rank, (face, distance) in enumerate(row)
                      if rank < k or distance <= threshold}
            return [c for face, c in found.items() if face in wanted]
        depth = min(depth * WIDEN, sightings)


@dataclass(frozen=True)
class Neighbour:
    sighting_id: int
    face_id: int  # that sighting's closest face
    distance: float


def sighting_neighbours(
    matcher: Runtime, queries: Sequence[tuple[int, int]], vectors: ArrayLike
) -> list[list[Neighbour]]:
    """For each (face id, own sighting id) query, the other sightings with a face within
    `match_threshold`, closest first, at most `match_top_k`. One batched search."""
    if not len(queries) or len(matcher.sighting_index) == 0:
        return [[] for _ in queries]
    k = matcher.settings.match_top_k
    threshold = matcher.match_threshold
    hits = matcher.sighting_index.search(vectors, k=k + 1)  # +1: the sighting itself
    out: list[list[Neighbour]] = []
    for query, (_, own) in enumerate(queries):
        row: list[Neighbour] = []
        for rank in range(k + 1):
            owner, distance = int(hits.owners[query, rank]), float(hits.distances[query, rank])
            if owner < 0 or distance > threshold:
                break
            if owner != own:
                row.append(Neighbour(owner, int(hits.face_ids[query, rank]), distance))
        out.append(row[:k])
    return out
