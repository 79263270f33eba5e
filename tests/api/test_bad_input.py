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


def test_text_that_is_not_utf8_is_refused_naming_its_field(
    client: TestClient, keys: dict[Role, str]
) -> None:
    """Bytes that are no UTF-8 were decoded as Latin-1 and stored as mojibake with a 201."""
    require_test_data()
    photo = lfw_photos()[0].path.read_bytes()
    boundary = "utf8-boundary"

    def form(*parts: tuple[str, bytes]) -> tuple[bytes, dict[str, str]]:
        body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; {disposition}"
                        f"\r\n\r\n".encode() + data + b"\r\n" for disposition, data in parts)
        return body + f"--{boundary}--\r\n".encode(), {
            "Content-Type": f"multipart/form-data; boundary={boundary}"}

    tip = auth(keys[Role.TIP_APP])
    before = stored(client)
    body, headers = form(('name="photo"; filename="p.jpg"', photo),
                         ('name="note"', b"\xff\xfe\xed\xa0\x80"))
    refused = client.post("/v1/sightings", content=body, headers={**tip, **headers})
    assert refused.status_code == 422, refused.text
    assert [(e["loc"], e["type"]) for e in refused.json()["detail"]] == [
        (["body", "note"], "string_unicode")]
    assert "UTF-8" in refused.json()["detail"][0]["msg"]
    manager = auth(keys[Role.CASE_MANAGER])
    case_id = client.post("/v1/cases", json=case_body("A"), headers=manager).json()["id"]
    body, headers = form(('name="photo"; filename="p.jpg"', photo),
                         ('name="taken_on"', b"2020-01-0\xff"))
    refused = client.post(f"/v1/cases/{case_id}/photos", content=body,
                          headers={**manager, **headers})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "taken_on"]
    assert stored(client) == before

    # Valid UTF-8 beyond ASCII is kept as sent, as is a charset the request names.
    body, headers = form(('name="photo"; filename="p.jpg"', photo),
                         ('name="note"', "rote Jacke, Größe 128, 红色".encode()))
    kept = client.post("/v1/sightings", content=body, headers={**tip, **headers})
    assert kept.status_code == 201, kept.text
    # Another photo: the same one again would be one sighting, its note a second report's.
    body, headers = form(('name="photo"; filename="p.jpg"', lfw_photos()[1].path.read_bytes()),
                         ('name="note"', "Größe".encode("latin-1")))
    latin = client.post("/v1/sightings", content=body, headers={
        **tip, "Content-Type": headers["Content-Type"] + "; charset=iso-8859-1"})
    assert latin.status_code == 201, latin.text
    investigator = auth(keys[Role.INVESTIGATOR])
    notes = [client.get(f"/v1/sightings/{answer.json()['id']}", headers=investigator)
             .json()["note"] for answer in (kept, latin)]
    assert notes == ["rote Jacke, Größe 128, 红色", "Größe"]


def test_a_photo_part_without_a_file_name_is_a_photo(
    client: TestClient, keys: dict[Role, str]
) -> None:
    """A file name is optional in multipart (RFC 7578) and the service never reads it. A photo
    sent without one was taken for a text field and refused as 'must not contain NUL
    characters'."""
    require_test_data()
    photo = lfw_photos()[0].path.read_bytes()
    tip = auth(keys[Role.TIP_APP])
    for disposition in ('form-data; name="photo"', 'form-data; name="photo"; filename=""'):
        body = (f'--b7\r\nContent-Disposition: {disposition}\r\nContent-Type: image/jpeg'
                f'\r\n\r\n').encode() + photo + b"\r\n--b7--\r\n"
        answer = client.post("/v1/sightings", content=body, headers={
            **tip, "Content-Type": "multipart/form-data; boundary=b7"})
        assert answer.status_code == 201, (disposition, answer.text)
        assert answer.json()["faces"] and answer.json()["faces"][0]["fit"]
    # httpx leaves the name out when it is empty.
    answer = client.post("/v1/sightings", files={"photo": ("", photo, "image/jpeg")},
                         headers=tip)
    assert answer.status_code == 201, answer.text
