"""Index kinds: which FAISS structure serves a collection of a given size, and how to build it.

Every kind stores face ids as FAISS ids and uses L2: dlib descriptors are not normalised and
their same-person rule (distance < 0.6) is Euclidean.

- flat  `IDMap2,Flat`          exact; O(N) per query.
- hnsw  `IDMap2,HNSW{m},Flat`  graph search over full vectors, so its distances are exact; only
                               the shortlist is approximate. Cannot remove: removed faces become
                               tombstones, skipped by an IDSelector until the next rebuild.
- ivfpq `IVF{nlist},PQ{m}x8np` compressed codes; a shortlist is re-ranked on exact vectors kept
                               in a side `IDMap2,Flat`, so reported distances are exact.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from matcher.index.errors import TooFewFaces

log = logging.getLogger(__name__)

# faiss's bundled type stubs lag the library (no SearchParametersHNSW, no wrapped `.index`).
_faiss: Any = faiss


class Kind(StrEnum):
    FLAT = "flat"
    HNSW = "hnsw"
    IVFPQ = "ivfpq"

    @property
    def exact_distances(self) -> bool:
        """Whether the structure's own distances are exact (else re-rank on raw vectors)."""
        return self is not Kind.IVFPQ

    @property
    def removes_in_place(self) -> bool:
        return self is not Kind.HNSW


@dataclass(frozen=True)
class IndexParams:
    """How an index is built and searched, as one value (the top makes it from the settings:
    `matcher.wiring.index_params`; tests and benchmarks vary it directly)."""

    kind: str = "auto"
    hnsw_min_faces: int = 100_000
    ivfpq_min_faces: int = 20_000_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 128
    hnsw_ef_search: int = 384
    hnsw_ef_search_max: int = 4096  # the self-check's highest rung (selfcheck.py)
    ivf_nlist: int = 0
    ivf_nprobe: int = 64
    pq_m: int = 32
    rerank_factor: int = 8
    owner_fetch_factor: int = 4
    filter_exact_max: int = 20_000
    threads: int = 2
    # The promise an approximate kind keeps, checked at build and load (selfcheck.py): this
    # share of exact search's top 10 owners (0: no check), the right owner first within
    # `planted_gap` of exact.
    recall_target: float = 0.95
    planted_gap: float = 0.01


def choose_kind(n_faces: int, params: IndexParams) -> Kind:
    """The kind for a collection of this size: forced by params.kind, else by thresholds."""
    if params.kind != "auto":
        return Kind(params.kind)
    if n_faces >= params.ivfpq_min_faces:
        return Kind.IVFPQ
    if n_faces >= params.hnsw_min_faces:
        return Kind.HNSW
    return Kind.FLAT


def nlist_for(n_faces: int, params: IndexParams) -> int:
    """IVF lists: params.ivf_nlist, else the power of two nearest sqrt(N), kept trainable.

    sqrt(N) rather than the usual 4*sqrt(N): k-means on 2 cores grows with the lists.
    """
    if params.ivf_nlist:
        return params.ivf_nlist
    target = math.sqrt(max(n_faces, 1))
    nlist = 2 ** round(math.log2(max(target, 1)))
    return int(min(max(nlist, 1), 65536, max(1, n_faces // 39)))


def factory_string(kind: Kind, n_faces: int, dim: int, params: IndexParams) -> str:
    if kind is Kind.FLAT:
        return "IDMap2,Flat"
    if kind is Kind.HNSW:
        return f"IDMap2,HNSW{params.hnsw_m},Flat"
    if dim % params.pq_m:
        raise ValueError(f"pq_m={params.pq_m} must divide the dimension {dim}")
    # "np": no polysemous training, which took minutes on 2 cores for nothing we use.
    return f"IVF{nlist_for(n_faces, params)},PQ{params.pq_m}x8np"


def new_structure(kind: Kind, factory: str, dim: int, params: IndexParams) -> faiss.Index:
    index = faiss.index_factory(dim, factory, faiss.METRIC_L2)
    if kind is Kind.HNSW:
        wrapper: Any = index
        _faiss.downcast_index(wrapper.index).hnsw.efConstruction = params.hnsw_ef_construction
    return index


def new_exact_store(dim: int) -> faiss.Index:
    return faiss.index_factory(dim, "IDMap2,Flat", faiss.METRIC_L2)


def train(index: faiss.Index, vectors: NDArray[np.float32], seed: int = 1234) -> None:
    """Train an IVF-PQ on a seeded sample (k-means cost grows with the sample, not with N)."""
    ivf = faiss.extract_index_ivf(index)
    needed = max(ivf.nlist, 256)  # 256 centroids per PQ sub-quantizer
    if len(vectors) < needed:
        raise TooFewFaces(f"IVF-PQ needs at least {needed} faces to train, got {len(vectors)}")
    size = min(len(vectors), max(50 * ivf.nlist, 16_384))
    rng = np.random.default_rng(seed)
    sample = vectors if size == len(vectors) else vectors[rng.choice(len(vectors), size, False)]
    index.train(np.ascontiguousarray(sample))


def search_params(
    kind: Kind, params: IndexParams, k: int, sel: faiss.IDSelector | None
) -> faiss.SearchParameters | None:
    """Per-search parameters: the IDSelector of a filter or of tombstones, and the kind's knobs."""
    extra: dict[str, Any] = {} if sel is None else {"sel": sel}
    if kind is Kind.HNSW:
        return _faiss.SearchParametersHNSW(efSearch=max(params.hnsw_ef_search, k), **extra)
    if kind is Kind.IVFPQ:
        return _faiss.SearchParametersIVF(nprobe=params.ivf_nprobe, **extra)
    return _faiss.SearchParameters(**extra) if extra else None


def id_selector(face_ids: NDArray[np.int64]) -> tuple[faiss.IDSelector, Any]:
    """An IDSelector accepting exactly these face ids, and what must stay alive while it is used.

    A bitmap over the id range when ids are dense enough (store ids are): built in ~4 ms for
    500k faces, where IDSelectorBatch's hash set took ~90 ms, too long for a per-search filter.
    """
    top = int(face_ids.max()) + 1
    if top <= max(64 * len(face_ids), 8_000_000):
        mask = np.zeros(top, dtype=bool)
        mask[face_ids] = True
        bits = np.packbits(mask, bitorder="little")
        return _faiss.IDSelectorBitmap(len(bits), _faiss.swig_ptr(bits)), bits  # n in bytes
    return faiss.IDSelectorBatch(face_ids), None


def set_threads(threads: int) -> None:
    """FAISS's OpenMP threads for the calling thread.

    libgomp keeps this per thread, so it is set by every thread that calls FAISS, just before
    the call. A single query gains nothing from more threads (FAISS parallelises over queries)
    and, on a busy machine, a 2-thread team made one exact query over 10k faces 80x slower.
    """
    faiss.omp_set_num_threads(max(1, threads))
