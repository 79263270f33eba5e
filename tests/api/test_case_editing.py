"""Case managers edit cases and remove photos; a refused edit changes nothing."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.exc import OperationalError

import matcher.service.cases
from matcher.service import remove_photo
from matcher.store import Role, list_events
from tests.api.builders import case_body, photo_file
from tests.api.conftest import auth, matcher_of
from tests.api.databases import on_both_databases  # noqa: F401
from tests.data import lfw_photos, require_test_data


def _case(client: TestClient, key: str, photos: int = 0) -> dict[str, Any]:
    made = client.post("/v1/cases", json=case_body("Mia", date_of_birth="2014-02-03"),
                       headers=auth(key))
    assert made.status_code == 201, made.text
    case = made.json()
    for photo in lfw_photos()[:photos]:
        added = client.post(f"/v1/cases/{case['id']}/photos", files=photo_file(photo),
                            headers=auth(key))
        assert added.status_code == 201, added.text
    return dict(client.get(f"/v1/cases/{case['id']}", headers=auth(key)).json())


def test_descriptive_fields_change_together_or_not_at_all(
    client: TestClient, keys: dict[Role, str]
) -> None:
    manager = auth(keys[Role.CASE_MANAGER])
    case = _case(client, keys[Role.CASE_MANAGER])
    url = f"/v1/cases/{case['id']}"
    edited = client.patch(url, json={
        "name": "Mia K.", "description": "blue coat", "last_seen_place": "Harbour",
        "last_seen_lat": 53.55, "last_seen_lon": 9.99, "last_seen_at": "2024-05-01T18:30:00+02:00",
        "category": "child"}, headers=manager)
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert (body["name"], body["description"], body["last_seen_place"]) == (
        "Mia K.", "blue coat", "Harbour")
    assert (body["last_seen_lat"], body["last_seen_lon"]) == (53.55, 9.99)
    assert body["last_seen_at"] == "2024-05-01T16:30:00Z"  # kept in UTC
    assert edited.headers["Cache-Control"] == "no-store"  # no proxy or browser keeps a case
    assert body["missing_since"] == case["missing_since"]  # not sent: unchanged

    refused = [
        ({"last_seen_lat": None, "status": "closed"}, "longitude"),  # lat goes, lon stays
        ({"date_of_birth": None, "age_when_missing": None}, "date of birth"),
        ({"name": None}, "cleared"),
        ({"public_fields": ["reporter_contact"], "status": "found"}, "unknown public fields"),
        ({"shoe_size": 31}, "extra"),
        ({"last_seen_at": "2999-01-01T00:00:00Z"}, "now"),  # not seen in the future
    ]
    for change, reason in refused:
        response = client.patch(url, json=change, headers=manager)
        assert response.status_code == 422, (change, response.text)
        assert reason in response.text, (change, response.text)
    after = client.get(url, headers=manager).json()
    assert after == {**body, "photos": after["photos"]} and after["status"] == "active"
    assert client.patch("/v1/cases/99999", json={"name": "x"}, headers=manager).status_code \
        == 404


def test_a_removed_photo_leaves_the_index_the_disk_and_the_candidates(
    client: TestClient, keys: dict[Role, str], tmp_path: Path
) -> None:
    require_test_data()
    manager = auth(keys[Role.CASE_MANAGER])
    case = _case(client, keys[Role.CASE_MANAGER], photos=2)
    other = _case(client, keys[Role.CASE_MANAGER])
    first, second = case["photos"]
    matcher = matcher_of(client)
    assert matcher.index.faces_of(case["id"]).size == 2
    # A sighting of the person in the first photo (other pixels: the file is not shared):
    # rank 1 via that photo's face.
    with Image.open(lfw_photos()[0].path) as image:
        larger = io.BytesIO()
        image.resize((300, 300)).save(larger, format="JPEG")
    sighting = client.post("/v1/sightings", files={"photo": ("s.jpg", larger.getvalue())},
                           headers=auth(keys[Role.TIP_APP])).json()
    investigator = auth(keys[Role.INVESTIGATOR])
    found = client.get(f"/v1/sightings/{sighting['id']}/candidates", headers=investigator)
    assert found.json()[0]["case_photo_id"] == first["id"]
    stored = list((tmp_path / "data" / "photos").rglob("*.jpg"))

    # Through another case's id: the photo is not found there, and nothing is removed.
    assert client.delete(f"/v1/cases/{other['id']}/photos/{first['id']}",
                         headers=manager).status_code == 404
    assert client.delete(f"/v1/cases/{case['id']}/photos/{first['id']}",
                         headers=manager).status_code == 204
    assert matcher.index.faces_of(case["id"]).tolist() == [second["faces"][0]["id"]]
    assert len(list((tmp_path / "data" / "photos").rglob("*.jpg"))) == len(stored) - 1
    after = client.get(f"/v1/cases/{case['id']}", headers=manager).json()
    assert [p["id"] for p in after["photos"]] == [second["id"]]
    assert client.get(f"/v1/cases/{case['id']}/photos/{first['id']}/image",
                      headers=manager).status_code == 404
    remaining = client.get(f"/v1/sightings/{sighting['id']}/candidates",
                           headers=investigator).json()
    assert all(c["case_photo_id"] != first["id"] for c in remaining)
    assert client.delete(f"/v1/cases/{case['id']}/photos/{first['id']}",
                         headers=manager).status_code == 404
    with matcher.sessions() as session:
        removed = list_events(session, object_type="case_photo", object_id=first["id"])
    assert [(e.action, e.role) for e in removed] == [("create", "case_manager"),
                                                     ("delete", "case_manager")]


def test_a_patch_whose_status_change_fails_changes_nothing(
    client: TestClient, keys: dict[Role, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = auth(keys[Role.CASE_MANAGER])
    case = _case(client, keys[Role.CASE_MANAGER])
    url = f"/v1/cases/{case['id']}"

    def database_refuses(*_: object) -> None:  # the status write fails after the edits
        raise OperationalError("UPDATE cases", {}, Exception("database is locked"))

    monkeypatch.setattr(matcher.service.cases, "set_case_status", database_refuses)
    with pytest.raises(OperationalError):
        client.patch(url, json={"name": "Mia K.", "description": "scar", "status": "found"},
                     headers=manager)
    monkeypatch.undo()
    after = client.get(url, headers=manager).json()
    assert (after["name"], after["description"], after["status"]) == (
        case["name"], case["description"], "active")


def test_a_photo_removed_while_a_sighting_is_searched_is_not_a_candidate(
    client: TestClient, keys: dict[Role, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sighting searched before the removal searches again before it commits, instead of
    naming a face the store no longer has (which lost the whole upload)."""
    require_test_data()
    case = _case(client, keys[Role.CASE_MANAGER], photos=2)
    first, second = case["photos"]
    index = matcher_of(client).index
    search = index.search

    def search_then_remove(*args: Any, **kwargs: Any) -> Any:
        hits = search(*args, **kwargs)
        if not removed:
            removed.append(first["id"])
            manager = threading.Thread(target=remove_photo, args=(
                matcher_of(client), case["id"], first["id"]))
            manager.start()
            manager.join()
        return hits

    removed: list[int] = []
    monkeypatch.setattr(index, "search", search_then_remove)
    with Image.open(lfw_photos()[0].path) as image:
        other_pixels = io.BytesIO()
        image.resize((300, 300)).save(other_pixels, format="JPEG")
    posted = client.post("/v1/sightings", files={"photo": ("s.jpg", other_pixels.getvalue())},
                         headers=auth(keys[Role.TIP_APP]))
    assert removed and posted.status_code == 201, posted.text
    candidates = client.get(f"/v1/sightings/{posted.json()['id']}/candidates",
                            headers=auth(keys[Role.INVESTIGATOR])).json()
    assert candidates and {c["case_photo_id"] for c in candidates} <= {second["id"]}
    assert {c["case_face_id"] for c in candidates} == {second["faces"][0]["id"]}


