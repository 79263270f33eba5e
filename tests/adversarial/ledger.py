"""Every write the attacked server acknowledged, and what removed some of them on purpose since.

Attacks record each 201 (and each erasure's 204) here as it comes back, from any thread; the
checks after every attack read it whole, so each check covers every earlier attack's writes too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

# What a decision's verdict sets the candidate's status to (matcher.store.models.Verdict).
STATUS_OF = {"match": "confirmed", "not_match": "rejected", "needs_info": "needs_info"}


@dataclass(frozen=True)
class Decided:
    """The latest acknowledged decision on a candidate: the store orders them by id."""

    decision_id: int
    verdict: str
    case_id: int


@dataclass
class Ledger:
    sightings: dict[int, tuple[bool, ...]] = field(default_factory=dict)  # id -> fit flags
    case_photos: dict[int, int] = field(default_factory=dict)  # photo id -> case id
    decisions: dict[int, Decided] = field(default_factory=dict)  # candidate id -> latest
    # Sighting id -> {candidate id: case id} as the last check saw them: a later check must
    # see them all again, unless their case was erased or their sighting purged.
    candidates: dict[int, dict[int, int]] = field(default_factory=dict)
    erased: set[int] = field(default_factory=set)  # case ids
    purged: set[int] = field(default_factory=set)  # sighting ids
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sighting(self, answer: httpx.Response) -> int:
        """A 201 to POST /v1/sightings."""
        body = answer.json()
        with self.lock:
            self.sightings[body["id"]] = tuple(face["fit"] for face in body["faces"])
        return int(body["id"])

    def case_photo(self, answer: httpx.Response) -> int:
        """A 201 to POST /v1/cases/{id}/photos (whose case may have been erased since: the
        answers of an upload and of an erasure after it may arrive in either order)."""
        body = answer.json()
        with self.lock:
            if body["case_id"] not in self.erased:
                self.case_photos[body["photo_id"]] = body["case_id"]
        return int(body["photo_id"])

    def decision(self, candidate_id: int, answer: httpx.Response) -> None:
        """A 201 to POST /v1/review/candidates/{id}/decision: it moved the candidate and the
        pair's other open rows (`also_updated`), unless a later one is known already."""
        body = answer.json()
        made = body["decision"]
        decided = Decided(made["id"], made["verdict"], made["case_id"])
        with self.lock:
            if decided.case_id in self.erased:
                return
            for row in (candidate_id, *body["also_updated"]):
                known = self.decisions.get(row)
                if known is None or known.decision_id < decided.decision_id:
                    self.decisions[row] = decided

    def saw(self, sighting_id: int, candidates: list[dict[str, Any]]) -> None:
        """The sighting's candidates as GET /v1/sightings/{id}/candidates listed them."""
        with self.lock:
            self.candidates[sighting_id] = {row["id"]: row["case_id"] for row in candidates}

    def erase(self, case_id: int) -> None:
        """A 204 to DELETE /v1/cases/{id}: its photos, candidates and decisions went with it."""
        with self.lock:
            self.erased.add(case_id)
            self.case_photos = {p: c for p, c in self.case_photos.items() if c != case_id}
            self.decisions = {k: d for k, d in self.decisions.items() if d.case_id != case_id}
            for seen in self.candidates.values():
                for candidate in [k for k, case in seen.items() if case == case_id]:
                    del seen[candidate]

    def purge(self, sighting_ids: set[int]) -> None:
        """Sightings a retention purge deleted, with their candidates and decisions."""
        with self.lock:
            self.purged |= sighting_ids
            for sighting in sighting_ids:
                self.sightings.pop(sighting, None)
                for candidate in self.candidates.pop(sighting, {}):
                    self.decisions.pop(candidate, None)
