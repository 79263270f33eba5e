"""Fitting the learned projection on the service's own decisions (`matcher fit-projection
--from-store`): each case is one person, with its case-photo faces and the sighting faces an
investigator confirmed as `match` (matcher/store/fitting.py says which faces count).

The fit starts from the base model's vectors (the serving model's own when it has no
projection), read from the store where it holds them (a reindex to a projection keeps the base
model's vectors beside the new ones) and embedded from the stored photo and detection
otherwise, as the reindex does. Before anything is written it is scored person-disjoint: the
store's people go to FOLDS folds by a hash of their case; each fold's confirmed matches are
searched against that fold's cases, under a fit on the other folds' people and under the
serving model. It is kept only when it is better there (`Comparison.refusal`), and only on
MIN_PEOPLE or more people with two faces or more.

The file records the cases it was fitted on as hashes salted with a secret of this store
(`<data dir>/projections/store-salt`): without the data dir, a copy of the file does not say
which case ids it holds. Erasing one of those cases is logged and counted in `/metrics`
(`erased_fitted_cases`): the matrix still carries what it learned from the case's faces until
the operator refits and reindexes.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from matcher.embed import FacePipeline
from matcher.embed.projection import (
    AnyRecipe,
    ProjectedEmbedder,
    Projection,
    fit_projection,
    identity_hash,
)
from matcher.eval.folds import person_fold
from matcher.files import write_atomic
from matcher.service.embedding import embed_photos
from matcher.service.runtime import Runtime
from matcher.store import read_photo
from matcher.store.fitting import LabelledFace, case_ids, faces_to_embed, labelled_faces
from matcher.store.fitting import stored_vectors as read_vectors
from matcher.store.vectors import FaceToEmbed

log = logging.getLogger(__name__)

MIN_PEOPLE = 50  # people with two faces or more: fewer say little, and give more away of each
FOLDS = 5
FALSE_MATCH_RATE = 0.01  # of each fold's non-mated (sighting face, other case) pairs
PROJECTIONS = "projections"  # under the data dir: store fits and the store's salt
SALT_FILE = "store-salt"
PROBE_CHUNK = 256  # sighting faces scored at once (a row of distances to every fold case each)

Vector = NDArray[np.float32]
ProgressFn = Callable[[int, int], None]


class StoreFitRefused(Exception):
    """A store fit that must not be written: too few people, or not better than the serving
    model on the store's confirmed matches."""


# --- who was fitted on -----------------------------------------------------------------------


def projections_dir(data_dir: Path) -> Path:
    return data_dir / PROJECTIONS


def store_salt(data_dir: Path) -> str | None:
    """This store's secret salt for case hashes (made by its first store fit), or None."""
    path = projections_dir(data_dir) / SALT_FILE
    return path.read_text().strip() if path.is_file() else None


def ensure_store_salt(data_dir: Path) -> str:
    salt = store_salt(data_dir)
    if salt is None:
        salt = secrets.token_hex(32)
        write_atomic(projections_dir(data_dir) / SALT_FILE,
                     lambda handle: handle.write(salt.encode()))
    return salt


def case_identity(salt: str, case_id: int) -> str:
    """The identity of a store case in a fit: its hash is `identity_hash` of this."""
    return f"store:{salt}:case:{case_id}"


def serving_store_cases(matcher: Runtime) -> frozenset[str]:
    """The hashes of the store cases the serving model's projection was fitted on."""
    embedder = matcher.pipeline.embedder
    if isinstance(embedder, ProjectedEmbedder):
        return frozenset(embedder.projection.store_cases)
    return frozenset()


def erased_fitted_cases(matcher: Runtime) -> int:
    """How many of the cases the serving projection was fitted on the store no longer holds
    (all of them when this store's salt is gone: none can be shown to be here)."""
    fitted = serving_store_cases(matcher)
    if not fitted:
        return 0
    salt = store_salt(matcher.settings.data_dir)
    if salt is None:
        return len(fitted)
    with matcher.sessions() as session:
        present = sum(identity_hash(case_identity(salt, case_id)) in fitted
                      for case_id in case_ids(session))
    return len(fitted) - present


