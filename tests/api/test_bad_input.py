"""Malformed uploads get a 4xx JSON error that says what is wrong, and nothing is stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from matcher.store import CasePhoto, Face, Role, Sighting
from tests.api.builders import case_body
from tests.api.conftest import auth, matcher_of
from tests.data import lfw_photos, require_test_data


def stored(client: TestClient) -> tuple[int, int, int, int]:
    """Rows of sightings, case photos and faces, and photo files on disk."""
    matcher = matcher_of(client)
    with matcher.sessions() as session:
        counts = [session.scalar(select(func.count()).select_from(t))
                  for t in (Sighting, CasePhoto, Face)]
    files = len([p for p in (matcher.settings.data_dir / "photos").rglob("*") if p.is_file()])
    return int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0), files


def test_a_text_file_is_refused_with_a_reason_and_nothing_is_stored(
    client: TestClient, keys: dict[Role, str]
) -> None:
    before = stored(client)
    text = {"photo": ("tip.jpg", b"<html>not a photo</html>", "image/jpeg")}
    sighting = client.post("/v1/sightings", files=text, headers=auth(keys[Role.TIP_APP]))
    assert sighting.status_code == 422
    assert sighting.json()["error"] == "not_an_image" and sighting.json()["detail"]
    manager = auth(keys[Role.CASE_MANAGER])
    case_id = client.post("/v1/cases", json=case_body("A"), headers=manager).json()["id"]
    photo = client.post(f"/v1/cases/{case_id}/photos", files=text, headers=manager)
    assert photo.status_code == 422 and photo.json()["error"] == "not_an_image"
    empty = client.post("/v1/sightings", files={"photo": ("e.jpg", b"", "image/jpeg")},
                        headers=auth(keys[Role.TIP_APP]))
    assert empty.status_code == 422 and empty.json()["error"] == "empty"
    assert stored(client) == before


def test_bad_fields_are_refused_before_any_work(
    client: TestClient, keys: dict[Role, str]
) -> None:
    require_test_data()
    tip = auth(keys[Role.TIP_APP])
    photo = {"photo": ("p.jpg", lfw_photos()[0].path.read_bytes(), "image/jpeg")}
    before = stored(client)
    for fields in ({"lat": "100", "lon": "0"}, {"lat": "north"}, {"taken_at": "yesterday"}):
        response = client.post("/v1/sightings", files=photo, data=fields, headers=tip)
        assert response.status_code == 422, fields
        assert response.json()["error"] == "invalid_request" and response.json()["detail"]
    alone = client.post("/v1/sightings", files=photo, data={"lat": "10"}, headers=tip)
    assert alone.status_code == 422 and alone.json()["error"] == "invalid"
    assert client.post("/v1/sightings", headers=tip).status_code == 422  # no photo at all
    assert stored(client) == before
    manager = auth(keys[Role.CASE_MANAGER])
    no_age = case_body("B", age_when_missing=None)
    response = client.post("/v1/cases", json=no_age, headers=manager)
    assert response.status_code == 422 and response.json()["error"] == "invalid"
    assert client.post("/v1/cases", json=case_body("C", category="adult"),
                       headers=manager).status_code == 422
    # The body's own validator refuses it, before the store would (422 invalid_request).
    assert client.post("/v1/cases", json=case_body("D", public_fields=["secret"]),
                       headers=manager).json()["error"] == "invalid_request"
    assert client.patch("/v1/cases/999", json={"status": "found"},
                        headers=manager).status_code == 404


def test_an_upload_over_the_byte_limit_is_413(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    require_test_data()
    from matcher.service import new_key

    client = make_client(max_image_bytes=4096)
    _, key = new_key(matcher_of(client).sessions, Role.TIP_APP, "app")
    big = {"photo": ("p.jpg", lfw_photos()[0].path.read_bytes(), "image/jpeg")}
    response = client.post("/v1/sightings", files=big, headers=auth(key))
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert stored(client) == (0, 0, 0, 0)


def test_a_sighting_without_a_usable_face_is_kept(
    client: TestClient, keys: dict[Role, str]
) -> None:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 200)).save(out, format="PNG")
    response = client.post("/v1/sightings", files={"photo": ("sky.png", out.getvalue(),
                                                             "image/png")},
                           headers=auth(keys[Role.TIP_APP]))
    assert response.status_code == 201 and response.json()["faces"] == []
    listed = client.get(f"/v1/sightings/{response.json()['id']}/candidates",
                        headers=auth(keys[Role.INVESTIGATOR]))
    assert listed.status_code == 200 and listed.json() == []
