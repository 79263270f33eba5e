"""Every FaceIndex operation on seeded synthetic faces, checked against an exact numpy oracle."""

from __future__ import annotations

import os

import numpy as np
import pytest

from matcher.bench.synthetic import Collection, FaceModel, planted, strangers
from matcher.config import Settings
from matcher.index import (
    DimensionMismatch,
    DuplicateFaceId,
    FaceIndex,
    FaceNotFound,
    IndexParams,
    InvalidVectors,
    Kind,
    OwnerFilter,
    kinds,
    mean_top2,
)
from matcher.wiring import index_params
from tests.index.conftest import DIM, MODEL_ID, exact_owner_ranking, make_index, params

KINDS = ["flat", "hnsw", "ivfpq"]


def test_flat_search_equals_the_exact_oracle(faces: Collection, face_model: FaceModel) -> None:
    index = make_index(faces)
    queries = np.concatenate([planted(face_model, faces, 20)[0], strangers(face_model, 20)])
    hits = index.search(queries, k=10)
    owners, distances = exact_owner_ranking(faces, queries, 10)
    np.testing.assert_array_equal(hits.owners, owners)
    np.testing.assert_allclose(hits.distances, distances, rtol=1e-4, atol=1e-5)
    assert index.kind is Kind.FLAT and index.factory == "IDMap2,Flat"


@pytest.mark.parametrize("kind", KINDS)
def test_reported_distances_are_exact_euclidean(
    kind: str, faces: Collection, face_model: FaceModel
) -> None:
    index = make_index(faces, kind)
    queries, _ = planted(face_model, faces, 10)
    hits = index.search(queries, k=5)
    rows = np.searchsorted(np.sort(faces.ids), hits.face_ids)
    by_id = faces.vectors[np.argsort(faces.ids)]
    exact = np.linalg.norm(by_id[rows] - queries[:, None, :], axis=2)
    np.testing.assert_allclose(hits.distances, exact, rtol=1e-4, atol=1e-5)
    assert (np.diff(hits.distances, axis=1) >= 0).all()
    # each reported face belongs to the reported owner
    owner_of = dict(zip(faces.ids.tolist(), faces.owners.tolist(), strict=True))
    assert [owner_of[f] for f in hits.face_ids.ravel()] == hits.owners.ravel().tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_planted_faces_find_their_owner(
    kind: str, faces: Collection, face_model: FaceModel
) -> None:
    index = make_index(faces, kind)
    queries, truth = planted(face_model, faces, 100, seed=3)
    assert np.mean(index.search(queries, k=1).owners[:, 0] == truth) >= 0.95


@pytest.mark.parametrize(("kind", "tolerance"), [("hnsw", 0.95), ("ivfpq", 0.90)])
def test_approximate_recall_at_10_against_exact(
    kind: str, tolerance: float, many_faces: Collection, face_model: FaceModel
) -> None:
    """Owner recall@10 of approximate kinds on 20k faces, planted and stranger queries."""
    exact = make_index(many_faces)
    approx = make_index(many_faces, kind, ivf_nlist=128, ivf_nprobe=32)
    queries = np.concatenate([planted(face_model, many_faces, 100)[0],
                              strangers(face_model, 100)])
    truth, found = exact.search(queries, 10).owners, approx.search(queries, 10).owners
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= tolerance, f"{kind} recall@10 {recall:.3f} < {tolerance}"


def test_an_owner_with_many_faces_cannot_crowd_out_others(
    faces: Collection, face_model: FaceModel
) -> None:
    query = planted(face_model, faces, 1)[0]
    crowd = query + np.random.default_rng(0).normal(0, 0.01, (300, DIM)).astype(np.float32)
    for kind in KINDS:
        index = make_index(faces, kind)
        index.add(np.arange(10**6, 10**6 + 300), np.full(300, 10**5), crowd)
        hits = index.search(query, k=8)
        assert hits.owners[0, 0] == 10**5
        assert len(set(hits.owners[0].tolist())) == 8 and (hits.owners[0] >= 0).all(), kind


def test_add_then_search_finds_the_new_face(faces: Collection, face_model: FaceModel) -> None:
    index = make_index(faces)
    newcomer = strangers(face_model, 1, seed=99)
    index.add([10**9], [424242], newcomer)
    assert index.search(newcomer, 1).owners[0, 0] == 424242
    assert len(index) == len(faces.ids) + 1
    assert index.faces_of(424242).tolist() == [10**9]