def note_erased_case(matcher: Runtime, case_id: int) -> None:
    """Warns when an erased case was one the serving projection was fitted on."""
    fitted = serving_store_cases(matcher)
    try:
        salt = store_salt(matcher.settings.data_dir) if fitted else None
    except OSError as error:  # the case is erased already: say so, do not fail the request
        log.warning("case %d was erased; whether the serving model was fitted on it is "
                    "unknown (%s)", case_id, error)
        return
    if salt is not None and identity_hash(case_identity(salt, case_id)) in fitted:
        log.warning("case %d was erased, but the serving model %s was fitted on its faces "
                    "(one of %d cases): refit without it (`matcher fit-projection "
                    "--from-store`) and reindex to the new fit", case_id, matcher.model_id,
                    len(fitted))


# --- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """Confirmed sighting faces searched against the cases of their fold."""

    searches: int = 0
    rank1: int = 0  # no other case closer than the confirmed one
    accepted: int = 0  # closer than the distance FALSE_MATCH_RATE of non-mated pairs fall under

    def __add__(self, other: Score) -> Score:
        return Score(self.searches + other.searches, self.rank1 + other.rank1,
                     self.accepted + other.accepted)


def score_searches(gallery: Vector, gallery_cases: NDArray[np.int64], probes: Vector,
                   probe_cases: NDArray[np.int64], false_match_rate: float = FALSE_MATCH_RATE
                   ) -> Score:
    """Each probe's distance to each case is its best face's (as the service ranks cases);
    the threshold is the k-th smallest non-mated distance, k = floor(rate x pairs), so at most
    that share of the pairs of a probe and another case fall under it."""
    cases, owner = np.unique(gallery_cases, return_inverse=True)
    if not np.isin(probe_cases, cases).all():
        raise ValueError("every probe's case needs a face in the gallery")
    if len(probes) == 0 or len(cases) < 2:
        return Score()
    keep = int(false_match_rate * len(probes) * (len(cases) - 1))
    order = np.argsort(owner, kind="stable")  # each case's faces side by side
    starts = np.searchsorted(owner[order], np.arange(len(cases)))
    lowest = np.empty(0, np.float32)  # the keep + 1 smallest non-mated distances so far
    mated: list[Vector] = []
    rank1 = 0
    for start in range(0, len(probes), PROBE_CHUNK):
        chunk = probes[start : start + PROBE_CHUNK]
        squared = ((chunk * chunk).sum(1)[:, None] + (gallery * gallery).sum(1)[None, :]
                   - 2.0 * chunk @ gallery.T)
        by_case = np.minimum.reduceat(squared[:, order], starts, axis=1)
        true = np.searchsorted(cases, probe_cases[start : start + PROBE_CHUNK])
        rows = np.arange(len(chunk))
        distance = by_case[rows, true]
        others = by_case.copy()
        others[rows, true] = np.inf
        rank1 += int((others.min(1) >= distance).sum())
        mated.append(distance)
        pooled = np.concatenate([lowest, others[np.isfinite(others)]])
        lowest = np.partition(pooled, keep)[: keep + 1] if len(pooled) > keep + 1 else pooled
    threshold = np.sort(lowest)[keep]
    return Score(len(probes), rank1, int((np.concatenate(mated) < threshold).sum()))


# --- the fit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldResult:
    fold: int
    fitted: tuple[str, ...]  # identity hashes of the people its fit was fitted on
    scored_cases: tuple[int, ...]  # cases whose confirmed matches it searched
    gallery_cases: int
    serving: Score
    fitted_score: Score


@dataclass(frozen=True)
class StoreFit:
    serving_model: str
    base_model: str
    recipe: AnyRecipe
    people: int  # with two faces or more: the ones fitted on
    faces: int  # theirs, with a base-model vector
    confirmed: int  # of those, sighting faces confirmed as `match`
    embedded: int  # base-model vectors computed from stored photos (the store had none)
    left_out: int  # people the serving projection was fitted on: not scored
    folds: tuple[FoldResult, ...]
    projection: Projection | None  # fitted on every such person; None when refused
    refusal: str | None

    @property
    def serving(self) -> Score:
        return sum((fold.serving for fold in self.folds), Score())

    @property
    def fitted(self) -> Score:
        return sum((fold.fitted_score for fold in self.folds), Score())


