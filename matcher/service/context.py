"""The service's long-lived parts: store, face pipeline and active case index, built once.

`open_matcher(settings)` migrates the store, loads the pipeline and opens the active case
index: the copy saved at the last clean shutdown when it holds exactly the store's active case
faces, else a rebuild from the store (the store is the truth: the index is never trusted over
it), then rebuilds the sighting index (fit faces of stored sightings) from the store. The API's
lifespan calls it once; the CLI and tests call it directly.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from matcher.calibration import Calibration, load_for_model
from matcher.config import Settings
from matcher.embed import FacePipeline, load_pipeline
from matcher.index import FaceIndex, IndexFileError, IndexParams, persist
from matcher.index.rwlock import ReadWriteLock
from matcher.service.errors import ModelNotEmbedded
from matcher.service.serving import model_settings, serving_settings
from matcher.store import (
    FaceSetSummary,
    active_case_face_rows,
    active_case_face_summary,
    make_engine,
    migrate,
    session_factory,
)
from matcher.store.review import sighting_face_rows, sighting_face_summary
from matcher.store.vectors import Coverage, count_vectors, coverage, vector_models

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Serving:
    """The model in service: its pipeline and the two indexes of its vectors. Replaced whole
    by a reindex, so a use case that took one never mixes two models."""

    pipeline: FacePipeline
    index: FaceIndex  # active case faces, owner: case id
    sighting_index: FaceIndex  # fit faces of stored sightings, owner: sighting id

    @property
    def model_id(self) -> str:
        return self.pipeline.model_id


def empty_serving(settings: Settings, pipeline: FacePipeline) -> Serving:
    dim = pipeline.embedder.dim
    return Serving(pipeline,
                   FaceIndex.from_settings(settings, model_id=pipeline.model_id, dim=dim),
                   FaceIndex.from_settings(settings, model_id=pipeline.model_id, dim=dim))


@dataclass
class Matcher:
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
    # By category ("child", "elderly", "any"): what distances mean for the running model.
    calibrations: dict[str, Calibration] = field(default_factory=dict)

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

    def save_index(self) -> None:
        """Saves both indexes, each with a fingerprint of the faces it holds, for the next
        start; one that cannot be saved is rebuilt then (never fatal)."""
        for saved in SAVED_INDEXES:
            index = getattr(self, saved.attribute)
            try:
                with index.read_state() as state:
                    held = fingerprint(state.owners.ids)
                persist.save(index, self.settings.index_dir / saved.folder,
                             source={saved.source_key: asdict(held)})
            except (OSError, IndexFileError) as error:
                log.warning("could not save the %s: %s", saved.name, error)

    def close(self) -> None:
        """Saves the indexes (requests must have stopped) and releases the store."""
        self.save_index()
        self.engine.dispose()


@dataclass(frozen=True)
class SavedIndex:
    """Where an index of `Matcher` is saved, and the store's fingerprint of what it holds."""

    name: str
    attribute: str  # on Matcher
    folder: str  # under Settings.index_dir
    source_key: str  # in the saved manifest
    summary: Callable[[Session, str], FaceSetSummary]  # (session, model id) -> the store's


SAVED_INDEXES = (
    SavedIndex("active case index", "index", "active-cases", "active_case_faces",
               active_case_face_summary),
    SavedIndex("sighting index", "sighting_index", "sightings", "sighting_faces",
               sighting_face_summary),
)


P = ParamSpec("P")
R = TypeVar("R")


UseCase = Callable[Concatenate["Matcher", P], R]


