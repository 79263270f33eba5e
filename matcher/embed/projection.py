"""A learned distance: a map of descriptors fitted on labelled photos.

The pretrained networks were trained on adults; a map fitted on faces of known people can pull
each person's photos together (across ages, where the fitting photos span years) and push
different people apart. Three recipes (docs/accuracy.md measures them):

* `Recipe`, a cosine softmax over the people: x -> normalise(x @ W), with W starting at the
  identity and kept near it, so it only bends the base space;
* `PldaRecipe`, in closed form: the distance part of a two-covariance PLDA model (how far
  apart two photos are, weighed by how much people differ against how much one person's photos
  vary): x -> (x - mean) @ W, not normalised, so that Euclidean distances (the index's) are
  that model's distances;
* `StackedRecipe`, the first then the second, fitted on its outputs: the default model's
  (`matcher/fitted/projection.npz`, models/default-projection.md).

The fitted file is part of the model: its fingerprint goes into the model id, so the reindex
tool re-embeds vectors stored without it (or with another fit), and it names the base model it
was fitted for and refuses any other. It records a salted hash of every person fitted on, so an
evaluation can refuse to score those people (a gain measured on the people fitted on is not a
gain). The default model applies the shipped fit (`chosen_projection`); an operator can fit
another on photos they may use (`matcher fit-projection`).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from numpy.typing import NDArray

from matcher.embed.detector import Detector
from matcher.embed.embedder import AlignedFaces, Embedder, l2_normalise
from matcher.embed.errors import EmbedError
from matcher.embed.types import Detection, Image
from matcher.files import write_atomic
from matcher.fitted import PROJECTION as SHIPPED

FORMAT = "matcher-projection-1"
PAIR_SAMPLE = 4000  # photos whose pairs carry the threshold over (8M pairs)


class ProjectionError(EmbedError):
    """A projection file that cannot be used: unreadable, or fitted for another model."""


@dataclass(frozen=True)
class Recipe:
    """How the map is fitted: a cosine-softmax over the people fitted on (one learned centre
    per person, logits = scale x cosine), Adam, with `decay` x ||W - I||^2 keeping W near the
    identity. Each step takes every photo when there are at most `batch_size` (the fits
    measured in docs/accuracy-2026-11.md: a few thousand photos), else the next `batch_size`
    of a seeded shuffle, so that a fit on 100,000 photos of 30,000 people does not hold a logit
    for every photo and person at once. Fixed before the person-disjoint measurements; see
    docs/accuracy-2026-11.md."""

    steps: int = 100
    learning_rate: float = 1e-3
    scale: float = 16.0
    decay: float = 0.01
    seed: int = 0
    batch_size: int = 4096


@dataclass(frozen=True)
class PldaRecipe:
    """The closed-form fit of a two-covariance PLDA model: the within-person covariance (of
    the people with two or more photos) plus `shrinkage` x its mean eigenvalue on the diagonal,
    and the covariance of those people's means. Its log-likelihood ratio of "same person" is
    -1/2 (x - y)' P (x - y) plus a term for each photo alone; the map keeps the first part,
    x -> (x - mean) @ P^(1/2), which a Euclidean index can search. Fixed before the
    person-disjoint measurements; see docs/accuracy-2026-11.md."""

    shrinkage: float = 1.0


@dataclass(frozen=True)
class StackedRecipe:
    """The softmax map, then the PLDA distance fitted on its (unit-length) outputs: the first
    bends the space so that a person's photos across years come together, the second weighs
    what is left by how people differ against how one person's photos vary. Both stages keep
    the settings fixed before any measurement; chosen as the default's recipe by five
    person-disjoint splits of the dev people (docs/accuracy.md)."""

    first: Recipe = Recipe()
    then: PldaRecipe = PldaRecipe()


AnyRecipe = Recipe | PldaRecipe | StackedRecipe
METHODS: dict[str, type[AnyRecipe]] = {
    "proj": Recipe, "plda": PldaRecipe, "proj+plda": StackedRecipe}


@dataclass(frozen=True)
class Projection:
    matrix: NDArray[np.float32]  # (dim, dim): see apply()
    base_model_id: str  # the model whose vectors it was fitted on and applies to
    same_person_distance: float  # keeps the base model's false-match rate (see fit_projection)
    people: tuple[str, ...]  # identity_hash() of everyone fitted on
    recipe: AnyRecipe
    mean: NDArray[np.float32] | None = None  # PLDA only: subtracted before the matrix
    # A fit on a store's own cases (`matcher fit-projection --from-store`): each case's hash,
    # salted by that store (matcher/service/store_fit.py), kept apart from research `people`.
    store_cases: tuple[str, ...] = ()
    # proj+plda: the softmax map, applied and normalised before the PLDA one
    first: NDArray[np.float32] | None = None

    @property
    def method(self) -> str:
        return next(name for name, kind in METHODS.items() if isinstance(self.recipe, kind))

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.base_model_id.encode())
        digest.update(np.ascontiguousarray(self.matrix, np.float32).tobytes())
        for extra in (self.mean, self.first):
            if extra is not None:
                digest.update(np.ascontiguousarray(extra, np.float32).tobytes())
        return digest.hexdigest()[:12]

    @property
    def model_id(self) -> str:
        return f"{self.base_model_id}+{self.method}-{self.fingerprint}"

    def apply(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """softmax fit: normalise(x @ W); PLDA: (x - mean) @ W, whose length matters;
        proj+plda: the PLDA map of normalise(x @ first)."""
        x = np.asarray(vectors, np.float32)
        if self.first is not None:
            x = l2_normalise(x @ self.first)
        if self.mean is None:
            return l2_normalise(x @ self.matrix)
        return ((x - self.mean) @ self.matrix).astype(np.float32)

    def fitted_on(self, identities: Iterable[str]) -> set[str]:
        """Those of `identities` whose photos were fitted on."""
        people = set(self.people)
        return {i for i in identities if identity_hash(i) in people}

    def save(self, path: Path) -> None:
        meta = {"format": FORMAT, "base_model_id": self.base_model_id, "method": self.method,
                "same_person_distance": self.same_person_distance, "recipe": asdict(self.recipe)}
        arrays = {"matrix": self.matrix, "people": np.array(self.people, dtype="U64"),
                  "meta": np.array(json.dumps(meta))}
        if self.mean is not None:
            arrays["mean"] = self.mean
        if self.first is not None:
            arrays["first"] = self.first
        if self.store_cases:  # a file without them loads with none
            arrays["store_cases"] = np.array(self.store_cases, dtype="U64")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_arrays(path, arrays)


def write_arrays(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    """An .npz file (what np.load reads) whose bytes depend only on the arrays: np.savez
    stamps each member with the time of writing, so the same fit would get another sha256
    each time and a shipped file could not be checked against its refit."""
    def write(handle: BinaryIO) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for name, value in arrays.items():
                member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with archive.open(member, "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, np.asanyarray(value), allow_pickle=False)

    write_atomic(path, write)  # a crash leaves the old file or the new one, whole


def identity_hash(identity: str) -> str:
    """Who was fitted on, without writing their names into a model file that may be shared."""
    return hashlib.sha256(f"{FORMAT}:{identity}".encode()).hexdigest()


def chosen_projection(choice: str | Path, base_model_id: str) -> Projection | None:
    """The projection a setting names for vectors of `base_model_id`: "none" none, "shipped"
    the one shipped in the package when it was fitted for that model (else none: another
    base model has no shipped fit), else the file at that path."""
    if choice == "none":
        return None
    if choice == "shipped":
        if not SHIPPED.is_file():
            return None
        shipped = load_projection(SHIPPED)
        return shipped if shipped.base_model_id == base_model_id else None
    return load_projection(Path(choice), base_model_id)


def load_projection(path: Path, base_model_id: str | None = None) -> Projection:
    """The projection saved at `path`, checked to apply to `base_model_id` when given."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            meta = json.loads(str(saved["meta"]))
            matrix = saved["matrix"].astype(np.float32)
            people = tuple(str(p) for p in saved["people"])
            method = meta.get("method", "proj")  # files before PLDA have no method
            mean = saved["mean"].astype(np.float32) if "mean" in saved.files else None
            first = saved["first"].astype(np.float32) if "first" in saved.files else None
            store_cases = (tuple(str(p) for p in saved["store_cases"])
                           if "store_cases" in saved.files else ())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        projection = Projection(matrix, str(meta["base_model_id"]),
                                float(meta["same_person_distance"]), people,
                                _recipe(method, meta["recipe"]), mean, store_cases, first)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProjectionError(f"cannot read the projection file {path}: {exc}") from exc
    if base_model_id is not None and projection.base_model_id != base_model_id:
        raise ProjectionError(
            f"the projection file {path} was fitted on vectors of {projection.base_model_id!r}, "
            f"but the configured model is {base_model_id!r}: fit one for it "
            "(matcher fit-projection), or choose another: `--projection FILE|shipped|none` "
            "of `matcher reindex`, MATCHER_PROJECTION_FILE for the service")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or (
            mean is not None and mean.shape != (matrix.shape[0],)) or (
            first is not None and first.shape != matrix.shape):
        raise ProjectionError(f"the projection file {path} holds a {matrix.shape} matrix"
                              + ("" if mean is None else f" and a {mean.shape} mean"))
    return projection


