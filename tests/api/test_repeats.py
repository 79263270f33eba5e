"""Tips that repeat, through the real app over HTTP with real photos: the same photo sent
twice is one sighting with two reports; near-identical shots of one moment are linked as one
burst group, in the sighting and in the review queue."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from matcher.service import new_key
from matcher.store import Role
from tests.api.alert_helpers import alert_case, install_clock
from tests.api.builders import photo_file
from tests.api.conftest import auth, matcher_of
from tests.api.databases import on_both_databases  # noqa: F401
from tests.data import Photo, fgnet_photos, lfw_photos, require_test_data

MOMENT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _child(age: int) -> Photo:
    return next(p for p in fgnet_photos() if p.identity == "fgnet-001" and p.age == age)


def _jpeg(photo: Photo, scale: float = 1.0, quality: int = 95) -> bytes:
    image = Image.open(photo.path).convert("RGB")
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture
def world(make_client: Callable[..., TestClient]) -> dict[str, Any]:
    """The child's case with an alert (top 1 only, so other cases can push it out), another
    case, two tip apps and an investigator."""
    require_test_data()
    client = make_client(match_top_k=1)
    install_clock(client)
    sessions = matcher_of(client).sessions
    keys = {role: new_key(sessions, role, role.value)[1] for role in Role}
    keys["second app"] = new_key(sessions, Role.TIP_APP, "second app")[1]
    manager = keys[Role.CASE_MANAGER]
    child = alert_case(client, manager, "Ada")
    other = alert_case(client, manager, "Other", issue=False)
    for case, photo in ((child, _child(8)), (other, lfw_photos()[0])):
        added = client.post(f"/v1/cases/{case}/photos", files=photo_file(photo),
                            data={"age_at_photo": str(photo.age or 30)}, headers=auth(manager))
        assert added.status_code == 201, added.text
    return {"client": client, "keys": keys, "child": child, "other": other}


def _send(client: TestClient, key: str, data: bytes, taken_at: dt.datetime,
          **fields: str) -> int:
    answer = client.post("/v1/sightings", files={"photo": ("tip.jpg", data, "image/jpeg")},
                         data={"taken_at": taken_at.isoformat(), **fields}, headers=auth(key))
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def test_the_same_photo_sent_twice_is_one_sighting_with_two_reports(
    world: dict[str, Any]
) -> None:
    client, keys = world["client"], world["keys"]
    investigator = auth(keys[Role.INVESTIGATOR])
    photo = lfw_photos()[0].path.read_bytes()  # the other case's own photo: it ranks first
    first = _send(client, keys[Role.TIP_APP], photo, MOMENT, lat="51.5", lon="-0.1",
                  note="by the river", reporter_contact="+44 20 1")
    candidates = client.get(f"/v1/sightings/{first}/candidates", headers=investigator).json()
    # Again, from another app, an hour later and elsewhere, answering the child's alert.
    again = _send(client, keys["second app"], photo, MOMENT + dt.timedelta(hours=1),
                  lat="52.0", lon="0.1", note="same man", alert_case_id=str(world["child"]))
    assert again == first
    sighting = client.get(f"/v1/sightings/{first}", headers=investigator).json()
    assert [(r["app"], r["note"], r["lat"], r["alert_case_id"]) for r in sighting["reports"]] \
        == [("tip_app", "by the river", 51.5, None),
            ("second app", "same man", 52.0, world["child"])]
    assert "+44" not in str(sighting)  # no report's contact is shown
    listed = client.get("/v1/sightings", headers=investigator).json()
    assert [s["id"] for s in listed] == [first]
    # The candidates it had, and the child's case the repeat answered, added after them.
    after = client.get(f"/v1/sightings/{first}/candidates", headers=investigator).json()
    assert [(c["case_id"], c["reported_for_alert"]) for c in after] == [
        *((c["case_id"], False) for c in candidates), (world["child"], True)]
    # A third time, answering the same alert: nothing more to add, nothing twice.
    _send(client, keys[Role.TIP_APP], photo, MOMENT, alert_case_id=str(world["child"]))
    assert len(client.get(f"/v1/sightings/{first}/candidates", headers=investigator).json()) \
        == len(after)
    assert len(client.get(f"/v1/sightings/{first}", headers=investigator).json()["reports"]) \
        == 3


def test_shots_of_one_moment_are_linked_as_one_burst_group(world: dict[str, Any]) -> None:
    client, keys, child = world["client"], world["keys"], world["child"]
    tip, investigator = keys[Role.TIP_APP], auth(keys[Role.INVESTIGATOR])
    alert = {"alert_case_id": str(child)}
    shot = _child(14)
    first = _send(client, tip, _jpeg(shot), MOMENT, **alert)
    # The same moment, resized and recompressed by another app: another sighting, linked.
    second = _send(client, keys["second app"], _jpeg(shot, 0.75, 60),
                   MOMENT + dt.timedelta(seconds=4), **alert)
    # Not linked: another photo at the same moment, and the same scene ten minutes later.
    stranger = _send(client, tip, _jpeg(lfw_photos()[1]), MOMENT + dt.timedelta(seconds=2))
    later = _send(client, tip, _jpeg(shot, 0.9), MOMENT + dt.timedelta(minutes=10), **alert)
    assert len({first, second, stranger, later}) == 4

    def group(sighting: int) -> int | None:
        body = client.get(f"/v1/sightings/{sighting}", headers=investigator).json()
        found: int | None = body["burst_group"]
        return found

    assert (group(first), group(second), group(stranger), group(later)) == (
        first, first, None, None)
    queue = client.get("/v1/review/queue", params={"reported_for_alert": "true"},
                       headers=investigator).json()["items"]
    groups = {e["sighting"]["id"]: e["sighting"]["burst_group"] for e in queue}
    assert groups == {first: first, second: first, later: None}
    # The desk shows the group too: the lineup of a face, and the case's history.
    for entry in queue:
        lineup = client.get(f"/v1/review/lineup/{entry['sighting_face_id']}",
                            headers=investigator).json()
        assert lineup["sighting"]["burst_group"] == groups[entry["sighting"]["id"]]
    history = client.get(f"/v1/review/cases/{child}", headers=investigator).json()["history"]
    assert {e["sighting"]["id"]: e["sighting"]["burst_group"] for e in history} == groups
