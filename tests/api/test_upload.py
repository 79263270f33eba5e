"""Upload routes decide on the key, the role and the tip-app rate before reading the body: a
refused upload costs a header check, not a multipart parse of up to the body limit."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from matcher.service import new_key
from matcher.store import Role
from tests.api.builders import case_body
from tests.api.conftest import auth, matcher_of

WRONG_KEY = "mk_000000000000_" + "x" * 40


class CountedBody:
    """A multipart body sent in chunks without a Content-Length, counting the chunks pulled.
    The test client pulls them all at the app's first `receive()`, so 0 means the app never
    asked for the body (tests/api/test_limits.py checks the same on uvicorn's socket)."""

    def __init__(self, fields: dict[str, str] | None = None, seed: int = 0) -> None:
        out = io.BytesIO()  # noise: a PNG of some kilobytes, a body of several chunks
        noise = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(out, format="PNG")
        encoded = httpx.Request("POST", "http://x", data=fields,
                                files={"photo": ("noise.png", out.getvalue(), "image/png")})
        body = encoded.read()
        self.content_type = encoded.headers["Content-Type"]
        self.chunks = [body[i: i + 1024] for i in range(0, len(body), 1024)]
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk

    def post(self, client: TestClient, url: str, key: str | None) -> httpx.Response:
        headers = {"Content-Type": self.content_type, **(auth(key) if key else {})}
        return client.post(url, content=iter(self), headers=headers)


def case_photos_url(client: TestClient, keys: dict[Role, str]) -> str:
    made = client.post("/v1/cases", json=case_body("A"), headers=auth(keys[Role.CASE_MANAGER]))
    return f"/v1/cases/{made.json()['id']}/photos"


@pytest.mark.parametrize(("route", "allowed", "refused"), [
    ("sightings", Role.TIP_APP, Role.INVESTIGATOR),
    ("case photos", Role.CASE_MANAGER, Role.TIP_APP),
])
def test_a_refused_upload_is_answered_without_reading_its_body(
    client: TestClient, keys: dict[Role, str], route: str, allowed: Role, refused: Role
) -> None:
    url = "/v1/sightings" if route == "sightings" else case_photos_url(client, keys)
    for key, status, error in ((None, 401, "unauthenticated"), (WRONG_KEY, 401, "unauthenticated"),
                               (keys[refused], 403, "forbidden")):
        body = CountedBody()
        response = body.post(client, url, key)
        assert response.status_code == status, response.text
        assert response.json()["error"] == error and response.json()["detail"]
        assert body.pulled == 0, (route, status)
    accepted = CountedBody({"taken_on": "2020-01-01"} if route == "case photos" else
                           {"lat": "51.5", "lon": "-0.1"})
    response = accepted.post(client, url, keys[allowed])
    assert response.status_code == 201, response.text
    assert accepted.pulled == len(accepted.chunks) > 1


def test_a_tip_app_over_its_rate_is_answered_without_reading_its_body(
    make_client: Callable[..., TestClient]
) -> None:
    client = make_client(tip_rate_per_minute=1, tip_burst=1)
    key = new_key(matcher_of(client).sessions, Role.TIP_APP, "flood")[1]
    first = CountedBody()
    assert first.post(client, "/v1/sightings", key).status_code == 201
    assert first.pulled == len(first.chunks)
    over = CountedBody(seed=1)
    response = over.post(client, "/v1/sightings", key)
    assert response.status_code == 429 and response.json()["error"] == "rate_limited"
    assert response.headers["Retry-After"].isdigit()
    assert over.pulled == 0