def _recipe(method: str, fields: dict[str, Any]) -> AnyRecipe:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    if method == "proj+plda":
        return StackedRecipe(Recipe(**fields["first"]), PldaRecipe(**fields["then"]))
    return METHODS[method](**fields)


def fit_projection(vectors: NDArray[np.float32], identities: Sequence[str], base_model_id: str,
                   base_same_person_distance: float, recipe: AnyRecipe | None = None
                   ) -> Projection:
    """Fit the map on the base model's `vectors` of labelled photos (several people, ideally
    several photos each), by the softmax `Recipe` (the default), a `PldaRecipe` or both
    (`StackedRecipe`).
    Deterministic for the same inputs, threads and torch build."""
    x = np.asarray(vectors, np.float32)
    if x.ndim != 2 or len(x) != len(identities):
        raise ValueError(f"{len(x)} vectors for {len(identities)} identities")
    people, labels = np.unique(np.asarray(identities), return_inverse=True)
    if len(people) < 2 or len(people) == len(x):
        raise ValueError("fitting needs at least two people and someone with several photos")
    if isinstance(recipe, StackedRecipe):
        first = _fit_softmax(x, labels, len(people), recipe.first)
        mean, matrix = _fit_plda(l2_normalise(x @ first), labels, recipe.then)
        fitted = Projection(matrix, base_model_id, 0.0, _hashes(people), recipe, mean,
                            first=first)
    elif isinstance(recipe, PldaRecipe):
        mean, matrix = _fit_plda(x, labels, recipe)
        fitted = Projection(matrix, base_model_id, 0.0, _hashes(people), recipe, mean)
    else:
        recipe = recipe or Recipe()
        fitted = Projection(_fit_softmax(x, labels, len(people), recipe), base_model_id, 0.0,
                            _hashes(people), recipe)
    return replace(fitted, same_person_distance=_same_false_match_rate(
        x, fitted.apply(x), labels, base_same_person_distance))


