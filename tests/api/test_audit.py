"""The audit trail of the review: every candidate shown and every decision is recorded, and
admins (only) read the trail as JSON pages or a CSV export, which are recorded too."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from matcher.api.routes.audit import COLUMNS
from matcher.store import Role
from tests.api.conftest import auth
from tests.api.databases import on_both_databases  # noqa: F401  (a fixture override)
from tests.api.review_helpers import build_world, decide, entry_of, get, queue

INVESTIGATOR = "test investigator"


@pytest.fixture
def world(client: TestClient, keys: dict[Role, str]) -> dict[str, Any]:
    return build_world(client, keys)


def events(client: TestClient, key: str, **params: Any) -> list[dict[str, Any]]:
    return list(get(client, key, "/v1/audit", limit=1000, **params)["items"])


def test_every_candidate_shown_and_every_decision_is_audited(
    client: TestClient, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    inv, admin, a, s = keys[Role.INVESTIGATOR], keys[Role.ADMIN], world["a"], world["s"]
    shown = queue(client, inv)
    reads = [e for e in events(client, admin, object_type="candidate", actor=INVESTIGATOR)
             if e["detail"].get("via") == "queue"]
    assert sorted(int(e["object_id"]) for e in reads) == sorted(i["id"] for i in shown)
    read = next(e for e in reads if int(e["object_id"]) == entry_of(shown, s[1], a)["id"])
    assert read["action"] == "read" and read["role"] == "investigator"
    assert read["client"] and read["api_key_id"]
    assert read["detail"] == {"via": "queue", "case_id": a, "sighting_id": s[1],
                              "seen": [s[2]]}

    target = entry_of(shown, s[1], a)
    decide(client, inv, target["id"], "not_match", "not her")
    get(client, inv, f"/v1/review/candidates/{target['id']}")
    get(client, inv, f"/v1/cases/{a}/matches")  # nothing confirmed: nothing shown or logged
    get(client, inv, f"/v1/sightings/{s[1]}/links")
    trail = events(client, admin, object_id=str(target["id"]), object_type="candidate")
    assert [(e["action"], e["detail"].get("via")) for e in trail] == [
        ("read", "queue"), ("decide", None), ("read", "candidate")]
    assert trail[1]["detail"]["verdict"] == "not_match" and trail[1]["actor"] == INVESTIGATOR
    assert "not her" not in str(trail)  # the note stays in the decision, not in the trail
    links = events(client, admin, object_type="sighting_links")
    assert [(e["object_id"], e["detail"]["linked"]) for e in links] == [(str(s[1]), [s[2]])]


def test_admins_read_the_trail_as_json_pages_and_csv_and_the_reads_are_audited(
    client: TestClient, keys: dict[Role, str], world: dict[str, Any]
) -> None:
    inv, admin = keys[Role.INVESTIGATOR], keys[Role.ADMIN]
    queue(client, inv)
    everything = events(client, admin)
    assert len(everything) > 4 and [e["id"] for e in everything] == sorted(
        e["id"] for e in everything)

    first = get(client, admin, "/v1/audit", limit=2)
    assert [e["id"] for e in first["items"]] == [e["id"] for e in everything[:2]]
    second = get(client, admin, "/v1/audit", limit=2, after_id=first["next_after_id"])
    assert [e["id"] for e in second["items"]] == [e["id"] for e in everything[2:4]]
    assert events(client, admin, since="2000-01-01", until="2001-01-01") == []

    exported = client.get("/v1/audit", params={"format": "csv", "object_type": "candidate"},
                          headers=auth(admin))
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert tuple(rows[0]) == COLUMNS
    candidates = events(client, admin, object_type="candidate")
    assert [int(r[0]) for r in rows[1:]] == [e["id"] for e in candidates]
    assert {r[COLUMNS.index("actor")] for r in rows[1:]} == {INVESTIGATOR}
    by_accept = client.get("/v1/audit", params={"object_type": "candidate", "limit": 3},
                           headers={**auth(admin), "Accept": "text/csv"})
    assert len(list(csv.reader(io.StringIO(by_accept.text)))) == 1 + 3

    # Reading the trail is itself on the trail: every read and both exports above.
    own = events(client, admin, object_type="audit")
    assert [e["action"] for e in own].count("export") == 2
    assert all(e["actor"] == "test admin" and e["role"] == "admin" for e in own)
    assert {"object_type": "candidate"}.items() <= next(
        e for e in own if e["action"] == "export")["detail"].items()

    for role in (Role.INVESTIGATOR, Role.CASE_MANAGER, Role.TIP_APP):
        refused = client.get("/v1/audit", params={"format": "csv"}, headers=auth(keys[role]))
        assert refused.status_code == 403
    assert client.get("/v1/audit").status_code == 401
