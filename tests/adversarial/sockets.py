"""Raw sockets for the attacks an HTTP client library would not make: heads and bodies sent in
part, slowly, or not at all, and hang-ups in the middle of a request."""

from __future__ import annotations

import socket
import time

import pytest

BOUNDARY = "adversarial-boundary-5e1f"


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed `sock` (EOF or a reset), failing past `limit`, and
    what it sent before (nothing, when it cut the connection rather than answer)."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for over {limit} s")
    return time.monotonic() - started, received


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` already (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def head(method: str, path: str, port: int, headers: dict[str, str], length: int) -> bytes:
    """A request head announcing a body of `length` bytes."""
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + f"Content-Length: {length}\r\n\r\n").encode()


def upload_body(photo: bytes) -> bytes:
    """A multipart body with one `photo` part, as a tip app sends it."""
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"photo\"; "
            f"filename=\"s.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + photo + (
        f"\r\n--{BOUNDARY}--\r\n").encode()


def upload_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def hang_up(port: int, path: str, headers: dict[str, str], body: bytes) -> None:
    """Headers announcing the whole body, half of it, a pause (the server is reading the body
    by then), then the connection closed."""
    with connect(port) as sock:
        sock.sendall(head("POST", path, port, headers, len(body)) + body[: len(body) // 2])
        time.sleep(0.5)