def _hashes(people: NDArray[np.str_]) -> tuple[str, ...]:
    return tuple(sorted({identity_hash(str(p)) for p in people}))


def _fit_softmax(x: NDArray[np.float32], labels: NDArray[np.int64], people: int,
                 recipe: Recipe) -> NDArray[np.float32]:
    """W of the cosine-softmax recipe."""
    generator = torch.Generator().manual_seed(recipe.seed)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))
    dim = x.shape[1]
    identity = torch.eye(dim)
    matrix = torch.nn.Parameter(identity.clone())
    means = torch.zeros(people, dim).index_add_(0, targets, inputs)
    # Centres start at each person's mean direction, with a little seeded noise so that two
    # people with identical photos still get separate centres.
    centres = torch.nn.Parameter(torch.nn.functional.normalize(
        means + 1e-4 * torch.randn(means.shape, generator=generator), dim=1))
    optimiser = torch.optim.Adam([matrix, centres], lr=recipe.learning_rate)
    for rows in _step_rows(len(x), recipe, generator):
        projected = torch.nn.functional.normalize(inputs[rows] @ matrix, dim=1)
        logits = recipe.scale * projected @ torch.nn.functional.normalize(centres, dim=1).T
        loss = (torch.nn.functional.cross_entropy(logits, targets[rows])
                + recipe.decay * ((matrix - identity) ** 2).sum())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return matrix.detach().numpy().astype(np.float32)


