"""``AsyncClient``: the service over HTTP, for asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self, TypeVar

import httpx

from extractor.client.base import BaseClient
from extractor.client.calls import Call, Request, StreamCall
from extractor.client.retry import Attempts

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(BaseClient[httpx.AsyncClient]):
    """The service over HTTP, for asyncio: ``async with AsyncClient() as client: await client.extract(...)``."""

    _http_class = httpx.AsyncClient

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def _run(self, call: Call[T]) -> T:
        return call.read(await self._send(call, stream=False))

    async def _stream(self, call: StreamCall[T]) -> AsyncIterator[T]:
        response = await self._send(call, stream=True)
        decode = call.decoder()
        try:
            async for line in response.aiter_lines():
                if (item := decode(line)) is not None:
                    yield item
        finally:
            await response.aclose()

    async def _send(self, call: Request, *, stream: bool) -> httpx.Response:
        """The answer to ``call``, sent again as the retry policy allows; an error answer raises its typed error."""
        attempts = Attempts(self._retry, self.base_url)
        request = call.build(self._http, self._headers)
        while True:
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_error(exc))
                continue
            if response.is_success or response.status_code in call.answers:
                return response
            await response.aread()
            await response.aclose()
            await asyncio.sleep(attempts.after_answer(response))