def comparison_refusal(serving: Score, fitted: Score) -> str | None:
    """Why the new fit is not better, or None: it must accept more confirmed matches at the
    fixed false-match rate than the serving model and find no fewer of them first."""
    if fitted.searches == 0:
        return ("no confirmed match could be scored (a person needs a confirmed sighting face "
                "and a case photo with one face, in a fold with another case)")
    if fitted.accepted <= serving.accepted or fitted.rank1 < serving.rank1:
        return (f"the new fit is not better than the serving model on the store's confirmed "
                f"matches: accepted {fitted.accepted} against {serving.accepted}, rank-1 "
                f"{fitted.rank1} against {serving.rank1} (of {fitted.searches}); it must "
                "accept more and rank no fewer first")
    return None


def fit_from_store(matcher: Runtime, recipe: AnyRecipe,
                   min_people: int = MIN_PEOPLE, folds: int = FOLDS,
                   progress: ProgressFn | None = None) -> StoreFit:
    """The store fit and how it compares with the serving model; raises StoreFitRefused when
    the store has too few people. The result's `refusal` says why it must not be written."""
    base = matcher.pipeline.plain()
    with matcher.sessions() as session:
        labelled = labelled_faces(session)
    _enough_people(labelled, min_people)  # before any photo is embedded
    vectors, embedded = _base_vectors(matcher, base, labelled, progress)
    labelled = [face for face in labelled if face.face_id in vectors]
    people = _enough_people(labelled, min_people)  # faces not found again do not count
    serving_vectors = _serving_vectors(matcher, vectors)
    salt = ensure_store_salt(matcher.settings.data_dir)
    identity = {face.case_id: case_identity(salt, face.case_id) for face in labelled}
    fitted_by_serving = serving_store_cases(matcher)
    left_out = {case for case, name in identity.items()
                if identity_hash(name) in fitted_by_serving}
    fitting = [face for face in labelled if face.case_id in people]
    results = tuple(_fold(f, folds, recipe, base, labelled, fitting, vectors, serving_vectors,
                          identity, left_out) for f in range(folds))
    result = StoreFit(matcher.model_id, base.model_id, recipe, len(people), len(fitting),
                      sum(face.confirmed for face in fitting), embedded,
                      len(left_out & people), results, None, None)
    refusal = comparison_refusal(result.serving, result.fitted)
    if refusal is not None:
        return replace(result, refusal=refusal)
    projection = _fit(base, fitting, vectors, identity, recipe)
    return replace(result, projection=replace(projection, people=(),
                                              store_cases=projection.people))


def _enough_people(faces: Sequence[LabelledFace], min_people: int) -> set[int]:
    """The cases with two faces or more, or StoreFitRefused when they are too few."""
    per_case: dict[int, int] = {}
    for face in faces:
        per_case[face.case_id] = per_case.get(face.case_id, 0) + 1
    people = {case for case, count in per_case.items() if count >= 2}
    if len(people) < min_people:
        confirmed = sum(face.confirmed for face in faces)
        raise StoreFitRefused(
            f"the store knows {len(people)} people with two faces or more, and a fit needs at "
            f"least {min_people} (faces: those of case photos with one face, and {confirmed} "
            f"sighting faces confirmed as match; {len(per_case)} cases have any)")
    return people


def save_store_fit(fit: StoreFit, path: Path) -> None:
    """Writes the fit (crash-safe); refuses one that was not better or not made."""
    if fit.refusal is not None or fit.projection is None:
        raise StoreFitRefused(fit.refusal or "nothing was fitted")
    fit.projection.save(path)


def _fit(base: FacePipeline, faces: Sequence[LabelledFace], vectors: dict[int, Vector],
         identity: dict[int, str], recipe: AnyRecipe) -> Projection:
    try:
        return fit_projection(np.stack([vectors[face.face_id] for face in faces]),
                              [identity[face.case_id] for face in faces], base.model_id,
                              base.embedder.same_person_distance, recipe)
    except ValueError as exc:  # e.g. a fold's people all with one face
        raise StoreFitRefused(f"cannot fit on {len(faces)} faces: {exc}") from exc


