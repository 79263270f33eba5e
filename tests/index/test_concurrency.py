"""Searches keep running, and stay consistent, while faces are added, removed and swapped."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from matcher.bench.synthetic import Collection, FaceModel, planted
from tests.index.conftest import make_index, params

KINDS = ["flat", "hnsw", "ivfpq"]


@pytest.mark.parametrize("kind", KINDS)
def test_searches_during_adds_removals_and_swaps(
    kind: str, faces: Collection, face_model: FaceModel
) -> None:
    index = make_index(faces, kind)
    queries, _ = planted(face_model, faces, 32, seed=9)
    stable = np.unique(faces.owners)
    churn_base = 10**6
    removed: set[int] = set()  # owners whose removal has returned
    errors: list[BaseException] = []
    done = threading.Event()
    searches = [0]

    def reader() -> None:
        try:
            while not done.is_set():
                gone_before = set(removed)
                hits = index.search(queries, k=10)
                searches[0] += 1
                got = hits.owners
                assert (got >= 0).all(), "a search saw a half-built index"
                known = np.isin(got, stable) | (got >= churn_base)
                assert known.all(), "an owner that never existed"
                assert not (set(got.ravel().tolist()) & gone_before), "a removed owner came back"
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)
            done.set()

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    rng = np.random.default_rng(3)
    try:
        for step in range(40):
            owner = churn_base + step
            near = queries[step % len(queries)] + rng.normal(0, 0.02, (3, 128)).astype(np.float32)
            index.add(np.arange(3) + 10**7 + 3 * step, np.full(3, owner), near)
            if step % 2:
                index.remove_owner(owner - 1)
                removed.add(owner - 1)
            if step % 20 == 19:  # swap in a freshly built index: readers see old or new
                with index.read_state() as state:
                    ids, owners = state.owners.ids.copy(), state.owners.owner_of.copy()
                vectors = state.vectors.reconstruct_batch(ids)
                index.rebuild([(ids, owners, vectors)])
            time.sleep(0.002)
    finally:
        time.sleep(0.05)
        done.set()
        for thread in readers:
            thread.join(timeout=30)
    assert not errors, errors[0]
    assert searches[0] > 10
    final = index.search(queries, 10).owners
    assert not set(final.ravel().tolist()) & removed
    assert len(index) == len(faces.ids) + 3 * 40 - 3 * 20
    assert params(kind).kind == index.kind


def test_writer_is_not_starved_by_a_stream_of_searches(faces: Collection) -> None:
    index = make_index(faces)
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            index.search(faces.vectors[:64], k=10)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    began = time.perf_counter()
    index.remove_owner(int(faces.owners[0]))
    waited = time.perf_counter() - began
    done.set()
    for thread in readers:
        thread.join()
    assert waited < 5.0
    assert int(faces.owners[0]) not in index.search(faces.vectors[:1], 10).owners


@pytest.mark.parametrize("kind", KINDS)
def test_changes_during_a_rebuild_survive_the_swap(
    kind: str, faces: Collection, face_model: FaceModel
) -> None:
    """A case removed (or a face added) while the store is being read stays so afterwards."""
    index = make_index(faces, kind)
    gone, newcomer = int(faces.owners[0]), 10**6
    reading = threading.Event()
    proceed = threading.Event()

    def slow_source():  # the store, read in batches while the service keeps changing things
        yield faces.ids[:1000], faces.owners[:1000], faces.vectors[:1000]
        reading.set()
        assert proceed.wait(30)
        yield faces.ids[1000:], faces.owners[1000:], faces.vectors[1000:]

    rebuilder = threading.Thread(target=index.rebuild, args=(slow_source(),))
    rebuilder.start()
    assert reading.wait(30)
    index.remove_owner(gone)
    probe = planted(face_model, faces, 1, seed=12)[0]
    index.add([10**8], [newcomer], probe)
    index.remove([int(faces.ids[-1])])
    proceed.set()
    rebuilder.join(30)
    assert gone not in index.search(faces.vectors[:20], 10).owners
    assert index.search(probe, 1).owners[0, 0] == newcomer
    assert int(faces.ids[-1]) not in index.search(faces.vectors[-1], 10).face_ids
    assert len(index) == len(faces.ids) - int(np.sum(faces.owners == gone)) + 1 - 1


def test_compact_drops_tombstones(faces: Collection) -> None:
    index = make_index(faces, "hnsw")
    index.remove_owners(np.unique(faces.owners)[:300])
    assert index.tombstone_count > 0 and index.needs_rebuild
    count = len(index)
    index.compact()
    assert index.tombstone_count == 0 and len(index) == count
    assert index.search(faces.vectors[-1], 1).face_ids[0, 0] == faces.ids[-1]
