"""A reindex moves every process of the store (issue 23): its swap records the model in the
store with a `model` change, and each other process's follower moves to it, embedding what it
stored meanwhile with the old model (matcher/service/model_follow.py). Two runtimes on one
store, as two processes, each follower driven by hand so that the order is the worst one: the
other process stores a case photo and a sighting after the swap and before it follows. On
SQLite and on PostgreSQL.

tests/multiprocess/test_three_servers.py runs it with three real `matcher serve` processes.
"""

from __future__ import annotations

from matcher.service import (
    CasePhotoUpload,
    Runtime,
    ingest_sighting,
    register_case,
    sighting_candidates,
)
from matcher.service.index_follow import IndexFollower
from matcher.service.reindex import ReindexJob
from matcher.service.serving import recorded_model
from matcher.store import NewSighting, active_case_face_summary
from matcher.store.face_rows import sighting_face_summary
from matcher.store.vectors import count_faces_without_vectors
from tests.data import lfw_photos, require_test_data
from tests.service.test_index_follow import _case, _held

FLIP = "dlib-resnet-v1-flip"


def _equal_to_store(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        cases = active_case_face_summary(session, runtime.model_id).count
        sightings = sighting_face_summary(session, runtime.model_id).count
    assert (len(runtime.index), len(runtime.sighting_index)) == (cases, sightings)


def test_a_reindex_in_one_process_moves_the_other_with_what_it_stored_meanwhile(
    matcher: Runtime, other: Runtime
) -> None:
    require_test_data()
    people = lfw_photos()
    old_model = matcher.model_id
    register_case(matcher, _case("Ada"), [CasePhotoUpload(people[0].path.read_bytes())])
    ingest_sighting(matcher, people[2].path.read_bytes(), NewSighting(app="tips"))
    own, follower = IndexFollower(matcher), IndexFollower(other)
    own.catch_up()
    follower.catch_up()

    report = ReindexJob(matcher, matcher.settings.model_copy(update={"embed_flip": True})).run()
    assert report.swapped and matcher.model_id == FLIP
    assert (recorded_model(matcher.settings, matcher.sessions) or {})["embed_flip"] is True

    # After the swap, before it follows: the other process still serves the old model, and
    # what it stores now gets only the old model's vectors.
    late, _ = register_case(other, _case("Bo"), [CasePhotoUpload(people[1].path.read_bytes())])
    seen = ingest_sighting(other, people[1].path.read_bytes(), NewSighting(app="tips"))
    assert other.model_id == old_model
    before = sighting_candidates(other, seen.sighting_id)
    assert late.id in {c.case_id for c in before} and {c.model_id for c in before} == {old_model}
    with other.sessions() as session:
        assert count_faces_without_vectors(session, FLIP) >= 2
    own.catch_up()  # the late faces' changes: no vector of FLIP yet, nothing to add
    assert _held(matcher, late.id) == 0

    assert follower.catch_up() >= 1  # the swap's `model` change: it moves
    assert other.model_id == FLIP and other.settings.embed_flip is True
    with other.sessions() as session:
        assert count_faces_without_vectors(session, FLIP) == 0
    _equal_to_store(other)

    assert own.catch_up() >= 1  # the other's `model` change: its faces' new vectors
    _equal_to_store(matcher)
    assert _held(matcher, late.id) == _held(other, late.id) >= 1
    # Both rank the late case under the new model, for a new sighting sent to either (two
    # cases: both are among the ranked candidates, near misses included).
    for runtime, photo in ((matcher, people[3]), (other, people[4])):
        again = ingest_sighting(runtime, photo.path.read_bytes(), NewSighting(app="tips"))
        found = sighting_candidates(runtime, again.sighting_id)
        assert late.id in {c.case_id for c in found}
        assert {c.model_id for c in found} == {FLIP}
    assert own.catch_up() >= 1 and follower.catch_up() >= 1  # each other's sightings
    _equal_to_store(matcher)
    _equal_to_store(other)