def _fit_plda(x: NDArray[np.float32], labels: NDArray[np.int64], recipe: PldaRecipe
              ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(mean, P^(1/2)) of the two-covariance model: x = mean + y + e, y ~ N(0, B) the person,
    e ~ N(0, W) the photo. With T = B + W, the "same person" log-likelihood ratio of x1, x2 has
    the cross term x1' P x2, P = T^-1 B (T - B T^-1 B)^-1 (symmetric, positive semidefinite)."""
    data = np.asarray(x, np.float64)
    mean = data.mean(axis=0)
    counts = np.bincount(labels)
    several = np.flatnonzero(counts >= 2)
    if len(several) < 2:
        raise ValueError("PLDA needs at least two people with several photos")
    sums = np.zeros((len(counts), data.shape[1]))
    np.add.at(sums, labels, data)
    person_means = sums / counts[:, None]
    keep = np.isin(labels, several)
    within = data[keep] - person_means[labels[keep]]
    dim = data.shape[1]
    w = within.T @ within / len(within)
    w += recipe.shrinkage * np.trace(w) / dim * np.eye(dim)
    centred_means = person_means[several] - mean
    b = centred_means.T @ centred_means / len(several)
    total_inverse = np.linalg.inv(b + w)
    p = total_inverse @ b @ np.linalg.inv(b + w - b @ total_inverse @ b)
    eigenvalues, eigenvectors = np.linalg.eigh((p + p.T) / 2)
    root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
    return mean.astype(np.float32), root.astype(np.float32)


def _step_rows(count: int, recipe: Recipe, generator: torch.Generator
               ) -> Iterator[slice | torch.Tensor]:
    """The photos of each step: all of them, or consecutive batches of seeded shuffles."""
    if count <= recipe.batch_size:
        yield from (slice(None) for _ in range(recipe.steps))
        return
    order = torch.randperm(count, generator=generator)
    start = 0
    for _ in range(recipe.steps):
        if start + recipe.batch_size > count:  # a new shuffle for each pass over the photos
            order, start = torch.randperm(count, generator=generator), 0
        yield order[start : start + recipe.batch_size]
        start += recipe.batch_size


def _same_false_match_rate(base: NDArray[np.float32], projected: NDArray[np.float32],
                           labels: NDArray[np.int64], base_distance: float) -> float:
    """The projected distance at which different people fitted on match as often as they do
    at `base_distance` in the base space: the base model's same-person threshold, carried over
    (the default match threshold when no calibration is configured)."""
    if len(labels) > PAIR_SAMPLE:  # all pairs of a sample: memory grows with its square
        keep = np.random.default_rng(0).choice(len(labels), PAIR_SAMPLE, replace=False)
        base, projected, labels = base[keep], projected[keep], labels[keep]
    different = labels[:, None] != labels[None, :]
    upper = np.triu(np.ones_like(different), k=1) & different

    def distances(v: NDArray[np.float32]) -> NDArray[np.float32]:
        norms = (v * v).sum(axis=1)  # dlib's raw vectors are not unit length
        squared = np.maximum(norms[:, None] + norms[None, :] - 2.0 * (v @ v.T), 0.0)
        return np.sqrt(squared)[upper]

    rate = float((distances(base) < base_distance).mean())
    return round(float(np.quantile(distances(projected), rate)), 3)


class ProjectedEmbedder:
    """The base embedder, its vectors projected: same alignment, chips and networks."""

    def __init__(self, base: Embedder, projection: Projection) -> None:
        if projection.base_model_id != base.model_id:
            raise ProjectionError(f"projection for {projection.base_model_id!r} cannot apply "
                                  f"to {base.model_id!r}")
        if projection.matrix.shape[0] != base.dim:
            raise ProjectionError(f"projection of {projection.matrix.shape[0]}-d vectors "
                                  f"cannot apply to {base.dim}-d ones")
        self.base, self.projection = base, projection
        self.model_id = projection.model_id
        self.dim = projection.matrix.shape[1]
        self.same_person_distance = projection.same_person_distance

    def align(self, image: Image, detections: Sequence[Detection], detector: Detector
              ) -> AlignedFaces:
        return self.base.align(image, detections, detector)

    def embed_aligned(self, faces: Sequence[AlignedFaces]) -> NDArray[np.float32]:
        return self.projection.apply(self.base.embed_aligned(faces))