@pytest.mark.parametrize("kind", KINDS)
def test_removed_owner_is_gone_from_the_very_next_search(
    kind: str, faces: Collection, face_model: FaceModel
) -> None:
    index = make_index(faces, kind)
    queries, truth = planted(face_model, faces, 30, seed=5)
    before = index.search(queries, 10).owners
    target = int(truth[0])
    removed = index.remove_owner(target)
    assert removed == int(np.sum(faces.owners == target)) > 0
    after = index.search(queries, 10).owners
    assert target not in after
    assert (after >= 0).all()  # the others fill the gap
    assert index.remove_owner(target) == 0
    assert index.faces_of(target).size == 0
    assert before.shape == after.shape


@pytest.mark.parametrize("kind", KINDS)
def test_remove_one_face(kind: str, faces: Collection) -> None:
    index = make_index(faces, kind)
    face_id = int(faces.ids[0])
    query = faces.vectors[0]
    assert index.search(query, 1).face_ids[0, 0] == face_id
    index.remove([face_id])
    assert face_id not in index.search(query, 10).face_ids
    assert len(index) == len(faces.ids) - 1
    with pytest.raises(FaceNotFound):
        index.remove([face_id])


def test_tombstoned_ids_are_not_reused_before_a_rebuild(faces: Collection) -> None:
    index = make_index(faces, "hnsw")
    index.remove([int(faces.ids[0])])
    assert index.tombstone_count == 1
    with pytest.raises(DuplicateFaceId):
        index.add([int(faces.ids[0])], [1], faces.vectors[:1])


def test_bad_input_is_refused(faces: Collection) -> None:
    index = make_index(faces)
    with pytest.raises(DuplicateFaceId):
        index.add([int(faces.ids[0])], [1], faces.vectors[:1])
    with pytest.raises(DuplicateFaceId):
        index.add([5, 5], [1, 1], faces.vectors[:2])
    with pytest.raises(DimensionMismatch):
        index.add([10**8], [1], np.zeros((1, 64), np.float32))
    with pytest.raises(InvalidVectors):
        index.add([10**8], [1], np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(InvalidVectors):
        index.add([-3], [1], faces.vectors[:1])
    with pytest.raises(InvalidVectors):
        index.add([10**8, 10**8 + 1], [1], faces.vectors[:2])
    with pytest.raises(DimensionMismatch):
        index.search(np.zeros((1, 3), np.float32))
    with pytest.raises(InvalidVectors):
        index.search(faces.vectors[:1], k=0)
    assert len(index) == len(faces.ids)  # nothing half-added


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", ["small", "large"])
def test_filtered_search_never_leaves_the_filter(
    kind: str, size: str, faces: Collection, face_model: FaceModel
) -> None:
    """Small filters are searched exactly over their faces; large ones by IDSelector."""
    index = make_index(faces, kind)
    rng = np.random.default_rng(1)
    share = 0.02 if size == "small" else 0.5
    allowed = rng.choice(int(faces.owners.max()) + 1, int(share * faces.owners.max()), False)
    queries = np.concatenate([planted(face_model, faces, 20)[0], strangers(face_model, 20)])
    hits = index.search(queries, k=10, owners=allowed)
    got = hits.owners[hits.owners >= 0]
    assert np.isin(got, allowed).all()
    assert (hits.owners >= 0).all()  # enough allowed owners exist to fill every row
    oracle, _ = exact_owner_ranking(faces, queries, 10, allowed)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in
                      zip(hits.owners, oracle, strict=True)])
    assert recall >= (1.0 if kind == "flat" or size == "small" else 0.9)


def test_filter_with_no_known_owner_returns_nothing(faces: Collection) -> None:
    hits = make_index(faces).search(faces.vectors[:2], k=3, owners=[10**7])
    assert (hits.owners == -1).all() and np.isinf(hits.distances).all()


def test_empty_index_and_fewer_owners_than_k(faces: Collection) -> None:
    index = FaceIndex(MODEL_ID, DIM, params())
    assert (index.search(faces.vectors[:1], 5).owners == -1).all()
    index.add(faces.ids[:3], [1, 1, 2], faces.vectors[:3])
    hits = index.search(faces.vectors[:1], 5)
    assert sorted(hits.owners[0, :2].tolist()) == [1, 2]
    assert (hits.owners[0, 2:] == -1).all() and hits.found[0] == 2


def test_kind_is_chosen_by_size_and_recorded(faces: Collection) -> None:
    small = make_index(faces, "auto", hnsw_min_faces=5_000, ivfpq_min_faces=50_000)
    assert small.kind is Kind.FLAT and not small.needs_rebuild
    big = make_index(faces, "auto", hnsw_min_faces=1_000, ivfpq_min_faces=50_000)
    assert big.kind is Kind.HNSW and big.factory.startswith("IDMap2,HNSW")
    grown = make_index(faces, "auto", hnsw_min_faces=2_001, ivfpq_min_faces=50_000)
    assert grown.kind is Kind.FLAT
    grown.add([10**9], [1], faces.vectors[:1])
    assert grown.needs_rebuild and grown.preferred_kind is Kind.HNSW
    ivf = make_index(faces, "auto", hnsw_min_faces=100, ivfpq_min_faces=1_000)
    assert ivf.kind is Kind.IVFPQ and ivf.factory == "IVF64,PQ16x8np"