def test_a_retried_case_photo_finishes_matching_earlier_sightings(
    client: TestClient, keys: dict[Role, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The photo committed, then matching it against earlier sightings failed (a database
    error): the retry is told the photo is there (409) and does the matching."""
    require_test_data()
    with Image.open(lfw_photos()[0].path) as image:
        other_pixels = io.BytesIO()
        image.resize((300, 300)).save(other_pixels, format="JPEG")
    sighting = client.post("/v1/sightings", files={"photo": ("s.jpg", other_pixels.getvalue())},
                           headers=auth(keys[Role.TIP_APP])).json()["id"]
    case = _case(client, keys[Role.CASE_MANAGER])
    retro_match = matcher.service.cases.retro_match

    def fails_once(*args: Any) -> int:
        monkeypatch.setattr(matcher.service.cases, "retro_match", retro_match)
        raise OperationalError("INSERT INTO candidates", {}, Exception("database is locked"))

    monkeypatch.setattr(matcher.service.cases, "retro_match", fails_once)
    url, photo = f"/v1/cases/{case['id']}/photos", photo_file(lfw_photos()[0])
    with pytest.raises(OperationalError):
        client.post(url, files=photo, headers=auth(keys[Role.CASE_MANAGER]))
    candidates = f"/v1/sightings/{sighting}/candidates"
    investigator = auth(keys[Role.INVESTIGATOR])
    assert client.get(candidates, headers=investigator).json() == []
    retry = client.post(url, files=photo, headers=auth(keys[Role.CASE_MANAGER]))
    assert retry.status_code == 409 and retry.json()["error"] == "duplicate_photo", retry.text
    assert [c["case_id"] for c in client.get(candidates, headers=investigator).json()] == [
        case["id"]]
