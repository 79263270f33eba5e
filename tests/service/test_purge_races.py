"""The retention purge deletes only what is still unneeded when its DELETE runs.

It chooses the old unmatched sightings first, then deletes them: a candidate confirmed, or a
case photo matched, between the two (or a decision still in flight) keeps its sighting. The
interleaving is forced by pausing the real functions (threading.Event), on both databases.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from matcher.service import (
    CasePhotoUpload,
    Runtime,
    ingest_sighting,
    purge_sightings,
    register_case,
    sighting_candidates,
)
from matcher.service import retention as service_retention
from matcher.service import review as service_review
from matcher.service.review import decide_candidate
from matcher.store import (
    SYSTEM,
    Candidate,
    CandidateStatus,
    Decision,
    NewCase,
    NewSighting,
    Sighting,
    create_sighting,
    session_scope,
    store_photo,
)
from tests.data import fgnet_photo, require_test_data
from tests.store.builders import pixels

OLD = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)


def _case(matcher: Runtime, name: str, photo: str) -> int:
    case, _ = register_case(matcher, NewCase(category="child", name=name, age_when_missing=8,
                                             missing_since=dt.date(2019, 1, 1)),
                            [CasePhotoUpload(fgnet_photo(photo))])
    return case.id


def _old_sighting(matcher: Runtime, photo: str) -> int:
    return ingest_sighting(matcher, fgnet_photo(photo), NewSighting(app="tips", uploaded_at=OLD)
                           ).sighting_id


def _near_miss(matcher: Runtime) -> tuple[int, int]:
    """An old sighting whose only candidate is above the threshold: (sighting, candidate)."""
    _case(matcher, "A", "001A08.JPG")
    sighting = _old_sighting(matcher, "009A09.JPG")  # another child
    (candidate,) = sighting_candidates(matcher, sighting)
    assert candidate.distance > candidate.threshold
    return sighting, candidate.id


def _after_the_choice(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], object]) -> None:
    """Runs `meanwhile` in another thread, to its end, right after the purge chose."""
    choose = service_retention.unmatched_sightings

    def chosen_then(*args, **kwargs):  # type: ignore[no-untyped-def]
        ids = choose(*args, **kwargs)
        worker = threading.Thread(target=meanwhile)
        worker.start()
        worker.join(120)
        return ids

    monkeypatch.setattr(service_retention, "unmatched_sightings", chosen_then)


def _sightings(matcher: Runtime) -> list[int]:
    with matcher.sessions() as session:
        return list(session.scalars(select(Sighting.id)))


def _count(matcher: Runtime, model: type, *where: object) -> int:
    with matcher.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_a_candidate_confirmed_after_the_purge_chose_keeps_its_sighting(
    matcher: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_test_data()
    sighting, candidate = _near_miss(matcher)
    in_index = len(matcher.sighting_index)
    _after_the_choice(monkeypatch, lambda: decide_candidate(
        matcher, SYSTEM, candidate, "match", "it is her after all"))

    report = purge_sightings(matcher, 365)

    assert _sightings(matcher) == [sighting]
    assert _count(matcher, Candidate, Candidate.status == CandidateStatus.CONFIRMED) == 1
    assert _count(matcher, Decision) == 1
    assert (report.sightings, report.faces, report.files) == (0, 0, 0)
    assert len(matcher.sighting_index) == in_index


def test_a_sighting_matched_by_a_new_case_after_the_purge_chose_is_kept(
    matcher: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_test_data()
    sighting = _old_sighting(matcher, "001A14.JPG")  # no case yet: nobody to match
    assert sighting_candidates(matcher, sighting) == []
    _after_the_choice(monkeypatch, lambda: _case(matcher, "A", "001A08.JPG"))

    report = purge_sightings(matcher, 365)

    assert _sightings(matcher) == [sighting]
    (candidate,) = sighting_candidates(matcher, sighting)  # the new case's, for review
    assert candidate.status is CandidateStatus.PENDING
    assert candidate.distance <= candidate.threshold
    assert report.sightings == 0


def test_a_decision_in_flight_while_the_purge_deletes_keeps_the_sighting(
    matcher: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_test_data()
    sighting, candidate = _near_miss(matcher)
    deciding, decide_on = threading.Event(), threading.Event()
    audit = service_review.record

    def recorded_then_paused(*args, **kwargs):  # type: ignore[no-untyped-def]
        audit(*args, **kwargs)  # inside the decision's transaction, its rows written
        deciding.set()
        assert decide_on.wait(60)

    monkeypatch.setattr(service_review, "record", recorded_then_paused)
    chosen = threading.Event()
    choose = service_retention.unmatched_sightings

    def choose_and_tell(*args, **kwargs):  # type: ignore[no-untyped-def]
        ids = choose(*args, **kwargs)
        chosen.set()
        return ids

    monkeypatch.setattr(service_retention, "unmatched_sightings", choose_and_tell)
    decider = threading.Thread(target=decide_candidate,
                               args=(matcher, SYSTEM, candidate, "match", "her"))
    decider.start()
    assert deciding.wait(60)
    reports = []
    purger = threading.Thread(target=lambda: reports.append(purge_sightings(matcher, 365)))
    purger.start()
    assert chosen.wait(60)  # chose the sighting: the decision is not committed yet
    time.sleep(0.5)  # let the purge reach its delete, which must wait for the decision
    decide_on.set()
    decider.join(60)
    purger.join(60)

    assert _sightings(matcher) == [sighting]
    assert _count(matcher, Candidate, Candidate.status == CandidateStatus.CONFIRMED) == 1
    assert _count(matcher, Decision) == 1
    assert [report.sightings for report in reports] == [0]


def test_a_dry_run_counts_every_purgeable_sighting_not_one_batch(matcher: Runtime) -> None:
    count = service_retention.BATCH + 1
    photo = store_photo(matcher.settings.data_dir, pixels(1))
    with session_scope(matcher.sessions) as session:
        for _ in range(count):
            create_sighting(session, NewSighting(app="tips", uploaded_at=OLD), photo)

    assert purge_sightings(matcher, 365, dry_run=True).sightings == count
    assert purge_sightings(matcher, 365).sightings == count
    assert _sightings(matcher) == []
