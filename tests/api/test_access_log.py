"""The access log and what the real app logs around a request: ids and numbers, never what a
client typed (paths with ids, query strings, reporter contact, notes, file names)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from matcher.logs import JsonFormatter, RequestIdFilter
from matcher.store import Role
from tests.api.conftest import auth
from tests.data import lfw_photos, require_test_data


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    """The app's records as JSON lines; httpx's are the test client's, not the server's."""
    formatter = JsonFormatter()
    return [json.loads(formatter.format(record)) for record in caplog.records
            if not record.name.startswith(("httpx", "httpcore"))]


def test_access_line_has_the_route_template_not_the_path_or_query(
    client: TestClient, keys: dict[Role, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = client.get("/v1/sightings/987654?token=s3cr3t&q=Jane", headers={
        **auth(keys[Role.INVESTIGATOR]), "X-Request-ID": "req-1"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "req-1"
    lines = json_lines(caplog)
    access = [line for line in lines if line["logger"] == "matcher.access"]
    assert len(access) == 1, access
    line = access[0]
    assert line["route"] == "/v1/sightings/{sighting_id}"
    assert (line["method"], line["status"], line["request_id"]) == ("GET", 404, "req-1")
    assert isinstance(line["ms"], float) and line["ms"] >= 0
    text = "\n".join(json.dumps(line) for line in lines)
    for secret in ("987654", "s3cr3t", "Jane", "token", keys[Role.INVESTIGATOR]):
        assert secret not in text


def test_a_sighting_logs_ids_and_numbers_only(
    client: TestClient, keys: dict[Role, str], caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    require_test_data()
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RequestIdFilter())  # as configure_logging's handler does
    photo = lfw_photos()[0]  # its file name is the person's name
    contact = "jane.reporter@example.org +44 7700 900123"
    note = "Seen with a tall man near platform 9"
    response = client.post(
        "/v1/sightings", headers=auth(keys[Role.TIP_APP]),
        files={"photo": (photo.path.name, photo.path.read_bytes(), "image/jpeg")},
        data={"reporter_contact": contact, "note": note, "lat": "51.50731", "lon": "-0.12763"})
    assert response.status_code == 201, response.text
    request_id = response.headers["x-request-id"]
    lines = json_lines(caplog)
    assert lines, "the request logged nothing"
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    for secret in (contact, "jane.reporter", "7700 900123", note, "platform 9", "51.50731",
                   "0.12763", photo.path.name, photo.path.stem, photo.identity, str(tmp_path)):
        assert secret not in text, secret
    # The service's own line, logged in a worker thread, carries the request's id.
    service = [line for line in lines if line["logger"] == "matcher.service.sightings"]
    assert service and all(line["request_id"] == request_id for line in service)
    access = [line for line in lines if line["logger"] == "matcher.access"]
    assert [line["route"] for line in access] == ["/v1/sightings"]