def test_settings_reach_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATCHER_INDEX_HNSW_MIN_FACES", "1234")
    monkeypatch.setenv("MATCHER_INDEX_KIND", "hnsw")
    index = FaceIndex(MODEL_ID, DIM, index_params(Settings()))
    assert index.params.hnsw_min_faces == 1234 and index.kind is Kind.HNSW


def test_rebuild_from_batches_swaps_in_the_new_faces(faces: Collection) -> None:
    index = make_index(faces)
    half = len(faces.ids) // 2
    batches = [(faces.ids[i : i + 250], faces.owners[i : i + 250], faces.vectors[i : i + 250])
               for i in range(0, half, 250)]
    index.rebuild(batches)
    assert len(index) == half
    assert index.search(faces.vectors[-1], 1).face_ids[0, 0] != faces.ids[-1]
    assert index.search(faces.vectors[0], 1).face_ids[0, 0] == faces.ids[0]
    index.rebuild([])
    assert len(index) == 0


def test_fusion_is_swappable(faces: Collection) -> None:
    # owner 1: one very close face; owner 2: two fairly close faces
    query = faces.vectors[0]
    step = np.zeros(DIM, np.float32)
    step[0] = 1.0
    vectors = np.stack([query + 0.10 * step, query + 0.30 * step, query + 0.12 * step,
                        query + 0.13 * step])
    rows = [(np.array([1, 2, 3, 4]), np.array([1, 1, 2, 2]), vectors)]
    best_first = FaceIndex.from_rows(MODEL_ID, DIM, rows, params())
    assert best_first.search(query, 2).owners[0].tolist() == [1, 2]
    mean_first = FaceIndex.from_rows(MODEL_ID, DIM, rows, params(), fusion=mean_top2)
    hits = mean_first.search(query, 2)
    assert hits.owners[0].tolist() == [2, 1]
    np.testing.assert_allclose(hits.distances[0], [0.125, 0.2], atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_filter_over_sparse_ids(kind: str, faces: Collection) -> None:
    """Ids far apart get a hash-set selector instead of a bitmap; same guarantee."""
    sparse = Collection(faces.ids * 10**10, faces.owners, faces.vectors, faces.centres)
    index = make_index(sparse, kind)
    allowed = np.arange(0, int(faces.owners.max()), 2)
    hits = index.search(faces.vectors[:40], k=10, owners=allowed)
    assert np.isin(hits.owners, allowed).all()


def test_id_selectors_accept_exactly_the_given_ids() -> None:
    for ids in (np.array([3, 9, 64, 65]), np.array([3, 9, 10**15])):
        sel, _keep = kinds.id_selector(ids)
        probe = np.array([0, 3, 4, 9, 63, 64, 65, 66, 10**15, 10**15 + 1])
        assert [sel.is_member(int(i)) for i in probe] == np.isin(probe, ids).tolist()


def test_index_params_defaults_match_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MATCHER_INDEX_"):
            monkeypatch.delenv(name)
    assert IndexParams() == index_params(Settings())


@pytest.mark.parametrize("kind", KINDS)
def test_a_prepared_filter_follows_changes(
    kind: str, faces: Collection, face_model: FaceModel
) -> None:
    index = make_index(faces, kind, filter_exact_max=0)  # always through the IDSelector
    allowed = np.arange(0, int(faces.owners.max()), 2)
    girls = OwnerFilter(allowed)
    queries, truth = planted(face_model, faces, 30, seed=8)
    first = index.search(queries, 10, owners=girls)
    assert np.isin(first.owners, allowed).all()
    mated = np.isin(truth, allowed)
    assert np.mean(first.owners[mated, 0] == truth[mated]) >= 0.9
    # removed: gone at once, also for HNSW whose faces stay in the graph as tombstones
    target = int(first.owners[0, 0])
    index.remove_owner(target)
    assert target not in index.search(queries, 10, owners=girls).owners
    # added: a new face of an allowed owner is found through the same filter
    index.add([10**9], [int(allowed[1])], queries[0])
    assert index.search(queries[0], 1, owners=girls).face_ids[0, 0] == 10**9
    assert np.array_equal(index.search(queries, 10, owners=allowed).owners,
                          index.search(queries, 10, owners=girls).owners)
