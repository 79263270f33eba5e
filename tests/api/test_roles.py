"""Every endpoint x every role, and no key, a wrong key and a revoked key."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from matcher.service import (
    CasePhotoUpload,
    authenticate,
    create_case,
    ingest_sighting,
    issue_alert,
    new_key,
    read_sighting,
    register_case,
    sighting_candidates,
)
from matcher.service.partners import register_partner
from matcher.store import NewCase, NewSighting, Role
from matcher.vocabulary import Category
from matcher.web import STATIC_FILES
from tests.api.builders import case_body
from tests.api.conftest import auth, matcher_of
from tests.api.databases import on_both_databases  # noqa: F401
from tests.data import lfw_photos, require_test_data

TIP, INV, MGR, ADM = Role.TIP_APP, Role.INVESTIGATOR, Role.CASE_MANAGER, Role.ADMIN
Call = Callable[[TestClient, dict[str, str], dict[str, Any]], Response]


def _photo(ctx: dict[str, Any]) -> dict[str, Any]:
    # A new photo each call: a case refuses the same pixels twice (409).
    ctx["n"] = ctx.get("n", 0) + 1
    return {"photo": ("p.jpg", lfw_photos()[ctx["n"]].path.read_bytes(), "image/jpeg")}


# (name, request, roles allowed, status for an allowed role)
ENDPOINTS: list[tuple[str, Call, set[Role], int]] = [
    ("POST /v1/sightings", lambda c, h, x: c.post(
        "/v1/sightings", files=_photo(x), headers=h), {TIP}, 201),
    ("GET /v1/alerts", lambda c, h, x: c.get("/v1/alerts", headers=h), {TIP}, 200),
    ("GET /v1/alerts/photo", lambda c, h, x: c.get(
        f"/v1/alerts/{x['case']}/photos/{x['photo']}", headers=h), {TIP}, 200),
    ("POST /v1/cases/{id}/alert", lambda c, h, x: c.post(
        f"/v1/cases/{x['quiet_case']}/alert", headers=h), {MGR}, 201),
    ("GET /v1/cases/{id}/alert", lambda c, h, x: c.get(
        f"/v1/cases/{x['case']}/alert", headers=h), {INV, MGR}, 200),
    ("DELETE /v1/cases/{id}/alert", lambda c, h, x: c.delete(
        f"/v1/cases/{x['case']}/alert", headers=h), {MGR}, 200),
    ("POST /v1/partners", lambda c, h, x: c.post("/v1/partners", json={
        "name": "news", "url": "https://news.example/hook", "categories": ["child"]},
        headers=h), {ADM}, 201),
    ("GET /v1/partners", lambda c, h, x: c.get("/v1/partners", headers=h), {ADM}, 200),
    ("GET /v1/partners/{id}/deliveries", lambda c, h, x: c.get(
        f"/v1/partners/{x['partner']}/deliveries", headers=h), {ADM}, 200),
    ("DELETE /v1/partners/{id}", lambda c, h, x: c.delete(
        f"/v1/partners/{x['partner']}", headers=h), {ADM}, 200),
    ("POST /v1/cases", lambda c, h, x: c.post(
        "/v1/cases", json=case_body("New"), headers=h), {MGR}, 201),
    ("PATCH /v1/cases/{id}", lambda c, h, x: c.patch(
        f"/v1/cases/{x['case']}", json={"public_fields": ["name", "photos"]}, headers=h),
     {MGR}, 200),
    ("POST /v1/cases/{id}/photos", lambda c, h, x: c.post(
        f"/v1/cases/{x['case']}/photos", files=_photo(x), headers=h), {MGR}, 201),
    ("GET /v1/cases/{id}", lambda c, h, x: c.get(f"/v1/cases/{x['case']}", headers=h),
     {INV, MGR}, 200),
    ("GET /v1/cases", lambda c, h, x: c.get("/v1/cases", headers=h), {INV, MGR}, 200),
    ("GET /v1/cases/{id}/photos/{id}/image", lambda c, h, x: c.get(
        f"/v1/cases/{x['case']}/photos/{x['photo']}/image", headers=h), {INV, MGR}, 200),
    ("DELETE /v1/cases/{id}", lambda c, h, x: c.delete(
        f"/v1/cases/{x['case']}", headers=h), {MGR}, 204),
    ("POST /v1/admin/reindex", lambda c, h, x: c.post(
        "/v1/admin/reindex", json={"embed_flip": True, "dry_run": True}, headers=h), {ADM}, 202),
    ("GET /v1/admin/reindex", lambda c, h, x: c.get("/v1/admin/reindex", headers=h), {ADM}, 200),
    ("DELETE /v1/admin/reindex", lambda c, h, x: c.delete("/v1/admin/reindex", headers=h),
     {ADM}, 202),
    ("DELETE /v1/cases/{id}/photos/{id}", lambda c, h, x: c.delete(
        f"/v1/cases/{x['case']}/photos/{x['spare_photo']}", headers=h), {MGR}, 204),
    ("GET /v1/sightings", lambda c, h, x: c.get("/v1/sightings", headers=h), {INV}, 200),
    ("GET /v1/sightings/{id}/photo", lambda c, h, x: c.get(
        f"/v1/sightings/{x['sighting']}/photo", headers=h), {INV}, 200),
    ("GET /v1/faces/{id}/crop", lambda c, h, x: c.get(
        f"/v1/faces/{x['sighting_face']}/crop", headers=h), {INV}, 200),
    ("GET /v1/sightings/{id}", lambda c, h, x: c.get(
        f"/v1/sightings/{x['sighting']}", headers=h), {INV}, 200),
    ("GET /v1/sightings/{id}/candidates", lambda c, h, x: c.get(
        f"/v1/sightings/{x['sighting']}/candidates", headers=h), {INV}, 200),
    ("GET /v1/keys", lambda c, h, x: c.get("/v1/keys", headers=h), {ADM}, 200),
    ("POST /v1/keys", lambda c, h, x: c.post(
        "/v1/keys", json={"role": "tip_app", "name": "app"}, headers=h), {ADM}, 201),
    ("DELETE /v1/keys/{id}", lambda c, h, x: c.delete(
        f"/v1/keys/{x['spare_key']}", headers=h), {ADM}, 204),
    ("GET /metrics", lambda c, h, x: c.get("/metrics", headers=h), {ADM}, 200),
    ("GET /v1/review/queue", lambda c, h, x: c.get("/v1/review/queue", headers=h), {INV}, 200),
    ("GET /v1/review/candidates/{id}", lambda c, h, x: c.get(
        f"/v1/review/candidates/{x['candidate']}", headers=h), {INV}, 200),
    ("POST /v1/review/candidates/{id}/decision", lambda c, h, x: c.post(
        f"/v1/review/candidates/{x['candidate']}/decision", json={"verdict": "needs_info"},
        headers=h), {INV}, 201),
    ("GET /v1/cases/{id}/matches", lambda c, h, x: c.get(
        f"/v1/cases/{x['case']}/matches", headers=h), {INV}, 200),
    ("GET /v1/sightings/{id}/links", lambda c, h, x: c.get(
        f"/v1/sightings/{x['sighting']}/links", headers=h), {INV}, 200),
    ("GET /v1/review/lineup/{face}", lambda c, h, x: c.get(
        f"/v1/review/lineup/{x['sighting_face']}", headers=h), {INV}, 200),
    ("GET /v1/review/cases/{id}", lambda c, h, x: c.get(
        f"/v1/review/cases/{x['case']}", headers=h), {INV}, 200),
    ("GET /v1/me", lambda c, h, x: c.get("/v1/me", headers=h), {TIP, INV, MGR, ADM}, 200),
    ("GET /v1/audit", lambda c, h, x: c.get("/v1/audit", headers=h), {ADM}, 200),
    ("GET /v1/audit?format=csv", lambda c, h, x: c.get(
        "/v1/audit", params={"format": "csv"}, headers=h), {ADM}, 200),
]


@pytest.fixture
def ctx(client: TestClient) -> dict[str, Any]:
    require_test_data()
    matcher = matcher_of(client)
    jpeg = lfw_photos()[0].path.read_bytes()
    seen = {"last_seen_lat": 51.5, "last_seen_lon": -0.12,
            "last_seen_at": dt.datetime(2021, 1, 1, 8, tzinfo=dt.UTC)}
    case, photos = register_case(
        matcher, NewCase(category="child", name="Case", missing_since=dt.date(2021, 1, 1),
                         age_when_missing=9, public_fields=["photos"], **seen),
        [CasePhotoUpload(jpeg), CasePhotoUpload(lfw_photos()[-1].path.read_bytes())])
    issue_alert(matcher, case.id)
    quiet = create_case(matcher, NewCase(category="child", name="Quiet", age_when_missing=9,
                                         missing_since=dt.date(2021, 1, 1),
                                         public_fields=["name"], **seen))
    sighting = ingest_sighting(matcher, jpeg, NewSighting(app="seed"))
    spare, _ = new_key(matcher.sessions, Role.TIP_APP, "spare")
    partner = register_partner(matcher, "maps", "https://maps.example/hook", [Category.CHILD],
                               None)
    return {"jpeg": jpeg, "case": case.id, "quiet_case": quiet.id, "photo": photos[0].photo_id,
            "spare_photo": photos[1].photo_id, "sighting": sighting.sighting_id,
            "sighting_face": read_sighting(matcher, sighting.sighting_id).faces[0].id,
            "spare_key": spare.id, "partner": partner.id,
            "candidate": sighting_candidates(matcher, sighting.sighting_id)[0].id}


@pytest.mark.parametrize(("name", "call", "allowed", "ok"), ENDPOINTS,
                         ids=[e[0] for e in ENDPOINTS])
def test_role_matrix(
    client: TestClient, keys: dict[Role, str], ctx: dict[str, Any],
    name: str, call: Call, allowed: set[Role], ok: int,
) -> None:
    no_key = call(client, {}, ctx)
    assert no_key.status_code == 401, name
    assert no_key.json()["error"] == "unauthenticated"
    assert call(client, {"X-API-Key": "mk_000000000000_wrong"}, ctx).status_code == 401
    for role in Role:
        if role in allowed:
            continue
        refused = call(client, auth(keys[role]), ctx)
        assert refused.status_code == 403, (name, role)
        assert refused.json()["error"] == "forbidden"
    for role in allowed:
        response = call(client, {"X-API-Key": keys[role]}, ctx)  # the other header works too
        assert response.status_code == ok, (name, role, response.text)


def test_healthz_needs_no_key(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_a_revoked_key_is_refused(client: TestClient, keys: dict[Role, str]) -> None:
    made = client.post("/v1/keys", json={"role": "investigator", "name": "desk"},
                       headers=auth(keys[ADM]))
    assert made.status_code == 201
    body = made.json()
    assert client.get("/v1/cases/999", headers=auth(body["key"])).status_code == 404
    assert client.delete(f"/v1/keys/{body['id']}", headers=auth(keys[ADM])).status_code == 204
    assert client.get("/v1/cases/999", headers=auth(body["key"])).status_code == 401
    assert client.delete("/v1/keys/99999", headers=auth(keys[ADM])).status_code == 404


def test_the_last_admin_key_cannot_revoke_itself(
    client: TestClient, keys: dict[Role, str]
) -> None:
    """It left no admin: nobody could make or revoke keys (issue 19, defect 7)."""
    matcher = matcher_of(client)
    mine = authenticate(matcher.sessions, keys[ADM])
    assert mine is not None
    refused = client.delete(f"/v1/keys/{mine.id}", headers=auth(keys[ADM]))
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "last_admin_key" and "last live admin key" in body["detail"]
    assert "another admin key first" in body["detail"]
    assert client.post("/v1/keys", json={"role": "tip_app", "name": "still admin"},
                       headers=auth(keys[ADM])).status_code == 201
    # With a second admin key, either may go; then the other is the last.
    second = client.post("/v1/keys", json={"role": "admin", "name": "desk 2"},
                         headers=auth(keys[ADM])).json()
    assert client.delete(f"/v1/keys/{mine.id}", headers=auth(keys[ADM])).status_code == 204
    assert client.delete(f"/v1/keys/{second['id']}",
                         headers=auth(second["key"])).status_code == 409


# The review page's files are public on purpose: they hold no data (the same bytes for every
# caller, whatever the store holds); everything they show comes through the keyed API above.
PAGE_FILES = ["/review", *(f"/review/static/{name}" for name in STATIC_FILES
                            if name != "review.html")]


@pytest.mark.parametrize("path", PAGE_FILES)
def test_the_review_page_needs_no_key_holds_no_data_and_is_locked_down(
    client: TestClient, keys: dict[Role, str], path: str
) -> None:
    made = client.post("/v1/cases", json=case_body("Zelda Quinlan-Marsh"),
                       headers=auth(keys[MGR]))
    assert made.status_code == 201
    public = client.get(path)
    assert public.status_code == 200
    assert "Zelda" not in public.text and "mk_" not in public.text
    for role in Role:
        assert client.get(path, headers=auth(keys[role])).content == public.content
    headers = public.headers
    csp = headers["content-security-policy"]
    assert {"default-src 'self'", "script-src 'self'", "img-src 'self' blob:",
            "form-action 'none'", "frame-ancestors 'none'"} <= set(csp.split("; "))
    assert "unsafe" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert client.get("/review/static/review.html").status_code == 404
    assert client.get("/review/static/..%2Fstatic%2Freview.js").status_code == 404
