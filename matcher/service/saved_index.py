"""The saved-index policy: when a copy of an index on disk may stand in for a rebuild from the
store, and how the copies are written.

A copy is saved only at a clean stop (`save_indexes`), with a fingerprint of the faces it holds
(matcher/store/digest.py). The next start loads it only when that fingerprint is the store's for
the index now (`load_saved`), and deletes it as soon as it has been read, so after a crash
there is none to trust. The store is the truth: an index is never trusted over it. Before a
save, and in the housekeeping round, faces another process removed from the store are dropped
from the indexes (`drop_removed_faces`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from matcher.index import FaceIndex, IndexFileError, IndexParams, persist
from matcher.index.owners import OwnerMap
from matcher.store import FaceSetSummary, active_case_face_summary
from matcher.store.digest import FaceSetDigest
from matcher.store.face_rows import (
    active_case_face_pairs,
    sighting_face_pairs,
    sighting_face_summary,
)

if TYPE_CHECKING:
    from matcher.service.runtime import Serving

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedIndex:
    """Where an index of `Serving` is saved, and the store's fingerprint of what it holds."""

    name: str
    attribute: str  # on Serving
    folder: str  # under the index dir (Settings.index_dir)
    source_key: str  # in the saved manifest
    summary: Callable[[Session, str], FaceSetSummary]  # (session, model id) -> the store's
    # (session, model id) -> the store's (face ids, owner ids) for the index, in batches
    pairs: Callable[[Session, str], Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]]]


SAVED_INDEXES = (
    SavedIndex("active case index", "index", "active-cases", "active_case_faces",
               active_case_face_summary, active_case_face_pairs),
    SavedIndex("sighting index", "sighting_index", "sightings", "sighting_faces",
               sighting_face_summary, sighting_face_pairs),
)
# In a saved manifest's source: written by `close`, the only kind of copy a start loads.
CLEAN_STOP = "clean_stop"


def fingerprint(owners: OwnerMap) -> FaceSetSummary:
    """What an index holds, in the terms of the store's `face_set_summary`: the count and the
    digest of its (face id, owner id) pairs, in face id order (the map keeps ids sorted)."""
    digest = FaceSetDigest()
    digest.update(owners.ids, owners.owner_of)
    return digest.summary()


def load_saved(saved: SavedIndex, index_dir: Path, params: IndexParams,
               sessions: sessionmaker[Session], model_id: str, dim: int,
               trusted: bool) -> FaceIndex | None:
    """The copy saved at the last clean stop if it holds exactly the faces the store has for
    the index, else None (and why, in the log). Whatever it held, the copy is deleted once read:
    a crash before the next clean stop leaves nothing stale to load (nor an erased case's
    vectors on disk). `trusted` False (the store's schema just changed) discards it unread."""
    directory = index_dir / saved.folder
    try:
        if not trusted:
            log.info("the store was migrated: the saved %s is not used", saved.name)
            return None
        return _read_saved(saved, directory, params, sessions, model_id, dim)
    finally:
        try:
            persist.discard(directory)
        except OSError as error:  # the digest still guards the next start against it
            log.warning("could not delete the saved %s: %s", saved.name, error)


def _read_saved(saved: SavedIndex, directory: Path, params: IndexParams,
                sessions: sessionmaker[Session], model_id: str, dim: int) -> FaceIndex | None:
    try:
        manifest = persist.read_manifest(directory)
        source = manifest.get("source", {})
        if source.get(CLEAN_STOP) is not True:
            log.info("the saved %s was not saved at a clean stop: rebuilding", saved.name)
            return None
        if manifest["model_id"] != model_id:  # load() says so too, but only after the digest
            log.info("the saved %s is of model %s: rebuilding", saved.name, manifest["model_id"])
            return None
        with sessions() as session:
            wanted = asdict(saved.summary(session, model_id))
        if source.get(saved.source_key) != wanted:
            log.info("saved %s is stale (holds %s, the store has %s): rebuilding", saved.name,
                     source.get(saved.source_key), wanted)
            return None
        index = persist.load(directory, model_id, dim, params)
    except IndexFileError as error:
        log.info("no usable saved %s (%s): rebuilding from the store", saved.name, error)
        return None
    with index.read_state() as state:
        if asdict(fingerprint(state.owners)) != wanted:  # the manifest lied: trust the data
            log.warning("saved %s does not hold what its manifest says: rebuilding", saved.name)
            return None
    log.info("loaded the saved %s: %d faces", saved.name, len(index))
    return index


def save_indexes(serving: Serving, sessions: sessionmaker[Session], index_dir: Path) -> None:
    """Saves both indexes at a clean stop, each with a fingerprint of the faces it holds;
    one that cannot be saved is rebuilt at the next start (never fatal). The next start
    loads only such a copy: one saved while serving went on would be stale after a crash.
    Faces another process removed are dropped first, and a copy that no longer holds
    exactly the store's faces once written (a purge meanwhile) is deleted again: no
    purged or erased descriptor stays on disk, and the next start rebuilds.
    """
    try:
        drop_removed_faces(serving, sessions)
    except Exception as error:  # the store is gone: the check after the save cannot run
        log.warning("could not compare the indexes with the store (%s): not saving them",
                    error)
        return
    for saved in SAVED_INDEXES:
        index = getattr(serving, saved.attribute)
        if index.tombstone_count:
            # A removal from an HNSW index only marks the vector: saved as it is, an
            # erased case's or a purged sighting's descriptor would be on disk again.
            index.compact()
        directory = index_dir / saved.folder
        try:
            with index.read_state() as state:
                held = fingerprint(state.owners)
            persist.save(index, directory,
                         source={saved.source_key: asdict(held), CLEAN_STOP: True})
            with sessions() as session:
                current = saved.summary(session, index.model_id)
            if current != held:
                persist.discard(directory)
                log.info("the store changed while the %s was saved: copy deleted, the "
                         "next start rebuilds it", saved.name)
        except (OSError, IndexFileError) as error:
            log.warning("could not save the %s: %s", saved.name, error)


def drop_removed_faces(serving: Serving, sessions: sessionmaker[Session]) -> int:
    """Drops from both indexes of `serving` the faces the store no longer has for them:
    removed by another process (a `matcher purge` beside the server, another server of the
    store), whose removals this process's indexes never saw. Otherwise an erased person's
    descriptor stayed searchable here, took places from real "seen" links, and went back to
    disk at the clean stop. Returns how many went."""
    dropped = 0
    for saved in SAVED_INDEXES:
        index = getattr(serving, saved.attribute)
        # The index first, then the store: a face joins an index only after its row is
        # committed, so every face the index held then is in a store read after it.
        with index.read_state() as state:
            held = state.owners.ids
        with sessions() as session:
            stored = np.concatenate([ids for ids, _ in saved.pairs(session, serving.model_id)]
                                    + [np.empty(0, np.int64)])
        gone = held[~np.isin(held, stored, assume_unique=True)]
        if gone.size:
            with index.read_state() as state:  # a removal meanwhile took some already
                gone = gone[state.owners.contains(gone)]
            index.remove(gone)
            log.warning("%d faces of the %s were gone from the store (removed by another "
                        "process): dropped", gone.size, saved.name)
            dropped += int(gone.size)
    return dropped
