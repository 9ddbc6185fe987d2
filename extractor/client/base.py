"""What ``Client`` and ``AsyncClient`` share: the connection defaults, and every route declared once.

A route is a builder from ``calls`` wrapped in a descriptor. Read from a ``Client`` it is a method that sends the
call and returns the answer; read from an ``AsyncClient``, one that returns an awaitable of it. The two clients
differ only in ``_run`` and ``_stream``, the transport.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, overload

import httpx

from extractor.client import calls
from extractor.client.retry import RetryPolicy

if TYPE_CHECKING:
    from extractor.client.aio import AsyncClient
    from extractor.client.sync import Client

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_URL", "BaseClient"]

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C", bound="calls.Call[Any] | calls.StreamCall[Any]")
H = TypeVar("H", httpx.Client, httpx.AsyncClient)

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=5.0)  # an extraction on a slow model takes minutes


class _Route(Generic[P, C]):
    """A route: from a ``Client`` a method answering ``T`` (or an iterator of ``T`` for a call answered line by
    line), from an ``AsyncClient`` one answering an awaitable of ``T`` (or an async iterator)."""

    def __init__(self, build: Callable[P, C]) -> None:
        self._build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self: _Route[P, calls.Call[T]], client: Client, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self: _Route[P, calls.Call[T]], client: AsyncClient, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __get__(self: _Route[P, calls.StreamCall[T]], client: Client, owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(
        self: _Route[P, calls.StreamCall[T]], client: AsyncClient, owner: type[Any]
    ) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, client: BaseClient[Any] | None, owner: type[Any]) -> Any:
        if client is None:
            return self
        bound = client

        def send(*args: P.args, **kwargs: P.kwargs) -> Any:
            call = self._build(*args, **kwargs)
            return bound._stream(call) if isinstance(call, calls.StreamCall) else bound._run(call)

        return functools.wraps(self._build)(send)


class BaseClient(Generic[H]):
    """The service's routes and where it is. ``base_url`` and ``api_key`` default to ``EXTRACTOR_URL`` and
    ``EXTRACTOR_API_KEY``; the key is sent as a Bearer token. ``http_client`` wraps an httpx client you built (a
    test client, one with your own transport or proxies): its ``base_url`` is used, and it is not closed here."""

    _http_class: type[H]

    extract = _Route(calls.extract)
    extract_stream = _Route(calls.extract_stream)

    register_schema = _Route(calls.register_schema)
    list_schemas = _Route(calls.list_schemas)
    get_schema = _Route(calls.get_schema)
    get_schema_version = _Route(calls.get_schema_version)
    retire_schema = _Route(calls.retire_schema)

    create_batch = _Route(calls.create_batch)
    create_batch_ndjson = _Route(calls.create_batch_ndjson)
    get_batch = _Route(calls.get_batch)
    cancel_batch = _Route(calls.cancel_batch)
    batch_results = _Route(calls.batch_results)
    batch_events = _Route(calls.batch_events)

    health = _Route(calls.health)
    ready = _Route(calls.ready)

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        http_client: H | None = None,
    ) -> None:
        api_key = api_key or os.environ.get("EXTRACTOR_API_KEY")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._retry = retry or RetryPolicy()
        self._owned = http_client is None
        url = base_url or os.environ.get("EXTRACTOR_URL") or DEFAULT_URL
        self._http: H = http_client or self._http_class(base_url=url, timeout=timeout)
        self.base_url = str(self._http.base_url)

    def _run(self, call: calls.Call[Any]) -> Any:
        raise NotImplementedError

    def _stream(self, call: calls.StreamCall[Any]) -> Any:
        raise NotImplementedError
