"""The investigator's desk through the real app (issue 21), on the FG-NET world of
tests/api/review_helpers.py: a sighting face's lineup with its near misses, a case's view with
two confirmed sightings, the caller's own key, and the queue's sorts. Every candidate shown
is in the audit trail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from matcher.calibration import calibration_path, fit
from matcher.embed import FacePipeline
from matcher.service import new_key
from matcher.store import Role
from tests.api.conftest import auth, matcher_of
from tests.api.databases import on_both_databases  # noqa: F401  (a fixture override)
from tests.api.review_helpers import (
    BERLIN,
    MUNICH,
    YEAR_DAYS,
    build_world,
    decide,
    entry_of,
    get,
    new_case,
    queue,
    sighting,
)
from tests.data import require_test_data


def _face_of(client: TestClient, key: str, sighting_id: int) -> int:
    [face] = get(client, key, f"/v1/sightings/{sighting_id}")["faces"]
    return int(face["id"])


def _audited(client: TestClient, admin: str, object_type: str, object_id: int,
             via: str) -> list[dict[str, Any]]:
    trail = get(client, admin, "/v1/audit", object_type=object_type,
                object_id=str(object_id))["items"]
    return [e for e in trail if e["action"] == "read" and e["detail"].get("via") == via]


def _years_since(day: str, at: dt.date) -> float:
    return (at - dt.date.fromisoformat(day)).days / YEAR_DAYS


def test_a_lineup_shows_every_case_the_face_was_compared_with(
    make_client: Callable[..., TestClient], pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    # A calibration of the running model, so each card says what its distance means; the
    # operator's threshold (0.6) keeps the world's candidates where review_helpers.py says.
    strangers = np.random.default_rng(1).normal(0.8, 0.1, 50_000)
    calibration = fit(pipeline.model_id, "child", strangers, searches=500, gallery_faces=100)
    calibration.save(calibration_path(tmp_path / "data" / "calibration", "child"))
    client = make_client(match_threshold=0.6)
    keys = {role: new_key(matcher_of(client).sessions, role, f"test {role.value}")[1]
            for role in Role}
    world = build_world(client, keys)
    inv, admin = keys[Role.INVESTIGATOR], keys[Role.ADMIN]
    a, b, s = world["a"], world["b"], world["s"]
    face = _face_of(client, inv, s[1])

    lineup = get(client, inv, f"/v1/review/lineup/{face}")
    assert lineup["face_id"] == face and lineup["face_crop_url"] == f"/v1/faces/{face}/crop"
    shown = lineup["sighting"]
    assert (shown["id"], shown["lat"], shown["lon"]) == (s[1], *BERLIN)
    assert shown["photo_url"] == f"/v1/sightings/{s[1]}/photo"
    assert [f["id"] for f in shown["faces"]] == [face] and shown["width"] > 0
    # Child A under the threshold; Person B (another child's face) is a near miss, counted
    # but not listed.
    [card] = lineup["cards"]
    assert lineup["near_misses"] == 1
    assert card["case"]["id"] == a and card["under_threshold"] and card["status"] == "pending"
    assert card["case_photo_url"] == f"/v1/cases/{a}/photos/{world['a_photo']}/image"
    assert card["case_face_crop_url"] == f"/v1/faces/{card['case_face_id']}/crop"
    assert len(card["case_face_box"]) == 4
    # Child A: 8 on her photo, 8 when missing since 2020-05-01, seen on 2021-01-01.
    today = dt.datetime.now(dt.UTC).date()
    ages = card["ages"]
    assert ages["at_photo"] == 8
    assert ages["at_sighting"] == pytest.approx(8 + _years_since("2020-05-01",
                                                                 dt.date(2021, 1, 1)), abs=0.01)
    assert ages["now"] == pytest.approx(8 + _years_since("2020-05-01", today), abs=0.01)
    assert ages["gap"] == pytest.approx(ages["at_sighting"] - 8, abs=0.01)
    assert card["false_match_rate"] == pytest.approx(
        float(calibration.false_match_rate(card["distance"])))
    assert card["expected_false_per_search"] == pytest.approx(
        float(calibration.expected_false(card["distance"], 1)))  # one child's case face
    # The queue's entry carries the same figure, which its default order sorts by.
    entry = entry_of(queue(client, inv), s[1], a)
    assert entry["false_match_rate"] == card["false_match_rate"] is not None

    # The near miss, when asked for, marked as such, after the likelier case.
    wider = get(client, inv, f"/v1/review/lineup/{face}", near_misses="true")
    assert [c["case"]["id"] for c in wider["cards"]] == [a, b]
    near = wider["cards"][1]
    assert not near["under_threshold"] and near["distance"] > near["threshold"]
    assert near["case"]["category"] == "elderly" and near["expected_false_per_search"] is None
    assert wider["near_misses"] == 0
    # Person B's photo is dated (2015-06-01), not aged: her age on it comes from the date.
    assert near["ages"]["at_photo"] == pytest.approx(
        9 - _years_since("2015-06-01", dt.date(2020, 5, 1)), abs=0.01)

    # A decision shows on its card; a decided near miss stays in view without asking.
    decide(client, inv, near["candidate_id"], "not_match", "a different child")
    again = get(client, inv, f"/v1/review/lineup/{face}")
    assert [c["case"]["id"] for c in again["cards"]] == [a, b]
    assert again["cards"][1]["status"] == "rejected" and again["near_misses"] == 0
    [made] = again["cards"][1]["decisions"]
    assert (made["verdict"], made["note"], made["reviewer"]) == (
        "not_match", "a different child", "test investigator")

    # Audited: the sighting (its note is shown) and each card, each time it was shown.
    assert len(_audited(client, admin, "sighting", s[1], "lineup")) == 3
    assert len(_audited(client, admin, "candidate", card["candidate_id"], "lineup")) == 3
    assert len(_audited(client, admin, "candidate", near["candidate_id"], "lineup")) == 2
    [first] = _audited(client, admin, "candidate", card["candidate_id"], "lineup")[:1]
    assert first["actor"] == "test investigator" and first["detail"]["face_id"] == face

    # A face of a case photo has no lineup; neither has an unknown face; only investigators.
    case_face = card["case_face_id"]
    assert client.get(f"/v1/review/lineup/{case_face}", headers=auth(inv)).status_code == 404
    assert client.get("/v1/review/lineup/999999", headers=auth(inv)).status_code == 404
    for role in (Role.TIP_APP, Role.CASE_MANAGER, Role.ADMIN):
        assert client.get(f"/v1/review/lineup/{face}",
                          headers=auth(keys[role])).status_code == 403


def test_the_case_view_lists_photos_candidates_and_where_the_child_was_seen(
    client: TestClient, keys: dict[Role, str]
) -> None:
    world = build_world(client, keys)
    inv, admin = keys[Role.INVESTIGATOR], keys[Role.ADMIN]
    a, s = world["a"], world["s"]
    items = queue(client, inv)
    berlin, munich = entry_of(items, s[1], a), entry_of(items, s[2], a)
    # Confirmed in the reverse order of the sightings: the view orders by when she was seen.
    decide(client, inv, munich["id"], "match", "her school confirmed")
    decide(client, inv, berlin["id"], "match", "same child")

    view = get(client, inv, f"/v1/review/cases/{a}")
    assert view["case"]["id"] == a and view["case"]["name"] == "Child A"
    assert view["description"] == "internal note"
    today = dt.datetime.now(dt.UTC).date()
    assert view["age_now"] == pytest.approx(8 + _years_since("2020-05-01", today), abs=0.01)
    [photo] = view["photos"]
    assert (photo["id"], photo["age"]) == (world["a_photo"], 8)
    assert photo["url"] == f"/v1/cases/{a}/photos/{world['a_photo']}/image"
    assert len(photo["faces"]) == 1
    # Where and when: Berlin in 2021, then Munich in 2023.
    seen = view["seen"]
    assert [e["sighting"]["id"] for e in seen] == [s[1], s[2]]
    assert [(e["sighting"]["lat"], e["sighting"]["lon"]) for e in seen] == [BERLIN, MUNICH]
    assert all(e["status"] == "confirmed" and e["reviewed_by"] == "test investigator"
               for e in seen)
    assert seen[0]["age_at_sighting"] == pytest.approx(
        8 + _years_since("2020-05-01", dt.date(2021, 1, 1)), abs=0.01)
    # Over time, newest first: only candidates under the threshold or decided (Person B's
    # sightings came near her case but above the threshold, undecided).
    assert [e["sighting"]["id"] for e in view["history"]] == [s[2], s[1]]
    assert view["more"] is False
    assert view["history"][0]["face_crop_url"] == f"/v1/faces/{munich['sighting_face_id']}/crop"

    assert len(_audited(client, admin, "case", a, "case_view")) == 1
    for entry in (berlin, munich):
        assert len(_audited(client, admin, "candidate", entry["id"], "case_view")) == 1
    assert client.get("/v1/review/cases/999999", headers=auth(inv)).status_code == 404
    assert client.get(f"/v1/review/cases/{a}",
                      headers=auth(keys[Role.CASE_MANAGER])).status_code == 403


def test_a_key_says_who_it_is(client: TestClient, keys: dict[Role, str]) -> None:
    for role, key in keys.items():
        me = get(client, key, "/v1/me")
        assert (me["name"], me["role"]) == (f"test {role.value}", role.value)
        assert set(me) == {"id", "name", "role"}
    assert client.get("/v1/me").status_code == 401


def test_the_queue_sorts_by_likelihood_newest_sighting_or_time_missing(
    client: TestClient, keys: dict[Role, str]
) -> None:
    require_test_data()
    manager, tip, inv = keys[Role.CASE_MANAGER], keys[Role.TIP_APP], keys[Role.INVESTIGATOR]
    # Child A missing since 2020, Person B since 2012: B has been missing longest.
    a, _ = new_case(client, manager, "Child A", "001A08.JPG", {"age_at_photo": "8"})
    b, _ = new_case(client, manager, "Person B", "009A09.JPG", {"age_at_photo": "9"},
                    missing_since="2012-03-01", age_when_missing=9)
    s1 = sighting(client, tip, "001A10.JPG", taken_at="2021-01-01T10:00:00Z")
    s2 = sighting(client, tip, "001A14.JPG", taken_at="2023-01-01T10:00:00Z")
    s4 = sighting(client, tip, "009A16a.JPG", taken_at="2022-06-01T10:00:00Z")

    likely = queue(client, inv)
    assert [item["distance"] for item in likely] == sorted(i["distance"] for i in likely)
    newest = queue(client, inv, sort="newest")
    assert [item["sighting"]["id"] for item in newest] == [s2, s4, s1]
    missing = queue(client, inv, sort="missing")
    assert [item["case"]["id"] for item in missing] == [b, a, a]
    # Paged one at a time: the same order, nothing repeated or skipped.
    paged, cursor = [], None
    while True:
        page = get(client, inv, "/v1/review/queue", sort="missing", limit=1,
                   **({"cursor": cursor} if cursor else {}))
        paged += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [item["id"] for item in missing]
    # A cursor holds to the sort it was made in.
    first = get(client, inv, "/v1/review/queue", sort="missing", limit=1)["next_cursor"]
    refused = client.get("/v1/review/queue", params={"sort": "newest", "cursor": first},
                         headers=auth(inv))
    assert refused.status_code == 422
    unknown = client.get("/v1/review/queue", params={"sort": "oldest"}, headers=auth(inv))
    assert unknown.status_code == 422
