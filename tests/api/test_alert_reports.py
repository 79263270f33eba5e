"""Sightings that answer an alert, through the real app over HTTP with real photos: the case
the reporter named is among the candidates whatever its rank, marked, with the km and hours
from where and when the child was last seen; the review queue filters on both."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from matcher.service import new_key
from matcher.store import Role
from tests.api.alert_helpers import LONDON, alert_case, install_clock, north_of
from tests.api.builders import photo_file
from tests.api.conftest import auth, matcher_of
from tests.api.databases import on_both_databases  # noqa: F401
from tests.data import Photo, fgnet_photos, lfw_photos, require_test_data

SEEN = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)  # the child was last seen then, in London


def _child(age: int) -> Photo:
    return next(p for p in fgnet_photos() if p.identity == "fgnet-001" and p.age == age)


def _others() -> list[Photo]:
    seen: dict[str, Photo] = {}
    for photo in lfw_photos():
        seen.setdefault(photo.identity, photo)
    return list(seen.values())[:2]


@pytest.fixture
def world(make_client: Callable[..., TestClient]) -> dict[str, Any]:
    """Top 1 only: the child's case with an alert, two other cases with one photo each."""
    require_test_data()
    client = make_client(match_top_k=1)
    install_clock(client)
    keys = {role: new_key(matcher_of(client).sessions, role, role.value)[1] for role in Role}
    manager = keys[Role.CASE_MANAGER]
    child = alert_case(client, manager, "Ada", seen=SEEN)
    others = [alert_case(client, manager, f"Other {i}", issue=False) for i in range(2)]
    for case, photo in ((child, _child(8)), *zip(others, _others(), strict=True)):
        added = client.post(f"/v1/cases/{case}/photos", files=photo_file(photo),
                            data={"age_at_photo": str(photo.age or 30)}, headers=auth(manager))
        assert added.status_code == 201 and added.json()["faces"][0]["fit"], added.text
    return {"client": client, "keys": keys, "child": child, "others": others}


def _report(client: TestClient, tip: str, photo: Photo, point: tuple[float, float],
            taken_at: dt.datetime, **fields: str) -> int:
    answer = client.post("/v1/sightings", files=photo_file(photo), headers=auth(tip), data={
        "lat": str(point[0]), "lon": str(point[1]), "taken_at": taken_at.isoformat(), **fields})
    assert answer.status_code == 201, answer.text
    # The tip app learns nothing of the cases (what it hears of faces: test_upload.py).
    assert set(answer.json()) <= {"id", "faces", "hint"}
    return int(answer.json()["id"])


def test_the_case_a_sighting_answers_is_always_a_candidate(world: dict[str, Any]) -> None:
    client, keys, child = world["client"], world["keys"], world["child"]
    tip, investigator = keys[Role.TIP_APP], auth(keys[Role.INVESTIGATOR])
    far = north_of(LONDON, 300)
    # Another person's photo, sent as an answer to the child's alert: the child ranks below
    # the top 1, and is proposed all the same.
    stranger = _report(client, tip, _others()[0], far, SEEN + dt.timedelta(hours=5),
                       alert_case_id=str(child))
    found = client.get(f"/v1/sightings/{stranger}/candidates", headers=investigator).json()
    assert [(c["case_id"], c["rank"], c["reported_for_alert"]) for c in found] == [
        (world["others"][0], 1, False), (child, 2, True)]
    reported = found[1]
    assert reported["km_from_last_seen"] == pytest.approx(300, abs=0.01)
    assert reported["hours_since_last_seen"] == 5.0
    assert not reported["under_threshold"]
    sighting = client.get(f"/v1/sightings/{stranger}", headers=investigator).json()
    assert sighting["alert_case_id"] == child
    # A sighting that answers no alert: top 1 only, no mark; km and hours all the same.
    plain = _report(client, tip, _child(14), north_of(LONDON, 10), SEEN + dt.timedelta(days=2))
    (candidate,) = client.get(f"/v1/sightings/{plain}/candidates", headers=investigator).json()
    assert (candidate["case_id"], candidate["reported_for_alert"]) == (child, False)
    assert candidate["km_from_last_seen"] == pytest.approx(10, abs=0.01)
    assert candidate["hours_since_last_seen"] == 48.0


def test_the_queue_lists_answers_to_an_alert_and_filters_by_distance(
    world: dict[str, Any]
) -> None:
    client, keys, child = world["client"], world["keys"], world["child"]
    tip, investigator = keys[Role.TIP_APP], auth(keys[Role.INVESTIGATOR])
    near = _report(client, tip, _child(14), north_of(LONDON, 10), SEEN + dt.timedelta(hours=2),
                   alert_case_id=str(child))
    far = _report(client, tip, _others()[1], north_of(LONDON, 800),
                  SEEN + dt.timedelta(hours=30), alert_case_id=str(child))

    def queue(**params: Any) -> list[tuple[int, int]]:
        answer = client.get("/v1/review/queue", params=params, headers=investigator)
        assert answer.status_code == 200, answer.text
        return [(e["sighting"]["id"], e["case"]["id"]) for e in answer.json()["items"]]

    reported = client.get("/v1/review/queue", params={"reported_for_alert": "true"},
                          headers=investigator).json()["items"]
    # Both answers, the far one above the threshold too; most likely first.
    assert [(e["sighting"]["id"], e["case"]["id"]) for e in reported] == [
        (near, child), (far, child)]
    assert all(e["reported_for_alert"] for e in reported)
    assert reported[1]["km_from_last_seen"] == pytest.approx(800, abs=0.01)
    assert reported[1]["hours_since_last_seen"] == 30.0
    assert reported[0]["case"]["last_seen_at"] == "2026-03-01T08:00:00Z"
    assert (far, child) not in queue()  # the default queue: under the threshold only
    assert queue(reported_for_alert="true", max_km_from_last_seen=100) == [(near, child)]
    assert (far, child) in queue(reported_for_alert="true", max_km_from_last_seen=801)
    assert all(s == near for s, _ in queue(max_km_from_last_seen=50))


def test_an_answer_to_no_alert_is_refused_and_nothing_is_stored(world: dict[str, Any]) -> None:
    client, keys = world["client"], world["keys"]
    tip, investigator = keys[Role.TIP_APP], auth(keys[Role.INVESTIGATOR])
    before = client.get("/v1/sightings", headers=investigator).json()
    for case, error in ((world["others"][0], "invalid"), (99999, "invalid"),
                        (0, "invalid_request"), ("x", "invalid_request")):
        answer = client.post("/v1/sightings", files=photo_file(_child(14)), headers=auth(tip),
                             data={"alert_case_id": str(case)})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == error
    assert client.get("/v1/sightings", headers=investigator).json() == before
