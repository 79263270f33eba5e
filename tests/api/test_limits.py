"""Request size limits (also on a live socket), the tip-app rate limit, and CORS."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func
from sqlalchemy import select as sql_select

from matcher.api import create_app
from matcher.api.limits import TipRateLimiter
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import new_key
from matcher.store import Role, Sighting
from tests.api.builders import case_body, sky_png
from tests.api.conftest import auth, matcher_of
from tests.api.test_serve import free_port

LIMIT = 256 * 1024


def sightings(client: TestClient) -> int:
    with matcher_of(client).sessions() as session:
        return int(session.scalar(sql_select(func.count()).select_from(Sighting)) or 0)


@pytest.fixture
def live(settings: Settings, pipeline: FacePipeline,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """The app on a real loopback socket: uvicorn in a thread, as `matcher serve` runs it; its
    port and a tip-app key."""
    app_settings = settings.model_copy(update={
        "data_dir": tmp_path_factory.mktemp("limits") / "data", "max_request_bytes": LIMIT})
    port = free_port()
    app = create_app(app_settings, pipeline)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield port, new_key(app.state.matcher.sessions, Role.TIP_APP, "live")[1]
    server.should_exit = True
    thread.join(timeout=30)


def test_a_huge_content_length_is_refused_at_once_on_a_live_socket(
    live: tuple[int, str]
) -> None:
    """No body follows the headers: waiting for it would hang; the 413 comes first."""
    port, _ = live
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("POST", "/v1/sightings")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", str(10**12))
    connection.endheaders()
    start = time.monotonic()
    response = connection.getresponse()
    assert time.monotonic() - start < 5
    assert response.status == 413
    assert json.loads(response.read())["error"] == "too_large"
    connection.close()
    again = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    again.request("GET", "/healthz")
    assert again.getresponse().status == 200


@pytest.mark.parametrize(("keyed", "status", "error"), [(True, 413, "too_large"),
                                                       (False, 401, "unauthenticated")])
def test_a_chunked_body_is_cut_off_once_over_the_limit(
    live: tuple[int, str], keyed: bool, status: int, error: str
) -> None:
    """Transfer-Encoding: chunked has no Content-Length: the bytes are counted as they come,
    and the 413 arrives while the client is still sending. Without a key the body is not read
    at all: the 401 comes first."""
    port, key = live
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # little in flight
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    authorization = f"Authorization: Bearer {key}\r\n".encode() if keyed else b""
    sock.sendall(b"POST /v1/sightings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 + authorization + b"Content-Type: multipart/form-data; boundary=x\r\n\r\n")
    part = b'--x\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n\r\n'
    sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")  # then a photo that never ends
    chunk = b"%x\r\n" % 65536 + bytes(65536) + b"\r\n"
    sent, most = 0, 256 * LIMIT  # 64 MiB: a server that reads on never answers before this
    try:
        while sent < most and not select.select([sock], [], [], 0)[0]:
            sock.sendall(chunk)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection after its answer
    answer = b""
    try:
        while not answer.endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except ConnectionResetError:
        pass
    sock.close()
    assert answer.startswith(b"HTTP/1.1 %d" % status), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == error
    # Answered while the client was still sending; the rest is socket buffers (a few MiB).
    assert sent < most / 4, sent


def _answer_and_then(sock: socket.socket) -> tuple[bytes, bytes]:
    """The first response on `sock` (head and JSON body), and what the socket gives after it
    within 2 s: b"" when the server closed it, b"open" when it waited on (uvicorn closes an
    idle keep-alive connection after 5 s)."""
    answer = b""
    while not answer.endswith(b"}"):
        answer += sock.recv(65536)
    sock.settimeout(2)
    try:
        after = sock.recv(65536)
    except TimeoutError:
        after = b"open"
    sock.close()
    return answer, after


def test_a_refused_upload_closes_the_connection_instead_of_draining_its_body(
    live: tuple[int, str]
) -> None:
    """Refused before its body is read, an upload's connection is closed after the answer:
    kept alive, the server would have to receive and throw away the rest first. A request whose
    body was read keeps its connection."""
    port, key = live
    head = (b"POST /v1/sightings HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n" % (LIMIT // 2))
    refused = socket.create_connection(("127.0.0.1", port), timeout=10)
    refused.sendall(head + b"\r\n" + bytes(1024))  # most of the body never comes
    answer, after = _answer_and_then(refused)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"\r\nconnection: close\r\n" in answer.lower()
    assert after == b""

    form = (b'--x\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\nnot a photo\r\n--x--\r\n")
    read = socket.create_connection(("127.0.0.1", port), timeout=10)
    read.sendall(head.replace(b"%d" % (LIMIT // 2), b"%d" % len(form))
                 + b"Authorization: Bearer %s\r\n\r\n" % key.encode() + form)
    answer, after = _answer_and_then(read)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert b"connection: close" not in answer.lower() and after == b"open"


def test_the_limit_defaults_to_the_image_limit_plus_a_mebibyte() -> None:
    assert Settings(max_image_bytes=4096).request_bytes_limit == 4096 + 1024 * 1024
    assert Settings(max_request_bytes=5000).request_bytes_limit == 5000


def test_bodies_other_than_uploads_have_a_small_limit(
    client: TestClient, keys: dict[Role, str]
) -> None:
    """JSON bodies are parsed before the key is checked: a keyless megabyte of JSON is refused
    by its size, unread, while a keyless upload of that size gets as far as the key check. The
    limit still takes the largest case there can be, every character escaped."""
    limit = Settings().max_json_request_bytes
    padding = "x" * limit
    assert client.post("/v1/cases", json=case_body("A", description=padding)).status_code == 413
    upload = client.post("/v1/sightings", files={"photo": ("p.jpg", padding.encode(),
                                                           "image/jpeg")})
    assert upload.status_code == 401
    widest = case_body("\u00e9" * 200, description="\u00e9" * 20_000,
                       last_seen_place="\u20ac" * 2000)
    body = json.dumps(widest, ensure_ascii=True).encode()
    assert len(body) > 120_000  # every character written as \uXXXX
    created = client.post("/v1/cases", content=body, headers={
        **auth(keys[Role.CASE_MANAGER]), "Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    assert created.json()["description"] == widest["description"]


def test_the_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    limiter = TipRateLimiter(per_minute=6, burst=2, clock=lambda: now[0])
    assert limiter.take(1) == 0 and limiter.take(1) == 0
    assert limiter.take(1) == pytest.approx(10.0)  # one token per 10 s
    assert limiter.take(2) == 0  # another key has its own bucket
    now[0] += 4
    assert limiter.take(1) == pytest.approx(6.0)
    now[0] += 6
    assert limiter.take(1) == 0
    now[0] += 3600  # a long pause refills the burst, no more
    assert [limiter.take(1) for _ in range(3)][:2] == [0, 0] and limiter.take(1) > 0


def test_tip_apps_over_their_rate_get_429_with_retry_after(
    make_client: Callable[..., TestClient]
) -> None:
    client = make_client(tip_rate_per_minute=2, tip_burst=3)
    sessions = matcher_of(client).sessions
    flooding, other = (new_key(sessions, Role.TIP_APP, name)[1] for name in ("flood", "other"))
    photo = {"photo": ("sky.png", sky_png(), "image/png")}
    for shade in range(3):  # three photos: the same one again would be one sighting
        assert client.post("/v1/sightings", files={"photo": ("sky.png", sky_png(shade),
                                                             "image/png")},
                           headers=auth(flooding)).status_code == 201
    refused = client.post("/v1/sightings", files=photo, headers=auth(flooding))
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert refused.json()["detail"]
    assert refused.headers["Retry-After"].isdigit() and 1 <= int(refused.headers["Retry-After"]) \
        <= 30  # a token every 30 s
    assert sightings(client) == 3  # nothing of the refused upload is stored
    assert client.post("/v1/sightings", files=photo, headers=auth(other)).status_code == 201
    # Reads are not rate limited, and a bad key is still 401, not 429.
    investigator = new_key(sessions, Role.INVESTIGATOR, "desk")[1]
    assert client.get("/v1/sightings", headers=auth(investigator)).status_code == 200
    assert client.post("/v1/sightings", files=photo,
                       headers=auth("mk_000000000000_" + "x" * 40)).status_code == 401


PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization"}


def test_cors_is_closed_by_default(client: TestClient) -> None:
    for origin in ("https://evil.example", "null", "http://localhost:3000"):
        preflight = client.options("/v1/sightings", headers={"Origin": origin, **PREFLIGHT})
        assert "access-control-allow-origin" not in preflight.headers
        simple = client.get("/healthz", headers={"Origin": origin})
        assert simple.status_code == 200
        assert not any(h.startswith("access-control-") for h in simple.headers)


def test_cors_opens_to_the_configured_origins_only(
    make_client: Callable[..., TestClient]
) -> None:
    allowed = "https://review.example.org"
    client = make_client(cors_origins=[allowed], max_request_bytes=4096)
    preflight = client.options("/v1/sightings", headers={"Origin": allowed, **PREFLIGHT})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == allowed
    assert "access-control-allow-credentials" not in preflight.headers
    other = client.options("/v1/sightings", headers={"Origin": "https://evil.example",
                                                     **PREFLIGHT})
    assert "access-control-allow-origin" not in other.headers
    simple = client.get("/healthz", headers={"Origin": allowed})
    assert simple.headers["access-control-allow-origin"] == allowed
    too_large = client.post("/v1/sightings", content=bytes(8192),
                            headers={"Origin": allowed, "Content-Type": "image/jpeg"})
    assert too_large.status_code == 413  # and the browser may read why
    assert too_large.headers["access-control-allow-origin"] == allowed
    assert "access-control-allow-origin" not in client.get(
        "/healthz", headers={"Origin": "https://evil.example"}).headers


@pytest.mark.parametrize("origin", ["*", "https://*.example.org", "review.example.org",
                                    "https://review.example.org/"])
def test_cors_origins_must_be_explicit(origin: str) -> None:
    with pytest.raises(ValidationError):
        Settings(cors_origins=[origin])


def test_reads_are_answered_while_every_embedding_worker_is_busy(
    client: TestClient, keys: dict[Role, str]
) -> None:
    """Uploads queue for the embedding threads; key checks and investigator reads do not."""
    worker = client.app.state.worker  # type: ignore[attr-defined]
    limiter = worker.embed_limiter
    holders = [object() for _ in range(int(limiter.total_tokens))]
    for holder in holders:  # as if that many uploads were being embedded
        client.portal.call(limiter.acquire_on_behalf_of, holder)  # type: ignore[union-attr]
    done: dict[str, int] = {}
    upload = threading.Thread(target=lambda: done.update(status=client.post(
        "/v1/sightings", files={"photo": ("sky.png", sky_png(), "image/png")},
        headers=auth(keys[Role.TIP_APP])).status_code))
    answers: list[int] = []

    def investigator_reads() -> None:
        for path in ("/v1/cases", "/v1/sightings", "/v1/review/queue"):
            answers.append(client.get(path, headers=auth(keys[Role.INVESTIGATOR])).status_code)
        answers.append(client.get("/v1/cases", headers=auth("mk_000000000000_x")).status_code)

    reads = threading.Thread(target=investigator_reads)
    try:
        upload.start()
        reads.start()
        reads.join(timeout=30)  # a thread: were reads queued behind uploads, this would hang
        assert answers == [200, 200, 200, 401]
        upload.join(timeout=1.0)
        assert upload.is_alive() and not done  # still waiting for an embedding thread
    finally:
        for holder in holders:
            client.portal.call(limiter.release_on_behalf_of, holder)  # type: ignore[union-attr]
    upload.join(timeout=60)
    assert done == {"status": 201}  # then it ran (a sky: stored, no face)
