"""The self-check an approximate index runs at build and load (matcher/index/selfcheck.py):
it raises its search knob until recall@10 against exact search keeps the promise, and stays
exact when no setting can (issue 24)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from matcher.bench.synthetic import Collection, FaceModel, planted, strangers
from matcher.index import FaceIndex, Kind, load, save
from tests.index.conftest import DIM, MODEL_ID, exact_owner_ranking, make_index

# A sparse graph searched with a short list: far short of the promise as configured. The
# other index tests turn the check off (conftest.params); these turn it on.
POOR = {"hnsw_m": 8, "hnsw_ef_construction": 16, "hnsw_ef_search": 8, "recall_target": 0.95}


def _recall(index: FaceIndex, data: Collection, face_model: FaceModel) -> float:
    """recall@10 against exact search (flat, tested against the numpy oracle), on fresh faces
    the check never saw: 100 of indexed owners and 100 strangers."""
    queries = np.concatenate([planted(face_model, data, 100, seed=21)[0],
                              strangers(face_model, 100, seed=22)])
    truth = make_index(data).search(queries, 10).owners
    found: NDArray[np.int64] = index.search(queries, 10).owners
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth,
                                                                      strict=True)]))


def test_the_self_check_raises_ef_search_until_recall_holds(
        many_faces: Collection, face_model: FaceModel) -> None:
    unchecked = make_index(many_faces, "hnsw", **{**POOR, "recall_target": 0})
    assert unchecked.self_check is None
    short = _recall(unchecked, many_faces, face_model)
    assert short < 0.95, short  # as configured, it breaks the promise

    index = make_index(many_faces, "hnsw", **POOR)
    check = index.self_check
    assert check is not None and index.kind is Kind.HNSW
    assert check.knob == "hnsw_ef_search" and check.value is not None and check.value > 8
    assert check.recall_at_10 >= 0.95
    assert check.planted_first >= check.exact_planted_first - 0.01
    assert _recall(index, many_faces, face_model) >= 0.95  # on queries it did not see


def test_an_index_that_cannot_keep_the_promise_stays_exact(
        many_faces: Collection, face_model: FaceModel, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        index = make_index(many_faces, "hnsw", hnsw_ef_search_max=8, **POOR)
    assert index.kind is Kind.FLAT and "stays exact" in caplog.text
    assert index.self_check is not None and index.self_check.serving == "flat"
    assert not index.needs_rebuild  # the size still asks for HNSW: no rebuild every round
    queries = planted(face_model, many_faces, 20, seed=23)[0]
    truth, distances = exact_owner_ranking(many_faces, queries, 10)
    hits = index.search(queries, 10)
    assert (hits.owners == truth).all()
    assert np.allclose(hits.distances, distances, atol=1e-5)
    index.remove_owner(int(truth[0, 0]))  # exact removes in place
    assert int(truth[0, 0]) not in index.search(queries[:1], 10).owners


def test_a_loaded_index_checks_itself_again(many_faces: Collection, tmp_path: Path) -> None:
    built = make_index(many_faces, "hnsw", **POOR)
    save(built, tmp_path)
    loaded = load(tmp_path, MODEL_ID, DIM, built.params)
    assert built.self_check is not None and loaded.self_check is not None
    assert loaded.self_check.value == built.self_check.value > 8
