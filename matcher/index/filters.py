"""Owner filters (cases of one sex, an age band, a region...) as FAISS IDSelectors.

Preparing a filter costs O(faces) of numpy work (which faces belong to the allowed owners,
and a bitmap or hash set over their ids): ~25 ms at 1M faces. An `OwnerFilter` keeps what it
prepared for as long as the collection is unchanged, so the service builds one per category
and reuses it across searches; a plain array of owners is prepared for one search.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import faiss
from numpy.typing import ArrayLike

from matcher.index import kinds
from matcher.index.owners import Ids, OwnerMap, as_ids, sorted_unique


@dataclass(frozen=True)
class Prepared:
    owner_map: OwnerMap  # what it was prepared against (identity is the version)
    face_ids: Ids
    selector: faiss.IDSelector | None
    keep_alive: Any  # memory the selector reads


class OwnerFilter:
    """Restricts searches to these owners; reusable and safe to share between threads."""

    def __init__(self, owners: ArrayLike) -> None:
        self.owners = sorted_unique(as_ids(owners, "owners"))
        self._prepared: Prepared | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.owners)

    def prepare(self, owner_map: OwnerMap) -> Prepared:
        """The faces and selector for this collection state (cached until it changes)."""
        cached = self._prepared
        if cached is not None and cached.owner_map is owner_map:
            return cached
        with self._lock:  # one thread prepares; the others wait for its result
            cached = self._prepared
            if cached is not None and cached.owner_map is owner_map:
                return cached
            face_ids = owner_map.faces_of(self.owners)
            selector, keep_alive = kinds.id_selector(face_ids) if face_ids.size else (None, None)
            self._prepared = Prepared(owner_map, face_ids, selector, keep_alive)
            return self._prepared


def as_filter(owners: ArrayLike | OwnerFilter) -> OwnerFilter:
    return owners if isinstance(owners, OwnerFilter) else OwnerFilter(owners)
