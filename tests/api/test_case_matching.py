"""A case says whether a sighting can find it today, and if not, why; case managers can list
the cases that cannot be found. (A case left without vectors by a reindex:
tests/service/test_reindex.py.)"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from matcher.store import Role
from tests.api.builders import case_body, photo_file, sky_png
from tests.api.conftest import auth, matcher_of
from tests.api.databases import on_both_databases  # noqa: F401
from tests.data import lfw_photos, require_test_data


def _ids(client: TestClient, headers: dict[str, str], query: str) -> list[int]:
    listed = client.get(f"/v1/cases?{query}", headers=headers)
    assert listed.status_code == 200, listed.text
    return [case["id"] for case in listed.json()]


def test_a_case_says_whether_a_sighting_can_find_it_and_why_not(
    client: TestClient, keys: dict[Role, str]
) -> None:
    require_test_data()
    manager, reader = auth(keys[Role.CASE_MANAGER]), auth(keys[Role.INVESTIGATOR])
    model_id = matcher_of(client).model_id

    def matching(case_id: int) -> dict[str, Any]:
        read = client.get(f"/v1/cases/{case_id}", headers=reader)
        assert read.status_code == 200, read.text
        return dict(read.json()["matching"])

    made = client.post("/v1/cases", json=case_body("Ana"), headers=manager)
    assert made.status_code == 201, made.text
    ana = made.json()["id"]
    assert made.json()["matching"] == {
        "matchable": False, "model_id": model_id, "photos": 0, "faces": 0,
        "matchable_faces": 0, "reason": "the case has no photo: add a photo of the person's face"}

    added = client.post(f"/v1/cases/{ana}/photos",
                        files={"photo": ("sky.png", sky_png(), "image/png")}, headers=manager)
    assert added.status_code == 201 and added.json()["faces"] == [], added.text
    state = matching(ana)
    assert (state["matchable"], state["photos"], state["faces"]) == (False, 1, 0)
    assert state["reason"].startswith("no face was found in the case's photos")

    added = client.post(f"/v1/cases/{ana}/photos", files=photo_file(lfw_photos()[0]),
                        headers=manager)
    assert added.status_code == 201 and len(added.json()["faces"]) == 1, added.text
    assert matching(ana) == {"matchable": True, "model_id": model_id, "photos": 2, "faces": 1,
                             "matchable_faces": 1, "reason": None}

    ben = client.post("/v1/cases", json=case_body("Ben"), headers=manager).json()["id"]
    assert _ids(client, reader, "matchable=false") == [ben]
    assert _ids(client, reader, "matchable=true") == [ana]
    listed = {case["id"]: case["matching"] for case in client.get(
        "/v1/cases", headers=reader).json()}
    assert listed == {ana: matching(ana), ben: matching(ben)}

    # Found: out of matching, and it says so; its faces stay counted.
    found = client.patch(f"/v1/cases/{ana}", json={"status": "found"}, headers=manager)
    assert found.status_code == 200, found.text
    assert found.json()["matching"] == {
        "matchable": False, "model_id": model_id, "photos": 2, "faces": 1,
        "matchable_faces": 1, "reason": "the case is found: it is out of matching"}
    assert _ids(client, reader, "matchable=false") == [ana, ben]
    assert _ids(client, reader, "matchable=false&status=active") == [ben]
    assert _ids(client, reader, "matchable=true") == []
    assert client.patch(f"/v1/cases/{ana}", json={"status": "active"},
                        headers=manager).json()["matching"]["matchable"] is True
    refused = client.get("/v1/cases?matchable=perhaps", headers=reader)
    assert refused.status_code == 422 and "matchable" in refused.text
