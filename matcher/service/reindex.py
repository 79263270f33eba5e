"""Reindexing: every stored face embedded by another model, new indexes built beside the live
ones, compared with them on a sample of sightings, then swapped in while the service answers.

Vectors go to `face_vectors` (one row per face and model), committed a batch of photos at a
time, so a job stopped by a crash or Ctrl-C resumes where it stopped: the next run only embeds
the faces that still lack a vector of the target model. Decisions key on face and case ids,
which a reindex never changes, so every one survives.

A stored face keeps the detection it came from (detector name, box, score, keypoints): when
the target pipeline uses the same detector, each face is aligned and embedded from it, without
detecting the photo again, so every face gets its vector. Faces stored before detections were
kept (or under another detector) are detected again and matched to the stored ones by box
overlap (IoU >= MIN_IOU): a stored face that is not found again gets no vector and leaves
matching under the new model (counted in the report).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from matcher.calibration import load_serving
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.image import load_image
from matcher.embed.projection import ProjectedEmbedder, Projection, ProjectionError
from matcher.embed.types import Detection
from matcher.fitted import CALIBRATIONS
from matcher.service.holders import REINDEX, Hold, StoreBusy, claim
from matcher.service.runtime import Runtime, Serving, empty_serving
from matcher.service.saved_index import fingerprint
from matcher.service.serving import model_settings, record_serving, with_model_settings
from matcher.store import (
    active_case_face_rows,
    active_case_face_summary,
    read_photo,
)
from matcher.store.face_rows import sighting_face_rows, sighting_face_summary
from matcher.store.vectors import (
    FaceToEmbed,
    add_vectors,
    cases_without_vectors,
    count_faces_without_vectors,
    count_vectors,
    faces_without_vectors,
    latest_sighting_vectors,
    vectors_to_derive,
)
from matcher.wiring import load_pipeline

log = logging.getLogger(__name__)

MIN_IOU = 0.5
FACES_PER_QUERY = 2000

Box = tuple[float, float, float, float]
Vector = NDArray[np.float32]
ProgressFn = Callable[[int, int], None]  # faces done, faces to do


class ReindexError(Exception):
    """A reindex that cannot run (another is running, nothing would change, ...)."""


# --- embedding stored photos -----------------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def embed_photos(pipeline: FacePipeline, jpegs: Sequence[bytes],
                 faces: Sequence[Sequence[FaceToEmbed]]) -> list[list[Vector | None]]:
    """For each stored photo, the target model's vector of each of its stored faces.

    A photo whose faces all came from the target pipeline's detector is embedded from those
    stored detections. Any other is detected again and each stored face takes the vector of
    the face found with the most overlap (IoU >= MIN_IOU), or None; several stored faces may
    take the same one (sightings that sent the same pixels share one photo file).
    Pure: no store access (Ray workers run it)."""
    config = pipeline.config
    images = [load_image(data, max_bytes=config.max_image_bytes,
                         max_pixels=config.max_image_pixels) for data in jpegs]
    out: list[list[Vector | None]] = [[] for _ in images]
    stored = [i for i, wanted in enumerate(faces)
              if all(face.detector == pipeline.detector.name for face in wanted)]
    embedded = pipeline.embed_detections([images[i] for i in stored],
                                         [[_detection(f) for f in faces[i]] for i in stored])
    for i, found in zip(stored, embedded, strict=True):
        out[i] = [face.vector for face in found]
    again = sorted(set(range(len(images))) - set(stored))
    for i, found in zip(again, pipeline.process([images[i] for i in again]), strict=True):
        for face in faces[i]:
            overlap, best = max(((iou(face.box, f.box), j) for j, f in enumerate(found)),
                                default=(0.0, -1))
            out[i].append(found[best].vector if overlap >= MIN_IOU else None)
    return out


def _detection(face: FaceToEmbed) -> Detection:
    keypoints = None if face.keypoints is None else np.asarray(face.keypoints, np.float32)
    return Detection(face.box, face.score, keypoints)


@dataclass(frozen=True)
class PhotoBatch:
    paths: list[str]
    faces: list[list[FaceToEmbed]]  # per photo


Job = tuple[list[bytes], list[list[FaceToEmbed]]]  # stored photos and their stored faces


class Embedding(Protocol):
    """Maps photo batches to vectors: in this process, or on a Ray cluster."""

    parallelism: int  # batches handed to `map` at once

    def map(self, jobs: Sequence[Job]) -> list[list[list[Vector | None]]]: ...


@dataclass
class LocalEmbedding:
    """Batches through torch in `parallelism` threads of this process (torch releases the
    GIL while it computes)."""

    pipeline: FacePipeline
    parallelism: int = 1

    def map(self, jobs: Sequence[Job]) -> list[list[list[Vector | None]]]:
        if len(jobs) == 1:
            return [embed_photos(self.pipeline, *jobs[0])]
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            return list(pool.map(lambda job: embed_photos(self.pipeline, *job), jobs))


def _batches(sessions: Any, model_id: str, photos_per_batch: int) -> Iterator[PhotoBatch]:
    """Faces without a vector of `model_id`, grouped by photo, a batch of photos at a time.
    Keyset on the face id: a face not found again is not asked for twice in one run."""
    after = 0
    while True:
        with sessions() as session:
            faces = faces_without_vectors(session, model_id, after, FACES_PER_QUERY)
        if not faces:
            return
        after = faces[-1].face_id
        by_photo: dict[str, list[FaceToEmbed]] = {}
        for face in faces:
            by_photo.setdefault(face.path, []).append(face)
        paths = list(by_photo)
        for start in range(0, len(paths), photos_per_batch):
            chunk = paths[start : start + photos_per_batch]
            yield PhotoBatch(chunk, [by_photo[path] for path in chunk])


@dataclass
class EmbedCounts:
    faces: int = 0  # vectors written
    not_found: int = 0  # stored faces the target pipeline did not find again
    photos: int = 0


def embed_missing(
    sessions: Any, data_dir: Path, model_id: str, embedding: Embedding, photos_per_batch: int,
    progress: ProgressFn | None = None, stop: threading.Event | None = None,
) -> EmbedCounts:
    """Writes the target model's vector of every face that lacks one; resumable.

    Progress counts faces done of faces to do, a total that grows when faces arrive while it
    runs (a live service's uploads, which it embeds too): done never passes it."""
    with sessions() as session:
        total = count_faces_without_vectors(session, model_id)
    counts = EmbedCounts()
    batches = _batches(sessions, model_id, photos_per_batch)
    while group := list(itertools.islice(batches, embedding.parallelism)):
        jobs = [([read_photo(data_dir, path) for path in batch.paths], batch.faces)
                for batch in group]
        for batch, vectors in zip(group, embedding.map(jobs), strict=True):
            pairs = [(face.face_id, vector)
                     for faces, found in zip(batch.faces, vectors, strict=True)
                     for face, vector in zip(faces, found, strict=True) if vector is not None]
            with sessions() as session, session.begin():
                add_vectors(session, model_id, pairs)
            counts.faces += len(pairs)
            counts.not_found += sum(len(faces) for faces in batch.faces) - len(pairs)
            counts.photos += len(batch.paths)
        if progress is not None:
            done = counts.faces + counts.not_found
            if done > total:  # faces stored meanwhile: this run does those left too
                with sessions() as session:
                    total = counts.faces + count_faces_without_vectors(session, model_id)
            progress(done, max(total, done))
        if stop is not None and stop.is_set():
            log.info("reindex to %s stopped after %d faces", model_id, counts.faces)
            break
    return counts


def project_stored(sessions: Any, projection: Projection, progress: ProgressFn | None = None,
                   total: int = 0, stop: threading.Event | None = None) -> int:
    """The projected model's vector of every face that has a vector of its base model, computed
    from that vector: the projection is all that differs, so no photo is read and no network
    runs. Returns how many were written; resumable like embed_missing."""
    done, after = 0, 0
    while True:
        with sessions() as session:
            stored = vectors_to_derive(session, projection.base_model_id, projection.model_id,
                                       after, FACES_PER_QUERY)
        if not stored:
            return done
        after = stored[-1][0]
        projected = projection.apply(np.stack([vector for _, vector in stored]))
        with sessions() as session, session.begin():
            add_vectors(session, projection.model_id,
                        [(face_id, vector) for (face_id, _), vector in zip(stored, projected,
                                                                           strict=True)])
        done += len(stored)
        if progress is not None:
            progress(done, max(total, done))  # faces stored meanwhile are projected too
        if stop is not None and stop.is_set():
            return done


# --- new indexes, the comparison, the swap ---------------------------------------------------


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


def _catch_up(matcher: Runtime, new: Serving, embedding: Embedding) -> int:
    """Under the model lock: faces stored while the job ran get their vectors, and each new
    index is rebuilt if it no longer holds exactly the store's faces for it (uploads, closed
    cases, removed photos, a retention purge: the live indexes followed them, not these)."""
    counts = embed_missing(matcher.sessions, matcher.settings.data_dir, new.model_id,
                           embedding, matcher.settings.detect_batch_size)
    for index, summary, rows in (
            (new.index, active_case_face_summary, active_case_face_rows),
            (new.sighting_index, sighting_face_summary, sighting_face_rows)):
        with matcher.sessions() as session:
            wanted = summary(session, new.model_id)
        with index.read_state() as state:
            current = fingerprint(state.owners) == wanted
        if not current:
            with matcher.sessions() as session:
                index.rebuild(rows(session, new.model_id))
    return counts.faces


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


def claim_reindex(matcher: Runtime, server: Hold | None = None,
                  on_lost: Callable[[], None] | None = None) -> Hold:
    """The store's one reindex hold (matcher/service/holders.py), or ReindexError saying who
    holds the store. `server`: the hold of the server the reindex runs in, if any."""
    try:
        return claim(matcher.sessions, REINDEX, server, on_lost)
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
            self.hold = claim_reindex(self.matcher, on_lost=self.stop.set)
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
            caught_up = _catch_up(matcher, new, embedding)
            # Pipeline, indexes and calibrations in one step: a threshold or an expected
            # false count is never read on the old model's distance scale.
            matcher.serving, matcher.settings = new, self.target
        record_serving(self.target)
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
    """Runs one ReindexJob at a time in a background thread of the service; `server` is the
    service's own hold on the store (a reindex of the store runs alone: `claim_reindex`)."""

    def __init__(self, server: Hold | None = None) -> None:
        self.server = server
        self._lock = threading.Lock()
        self._status = ReindexStatus()
        self._job: ReindexJob | None = None
        self._thread: threading.Thread | None = None

    def start(self, job: ReindexJob) -> ReindexStatus:
        """Starts the job, or raises ReindexError when one runs here already, or when the
        store is held by a reindex or a server elsewhere (claimed here, so the caller learns
        it at once). Blocks on the store for the claim: call it from a worker thread."""
        with self._lock:
            if self._status.running:
                raise ReindexError("a reindex is running already")
            if not job.dry_run and job.hold is None:
                job.hold = claim_reindex(job.matcher, self.server, job.stop.set)
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
