"""``extractor serve``'s HTTP protocol answers 431 to oversized headers before reading them whole, and lets a large
body through however it arrives (with its headers in one read, or after them)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from extractor.cli.http import bounded_httptools
from tests.support.processes import wait_for

LIMIT = 16 * 1024


async def _app(scope: dict[str, object], receive: object, send: object) -> None:
    """Answers 200 with the number of body bytes it read."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()  # type: ignore[operator]
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


@pytest.fixture
def port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_app, log_config=None, lifespan="off", http=bounded_httptools(LIMIT), access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10, "uvicorn started")
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    sock.close()


def _exchange(port: int, *chunks: bytes) -> bytes:
    """Send the request in ``chunks`` (it says ``connection: close``) and read the answer to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for chunk in chunks:
            conn.sendall(chunk)
        answer = b""
        while data := conn.recv(65536):
            answer += data
        return answer


def _post(size: int) -> tuple[bytes, bytes]:
    head = f"POST /v1/batches HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {size}\r\n\r\n".encode()
    return head, b"x" * size


def test_a_large_body_sent_with_its_headers_in_one_write_is_read(port: int) -> None:
    head, body = _post(1_000_000)
    answer = _exchange(port, head + body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert answer.endswith(b"1000000")


def test_a_large_body_sent_after_its_headers_is_read(port: int) -> None:
    head, body = _post(200_000)
    answer = _exchange(port, head, body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_oversized_headers_are_refused_with_431(port: int) -> None:
    header = b"x-padding: " + b"a" * (LIMIT + 1024) + b"\r\n"
    answer = _exchange(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n" + header + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"headers-too-large" in answer
