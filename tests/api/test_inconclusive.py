"""`inconclusive` beside `needs_info` (issue 21): the face examiner's "the pictures at hand
cannot decide", a conclusion that closes the candidate, where `needs_info` parks it until
someone gets more. Through the real app: the verdict, the status, the queue, the lineup, the
audit, and a later change that must say why."""

from __future__ import annotations

from fastapi.testclient import TestClient

from matcher.store import Role
from tests.api.conftest import auth
from tests.api.review_helpers import build_world, decide, entry_of, get, queue


def test_an_inconclusive_comparison_leaves_the_queue_and_stays_in_view(
    client: TestClient, keys: dict[Role, str]
) -> None:
    world = build_world(client, keys)
    inv, admin = keys[Role.INVESTIGATOR], keys[Role.ADMIN]
    s, a = world["s"], world["a"]
    unsure, parked = entry_of(queue(client, inv), s[1], a), entry_of(queue(client, inv), s[2], a)

    receipt = decide(client, inv, unsure["id"], "inconclusive", "profile only, 6 years apart")
    assert receipt["candidate_status"] == "inconclusive"
    assert receipt["decision"]["verdict"] == "inconclusive"
    decide(client, inv, parked["id"], "needs_info", "ask the reporter for another photo")
    # needs_info waits in its own list; inconclusive waits for nobody: in no queue list.
    assert unsure["id"] not in {i["id"] for i in queue(client, inv)}
    waiting = queue(client, inv, status=["pending", "needs_info"])
    assert parked["id"] in {i["id"] for i in waiting}
    assert unsure["id"] not in {i["id"] for i in waiting}
    refused = client.get("/v1/review/queue", params={"status": "inconclusive"},
                         headers=auth(inv))
    assert refused.status_code == 422

    # Still in view: the lineup of the face, the case view, the audit trail.
    lineup = get(client, inv, f"/v1/review/lineup/{unsure['sighting_face_id']}")
    [card] = [c for c in lineup["cards"] if c["candidate_id"] == unsure["id"]]
    assert card["status"] == "inconclusive"
    assert card["decisions"][-1]["note"] == "profile only, 6 years apart"
    view = get(client, inv, f"/v1/review/cases/{a}")
    assert {e["candidate_id"]: e["status"] for e in view["history"]}[unsure["id"]] == (
        "inconclusive")
    assert view["seen"] == []  # neither is a sighting of her
    trail = get(client, admin, "/v1/audit", object_type="candidate",
                object_id=str(unsure["id"]))["items"]
    assert [e["detail"]["verdict"] for e in trail if e["action"] == "decide"] == [
        "inconclusive"]

    # A better look later settles it, with a note, as any change does.
    url = f"/v1/review/candidates/{unsure['id']}/decision"
    silent = client.post(url, json={"verdict": "match"}, headers=auth(inv))
    assert silent.status_code == 422 and silent.json()["error"] == "note_required"
    settled = decide(client, inv, unsure["id"], "match", "a school photo settled it")
    assert settled["candidate_status"] == "confirmed"
