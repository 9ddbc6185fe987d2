"""``Client``: the service over HTTP, blocking."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self, TypeVar

import httpx

from extractor.client.base import BaseClient
from extractor.client.calls import Call, Request, StreamCall
from extractor.client.retry import Attempts

__all__ = ["Client"]

T = TypeVar("T")


class Client(BaseClient[httpx.Client]):
    """The service over HTTP, blocking: ``with Client() as client: client.extract("receipt", text)``."""

    _http_class = httpx.Client

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _run(self, call: Call[T]) -> T:
        response = self._send(call, stream=False)
        return call.read(response)

    def _stream(self, call: StreamCall[T]) -> Iterator[T]:
        response = self._send(call, stream=True)
        try:
            decode = call.decoder()
            for line in response.iter_lines():
                if (item := decode(line)) is not None:
                    yield item
        finally:
            response.close()

    def _send(self, call: Request, *, stream: bool) -> httpx.Response:
        """The answer to ``call``, sent again as the retry policy allows; an error answer raises its typed error."""
        request, attempts = call.build(self._http, self._headers), Attempts(self._retry, self.base_url)
        while True:
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                time.sleep(attempts.after_error(exc))
                continue
            if response.is_success or response.status_code in call.answers:
                return response
            response.read()
            response.close()
            time.sleep(attempts.after_answer(response))
