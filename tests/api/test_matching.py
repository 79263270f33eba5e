"""The product's path through the real app: cases registered, sightings matched, cases found."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from matcher.store import Role
from tests.api.builders import case_body, photo_file, resaved
from tests.api.conftest import auth
from tests.api.databases import on_both_databases  # noqa: F401
from tests.data import Photo, fgnet_photos, lfw_photos, require_test_data

# One FG-NET child: the case is registered from photos at 8 and 10, sighted again at 14.
CHILD = "fgnet-001"
CASE_AGES = (8, 10)
SIGHTING_AGE = 14
DISTRACTORS = 6


def child_photo(age: int) -> Photo:
    return next(p for p in fgnet_photos() if p.identity == CHILD and p.age == age)


def distractor_photos() -> list[Photo]:
    """One photo each of the first LFW people in manifest order."""
    seen: dict[str, Photo] = {}
    for photo in lfw_photos():
        seen.setdefault(photo.identity, photo)
        if len(seen) == DISTRACTORS:
            break
    return list(seen.values())


def register(client: TestClient, key: str, name: str, photos: list[Photo]) -> int:
    response = client.post("/v1/cases", json=case_body(name), headers=auth(key))
    assert response.status_code == 201, response.text
    case_id = int(response.json()["id"])
    for photo in photos:
        added = client.post(f"/v1/cases/{case_id}/photos", files=photo_file(photo),
                            data={"age_at_photo": str(photo.age or 30)}, headers=auth(key))
        assert added.status_code == 201, added.text
        assert any(face["fit"] for face in added.json()["faces"]), photo.path
    return case_id


@pytest.fixture
def world(client: TestClient, keys: dict[Role, str]) -> dict[str, Any]:
    require_test_data()
    manager = keys[Role.CASE_MANAGER]
    child = register(client, manager, "Child A", [child_photo(age) for age in CASE_AGES])
    others = [register(client, manager, f"Distractor {i}", [photo])
              for i, photo in enumerate(distractor_photos())]
    return {"child": child, "others": others}


def upload(client: TestClient, key: str, photo: Photo | None = None,
           data: bytes | None = None, **fields: str) -> Any:
    files = photo_file(photo) if photo is not None else {
        "photo": ("group.jpg", data or b"", "image/jpeg")}
    response = client.post("/v1/sightings", files=files, data=fields, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


def candidates(client: TestClient, key: str, sighting_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/v1/sightings/{sighting_id}/candidates", headers=auth(key))
    assert response.status_code == 200, response.text
    return list(response.json())


def test_a_later_photo_of_the_child_ranks_the_case_first_until_it_is_found(
    client: TestClient, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    tip, investigator = keys[Role.TIP_APP], keys[Role.INVESTIGATOR]
    receipt = upload(client, tip, child_photo(SIGHTING_AGE), lat="51.5", lon="-0.12",
                     reporter_contact="+44 20 7946 0000", note="near the bus stop")
    # The tip app hears about faces only: no case ids, names, distances or contacts.
    assert set(receipt) == {"id", "faces", "hint"}
    assert len(receipt["faces"]) == 1 and receipt["faces"][0]["fit"]
    assert set(receipt["faces"][0]) == {"box", "fit", "reasons"}

    found = candidates(client, investigator, receipt["id"])
    assert found[0]["case_id"] == world["child"] and found[0]["rank"] == 1
    # Every active case is ranked (top-k = 10 > 7 cases), in order, with the threshold in force.
    assert [c["rank"] for c in found] == list(range(1, 1 + len(world["others"]) + 1))
    assert {c["case_id"] for c in found} == {world["child"], *world["others"]}
    distances = [c["distance"] for c in found]
    assert distances == sorted(distances)
    assert all(c["threshold"] == 0.6 and c["model_id"] for c in found)
    assert all(c["under_threshold"] == (c["distance"] <= 0.6) for c in found)
    assert all(c["status"] == "pending" and c["case_photo_id"] for c in found)
    assert "reporter_contact" not in str(found)
    sighting = client.get(f"/v1/sightings/{receipt['id']}", headers=auth(investigator)).json()
    assert sighting["lat"] == 51.5 and len(sighting["faces"]) == 1
    assert "reporter_contact" not in sighting and "+44" not in str(sighting)

    marked = client.patch(f"/v1/cases/{world['child']}", json={"status": "found"},
                          headers=auth(keys[Role.CASE_MANAGER]))
    assert marked.status_code == 200 and marked.json()["status"] == "found"
    again = upload(client, tip, data=resaved(child_photo(SIGHTING_AGE), 90))
    assert world["child"] not in {c["case_id"] for c in candidates(
        client, investigator, again["id"])}
    alerts = client.get("/v1/alerts", headers=auth(tip)).json()["alerts"]
    assert world["child"] not in {a["case_id"] for a in alerts}

    # Active again: back in the index (rebuilt from the store) and ranked first once more.
    client.patch(f"/v1/cases/{world['child']}", json={"status": "active"},
                 headers=auth(keys[Role.CASE_MANAGER]))
    third = upload(client, tip, data=resaved(child_photo(SIGHTING_AGE), 80))
    assert candidates(client, investigator, third["id"])[0]["case_id"] == world["child"]


def side_by_side(*photos: Photo) -> bytes:
    images = [Image.open(p.path).convert("RGB") for p in photos]
    height = max(i.height for i in images)
    canvas = Image.new("RGB", (sum(i.width for i in images), height), "white")
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=95)
    return out.getvalue()


def test_a_two_face_sighting_gets_candidates_for_each_face(
    client: TestClient, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    stranger = distractor_photos()[0]
    receipt = upload(client, keys[Role.TIP_APP],
                     data=side_by_side(child_photo(SIGHTING_AGE), stranger))
    assert len(receipt["faces"]) == 2
    found = candidates(client, keys[Role.INVESTIGATOR], receipt["id"])
    by_face: dict[int, list[dict[str, Any]]] = {}
    for row in found:
        by_face.setdefault(row["sighting_face_id"], []).append(row)
    assert len(by_face) == 2
    firsts = {rows[0]["case_id"] for rows in by_face.values()}
    assert firsts == {world["child"], world["others"][0]}
    for rows in by_face.values():
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        assert np.all(np.diff([r["distance"] for r in rows]) >= 0)


def test_alerts_show_public_fields_and_honour_if_none_match(
    client: TestClient, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    tip, manager = keys[Role.TIP_APP], keys[Role.CASE_MANAGER]
    last_seen = {"last_seen_lat": 51.5, "last_seen_lon": -0.12,
                 "last_seen_at": "2020-05-01T08:00:00Z"}
    for case in (world["child"], world["others"][0]):
        client.patch(f"/v1/cases/{case}", json=last_seen, headers=auth(manager))
        assert client.post(f"/v1/cases/{case}/alert", headers=auth(manager)).status_code == 201
    response = client.get("/v1/alerts", headers=auth(tip))
    assert response.status_code == 200
    alert = next(a for a in response.json()["alerts"] if a["case_id"] == world["child"])
    assert alert["fields"] == {"name": "Child A", "missing_since": "2020-05-01"}
    assert len(alert["photo_urls"]) == len(CASE_AGES)
    # Relative, whatever Host the request names (a cache could keep a forged one's answer).
    forged = client.get("/v1/alerts", headers={**auth(tip), "Host": "attacker.example"})
    assert all(url.startswith("/v1/alerts/")
               for a in forged.json()["alerts"] for url in a["photo_urls"])
    # A case under an alert publishes something: making nothing public is refused, and
    # changes nothing (tests/api/test_alerts.py: an edit apps see is an update).
    refused = client.patch(f"/v1/cases/{world['others'][0]}", json={"public_fields": []},
                           headers=auth(manager))
    assert refused.status_code == 409 and refused.json()["error"] == "alert_refused"
    assert world["others"][0] in {a["case_id"] for a in client.get(
        "/v1/alerts", headers=auth(tip)).json()["alerts"]}
    response = client.get("/v1/alerts", headers=auth(tip))
    assert response.headers["Cache-Control"] == "no-cache"  # kept, but asked again each time
    photo = client.get(alert["photo_urls"][0], headers=auth(tip))
    assert photo.status_code == 200 and photo.content[:3] == b"\xff\xd8\xff"
    # A photo of a case without an active alert is not public, whatever its fields say.
    other_photo = client.get(f"/v1/cases/{world['others'][1]}", headers=auth(manager)).json()[
        "photos"][0]["id"]
    assert client.get(f"/v1/alerts/{world['others'][1]}/photos/{other_photo}",
                      headers=auth(tip)).status_code == 404
    etag = response.headers["ETag"]
    assert client.get("/v1/alerts", headers={**auth(tip), "If-None-Match": etag}).status_code \
        == 304
    client.patch(f"/v1/cases/{world['others'][0]}", json={"public_fields": ["name"]},
                 headers=auth(manager))
    changed = client.get("/v1/alerts", headers={**auth(tip), "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
