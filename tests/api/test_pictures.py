"""Investigators see stored photos and face crops: metadata-free, owner-checked, audited."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from matcher.store import Role, list_events
from tests.api.builders import case_body, photo_file
from tests.api.conftest import auth, matcher_of
from tests.api.databases import on_both_databases  # noqa: F401
from tests.data import lfw_photos, require_test_data
from tests.store.builders import jpeg_with_gps


def _jpeg(response: Any) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "no-store"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


@pytest.fixture
def seen(client: TestClient, keys: dict[Role, str]) -> dict[str, Any]:
    """Two cases with one photo each, and a sighting (with GPS in its EXIF) of the first."""
    require_test_data()
    manager = auth(keys[Role.CASE_MANAGER])
    people = lfw_photos()[:2]
    cases = []
    for i, photo in enumerate(people):
        case = client.post("/v1/cases", json=case_body(f"Case {i}"), headers=manager).json()
        added = client.post(f"/v1/cases/{case['id']}/photos", files=photo_file(photo),
                            headers=manager).json()
        cases.append((case["id"], added["photo_id"]))
    with Image.open(people[0].path) as image:
        upload = jpeg_with_gps(image=image.convert("RGB").resize((500, 500)))
    receipt = client.post("/v1/sightings", files={"photo": ("s.jpg", upload, "image/jpeg")},
                          data={"note": "by the fountain", "reporter_contact": "ana@example.org"},
                          headers=auth(keys[Role.TIP_APP]))
    assert receipt.status_code == 201, receipt.text
    return {"cases": cases, "sighting": receipt.json()["id"]}


def test_candidates_link_to_crops_and_photos_that_open(
    client: TestClient, keys: dict[Role, str], seen: dict[str, Any]
) -> None:
    investigator = auth(keys[Role.INVESTIGATOR])
    found = client.get(f"/v1/sightings/{seen['sighting']}/candidates", headers=investigator)
    best = found.json()[0]
    assert best["case_id"] == seen["cases"][0][0]
    sighting_crop = _jpeg(client.get(best["sighting_face_crop_url"], headers=investigator))
    case_crop = _jpeg(client.get(best["case_face_crop_url"], headers=investigator))
    # Face plus margin, at most 320 px: far smaller than the 500 px photo, bigger than a dot.
    assert 100 < max(sighting_crop.size) <= 320 and 60 < max(case_crop.size) <= 320
    photo = _jpeg(client.get(best["case_photo_url"], headers=investigator))
    assert photo.size == (250, 250)  # LFW photos are 250 x 250
    stored = _jpeg(client.get(f"/v1/sightings/{seen['sighting']}/photo", headers=investigator))
    assert stored.size == (500, 500)
    assert not stored.getexif() and "comment" not in stored.info and "exif" not in stored.info


def test_photo_ids_cannot_be_guessed_across_cases(
    client: TestClient, keys: dict[Role, str], seen: dict[str, Any]
) -> None:
    (first, first_photo), (second, second_photo) = seen["cases"]
    reader = auth(keys[Role.INVESTIGATOR])
    assert client.get(f"/v1/cases/{first}/photos/{first_photo}/image",
                      headers=reader).status_code == 200
    crossed = client.get(f"/v1/cases/{first}/photos/{second_photo}/image", headers=reader)
    assert crossed.status_code == 404 and crossed.json()["error"] == "not_found"
    assert client.get("/v1/faces/999999/crop", headers=reader).status_code == 404
    assert client.get("/v1/sightings/999999/photo", headers=reader).status_code == 404


def test_sightings_are_listed_newest_first_without_the_reporter(
    client: TestClient, keys: dict[Role, str], seen: dict[str, Any]
) -> None:
    second = client.post("/v1/sightings", files=photo_file(lfw_photos()[5]),
                         headers=auth(keys[Role.TIP_APP])).json()["id"]
    investigator = auth(keys[Role.INVESTIGATOR])
    listed = client.get("/v1/sightings", headers=investigator).json()
    assert [s["id"] for s in listed] == [second, seen["sighting"]]
    assert listed[1]["note"] == "by the fountain" and "ana@" not in str(listed)
    page = client.get(f"/v1/sightings?limit=1&before_id={second}", headers=investigator)
    assert [s["id"] for s in page.json()] == [seen["sighting"]]
    cases = client.get("/v1/cases?limit=1", headers=investigator).json()
    assert [c["id"] for c in cases] == [seen["cases"][0][0]] and "photos" not in cases[0]


def test_every_read_is_in_the_audit_trail(
    client: TestClient, keys: dict[Role, str], seen: dict[str, Any]
) -> None:
    investigator = auth(keys[Role.INVESTIGATOR])
    case_id, photo_id = seen["cases"][0]
    found = client.get(f"/v1/sightings/{seen['sighting']}/candidates", headers=investigator)
    client.get(found.json()[0]["sighting_face_crop_url"], headers=investigator)
    client.get(f"/v1/cases/{case_id}", headers=investigator)
    client.get(f"/v1/cases/{case_id}/photos/{photo_id}/image", headers=investigator)
    client.get(f"/v1/sightings/{seen['sighting']}/photo", headers=investigator)
    client.get(f"/v1/sightings/{seen['sighting']}", headers=investigator)
    with matcher_of(client).sessions() as session:
        events = [e for e in list_events(session) if e.role == "investigator"]
    read = {(e.object_type, e.object_id) for e in events}
    assert {("candidate", str(c["id"])) for c in found.json()} <= read
    assert {("face_crop", str(found.json()[0]["sighting_face_id"])), ("case", str(case_id)),
            ("case_photo", str(photo_id)), ("sighting_photo", str(seen["sighting"])),
            ("sighting", str(seen["sighting"]))} <= read
    assert all(e.action == "read" and e.actor == "test investigator" and e.client == "testclient"
               for e in events)
