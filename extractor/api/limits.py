"""The edge's limits, checked before any costly work: header size and count (431), the body's media type (415),
the tenant's request rate and requests in flight (429 with ``Retry-After`` and the IETF draft ``RateLimit``
headers), and the total deadline of each API request; and ``BoundedRequest``, whose JSON body may not nest deeper
than ``limits.max_json_depth`` (400).

uvicorn bounds the header bytes it buffers before the app sees anything (``cli/http.py``); the same bound is
checked here too, so that every server, and the test client, answers 431 alike.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, cast

import pydantic_core
from litestar import Request
from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    Scope,
    Send,
)

from extractor.api.deps import tenant_of
from extractor.api.problems import PROBLEM_JSON, error_response
from extractor.errors import (
    AuthError,
    ExtractorError,
    HeadersTooLargeError,
    InvalidInputError,
    RateLimitedError,
    UnsupportedMediaTypeError,
)
from extractor.extraction.deadline import within
from extractor.limit_settings import LimitSettings, TenantLimits
from extractor.nesting import TooDeepError, check_depth
from extractor.ratelimit import Admission, TenantLimiter
from extractor.runtime import Runtime

__all__ = ["BoundedRequest", "enforce_limits"]

_API = "/v1/"
_JSON_TYPES = frozenset({"application/json"})
_BATCH_TYPES = frozenset({"application/json", "application/x-ndjson"})


class BoundedRequest(Request[Any, Any, Any]):
    """A request whose JSON body is refused (400) when it nests deeper than ``limits.max_json_depth``: the parser
    would otherwise recurse past Python's limit (a 500), and every later step too."""

    async def json(self) -> Any:
        limit = _runtime(self.scope).settings.limits.max_json_depth
        try:
            value = await super().json()
        except RecursionError:
            raise InvalidInputError(f"the JSON body nests deeper than {limit} levels", limit=limit) from None
        try:
            check_depth(value, limit)
        except TooDeepError as exc:
            raise InvalidInputError(f"the JSON body nests deeper than {limit} levels", limit=limit) from exc
        return value


def _runtime(scope: Scope) -> Runtime:
    runtime: Runtime = scope["litestar_app"].state.runtime
    return runtime


def enforce_limits(app: ASGIApp) -> ASGIApp:
    """The middleware: checks in order of cost, then the request under its tenant's admission and deadline."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith(_API):
            await app(scope, receive, send)
            return
        runtime = _runtime(scope)
        limits = runtime.settings.limits
        headers = Headers.from_scope(scope)
        _check_headers(scope, limits)
        _check_media_type(scope, headers)
        tenant = _tenant(runtime, headers)
        if tenant is None or runtime.limiter is None or not _limited(limits.for_tenant(tenant)):
            with within(limits.request_deadline_s):
                await app(scope, receive, send)
            return
        await _admitted(app, scope, receive, send, runtime.limiter, tenant, limits)

    return middleware


def _check_headers(scope: Scope, limits: LimitSettings) -> None:
    raw = list(scope["headers"])
    if len(raw) > limits.max_headers:
        raise HeadersTooLargeError(f"{len(raw)} request headers; at most {limits.max_headers} are accepted")
    size = sum(len(name) + len(value) + 4 for name, value in raw)
    if size > limits.max_header_bytes:
        raise HeadersTooLargeError(f"request headers are {size} bytes; at most {limits.max_header_bytes} are accepted")


def _check_media_type(scope: Scope, headers: Headers) -> None:
    """A body is read as JSON (NDJSON too on batches) only when it says it is one: a ``text/plain`` body is 415."""
    if cast("HTTPScope", scope)["method"] not in ("POST", "PUT", "PATCH"):
        return
    declared = headers.get("content-type")
    if declared is None and headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
        return  # no body: the route says what is missing
    accepted = _BATCH_TYPES if scope["path"].rstrip("/") == "/v1/batches" else _JSON_TYPES
    media_type = (declared or "").split(";")[0].strip().lower()
    if media_type not in accepted:
        raise UnsupportedMediaTypeError(
            f"the body's Content-Type is {media_type or 'missing'!s}; send {' or '.join(sorted(accepted))}",
            accepted=sorted(accepted),
        )


def _tenant(runtime: Runtime, headers: Headers) -> str | None:
    """The caller's tenant, or None when its key is missing or unknown (the route answers 401 then)."""
    try:
        return tenant_of(runtime.settings, headers)
    except AuthError:
        return None


def _limited(limits: TenantLimits) -> bool:
    return limits.rate_per_s is not None or limits.max_in_flight is not None


async def _admitted(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    limiter: TenantLimiter,
    tenant: str,
    limits: LimitSettings,
) -> None:
    tenant_limits = limits.for_tenant(tenant)
    admission = await limiter.admit(tenant, tenant_limits)
    headers = _rate_headers(tenant_limits, admission)
    if not admission.allowed:
        what = "request rate" if admission.reason == "rate" else "requests in flight"
        refusal = RateLimitedError(
            f"over this API key's {what}; retry after the time Retry-After says",
            retry_after=admission.retry_after_s,
            limit=admission.reason,
        )
        await _send_problem(send, refusal, headers)
        return

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start" and headers:
            message = {**message, "headers": [*message.get("headers", []), *_encoded(headers)]}
        await send(message)

    try:
        with within(limits.request_deadline_s):
            await app(scope, receive, send_with_headers)
    finally:
        if admission.lease is not None:
            with contextlib.suppress(Exception):  # the lease lapses on its own
                await limiter.release(tenant, admission.lease)


def _rate_headers(limits: TenantLimits, admission: Admission) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers): the burst as quota, over the
    window that the sustained rate refills it in."""
    if limits.rate_per_s is None:
        return {}
    window = max(1, math.ceil(limits.burst / limits.rate_per_s))
    remaining = admission.remaining if admission.remaining is not None else 0
    reset = max(0, math.ceil(admission.reset_s if admission.allowed else admission.retry_after_s))
    return {
        "RateLimit-Policy": f'"tenant";q={limits.burst};w={window}',
        "RateLimit": f'"tenant";r={remaining};t={reset}',
    }


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


async def _send_problem(send: Send, exc: ExtractorError, headers: dict[str, str]) -> None:
    """A refusal with headers of its own (``RateLimit``): the problem document as ``error_response`` makes it."""
    response = error_response(exc)
    body = pydantic_core.to_json(response.content)
    fields = {**dict(response.headers), **headers, "content-type": PROBLEM_JSON, "content-length": str(len(body))}
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": response.status_code or 429,
        "headers": _encoded(fields),
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
