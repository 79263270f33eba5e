"""`GET /metrics` through the real app: what uploads count, route templates, who may read it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from matcher.api import create_app
from matcher.api.metrics import UNMATCHED, is_loopback
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.store import Role, add_case_photo, create_case, session_scope, store_photo
from tests.api.builders import case_body, photo_file
from tests.api.conftest import auth, matcher_of
from tests.data import lfw_photos, require_test_data
from tests.store.builders import new_case, new_face, pixels

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
LATENCY = "matcher_http_request_duration_seconds"


def scrape(client: TestClient, headers: dict[str, str]) -> tuple[Samples, str]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, response.text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_uploads_count_and_requests_are_timed_by_route_template(
    client: TestClient, keys: dict[Role, str]
) -> None:
    require_test_data()
    manager, tip = auth(keys[Role.CASE_MANAGER]), auth(keys[Role.TIP_APP])
    admin, investigator = auth(keys[Role.ADMIN]), auth(keys[Role.INVESTIGATOR])
    photo = lfw_photos()[0]

    case = client.post("/v1/cases", json=case_body("Metrics"), headers=manager).json()
    added = client.post(f"/v1/cases/{case['id']}/photos", files=photo_file(photo),
                        headers=manager)
    assert added.status_code == 201, added.text
    case_fit = sum(face["fit"] for face in added.json()["faces"])
    assert case_fit >= 1

    receipt = client.post("/v1/sightings", files=photo_file(photo), headers=tip)
    assert receipt.status_code == 201, receipt.text
    sighting = receipt.json()
    fit = sum(face["fit"] for face in sighting["faces"])
    unfit = len(sighting["faces"]) - fit
    assert fit >= 1
    sid = sighting["id"]
    assert client.get(f"/v1/sightings/{sid}", headers=investigator).status_code == 200
    assert client.get(f"/v1/sightings/{sid + 1000}", headers=investigator).status_code == 404
    assert client.get("/no/such/route/4242").status_code == 404
    assert client.put(f"/v1/sightings/{sid}", headers=investigator).status_code == 405

    samples, text = scrape(client, admin)
    assert value(samples, "matcher_sightings_uploaded_total") == 1
    assert value(samples, "matcher_faces_found_total", source="sighting", fit="true") == fit
    assert value(samples, "matcher_faces_found_total", source="sighting", fit="false") == unfit
    # One active case: each fit sighting face gets exactly one candidate.
    assert value(samples, "matcher_candidates_stored_total") == fit
    assert value(samples, "matcher_case_photos_added_total") == 1
    assert value(samples, "matcher_faces_found_total", source="case_photo", fit="true") \
        == case_fit
    indexed = len(matcher_of(client).index)
    assert indexed >= 1 and value(samples, "matcher_index_case_faces") == indexed
    sightings_indexed = len(matcher_of(client).sighting_index)
    assert sightings_indexed == fit
    assert value(samples, "matcher_index_sighting_faces") == sightings_indexed
    for index in ("cases", "sightings"):  # small indexes search exactly
        assert value(samples, "matcher_index_recall_at_10", index=index) == 1.0

    def count(method: str, route: str, status: str) -> float:
        return value(samples, f"{LATENCY}_count", method=method, route=route, status=status)

    assert count("POST", "/v1/sightings", "201") == 1
    assert count("POST", "/v1/cases/{case_id}/photos", "201") == 1
    assert count("GET", "/v1/sightings/{sighting_id}", "200") == 1
    assert count("GET", "/v1/sightings/{sighting_id}", "404") == 1
    assert count("GET", UNMATCHED, "404") == 1
    assert count("PUT", "/v1/sightings/{sighting_id}", "405") == 1  # its path matched
    assert value(samples, f"{LATENCY}_sum", method="POST", route="/v1/sightings",
                 status="201") > 0
    # Route labels are templates the app declares; no id or client path became a label.
    declared = set(client.app.openapi()["paths"]) | {UNMATCHED}  # type: ignore[attr-defined]
    routes = {dict(labels)["route"] for name, labels in samples if name.startswith(LATENCY)}
    assert routes <= declared, routes - declared
    assert f"/v1/sightings/{sid}" not in text and "/no/such/route" not in text

    # The index gauge is read at scrape time: a found case leaves it.
    found = client.patch(f"/v1/cases/{case['id']}", json={"status": "found"}, headers=manager)
    assert found.status_code == 200, found.text
    after, _ = scrape(client, admin)
    assert value(after, "matcher_index_case_faces") == 0
    assert count("GET", "/metrics", "200") == 0  # the first scrape was timed after its answer
    assert value(after, f"{LATENCY}_count", method="GET", route="/metrics", status="200") == 1


def test_metrics_need_an_admin_key_from_a_remote_client(
    client: TestClient, keys: dict[Role, str]
) -> None:
    # TestClient's client host is "testclient": not a loopback address.
    no_key = client.get("/metrics")
    assert no_key.status_code == 401 and no_key.json()["error"] == "unauthenticated"
    assert client.get("/metrics", headers={"X-API-Key": "mk_000000000000_wrong"}) \
        .status_code == 401
    for role in (Role.TIP_APP, Role.INVESTIGATOR, Role.CASE_MANAGER):
        refused = client.get("/metrics", headers=auth(keys[role]))
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    scrape(client, auth(keys[Role.ADMIN]))


@pytest.fixture
def local_app(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> Iterator[dict[bool, TestClient]]:
    """Two apps whose client connects from 127.0.0.1: loopback access on, and off."""
    clients: dict[bool, TestClient] = {}
    for open_ in (True, False):
        app_settings = settings.model_copy(update={
            "data_dir": tmp_path / f"data-{open_}", "metrics_open_on_loopback": open_})
        clients[open_] = TestClient(create_app(app_settings, pipeline),
                                    client=("127.0.0.1", 50000))
        clients[open_].__enter__()
    yield clients
    for client in clients.values():
        client.__exit__(None, None, None)


def test_loopback_clients_read_metrics_without_a_key_unless_proxied(
    local_app: dict[bool, TestClient],
) -> None:
    local = local_app[True]
    scrape(local, {})
    # A proxy on this machine connects from loopback too; what it forwards needs a key.
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        assert local.get("/metrics", headers={header: "203.0.113.9"}).status_code == 401
    # A key that is sent is checked, even from loopback.
    assert local.get("/metrics", headers=auth("mk_000000000000_wrong")).status_code == 401
    # Loopback access switched off.
    assert local_app[False].get("/metrics").status_code == 401


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.20.0.3", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("0.0.0.0", False), ("::ffff:10.0.0.1", False),
    ("testclient", False), ("", False), (None, False),
])
def test_loopback_addresses(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_request_ids_are_echoed_when_well_formed(client: TestClient) -> None:
    given = "abc-DEF_123"
    assert client.get("/healthz", headers={"X-Request-ID": given}).headers["x-request-id"] \
        == given
    for bad in ("x" * 65, "has space", "semi;colon", "dot.dot", ""):
        made = client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert made != bad and len(made) == 32
    fresh = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(fresh) == 3
    # Error answers carry it too.
    assert "x-request-id" in client.get("/metrics").headers


def test_metrics_count_what_the_serving_model_cannot_match(
    client: TestClient, keys: dict[Role, str]
) -> None:
    admin, manager = auth(keys[Role.ADMIN]), auth(keys[Role.CASE_MANAGER])
    blind = ("matcher_faces_without_vectors", "matcher_unmatchable_cases")
    samples, _ = scrape(client, admin)
    assert [value(samples, name) for name in blind] == [0, 0]
    # A case whose one face has a vector of another model only, as a reindex that did not find
    # the face again leaves it.
    matcher = matcher_of(client)
    with session_scope(matcher.sessions) as session:
        case_id = create_case(session, new_case("blind")).id
        add_case_photo(session, case_id, store_photo(matcher.settings.data_dir, pixels(1)),
                       [new_face(1, "another-model")])
    samples, _ = scrape(client, admin)
    assert [value(samples, name) for name in blind] == [1, 1]
    closed = client.patch(f"/v1/cases/{case_id}", json={"status": "closed"}, headers=manager)
    assert closed.status_code == 200, closed.text
    samples, _ = scrape(client, admin)
    assert [value(samples, name) for name in blind] == [1, 0]  # its face stays unembedded
