"""uvicorn's HTTP protocol with a bound on the request line and headers it buffers.

uvicorn's httptools protocol (its default when httptools is installed) reads a request's headers whole, however
large, before the app sees any of it: a client could make the process hold any number of megabytes. This subclass
counts the bytes of a request's line and headers as they arrive and, past ``max_header_bytes``, answers 431 and
closes the connection before the parser has buffered more. The bytes after the blank line that ends the headers
are body and do not count: a large batch often arrives in one read with its headers. (uvicorn's h11 protocol has
its own bound, ``h11_max_incomplete_event_size``, which ``serve`` sets to the same number.) The app checks the
header count and size again (``api/limits.py``), so every server answers alike.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["bounded_httptools"]


def _refusal(limit: int) -> bytes:
    body = json.dumps(
        {
            "type": "headers-too-large",
            "title": "Request headers too large",
            "status": 431,
            "detail": f"the request line and headers are over {limit} bytes; send fewer or shorter headers",
        }
    ).encode()
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class _BoundedHttpTools(HttpToolsProtocol):
    max_header_bytes = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._tail = b""  # the last bytes of the previous read: the blank line may straddle two reads

    def data_received(self, data: bytes) -> None:
        """Count the header bytes of each read before the parser sees it, so an oversized request never reaches
        the app; a read's bytes after the blank line that ends the headers are body, and not counted."""
        if self.transport.is_closing():
            return
        if self._awaiting_headers:
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else max(end + 4 - len(self._tail), 0)
            self._tail = seen[-3:]
            if self._header_bytes > self.max_header_bytes:
                self.logger.warning("request headers over %d bytes: answered 431", self.max_header_bytes)
                self.transport.write(_refusal(self.max_header_bytes))
                self.transport.close()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_headers, self._header_bytes, self._tail = False, 0, b""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True


def bounded_httptools(max_header_bytes: int) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (``http=``), bounding headers at ``max_header_bytes``."""
    return type("BoundedHttpTools", (_BoundedHttpTools,), {"max_header_bytes": max_header_bytes})
