"""Admins over HTTP: list keys with their last use, create and revoke them; each creation,
revocation and use of an admin key is in the audit trail (issue 21, item 5)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from matcher.service import authenticate
from matcher.store import Role
from tests.api.conftest import auth, matcher_of


def _events(client: TestClient, admin: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/audit", params={"limit": 1000, **params}, headers=auth(admin))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_the_list_shows_every_key_and_its_last_use_never_its_secret(
    client: TestClient, keys: dict[Role, str]
) -> None:
    admin = keys[Role.ADMIN]
    made = client.post("/v1/keys", json={"role": "tip_app", "name": "tips app"},
                       headers=auth(admin)).json()
    assert client.delete(f"/v1/keys/{made['id']}", headers=auth(admin)).status_code == 204
    assert client.get("/v1/cases/1", headers=auth(keys[Role.INVESTIGATOR])).status_code == 404
    listed = client.get("/v1/keys", headers=auth(admin))
    assert listed.status_code == 200
    body = listed.json()
    by_name = {key["name"]: key for key in body}
    assert set(body[0]) == {"id", "role", "name", "created_at", "revoked_at", "last_used_at"}
    assert [key["id"] for key in body] == sorted(key["id"] for key in body)
    assert by_name["tips app"]["revoked_at"] is not None  # revoked keys are listed too
    assert by_name["tips app"]["last_used_at"] is None
    assert by_name["test investigator"]["last_used_at"] is not None
    assert by_name["test admin"]["last_used_at"] is not None
    assert by_name["test case_manager"]["last_used_at"] is None
    assert "mk_" not in listed.text and "hash" not in listed.text and made["key"] not in listed.text


def test_creation_revocation_and_each_admin_request_are_audited(
    client: TestClient, keys: dict[Role, str]
) -> None:
    admin = keys[Role.ADMIN]
    me = authenticate(matcher_of(client).sessions, admin)
    assert me is not None
    made = client.post("/v1/keys", json={"role": "investigator", "name": "desk 9"},
                       headers=auth(admin)).json()
    assert client.delete(f"/v1/keys/{made['id']}", headers=auth(admin)).status_code == 204
    assert client.delete(f"/v1/keys/{made['id']}", headers=auth(admin)).status_code == 204
    client.get("/v1/cases/1", headers=auth(keys[Role.INVESTIGATOR]))  # not an admin: no use
    events = _events(client, admin, object_type="api_key")
    changes = [(e["action"], e["object_id"], e["actor"], e["api_key_id"], e["detail"])
               for e in events if e["action"] != "use"]
    assert changes == [
        ("create", str(made["id"]), "test admin", me.id,
         {"role": "investigator", "name": "desk 9"}),
        ("revoke", str(made["id"]), "test admin", me.id,
         {"role": "investigator", "name": "desk 9", "already_revoked": False}),
        ("revoke", str(made["id"]), "test admin", me.id,
         {"role": "investigator", "name": "desk 9", "already_revoked": True}),
    ]
    uses = [(e["object_id"], e["role"], e["detail"]) for e in events if e["action"] == "use"]
    assert uses == [  # the read of the trail itself is the last one
        (str(me.id), "admin", {"method": "POST", "route": "/v1/keys"}),
        (str(me.id), "admin", {"method": "DELETE", "route": "/v1/keys/{key_id}"}),
        (str(me.id), "admin", {"method": "DELETE", "route": "/v1/keys/{key_id}"}),
        (str(me.id), "admin", {"method": "GET", "route": "/v1/audit"}),
    ]
    investigator = authenticate(matcher_of(client).sessions, keys[Role.INVESTIGATOR])
    assert investigator is not None
    assert all(e["api_key_id"] != investigator.id for e in events)


def test_a_refused_request_of_an_admin_key_is_audited_and_others_are_not(
    client: TestClient, keys: dict[Role, str]
) -> None:
    """The route an admin key tried is on record even when its role may not use it."""
    assert client.get("/v1/review/queue", headers=auth(keys[Role.ADMIN])).status_code == 403
    assert client.get("/v1/keys", headers=auth(keys[Role.TIP_APP])).status_code == 403
    uses = [e for e in _events(client, keys[Role.ADMIN]) if e["action"] == "use"]
    assert [e["detail"]["route"] for e in uses] == ["/v1/review/queue", "/v1/audit"]


def test_revoking_the_last_admin_key_is_refused_and_not_audited(
    client: TestClient, keys: dict[Role, str]
) -> None:
    admin = keys[Role.ADMIN]
    me = authenticate(matcher_of(client).sessions, admin)
    assert me is not None
    refused = client.delete(f"/v1/keys/{me.id}", headers=auth(admin))
    assert refused.status_code == 409 and refused.json()["error"] == "last_admin_key"
    assert not [e for e in _events(client, admin, object_type="api_key")
                if e["action"] == "revoke"]
    listed = {key["id"]: key for key in client.get("/v1/keys", headers=auth(admin)).json()}
    assert listed[me.id]["revoked_at"] is None
