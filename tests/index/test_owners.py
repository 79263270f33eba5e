"""OwnerMap (face id -> owner, owner -> faces) and owner ranking over a face shortlist."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.index import DuplicateFaceId, FaceNotFound, InvalidVectors
from matcher.index.fusion import best, mean_top2, rank_owners
from matcher.index.owners import OwnerMap


def test_owner_map_operations() -> None:
    owners = OwnerMap.build(np.array([30, 10, 20, 40]), np.array([7, 5, 7, 9]))
    assert owners.ids.tolist() == [10, 20, 30, 40] and owners.owner_count == 3
    assert owners.owners_of(np.array([[40, -1], [10, 99]])).tolist() == [[9, -1], [5, -1]]
    assert sorted(owners.faces_of(np.array([7, 8])).tolist()) == [20, 30]
    grown = owners.with_added(np.array([15, 50]), np.array([7, 11]))
    assert sorted(grown.faces_of(np.array([7])).tolist()) == [15, 20, 30]
    assert grown.owners_of(np.array([15, 50])).tolist() == [7, 11]
    assert len(owners) == 4  # immutable: the old map is unchanged
    fewer, gone = grown.without_owners(np.array([7, 12]))
    assert gone.tolist() == [15, 20, 30] and fewer.ids.tolist() == [10, 40, 50]
    assert fewer.faces_of(np.array([7])).size == 0
    single = fewer.without_faces(np.array([40]))
    assert single.ids.tolist() == [10, 50] and single.by_owner.tolist() == [5, 11]


def test_faces_of_dense_and_sparse_owner_ids() -> None:
    ids = np.arange(10)
    for scale in (1, 10**12):  # a boolean table over owner ids, or binary searches
        owners = OwnerMap.build(ids, (ids % 4) * scale)
        assert sorted(owners.faces_of(np.array([1, 3, 7]) * scale).tolist()) == [1, 3, 5, 7, 9]
        assert owners.faces_of(np.array([5 * scale])).size == 0


def test_owner_map_refuses_bad_changes() -> None:
    owners = OwnerMap.build(np.array([1, 2]), np.array([1, 1]))
    with pytest.raises(DuplicateFaceId):
        owners.with_added(np.array([2]), np.array([3]))
    with pytest.raises(DuplicateFaceId):
        OwnerMap.build(np.array([4, 4]), np.array([1, 2]))
    with pytest.raises(FaceNotFound):
        owners.without_faces(np.array([1, 3]))
    with pytest.raises(InvalidVectors):
        OwnerMap.build(np.array([1.5]), np.array([1]))
    assert OwnerMap.empty().owners_of(np.array([1])).tolist() == [-1]


def test_rank_owners_groups_and_pads() -> None:
    ids = np.array([[1, 2, 3, 4], [5, -1, -1, -1]])
    dist = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, np.inf, np.inf, np.inf]], np.float32)
    own = np.array([[8, 8, 9, 8], [7, -1, -1, -1]])
    hits = rank_owners(ids, dist, own, 3, best)
    assert hits.owners.tolist() == [[8, 9, -1], [7, -1, -1]]
    assert hits.face_ids.tolist() == [[1, 3, -1], [5, -1, -1]]
    assert hits.found.tolist() == [2, 1]
    np.testing.assert_allclose(hits.distances[0, :2], [0.1, 0.3])
    fused = rank_owners(ids, dist, own, 3, mean_top2)
    np.testing.assert_allclose(fused.distances[0, :2], [0.15, 0.3])
