"""The service's long-lived parts: store, face pipeline and active case index, built once.

`open_matcher(settings)` migrates the store, loads the pipeline and opens the active case
index and the sighting index (fit faces of stored sightings): each the copy saved at the last
clean shutdown when it holds exactly the faces the store has for it, else a rebuild from the
store (the store is the truth: the index is never trusted over it). A saved copy is deleted as
soon as it has been read, so after a crash there is none to trust. The API's lifespan calls it
once; the CLI and tests call it directly.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from matcher.calibration import Calibration, load_serving
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.projection import ProjectedEmbedder
from matcher.files import private_folder
from matcher.fitted import CALIBRATIONS
from matcher.index import FaceIndex, IndexFileError, persist
from matcher.index.owners import OwnerMap
from matcher.index.rwlock import ReadWriteLock
from matcher.service.alert_book import AlertBook
from matcher.service.errors import ModelNotEmbedded
from matcher.service.likelihood import fill_false_match_rates
from matcher.service.serving import (
    is_recorded,
    model_settings,
    record_serving,
    serving_settings,
)
from matcher.store import (
    Engine,
    FaceSetSummary,
    active_case_face_rows,
    active_case_face_summary,
    current_revision,
    migrate,
    session_factory,
)
from matcher.store.digest import FaceSetDigest
from matcher.store.face_rows import (
    active_case_face_pairs,
    sighting_face_pairs,
    sighting_face_rows,
    sighting_face_summary,
)
from matcher.store.models import utcnow
from matcher.store.vectors import Coverage, count_vectors, coverage, vector_models
from matcher.wiring import index_params, load_pipeline, make_engine

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
        """Drops from both indexes the faces the store no longer has for them: removed by
        another process (a `matcher purge` beside the server, another server of the store),
        whose removals this process's indexes never saw. Otherwise an erased person's
        descriptor stayed searchable here, took places from real "seen" links, and went back
        to disk at the clean stop. Returns how many went; the housekeeping round and `close`
        call it."""
        serving = self.serving  # one model throughout, even if a reindex swaps meanwhile
        dropped = 0
        for saved in SAVED_INDEXES:
            index = getattr(serving, saved.attribute)
            # The index first, then the store: a face joins an index only after its row is
            # committed, so every face the index held then is in a store read after it.
            with index.read_state() as state:
                held = state.owners.ids
            with self.sessions() as session:
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

    def save_index(self) -> None:
        """Saves both indexes at a clean stop, each with a fingerprint of the faces it holds;
        one that cannot be saved is rebuilt at the next start (never fatal). The next start
        loads only such a copy: one saved while serving went on would be stale after a crash.
        Faces another process removed are dropped first, and a copy that no longer holds
        exactly the store's faces once written (a purge meanwhile) is deleted again: no
        purged or erased descriptor stays on disk, and the next start rebuilds.
        """
        try:
            self.drop_removed_faces()
        except Exception as error:  # the store is gone: the check after the save cannot run
            log.warning("could not compare the indexes with the store (%s): not saving them",
                        error)
            return
        for saved in SAVED_INDEXES:
            index = getattr(self, saved.attribute)
            if index.tombstone_count:
                # A removal from an HNSW index only marks the vector: saved as it is, an
                # erased case's or a purged sighting's descriptor would be on disk again.
                index.compact()
            directory = self.settings.index_dir / saved.folder
            try:
                with index.read_state() as state:
                    held = fingerprint(state.owners)
                persist.save(index, directory,
                             source={saved.source_key: asdict(held), CLEAN_STOP: True})
                with self.sessions() as session:
                    current = saved.summary(session, index.model_id)
                if current != held:
                    persist.discard(directory)
                    log.info("the store changed while the %s was saved: copy deleted, the "
                             "next start rebuilds it", saved.name)
            except (OSError, IndexFileError) as error:
                log.warning("could not save the %s: %s", saved.name, error)

    def close(self) -> None:
        """Saves the indexes for the next start (requests must have stopped) and releases the
        store."""
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


def fingerprint(owners: OwnerMap) -> FaceSetSummary:
    """What an index holds, in the terms of the store's `face_set_summary`: the count and the
    digest of its (face id, owner id) pairs, in face id order (the map keeps ids sorted)."""
    digest = FaceSetDigest()
    digest.update(owners.ids, owners.owner_of)
    return digest.summary()


def _load_saved(settings: Settings, saved: SavedIndex, sessions: sessionmaker[Session],
                model_id: str, dim: int, trusted: bool) -> FaceIndex | None:
    """The copy saved at the last clean stop if it holds exactly the faces the store has for
    the index, else None (and why, in the log). Whatever it held, the copy is deleted once read:
    a crash before the next clean stop leaves nothing stale to load (nor an erased case's
    vectors on disk). `trusted` False (the store's schema just changed) discards it unread."""
    directory = settings.index_dir / saved.folder
    try:
        if not trusted:
            log.info("the store was migrated: the saved %s is not used", saved.name)
            return None
        return _read_saved(settings, saved, sessions, model_id, dim)
    finally:
        try:
            persist.discard(directory)
        except OSError as error:  # the digest still guards the next start against it
            log.warning("could not delete the saved %s: %s", saved.name, error)


def _read_saved(settings: Settings, saved: SavedIndex, sessions: sessionmaker[Session],
                model_id: str, dim: int) -> FaceIndex | None:
    directory = settings.index_dir / saved.folder
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
        index = persist.load(directory, model_id, dim, index_params(settings))
    except IndexFileError as error:
        log.info("no usable saved %s (%s): rebuilding from the store", saved.name, error)
        return None
    with index.read_state() as state:
        if asdict(fingerprint(state.owners)) != wanted:  # the manifest lied: trust the data
            log.warning("saved %s does not hold what its manifest says: rebuilding", saved.name)
            return None
    log.info("loaded the saved %s: %d faces", saved.name, len(index))
    return index


def matching_coverage(matcher: Matcher) -> Coverage:
    """What the serving model cannot match now: faces left without its vector (by a change of
    model settings, or a reindex that found them no more) and the cases they leave blind."""
    with matcher.sessions() as session:
        return coverage(session, matcher.model_id)


def _store_on_plain_model(settings: Settings, sessions: sessionmaker[Session],
                          pipeline: FacePipeline) -> Settings | None:
    """The plain model's settings, recorded in serving.json, when the default (the shipped
    learned distance) would start on a store whose vectors are all of the plain model it
    projects: a store made before the fit shipped keeps serving what it was embedded with until
    `matcher reindex --projection shipped` moves it (docs/reindex-and-retention.md). None
    otherwise."""
    embedder = pipeline.embedder
    if (settings.projection_file != "shipped" or is_recorded(settings)
            or not isinstance(embedder, ProjectedEmbedder)):
        return None
    with sessions() as session:
        if (count_vectors(session, embedder.model_id)
                or not count_vectors(session, embedder.base.model_id)):
            return None
    plain = settings.model_copy(update={"projection_file": "none"})
    record_serving(plain)
    log.warning("the store's vectors are of %s, not of the default %s: serving %s; `matcher "
                "reindex --projection shipped` moves the store to the default",
                embedder.base.model_id, embedder.model_id, embedder.base.model_id)
    return plain


def open_matcher(settings: Settings, pipeline: FacePipeline | None = None,
                 require_vectors: bool = False) -> Matcher:
    """Store migrated, pipeline loaded (unless given), index loaded if current or rebuilt.
    `require_vectors` (the server's start) refuses a model that has no vector of any stored
    face while other models have (ModelNotEmbedded): it would serve an empty index."""
    settings = serving_settings(settings)
    private_folder(settings.data_dir)
    engine = make_engine(settings)
    revision = current_revision(engine)
    migrate(engine)
    # A migration may copy tables and renumber what comes next (0007): indexes saved before it
    # are not trusted.
    migrated = current_revision(engine) != revision
    if pipeline is None or model_settings(pipeline.config) != model_settings(settings):
        pipeline = load_pipeline(settings)
    sessions = session_factory(engine)
    plain = _store_on_plain_model(settings, sessions, pipeline)
    if plain is not None:
        settings, pipeline = plain, pipeline.plain()
    with sessions() as session:
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
    loaded = {saved.attribute: _load_saved(settings, saved, sessions, pipeline.model_id,
                                           pipeline.embedder.dim, trusted=not migrated)
              for saved in SAVED_INDEXES}
    empty = empty_serving(settings, pipeline)
    serving = Serving(pipeline, loaded["index"] or empty.index,
                      loaded["sighting_index"] or empty.sighting_index)
    matcher = Matcher(settings, engine, sessions, serving)
    if loaded["index"] is None:
        matcher.rebuild_index()
    if loaded["sighting_index"] is None:
        matcher.rebuild_sighting_index()
    matcher.serving = replace(matcher.serving, calibrations=load_serving(
        settings.calibration_dir, CALIBRATIONS, pipeline.model_id))
    if matcher.calibrations:
        log.info("calibrated categories: %s", sorted(matcher.calibrations))
    if "child" not in matcher.calibrations:
        # Children look alike: at a model's published same-person distance many other
        # children's faces come closer (docs/calibration.md). Say so where operators look.
        fallback = ("the `any` calibration, which understates false matches among children"
                    if "any" in matcher.calibrations
                    else f"the raw threshold {matcher.match_threshold:.3f}")
        log.warning("no child calibration for %s: children's cases use %s; run `matcher "
                    "calibrate --category child` (docs/calibration.md)", pipeline.model_id,
                    fallback)
    fill_false_match_rates(matcher)  # candidates stored before their model's calibration
    return matcher