def _fold(fold: int, folds: int, recipe: AnyRecipe, base: FacePipeline,
          labelled: Sequence[LabelledFace], fitting: Sequence[LabelledFace],
          vectors: dict[int, Vector], serving_vectors: dict[int, Vector],
          identity: dict[int, str], left_out: set[int]) -> FoldResult:
    """Fit on the people of the other folds; search this fold's confirmed sighting faces
    against this fold's case faces, under that fit and under the serving model. People the
    serving projection was fitted on are neither searched nor searched for."""
    def here(face: LabelledFace) -> bool:
        return person_fold(identity[face.case_id], folds) == fold

    projection = _fit(base, [face for face in fitting if not here(face)], vectors, identity,
                      recipe)
    scored = [face for face in labelled if here(face) and face.case_id not in left_out
              and face.face_id in vectors and face.face_id in serving_vectors]
    gallery = [face for face in scored if not face.confirmed]
    with_gallery = {face.case_id for face in gallery}
    probes = [face for face in scored if face.confirmed and face.case_id in with_gallery]

    def score(vectors_of: Callable[[Sequence[LabelledFace]], Vector]) -> Score:
        if not probes:
            return Score()
        return score_searches(vectors_of(gallery), _cases(gallery), vectors_of(probes),
                              _cases(probes))

    return FoldResult(
        fold, projection.people, tuple(sorted({face.case_id for face in probes})),
        len(with_gallery),
        score(lambda faces: np.stack([serving_vectors[face.face_id] for face in faces])),
        score(lambda faces: projection.apply(np.stack([vectors[face.face_id]
                                                       for face in faces]))))


def _cases(faces: Sequence[LabelledFace]) -> NDArray[np.int64]:
    return np.asarray([face.case_id for face in faces], np.int64)


def _base_vectors(matcher: Runtime, base: FacePipeline, faces: Sequence[LabelledFace],
                  progress: ProgressFn | None) -> tuple[dict[int, Vector], int]:
    """The base model's vector of each face: stored, else embedded from the stored photo and
    detection (nothing is written: the fit reads the store only). Faces the base pipeline
    does not find again (another detector, IoU below the reindex's) have none."""
    ids = [face.face_id for face in faces]
    with matcher.sessions() as session:
        vectors = read_vectors(session, base.model_id, ids)
        missing = faces_to_embed(session, [i for i in ids if i not in vectors])
    embedded = 0
    for done, batch in _photo_batches(missing, matcher.settings.detect_batch_size):
        for face, vector in _embed(matcher.settings.data_dir, base, batch):
            vectors[face.face_id] = vector
            embedded += 1
        if progress is not None:
            progress(done, len(missing))
    return vectors, embedded


def _photo_batches(faces: Iterable[FaceToEmbed], photos: int
                   ) -> Iterable[tuple[int, list[list[FaceToEmbed]]]]:
    """Faces grouped by photo, `photos` photos at a time, with the faces done after each."""
    by_photo: dict[str, list[FaceToEmbed]] = {}
    for face in faces:
        by_photo.setdefault(face.path, []).append(face)
    groups, done = list(by_photo.values()), 0
    for start in range(0, len(groups), photos):
        batch = groups[start : start + photos]
        done += sum(len(group) for group in batch)
        yield done, batch


def _embed(data_dir: Path, base: FacePipeline, batch: list[list[FaceToEmbed]]
           ) -> list[tuple[FaceToEmbed, Vector]]:
    readable, jpegs = [], []
    for group in batch:
        try:
            jpegs.append(read_photo(data_dir, group[0].path))
        except FileNotFoundError:  # erased since the faces were listed
            continue
        readable.append(group)
    found = embed_photos(base, jpegs, readable) if readable else []
    return [(face, vector) for group, vectors in zip(readable, found, strict=True)
            for face, vector in zip(group, vectors, strict=True) if vector is not None]


def _serving_vectors(matcher: Runtime, base_vectors: dict[int, Vector]) -> dict[int, Vector]:
    """The serving model's vectors of the same faces, as the service holds them."""
    if matcher.pipeline.plain() is matcher.pipeline:
        return base_vectors
    with matcher.sessions() as session:
        return read_vectors(session, matcher.model_id, list(base_vectors))
