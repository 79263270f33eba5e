"""Every request of the hostile corpus (tests/api/hostile.py) through the real HTTP API: a 4xx
JSON error that says what was wrong, or the upright photo where the input is valid; the server
answers the next request; the store holds no partial row and no orphan file."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from matcher.api import create_app
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import new_key
from matcher.store import ApiKey, Candidate, Case, CasePhoto, Face, Role, Sighting, orphan_files
from tests.api import hostile
from tests.api.conftest import auth, matcher_of
from tests.data import lfw_photos, require_test_data

# JPEG twice (the probe's encode, the store's re-encode): a wrong turn or mirror of the face
# differs by 30+ grey levels on average, the right one by about 2.
UPRIGHT_MEAN_DIFF = 8.0


_PROBES = itertools.count()


@pytest.fixture
def materials() -> hostile.Materials:
    """The face photo, one corner pixel of it changed for each probe: another photo each time
    (the same photo sent again is one sighting with two reports, issue 22)."""
    require_test_data()
    with Image.open(lfw_photos()[0].path) as photo:
        face = photo.convert("RGB").crop((0, 30, 250, 220))
    n = next(_PROBES)
    face.paste((n * 37 % 256, n * 91 % 256, n * 53 % 256), (0, 0, 16, 16))
    return hostile.Materials(face)


@pytest.fixture(scope="module")
def served(
    settings: Settings, pipeline: FacePipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[Role, str]]]:
    """One app for the whole corpus: each probe must leave it as it found it."""
    app_settings = settings.model_copy(update={
        "data_dir": tmp_path_factory.mktemp("hostile") / "data",
        "max_image_bytes": hostile.MAX_IMAGE_BYTES,
        "max_request_bytes": hostile.MAX_REQUEST_BYTES,
        "max_image_pixels": hostile.MAX_IMAGE_PIXELS})
    with TestClient(create_app(app_settings, pipeline)) as client:
        keys = {role: new_key(matcher_of(client).sessions, role, f"hostile {role.value}")[1]
                for role in Role}
        yield client, keys


def snapshot(client: TestClient) -> tuple[dict[str, int], set[Path]]:
    """Row counts of every table a request could write, and the photo files on disk."""
    matcher = matcher_of(client)
    with matcher.sessions() as session:
        rows = {table.__name__: int(session.scalar(select(func.count()).select_from(table)) or 0)
                for table in (Sighting, CasePhoto, Face, Candidate, Case, ApiKey)}
    root = matcher.settings.data_dir / "photos"
    files = {p.relative_to(root) for p in root.rglob("*") if p.is_file()} if root.is_dir() \
        else set()
    return rows, files


def send(client: TestClient, keys: dict[Role, str], probe: hostile.Probe) -> httpx.Response:
    headers = {**(auth(keys[probe.role]) if probe.role is not None else {}), **probe.headers}
    content: bytes | Iterator[bytes] | None = probe.content
    if probe.chunked and probe.content is not None:  # an iterator: no Content-Length
        data = probe.content
        content = (data[i: i + 65536] for i in range(0, len(data), 65536))
    return client.request(probe.method, probe.url, files=probe.files, data=probe.data,
                          content=content, json=probe.json, headers=headers)


@pytest.mark.parametrize("name", list(hostile.BUILDERS))
def test_hostile_input(
    name: str, served: tuple[TestClient, dict[Role, str]], materials: hostile.Materials
) -> None:
    client, keys = served
    probe = hostile.BUILDERS[name](materials)
    before_rows, before_files = snapshot(client)
    response = send(client, keys, probe)
    assert response.status_code == probe.status, response.text[:800]
    after_rows, after_files = snapshot(client)
    if probe.status >= 400:
        body = response.json()
        assert set(body) == {"error", "detail"} and body["detail"], body
        assert body["error"] == probe.error, body
        assert (after_rows, after_files) == (before_rows, before_files)
    else:
        check_stored(client, keys, probe, response.json(), before_rows, after_rows,
                     after_files - before_files)
    assert client.get("/healthz").status_code == 200  # still serving
    matcher = matcher_of(client)
    with matcher.sessions() as session:
        assert orphan_files(session, matcher.settings.data_dir, min_age_s=0) == []


def check_stored(client: TestClient, keys: dict[Role, str], probe: hostile.Probe,
                 receipt: dict[str, object], before: dict[str, int], after: dict[str, int],
                 new_files: set[Path]) -> None:
    """One sighting with its faces, its photo stored clean and upright."""
    assert after["Sighting"] == before["Sighting"] + 1 and len(new_files) <= 1
    faces = receipt["faces"]
    assert isinstance(faces, list) and after["Face"] == before["Face"] + len(faces)
    if probe.face:
        assert any(face["fit"] for face in faces), faces
    investigator = auth(keys[Role.INVESTIGATOR])
    sighting = client.get(f"/v1/sightings/{receipt['id']}", headers=investigator).json()
    stored = client.get(f"/v1/sightings/{receipt['id']}/photo", headers=investigator)
    assert stored.status_code == 200
    for marker in probe.absent:
        assert marker not in stored.content, marker
    with Image.open(io.BytesIO(stored.content)) as image:
        assert image.format == "JPEG" and not image.getexif() and "icc_profile" not in image.info
        assert image.size == (sighting["width"], sighting["height"])
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    if probe.upright is not None:
        expected = probe.upright.astype(np.int16)
        assert pixels.shape == expected.shape, (pixels.shape, expected.shape)
        assert float(np.abs(pixels - expected).mean()) < UPRIGHT_MEAN_DIFF
