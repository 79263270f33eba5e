"""Helpers of the review and audit API tests: FG-NET photos by file name, cases, sightings,
the queue, decisions, and a small world of two children sighted at later ages.

Two children whose photos are more than 0.62 apart at every age (above the 0.6 threshold), and
within 0.46 of themselves across the ages used here (measured with the pipeline):
- case A: fgnet-001 at 8; sightings of her at 10 (Berlin) and 14 (Munich)
- case B: fgnet-009 at 9 (an "elderly" case, for the category filter); sightings at 11 (no
  position, no date) and 16 (Potsdam, 27 km from Berlin)
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from matcher.store import Role
from tests.api.builders import case_body, photo_file
from tests.api.conftest import auth
from tests.data import Photo, fgnet_photos, require_test_data

BERLIN, MUNICH, POTSDAM = (52.52, 13.405), (48.1374, 11.5755), (52.3906, 13.0645)
YEAR_DAYS = 365.2425


def fgnet(name: str) -> Photo:
    return next(p for p in fgnet_photos() if p.path.name == name)


def new_case(client: TestClient, key: str, name: str, photo: str, form: dict[str, str],
             **fields: Any) -> tuple[int, int]:
    response = client.post("/v1/cases", json=case_body(name, **fields), headers=auth(key))
    assert response.status_code == 201, response.text
    case_id = int(response.json()["id"])
    return case_id, add_photo(client, key, case_id, photo, form)


def add_photo(client: TestClient, key: str, case_id: int, photo: str,
              form: dict[str, str] | None = None) -> int:
    added = client.post(f"/v1/cases/{case_id}/photos", files=photo_file(fgnet(photo)),
                        data=form or {}, headers=auth(key))
    assert added.status_code == 201, added.text
    return int(added.json()["photo_id"])


def sighting(client: TestClient, key: str, photo: str, where: tuple[float, float] | None = None,
             taken_at: str | None = None) -> int:
    data = {} if where is None else {"lat": str(where[0]), "lon": str(where[1])}
    if taken_at is not None:
        data["taken_at"] = taken_at
    response = client.post("/v1/sightings", files=photo_file(fgnet(photo)), data=data,
                           headers=auth(key))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def get(client: TestClient, key: str, url: str, **params: Any) -> Any:
    response = client.get(url, params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def queue(client: TestClient, key: str, **params: Any) -> list[dict[str, Any]]:
    return list(get(client, key, "/v1/review/queue", **params)["items"])


def pairs(items: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(item["sighting"]["id"], item["case"]["id"]) for item in items]


def decide(client: TestClient, key: str, candidate_id: int, verdict: str,
           note: str = "") -> Any:
    response = client.post(f"/v1/review/candidates/{candidate_id}/decision",
                           json={"verdict": verdict, "note": note}, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


def build_world(client: TestClient, keys: dict[Role, str]) -> dict[str, Any]:
    """Cases A and B, then the four sightings (so ingest, not retro-matching, finds them)."""
    require_test_data()
    manager, tip = keys[Role.CASE_MANAGER], keys[Role.TIP_APP]
    a, a_photo = new_case(client, manager, "Child A", "001A08.JPG", {"age_at_photo": "8"},
                          last_seen_lat=BERLIN[0], last_seen_lon=BERLIN[1])
    b, b_photo = new_case(client, manager, "Person B", "009A09.JPG", {"taken_on": "2015-06-01"},
                          category="elderly", age_when_missing=9)
    s = {
        1: sighting(client, tip, "001A10.JPG", BERLIN, "2021-01-01T10:00:00Z"),
        2: sighting(client, tip, "001A14.JPG", MUNICH, "2023-01-01T10:00:00Z"),
        3: sighting(client, tip, "009A11.JPG"),
        4: sighting(client, tip, "009A16a.JPG", POTSDAM, "2022-06-01T10:00:00Z"),
    }
    return {"a": a, "b": b, "a_photo": a_photo, "b_photo": b_photo, "s": s}


def entry_of(items: list[dict[str, Any]], sighting_id: int, case_id: int) -> dict[str, Any]:
    return next(i for i in items if (i["sighting"]["id"], i["case"]["id"]) == (sighting_id,
                                                                                 case_id))
