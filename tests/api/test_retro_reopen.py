"""A case made active again is compared with the sightings that came in while it was closed,
however many older sightings it already has candidates from, and however many of them are
under its threshold."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from fastapi.testclient import TestClient

from matcher.service import new_key
from matcher.store import Role
from tests.api.builders import case_body, marked, photo_file
from tests.api.conftest import auth, matcher_of
from tests.api.databases import on_both_databases  # noqa: F401  (a fixture override)
from tests.data import Photo, fgnet_photos, lfw_photos, require_test_data

TOP_K = 2
SIGHTINGS = 30


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


def test_every_earlier_sighting_under_the_threshold_becomes_a_candidate(
    make_client: Callable[..., TestClient],
) -> None:
    """30 sightings of a child came in while the case was found; after reopening, only
    MATCHER_MATCH_TOP_K of them got a candidate (issue 19, defect 4). Each sighting also gets
    a candidate of a twin case (the same photo, active throughout): its distance and threshold
    say which sightings are under the threshold."""
    require_test_data()
    client = make_client(match_top_k=TOP_K + 1)
    keys = {role: new_key(matcher_of(client).sessions, role, role.value)[1] for role in Role}
    manager, tips = auth(keys[Role.CASE_MANAGER]), auth(keys[Role.TIP_APP])
    investigator = auth(keys[Role.INVESTIGATOR])
    child = sorted((p for p in fgnet_photos() if p.identity == "fgnet-001"),
                   key=lambda p: p.age or 0)

    def new_case(name: str) -> int:
        case = client.post("/v1/cases", json=case_body(name), headers=manager).json()
        added = client.post(f"/v1/cases/{case['id']}/photos", files=photo_file(child[0]),
                            headers=manager)
        assert added.status_code == 201, added.text
        return int(case["id"])

    reopened, twin = new_case("C"), new_case("twin")
    found = client.patch(f"/v1/cases/{reopened}", json={"status": "found"}, headers=manager)
    assert found.status_code == 200, found.text
    sightings = []
    for n, photo in enumerate(itertools.islice(itertools.cycle(child[1:]), SIGHTINGS)):
        # Other pixels each time: the same photo sent again is one sighting (issue 22).
        sent = client.post("/v1/sightings", files={"photo": ("s.jpg", marked(photo, n),
                                                             "image/jpeg")}, headers=tips)
        assert sent.status_code == 201, sent.text
        sightings.append(sent.json()["id"])
    assert client.patch(f"/v1/cases/{reopened}", json={"status": "active"},
                        headers=manager).status_code == 200
    registered = new_case("registered after")

    rows = [row for sighting in sightings for row in client.get(
        f"/v1/sightings/{sighting}/candidates", headers=investigator).json()]
    by_twin = {row["sighting_face_id"]: row for row in rows if row["case_id"] == twin}
    under = {face for face, row in by_twin.items() if row["under_threshold"]}
    assert len(by_twin) == SIGHTINGS and len(under) > 2 * (TOP_K + 1)  # a test worth running
    for case_id in (reopened, registered):
        paired = {row["sighting_face_id"]: row for row in rows if row["case_id"] == case_id}
        assert set(paired) >= under, f"case {case_id}: {len(paired)} of {len(under)} under"
        assert all(paired[face]["distance"] == by_twin[face]["distance"] for face in paired)
        # Beyond the threshold, the near misses stop at the top k: the k closest are under.
        assert set(paired) == under
