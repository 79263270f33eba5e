"""The runtime: what every use case needs, built once at start-up (startup.py) and shared by
the worker threads: the settings, the store's engine and sessions, the serving model (its
pipeline, its two indexes and its calibrations) and the locks that keep them consistent.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from matcher.calibration import Calibration
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.index import FaceIndex
from matcher.index.rwlock import ReadWriteLock
from matcher.service.alert_book import AlertBook
from matcher.service.saved_index import drop_removed_faces, save_indexes
from matcher.store import Engine, active_case_face_rows
from matcher.store.face_rows import sighting_face_rows
from matcher.store.models import utcnow
from matcher.wiring import index_params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """The model in service: its pipeline, the two indexes of its vectors and its calibrations.
    Replaced whole by a reindex, so a use case that took one never mixes two models."""

    pipeline: FacePipeline
    index: FaceIndex  # active case faces, owner: case id
    sighting_index: FaceIndex  # fit faces of stored sightings, owner: sighting id
    # By category ("child", "elderly", "any"): what this model's distances mean.
    calibrations: Mapping[str, Calibration] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.pipeline.model_id


def empty_serving(settings: Settings, pipeline: FacePipeline) -> Serving:
    dim = pipeline.embedder.dim
    params = index_params(settings)
    return Serving(pipeline, FaceIndex(pipeline.model_id, dim, params),
                   FaceIndex(pipeline.model_id, dim, params))


@dataclass
class Runtime:
    """What every use case needs. Thread-safe: use cases run in worker threads."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    serving: Serving
    # Serialises case changes with their index updates, so a case closed while a photo is being
    # added to it cannot leave that photo's faces in the index.
    case_lock: threading.Lock = field(default_factory=threading.Lock)
    # Use cases that embed and write vectors hold it shared from start to end; a reindex takes
    # it alone to swap `serving`, so no write straddles two models. Never taken twice by one
    # thread (writers are preferred: a nested read would wait for the swap forever).
    model_lock: ReadWriteLock = field(default_factory=ReadWriteLock)
    # Counts changes to the case index (faces added or removed, a case back in matching; under
    # case_lock): a sighting searched before a change searches again before it commits.
    case_index_changes: int = 0
    # The number of the last change of the store's index log this process's indexes hold
    # (index_follow.py): read before the indexes were, moved on by the follower.
    index_seq: int = 0
    # What time it is, for alerts (issued, resolved, how far each has widened): tests move it
    # instead of sleeping.
    clock: Callable[[], dt.datetime] = field(default_factory=lambda: utcnow)
    # The live alerts in memory, kept in step with the store (alert_book.py).
    alert_book: AlertBook = field(default_factory=AlertBook)

    @property
    def pipeline(self) -> FacePipeline:
        return self.serving.pipeline

    @property
    def index(self) -> FaceIndex:
        return self.serving.index

    @property
    def sighting_index(self) -> FaceIndex:
        return self.serving.sighting_index

    @property
    def model_id(self) -> str:
        return self.serving.model_id

    @property
    def calibrations(self) -> Mapping[str, Calibration]:
        """The serving model's calibrations (swapped with it by a reindex)."""
        return self.serving.calibrations

    @property
    def match_threshold(self) -> float:
        """`Settings.match_threshold`, or the serving model's own same-person distance."""
        configured = self.settings.match_threshold
        if configured is not None:
            return configured
        return float(self.pipeline.embedder.same_person_distance)

    def rebuild_index(self) -> None:
        """Reads every face of every active case from the store into the index."""
        with self.sessions() as session:
            self.index.rebuild(active_case_face_rows(session, self.model_id))
        log.info("active case index rebuilt: %d faces of %d cases", len(self.index),
                 self.index.owner_count)

    def rebuild_sighting_index(self) -> None:
        """Reads every fit sighting face from the store into the sighting index."""
        with self.sessions() as session:
            self.sighting_index.rebuild(sighting_face_rows(session, self.model_id))
        log.info("sighting index rebuilt: %d faces of %d sightings", len(self.sighting_index),
                 self.sighting_index.owner_count)

    def drop_removed_faces(self) -> int:
        """Drops from both indexes the faces another process removed from the store
        (`saved_index.drop_removed_faces`); the housekeeping round and `close` call it."""
        return drop_removed_faces(self.serving, self.sessions)

    def save_index(self) -> None:
        """Saves both indexes for the next start, as the saved-index policy says
        (`saved_index.save_indexes`)."""
        save_indexes(self.serving, self.sessions, self.settings.index_dir)

    def close(self) -> None:
        """Saves the indexes for the next start (requests must have stopped) and releases the
        store."""
        self.save_index()
        self.engine.dispose()


P = ParamSpec("P")
R = TypeVar("R")


UseCase = Callable[Concatenate["Runtime", P], R]


def holds_model(use_case: UseCase[P, R]) -> UseCase[P, R]:
    """Runs a use case that embeds or changes an index under `model_lock`, shared: a reindex
    swaps the model only between such calls."""

    @functools.wraps(use_case)
    def run(matcher: Runtime, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with matcher.model_lock.read():
            return use_case(matcher, *args, **kwargs)

    return run
