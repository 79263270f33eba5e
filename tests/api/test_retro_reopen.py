"""A case made active again is compared with the sightings that came in while it was closed,
however many older sightings it already has candidates from."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from matcher.service import new_key
from matcher.store import Role
from tests.api.builders import case_body, photo_file
from tests.api.conftest import auth, matcher_of
from tests.data import Photo, lfw_photos, require_test_data

TOP_K = 2


def test_a_reopened_case_finds_the_sighting_made_while_it_was_closed(
    make_client: Callable[..., TestClient],
) -> None:
    require_test_data()
    client = make_client(match_top_k=TOP_K)
    keys = {role: new_key(matcher_of(client).sessions, role, role.value)[1] for role in Role}
    manager, tips = auth(keys[Role.CASE_MANAGER]), auth(keys[Role.TIP_APP])
    investigator = auth(keys[Role.INVESTIGATOR])
    child, other = lfw_photos()[0], lfw_photos()[1]
    case = client.post("/v1/cases", json=case_body("C"), headers=manager).json()
    assert client.post(f"/v1/cases/{case['id']}/photos", files=photo_file(child),
                       headers=manager).status_code == 201

    def sighting(photo: Photo) -> int:
        sent = client.post("/v1/sightings", files=photo_file(photo), headers=tips)
        assert sent.status_code == 201, sent.text
        return int(sent.json()["id"])

    def paired(sighting_id: int) -> bool:
        found = client.get(f"/v1/sightings/{sighting_id}/candidates", headers=investigator)
        assert found.status_code == 200, found.text
        return any(row["case_id"] == case["id"] for row in found.json())

    # TOP_K sightings of the case photo itself (distance 0): the case's closest, paired now.
    early = [sighting(child) for _ in range(TOP_K)]
    assert all(paired(s) for s in early)
    closed = client.patch(f"/v1/cases/{case['id']}", json={"status": "closed"}, headers=manager)
    assert closed.status_code == 200, closed.text
    # Farther from the case than those, and sent while it was closed: no candidate yet.
    meanwhile = sighting(other)
    assert not paired(meanwhile)
    reopened = client.patch(f"/v1/cases/{case['id']}", json={"status": "active"},
                            headers=manager)
    assert reopened.status_code == 200, reopened.text
    # The TOP_K closer sightings are paired already: they must not take the new one's place.
    assert paired(meanwhile)
    assert all(paired(s) for s in early)