def holds_model(use_case: UseCase[P, R]) -> UseCase[P, R]:
    """Runs a use case that embeds or changes an index under `model_lock`, shared: a reindex
    swaps the model only between such calls."""

    @functools.wraps(use_case)
    def run(matcher: Matcher, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with matcher.model_lock.read():
            return use_case(matcher, *args, **kwargs)

    return run


def fingerprint(ids: NDArray[np.int64]) -> FaceSetSummary:
    return FaceSetSummary(int(ids.size), int(ids.sum()), int(ids.max()) if ids.size else 0)


def _load_saved(settings: Settings, saved: SavedIndex, model_id: str, wanted: FaceSetSummary,
                dim: int) -> FaceIndex | None:
    """The saved index if it holds exactly `wanted`, else None (and why, in the log)."""
    directory = settings.index_dir / saved.folder
    try:
        manifest = persist.read_manifest(directory)
        held = manifest.get("source", {}).get(saved.source_key)
        if held != asdict(wanted):
            log.info("saved %s is stale (holds %s, the store has %s): rebuilding", saved.name,
                     held, asdict(wanted))
            return None
        index = persist.load(directory, model_id, dim, IndexParams.from_settings(settings))
    except IndexFileError as error:
        log.info("no usable saved %s (%s): rebuilding from the store", saved.name, error)
        return None
    with index.read_state() as state:
        if fingerprint(state.owners.ids) != wanted:  # the manifest lied: trust the data
            return None
    log.info("loaded the saved %s: %d faces", saved.name, len(index))
    return index


def matching_coverage(matcher: Matcher) -> Coverage:
    """What the serving model cannot match now: faces left without its vector (by a change of
    model settings, or a reindex that found them no more) and the cases they leave blind."""
    with matcher.sessions() as session:
        return coverage(session, matcher.model_id)


def open_matcher(settings: Settings, pipeline: FacePipeline | None = None,
                 require_vectors: bool = False) -> Matcher:
    """Store migrated, pipeline loaded (unless given), index loaded if current or rebuilt.
    `require_vectors` (the server's start) refuses a model that has no vector of any stored
    face while other models have (ModelNotEmbedded): it would serve an empty index."""
    settings = serving_settings(settings)
    engine = make_engine(settings)
    migrate(engine)
    if pipeline is None or model_settings(pipeline.settings) != model_settings(settings):
        pipeline = load_pipeline(settings)
    sessions = session_factory(engine)
    with sessions() as session:
        wanted = [saved.summary(session, pipeline.model_id) for saved in SAVED_INDEXES]
        missing = coverage(session, pipeline.model_id)
        unembedded, unmatchable = missing.faces_without_vectors, missing.unmatchable_cases
        # Which models hold the vectors, asked only when the configured one has none at all.
        blind = require_vectors and unembedded and not count_vectors(session, pipeline.model_id)
        embedded_by = vector_models(session) if blind else {}
    if embedded_by:
        engine.dispose()
        raise ModelNotEmbedded(
            f"the configured model {pipeline.model_id} has no vector of the {unembedded} stored "
            f"faces, which were embedded by {', '.join(sorted(embedded_by))}: serving it would "
            f"match nothing. Set the model settings back (or restore the projection file they "
            f"name), or run `matcher reindex`: with these settings it embeds every face for "
            f"{pipeline.model_id}")
    if unembedded:
        log.warning("%d stored faces have no %s vector and are out of matching: run "
                    "`matcher reindex`", unembedded, pipeline.model_id)
    if unmatchable:
        log.warning("%d active cases have no face %s can match: %s", len(unmatchable),
                    pipeline.model_id, unmatchable)
    loaded = {saved.attribute: _load_saved(settings, saved, pipeline.model_id, summary,
                                           pipeline.embedder.dim)
              for saved, summary in zip(SAVED_INDEXES, wanted, strict=True)}
    empty = empty_serving(settings, pipeline)
    serving = Serving(pipeline, loaded["index"] or empty.index,
                      loaded["sighting_index"] or empty.sighting_index)
    matcher = Matcher(settings, engine, sessions, serving)
    if loaded["index"] is None:
        matcher.rebuild_index()
    if loaded["sighting_index"] is None:
        matcher.rebuild_sighting_index()
    matcher.calibrations = load_for_model(settings.calibration_dir, pipeline.model_id)
    if matcher.calibrations:
        log.info("calibrated categories: %s", sorted(matcher.calibrations))
    if "child" not in matcher.calibrations:
        # Children look alike: at a model's published same-person distance many other
        # children's faces come closer (README, calibration). Say so where operators look.
        fallback = ("the `any` calibration, which understates false matches among children"
                    if "any" in matcher.calibrations
                    else f"the raw threshold {matcher.match_threshold:.3f}")
        log.warning("no child calibration for %s: children's cases use %s; run `matcher "
                    "calibrate --category child` and set MATCHER_MATCH_FALSE_PER_SEARCH",
                    pipeline.model_id, fallback)
    return matcher
