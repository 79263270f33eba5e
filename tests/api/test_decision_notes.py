"""A decision that changes the pair's verdict must say why (issue 21): refused without a
note, and nothing stored; a first decision, or the same verdict again, needs none."""

from __future__ import annotations

from fastapi.testclient import TestClient

from matcher.store import Role
from tests.api.conftest import auth
from tests.api.review_helpers import build_world, decide, entry_of, get, queue


def test_a_changed_decision_needs_a_note(client: TestClient, keys: dict[Role, str]) -> None:
    world = build_world(client, keys)
    inv, admin = keys[Role.INVESTIGATOR], keys[Role.ADMIN]
    target = entry_of(queue(client, inv), world["s"][1], world["a"])
    url = f"/v1/review/candidates/{target['id']}/decision"
    decide(client, inv, target["id"], "match")  # a first decision needs none
    decide(client, inv, target["id"], "match")  # nor the same verdict again

    for note in ("", "   "):
        refused = client.post(url, json={"verdict": "not_match", "note": note},
                              headers=auth(inv))
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == "note_required"
        assert "match to not_match" in refused.json()["detail"]
    # Nothing was stored: still confirmed, two decisions, no audit of a refused change.
    entry = get(client, inv, f"/v1/review/candidates/{target['id']}")
    assert entry["status"] == "confirmed" and len(entry["decisions"]) == 2
    trail = get(client, admin, "/v1/audit", object_type="candidate",
                object_id=str(target["id"]))["items"]
    assert [e["detail"]["verdict"] for e in trail if e["action"] == "decide"] == ["match"] * 2

    changed = decide(client, inv, target["id"], "not_match", "her sister, not her")
    assert changed["candidate_status"] == "rejected"
    assert changed["decision"]["note"] == "her sister, not her"
