"""Reindexing: every stored face embedded by another model (embedding.py), new indexes built
beside the live ones, compared with them on a sample of sightings, then swapped in while the
service answers.

A job holds the store alone (`claim_reindex`, holders.py) and resumes where a stopped one
left off: the vectors it wrote stay. Decisions key on face and case ids, which a reindex never
changes, so every one survives. The swap takes the model lock alone, embeds the faces stored
meanwhile and rebuilds a new index that no longer holds the store's faces, then replaces the
pipeline, indexes and calibrations in one step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from matcher.calibration import load_serving
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.projection import ProjectedEmbedder, ProjectionError
from matcher.fitted import CALIBRATIONS
from matcher.service.embedding import (
    EmbedCounts,
    Embedding,
    LocalEmbedding,
    ProgressFn,
    embed_missing,
    project_stored,
)
from matcher.service.holders import REINDEX, Hold, StoreBusy, claim
from matcher.service.runtime import Runtime, Serving, empty_serving
from matcher.service.saved_index import fingerprint
from matcher.service.serving import model_settings, record_serving, with_model_settings
from matcher.store import active_case_face_rows, active_case_face_summary, session_scope
from matcher.store.face_rows import sighting_face_rows, sighting_face_summary
from matcher.store.vectors import (
    cases_without_vectors,
    count_faces_without_vectors,
    count_vectors,
    latest_sighting_vectors,
)
from matcher.wiring import load_pipeline

log = logging.getLogger(__name__)


class ReindexError(Exception):
    """A reindex that cannot run (another is running, nothing would change, ...)."""


def build_serving(settings: Settings, sessions: Any, pipeline: FacePipeline) -> Serving:
    """Both indexes of the target model, from the store (beside the live ones), with the
    target model's own calibrations: the live ones measure another model's distances."""
    serving = replace(empty_serving(settings, pipeline), calibrations=load_serving(
        settings.calibration_dir, CALIBRATIONS, pipeline.model_id))
    with sessions() as session:
        serving.index.rebuild(active_case_face_rows(session, pipeline.model_id))
        serving.sighting_index.rebuild(sighting_face_rows(session, pipeline.model_id))
    return serving


@dataclass(frozen=True)
class Shadow:
    """The same sighting faces searched under the live model and under the new one."""

    sampled: int
    rank1_changed: int  # the closest case differs

    @property
    def changed_share(self) -> float:
        return self.rank1_changed / self.sampled if self.sampled else 0.0


def shadow_compare(sessions: Any, live: Serving, new: Serving, sample: int) -> Shadow:
    """The latest sighting faces both models embedded, each searched under both: how often
    the closest case changes."""
    with sessions() as session:
        ids, old_vectors, new_vectors = latest_sighting_vectors(
            session, live.model_id, new.model_id, sample)
    if not ids or len(live.index) == 0:
        return Shadow(len(ids), 0)
    before = live.index.search(np.stack(old_vectors), k=1).owners[:, 0]
    after = new.index.search(np.stack(new_vectors), k=1).owners[:, 0]
    return Shadow(len(ids), int(np.sum(before != after)))


def catch_up(matcher: Runtime, new: Serving, embedding: Embedding) -> int:
    """Under the model lock: faces stored while the job ran get their vectors, and each new
    index is rebuilt if it no longer holds exactly the store's faces for it (uploads, closed
    cases, removed photos, a retention purge: the live indexes followed them, not these).
    Returns how many faces it embedded."""
    counts = embed_missing(matcher.sessions, matcher.settings.data_dir, new.model_id,
                           embedding, matcher.settings.detect_batch_size)
    match_store(matcher.sessions, new)
    return counts.faces


def match_store(sessions: Any, serving: Serving) -> bool:
    """Rebuilds each index of `serving` that does not hold exactly the store's faces for its
    model; whether it rebuilt one."""
    rebuilt = False
    for index, summary, rows in (
            (serving.index, active_case_face_summary, active_case_face_rows),
            (serving.sighting_index, sighting_face_summary, sighting_face_rows)):
        with sessions() as session:
            wanted = summary(session, serving.model_id)
        with index.read_state() as state:
            current = fingerprint(state.owners) == wanted
        if not current:
            with sessions() as session:
                index.rebuild(rows(session, serving.model_id))
            rebuilt = True
    return rebuilt


@dataclass(frozen=True)
class ReindexReport:
    from_model: str
    to_model: str
    dry_run: bool
    faces_to_embed: int
    faces_embedded: int = 0
    faces_projected: int = 0  # computed from stored vectors of a projection's base model
    faces_not_found: int = 0
    photos: int = 0
    caught_up: int = 0  # faces stored during the job, embedded during the swap
    seconds: float = 0.0
    shadow: Shadow | None = None
    swapped: bool = False
    stopped: bool = False
    index_faces: int = 0
    # Active cases none of whose faces the new model could embed: out of matching under it.
    unmatchable_cases: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.shadow is not None:
            out["shadow"]["changed_share"] = self.shadow.changed_share
        return out


def claim_reindex(matcher: Runtime, on_lost: Callable[[], None] | None = None) -> Hold:
    """The store's one reindex hold (matcher/service/holders.py), or ReindexError saying
    which reindex holds the store."""
    try:
        return claim(matcher.sessions, REINDEX, on_lost)
    except StoreBusy as exc:
        raise ReindexError(str(exc)) from exc


@dataclass
class ReindexJob:
    """One reindex of a live service to the model that `target` settings choose."""

    matcher: Runtime
    target: Settings
    dry_run: bool = False
    shadow_sample: int = 200
    embedding: Embedding | None = None  # default: LocalEmbedding in `settings.workers` threads
    progress: ProgressFn | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    # The store's reindex hold, released when the run ends. None: `run` claims it (a dry run
    # takes none: it writes nothing).
    hold: Hold | None = None

    def run(self) -> ReindexReport:
        try:  # what every start checks; a target built with model_copy skipped it
            self.target = with_model_settings(self.target, {})
        except ValueError as exc:
            if self.hold is not None:
                self.hold.release()
            raise ReindexError(f"the target model settings are refused: {exc}") from exc
        if self.hold is None and not self.dry_run:
            self.hold = claim_reindex(self.matcher, self.stop.set)
        try:
            return self._run()
        finally:
            if self.hold is not None:
                self.hold.release()

    def _run(self) -> ReindexReport:
        started = time.monotonic()
        matcher = self.matcher
        pipeline = self._pipeline()
        with matcher.sessions() as session:
            to_embed = count_faces_without_vectors(session, pipeline.model_id)
        report = ReindexReport(matcher.model_id, pipeline.model_id, self.dry_run, to_embed)
        if self.dry_run:
            return report
        projected = 0
        embedder = pipeline.embedder
        # Stored vectors of the base model were made with the serving detector's faces: with
        # the same detector, projecting them gives the vectors a re-embedding would.
        if (isinstance(embedder, ProjectedEmbedder)
                and self.target.detector == matcher.settings.detector):
            projected = project_stored(matcher.sessions, embedder.projection, self.progress,
                                       to_embed, self.stop)
        embedding = self.embedding or LocalEmbedding(pipeline, self.target.workers)
        counts = embed_missing(matcher.sessions, matcher.settings.data_dir, pipeline.model_id,
                               embedding, matcher.settings.detect_batch_size, self.progress,
                               self.stop)
        report = replace(report, faces_projected=projected)
        if self.stop.is_set():
            return _done(report, counts, started, stopped=True)
        with matcher.sessions() as session:
            if to_embed and not count_vectors(session, pipeline.model_id):
                raise ReindexError(f"{pipeline.model_id} embedded none of the {to_embed} stored "
                                   "faces (its detector found none of them again): not swapping")
            unmatchable = tuple(cases_without_vectors(session, pipeline.model_id))
        if unmatchable:
            log.warning("under %s, %d active cases have no face left to match: %s",
                        pipeline.model_id, len(unmatchable), list(unmatchable))
        report = replace(report, unmatchable_cases=unmatchable)
        new = build_serving(matcher.settings, matcher.sessions, pipeline)
        shadow = shadow_compare(matcher.sessions, matcher.serving, new, self.shadow_sample)
        log.info("shadow comparison: rank-1 case changed for %d of %d sighting faces",
                 shadow.rank1_changed, shadow.sampled)
        with matcher.model_lock.write(), matcher.case_lock:
            caught_up = catch_up(matcher, new, embedding)
            with session_scope(matcher.sessions) as session:  # every process moves to it
                record_serving(session, self.target, new.model_id)
            # Pipeline, indexes and calibrations in one step: a threshold or an expected
            # false count is never read on the old model's distance scale.
            matcher.serving, matcher.settings = new, self.target
        log.info("now serving %s (%d case faces), calibrated categories: %s", new.model_id,
                 len(new.index), sorted(new.calibrations) or "none")
        if "child" not in new.calibrations:
            log.warning("no child calibration for %s: children's cases use %s; run `matcher "
                        "calibrate --category child`", new.model_id,
                        "the `any` calibration" if "any" in new.calibrations
                        else f"the raw threshold {matcher.match_threshold:.3f}")
        return _done(report, counts, started, shadow=shadow, swapped=True, caught_up=caught_up,
                     index_faces=len(new.index))

    def _pipeline(self) -> FacePipeline:
        if model_settings(self.target) == model_settings(self.matcher.settings):
            # Nothing to change, unless the serving model lacks vectors (its settings were
            # changed without a reindex): then the job embeds them, for the same model.
            with self.matcher.sessions() as session:
                if not count_faces_without_vectors(session, self.matcher.model_id):
                    raise ReindexError(f"the service already runs {self.matcher.model_id}, "
                                       "and every stored face has its vector")
            return self.matcher.pipeline
        try:
            pipeline = load_pipeline(self.target)
        except ProjectionError as exc:  # unreadable, or fitted for another model
            raise ReindexError(str(exc)) from exc
        if pipeline.model_id == self.matcher.model_id:
            raise ReindexError(f"these settings give the serving model {pipeline.model_id}")
        return pipeline


def _done(report: ReindexReport, counts: EmbedCounts, started: float,
          **changes: Any) -> ReindexReport:
    return replace(report, faces_embedded=counts.faces, faces_not_found=counts.not_found,
                   photos=counts.photos, seconds=round(time.monotonic() - started, 3),
                   **changes)


@dataclass
class ReindexStatus:
    running: bool = False
    to_model: str | None = None
    done: int = 0
    total: int = 0
    report: ReindexReport | None = None
    error: str | None = None


class ReindexRunner:
    """Runs one ReindexJob at a time in a background thread of the service (a reindex of the
    store runs alone: `claim_reindex`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status = ReindexStatus()
        self._job: ReindexJob | None = None
        self._thread: threading.Thread | None = None

    def start(self, job: ReindexJob) -> ReindexStatus:
        """Starts the job, or raises ReindexError when one runs here already, or when the
        store is held by a reindex elsewhere (claimed here, so the caller learns it at once).
        Blocks on the store for the claim: call it from a worker thread."""
        with self._lock:
            if self._status.running:
                raise ReindexError("a reindex is running already")
            if not job.dry_run and job.hold is None:
                job.hold = claim_reindex(job.matcher, job.stop.set)
            self._status = ReindexStatus(running=True, to_model=model_label(job.target))
            job.progress = self._progress
            self._job = job
            self._thread = threading.Thread(target=self._run, args=(job,), name="reindex",
                                            daemon=True)
            self._thread.start()
            return replace(self._status)

    def status(self) -> ReindexStatus:
        with self._lock:
            return replace(self._status)

    def stop(self, wait_s: float | None = None) -> None:
        """Asks the job to stop after its current batch (it resumes on the next run)."""
        with self._lock:
            job, thread = self._job, self._thread
        if job is not None:
            job.stop.set()
        if thread is not None and wait_s is not None:
            thread.join(wait_s)

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            self._status.done, self._status.total = done, total

    def _run(self, job: ReindexJob) -> None:
        report, error = None, None
        try:
            report = job.run()
        except Exception as exc:  # reported to the admin who asked; the service goes on
            log.exception("reindex failed")
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._status.running, self._status.report, self._status.error = False, report, error


def model_label(settings: Settings) -> str:
    return ", ".join(f"{k}={v}" for k, v in model_settings(settings).items())
