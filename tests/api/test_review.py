"""Investigator review through the real app, on real FG-NET children photographed at several
ages (tests/api/review_helpers.py): the queue and its filters, decisions, a case's matches,
retro-matching of earlier sightings, and links between sightings of one child.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from matcher.store import Candidate, Face, Role, session_scope
from tests.api.conftest import auth, matcher_of
from tests.api.databases import on_both_databases  # noqa: F401  (a fixture override)
from tests.api.review_helpers import (
    BERLIN,
    MUNICH,
    YEAR_DAYS,
    add_photo,
    build_world,
    decide,
    entry_of,
    get,
    new_case,
    pairs,
    queue,
    sighting,
)
from tests.data import require_test_data


@pytest.fixture
def world(client: TestClient, keys: dict[Role, str]) -> dict[str, Any]:
    return build_world(client, keys)


def test_the_queue_lists_likely_matches_closest_first_with_what_a_reviewer_needs(
    client: TestClient, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    a, b, s = world["a"], world["b"], world["s"]
    items = queue(client, keys[Role.INVESTIGATOR])
    # Each child's sightings, and no pair of different children (all above the threshold).
    assert set(pairs(items)) == {(s[1], a), (s[2], a), (s[3], b), (s[4], b)}
    distances = [item["distance"] for item in items]
    assert distances == sorted(distances)
    assert all(i["distance"] <= i["threshold"] == 0.6 and i["status"] == "pending"
               for i in items)

    first = entry_of(items, s[1], a)
    assert first["rank"] == 1 and first["model_id"] and first["decisions"] == []
    assert first["face_crop_url"] == f"/v1/faces/{first['sighting_face_id']}/crop"
    assert first["case_face_crop_url"] == f"/v1/faces/{first['case_face_id']}/crop"
    assert first["case_photo_url"] == f"/v1/cases/{a}/photos/{world['a_photo']}/image"
    assert first["sighting"] == {
        "id": s[1], "taken_at": "2021-01-01T10:00:00Z", "uploaded_at": first["sighting"][
            "uploaded_at"], "lat": BERLIN[0], "lon": BERLIN[1],
        "photo_url": f"/v1/sightings/{s[1]}/photo", "burst_group": None}
    assert first["case"] == {
        "id": a, "name": "Child A", "category": "child", "status": "active",
        "last_seen_place": "Central station", "last_seen_lat": BERLIN[0],
        "last_seen_lon": BERLIN[1], "missing_since": "2020-05-01", "last_seen_at": None}
    # No last-seen moment: the km from the last-seen point, not the hours (issue 22).
    assert (first["km_from_last_seen"], first["hours_since_last_seen"]) == (0.0, None)
    assert first["reported_for_alert"] is False
    # Photo at 8, missing at 8 on 2020-05-01: the photo is dated 2020-05-01.
    assert first["age_gap_years"] == round(
        (dt.date(2021, 1, 1) - dt.date(2020, 5, 1)).days / YEAR_DAYS, 2)
    # Seen again: her sighting at 14 is within the threshold of this one; B's are not.
    assert first["seen_count"] == 1 and first["seen"][0]["sighting"]["id"] == s[2]
    assert first["seen"][0]["distance"] < 0.6
    assert first["seen"][0]["face_crop_url"] == f"/v1/faces/{first['seen'][0]['face_id']}/crop"
    assert first["seen"][0]["from_face_id"] == first["sighting_face_id"]

    undated = entry_of(items, s[3], b)  # no taken_at: the upload date counts
    uploaded = dt.datetime.fromisoformat(undated["sighting"]["uploaded_at"]).date()
    assert undated["age_gap_years"] == round(
        (uploaded - dt.date(2015, 6, 1)).days / YEAR_DAYS, 2)
    assert [link["sighting"]["id"] for link in undated["seen"]] == [s[4]]

    one = get(client, keys[Role.INVESTIGATOR], f"/v1/review/candidates/{first['id']}")
    assert one == first
    missing = client.get("/v1/review/candidates/999999", headers=auth(keys[Role.INVESTIGATOR]))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_queue_filters_and_paging(
    client: TestClient, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    inv, a, b, s = keys[Role.INVESTIGATOR], world["a"], world["b"], world["s"]
    assert set(pairs(queue(client, inv, case_id=a))) == {(s[1], a), (s[2], a)}
    assert set(pairs(queue(client, inv, category="elderly"))) == {(s[3], b), (s[4], b)}
    # 50 km around Berlin: Berlin and Potsdam; Munich is too far, s3 has no position.
    near = queue(client, inv, lat=BERLIN[0], lon=BERLIN[1], radius_km=50)
    assert set(pairs(near)) == {(s[1], a), (s[4], b)}
    assert set(pairs(queue(client, inv, lat=BERLIN[0], lon=BERLIN[1], radius_km=10))) == {
        (s[1], a)}
    half = client.get("/v1/review/queue", params={"lat": 52.5, "radius_km": 5},
                      headers=auth(inv))
    assert half.status_code == 422 and half.json()["error"] == "invalid"
    # Seen (taken, else uploaded) in 2022: Potsdam only; s3 was uploaded today.
    assert pairs(queue(client, inv, since="2022-01-01T00:00:00Z",
                       until="2023-01-01T00:00:00")) == [(s[4], b)]
    assert set(pairs(queue(client, inv, since="2022-01-01", time_field="taken"))) == {
        (s[2], a), (s[4], b)}
    assert len(queue(client, inv, since="2022-01-01", time_field="uploaded")) == 4

    everything = pairs(queue(client, inv))
    paged: list[tuple[int, int]] = []
    cursor = None
    while True:
        page = get(client, inv, "/v1/review/queue", limit=1,
                   **({"cursor": cursor} if cursor else {}))
        paged += pairs(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == everything and len(paged) == 4
    # A cursor of the raw-distance order before store revision 0008: refused, not misread.
    before_0008 = base64.urlsafe_b64encode(b"d|0.4|1").decode().rstrip("=")
    for bad in ({"limit": 201}, {"cursor": "garbage"}, {"status": "confirmed"},
                {"cursor": before_0008}):
        assert client.get("/v1/review/queue", params=bad, headers=auth(inv)).status_code == 422

    parked = entry_of(queue(client, inv), s[2], a)
    decide(client, inv, parked["id"], "needs_info", "ask the Munich police for CCTV")
    assert (s[2], a) not in pairs(queue(client, inv))
    assert pairs(queue(client, inv, status="needs_info")) == [(s[2], a)]
    assert len(queue(client, inv, status=["pending", "needs_info"])) == 4


def test_a_decision_changes_the_status_records_the_reviewer_and_a_match_shows_on_the_case(
    client: TestClient, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    inv, a, s = keys[Role.INVESTIGATOR], world["a"], world["s"]
    target = entry_of(queue(client, inv), s[1], a)
    receipt = decide(client, inv, target["id"], "match", "confirmed by her mother")
    assert receipt["candidate_status"] == "confirmed" and receipt["also_updated"] == []
    decision = receipt["decision"]
    assert decision["reviewer"] == "test investigator" and decision["verdict"] == "match"
    assert decision["candidate_id"] == target["id"] and decision["case_id"] == a
    assert decision["note"] == "confirmed by her mother"

    after = get(client, inv, f"/v1/review/candidates/{target['id']}")
    assert after["status"] == "confirmed" and after["reviewed_by"] == "test investigator"
    assert after["reviewed_at"] is not None and after["decisions"] == [decision]
    assert (s[1], a) not in pairs(queue(client, inv))

    matches = get(client, inv, f"/v1/cases/{a}/matches")
    assert [m["id"] for m in matches["items"]] == [target["id"]]
    match = matches["items"][0]
    assert match["sighting"]["lat"] == BERLIN[0] and match["sighting"]["taken_at"]
    assert match["face_crop_url"] == target["face_crop_url"]
    assert match["case_photo_url"] == target["case_photo_url"]
    assert matches["next_cursor"] is None
    assert get(client, inv, f"/v1/cases/{world['b']}/matches")["items"] == []
    assert client.get("/v1/cases/999999/matches", headers=auth(inv)).status_code == 404

    url = f"/v1/review/candidates/{target['id']}/decision"
    for body in ({"verdict": "maybe"}, {"verdict": "match", "note": "x" * 2001},
                 {"verdict": "match", "extra": 1}):
        assert client.post(url, json=body, headers=auth(inv)).status_code == 422
    unknown = client.post("/v1/review/candidates/999999/decision", json={"verdict": "match"},
                          headers=auth(inv))
    assert unknown.status_code == 404


def _drop_candidates(client: TestClient, sighting_ids: list[int], case_id: int) -> None:
    """What a reindex with a new model would leave: no candidate rows for these pairs."""
    with session_scope(matcher_of(client).sessions) as session:
        faces = list(session.scalars(select(Face.id).where(Face.sighting_id.in_(sighting_ids))))
        session.execute(delete(Candidate).where(Candidate.sighting_face_id.in_(faces),
                                                Candidate.case_id == case_id))


def test_a_not_match_is_never_proposed_again_by_a_later_match(
    client: TestClient, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    inv, manager, a, s = keys[Role.INVESTIGATOR], keys[Role.CASE_MANAGER], world["a"], world["s"]
    rejected = entry_of(queue(client, inv), s[2], a)
    decide(client, inv, rejected["id"], "not_match", "a cousin")
    # Adding a photo with pending candidates in place re-matches without duplicates.
    add_photo(client, manager, a, "001A16.JPG", {"age_at_photo": "16"})
    assert sorted(pairs(queue(client, inv, case_id=a))) == [(s[1], a)]

    # The pairs' rows gone (as a reindex with another model leaves them), a new photo of the
    # case retro-matches every sighting again: the undecided pair comes back, the rejected not.
    _drop_candidates(client, [s[1], s[2]], a)
    add_photo(client, manager, a, "001A10.JPG", {"age_at_photo": "10"})  # s[1]'s picture
    back = queue(client, inv, case_id=a)
    assert pairs(back) == [(s[1], a)]
    assert back[0]["case_photo_url"].endswith("/image") and back[0]["rank"] >= 1
    rows = get(client, inv, f"/v1/sightings/{s[2]}/candidates")
    assert a not in {row["case_id"] for row in rows}


def test_a_case_registered_after_a_sighting_is_matched_to_it(
    client: TestClient, keys: dict[Role, str]
) -> None:
    require_test_data()
    inv = keys[Role.INVESTIGATOR]
    earlier = sighting(client, keys[Role.TIP_APP], "001A14.JPG", MUNICH, "2019-03-01T09:00:00Z")
    assert queue(client, inv) == []
    case_id, _ = new_case(client, keys[Role.CASE_MANAGER], "Child A", "001A08.JPG",
                          {"age_at_photo": "8"})
    items = queue(client, inv)
    assert pairs(items) == [(earlier, case_id)]
    assert items[0]["rank"] == 1 and items[0]["distance"] < 0.6
    assert items[0]["threshold"] == 0.6
    # A sighting before the case photo's (estimated) date: a negative age gap.
    assert items[0]["age_gap_years"] is not None and items[0]["age_gap_years"] < 0
    listed = get(client, inv, f"/v1/sightings/{earlier}/candidates")
    assert [row["case_id"] for row in listed] == [case_id]


def test_a_case_made_active_again_is_matched_to_sightings_from_while_it_was_closed(
    client: TestClient, keys: dict[Role, str]
) -> None:
    require_test_data()
    inv, manager = keys[Role.INVESTIGATOR], keys[Role.CASE_MANAGER]
    case_id, _ = new_case(client, manager, "Child A", "001A08.JPG", {"age_at_photo": "8"})

    def set_status(status: str) -> None:
        changed = client.patch(f"/v1/cases/{case_id}", json={"status": status},
                               headers=auth(manager))
        assert changed.status_code == 200, changed.text

    set_status("closed")
    meanwhile = sighting(client, keys[Role.TIP_APP], "001A14.JPG", MUNICH,
                         "2019-03-01T09:00:00Z")
    assert queue(client, inv) == []  # a closed case is not searched
    set_status("active")  # closed by mistake, or the child went missing again
    items = queue(client, inv)
    assert pairs(items) == [(meanwhile, case_id)]
    assert items[0]["rank"] == 1 and items[0]["distance"] < 0.6
    # Closing and re-opening again adds nothing twice.
    set_status("closed")
    set_status("active")
    assert pairs(queue(client, inv)) == [(meanwhile, case_id)]


def test_sightings_of_one_child_are_linked_and_another_childs_are_not(
    client: TestClient, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    inv, s = keys[Role.INVESTIGATOR], world["s"]
    links = get(client, inv, f"/v1/sightings/{s[1]}/links")
    assert links["sighting_id"] == s[1]
    assert [link["sighting"]["id"] for link in links["links"]] == [s[2]]
    link = links["links"][0]
    assert link["sighting"]["lat"] == MUNICH[0] and link["sighting"]["taken_at"]
    assert link["sighting"]["photo_url"] == f"/v1/sightings/{s[2]}/photo"
    assert link["distance"] < 0.6
    assert [x["sighting"]["id"] for x in get(client, inv, f"/v1/sightings/{s[3]}/links")[
        "links"]] == [s[4]]
    assert client.get("/v1/sightings/999999/links", headers=auth(inv)).status_code == 404


def test_the_sighting_index_is_rebuilt_from_the_store_at_start_up(
    make_client: Any, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    again = make_client()  # a second app on the same data dir: its own start-up
    assert matcher_of(again).sighting_index.owner_count == 4
    links = get(again, keys[Role.INVESTIGATOR], f"/v1/sightings/{world['s'][1]}/links")
    assert [link["sighting"]["id"] for link in links["links"]] == [world["s"][2]]
