"""The one door to the model endpoint: OpenAI-compatible chat completions over ``aiohttp``, and its errors.

Not the ``openai`` SDK: on the same calls it costs six times the CPU (``python -m bench.model_client``: 2.2 ms
per call through ``AsyncOpenAI`` on httpx2, 1.5 ms with its aiohttp transport, 0.35 ms here), and a batch worker
is CPU-bound on exactly this call. What the SDK did for us is kept, in the same terms: the bearer key, a
timeout per request, and its retry policy (connection errors, timeouts, 408, 409, 429 and 5xx, honouring
``retry-after-ms``/``Retry-After`` up to two minutes and ``x-should-retry``, else backoff from 0.5 s to 8 s with
jitter).

Network retries belong to this client alone (``model_max_retries``); nothing above it retries a network fault
again, so retries never multiply.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pydantic_core
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.trace import Span, SpanKind

from extractor.errors import (
    ModelUnavailableError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from extractor.telemetry.tracing import Tracing

__all__ = ["ModelClient", "ModelReply", "proxy_for", "retry_after_s", "should_retry", "status_error"]

MAX_RETRY_AFTER_S = 120.0
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
_RETRIED_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class ModelReply:
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    response_model: str | None = None
    response_id: str | None = None


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The server's requested wait in seconds: ``retry-after-ms``, else ``Retry-After`` as seconds or a date."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / scale
        except ValueError:
            parsed = email.utils.parsedate_tz(value) if scale == 1.0 else None
            if parsed is not None:
                return email.utils.mktime_tz(parsed) - time.time()
    return None


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    wait = retry_after_s(headers)
    if wait is not None and math.isfinite(wait) and wait > MAX_RETRY_AFTER_S:
        return False
    explicit = headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return explicit == "true"
    return status in _RETRIED_STATUSES or status >= 500


def _backoff_s(retry: int, headers: Mapping[str, str] | None) -> float:
    wait = retry_after_s(headers) if headers is not None else None
    if wait is not None and math.isfinite(wait) and 0 < wait <= MAX_RETRY_AFTER_S:
        return wait
    return min(INITIAL_RETRY_DELAY_S * 2.0 ** (retry - 1), MAX_RETRY_DELAY_S) * (1 - 0.25 * random.random())


def _error_message(body: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the start of the body."""
    try:
        parsed = json.loads(body)
        message = parsed["error"]["message"] if isinstance(parsed.get("error"), dict) else parsed.get("error")
        if message:
            return str(message)
    except (ValueError, AttributeError, KeyError, TypeError):
        pass
    return body[:200].decode("utf-8", "replace") or "(empty body)"


def status_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """The domain error of an HTTP error answer from the model endpoint."""
    detail = f"model endpoint answered {status}: {_error_message(body)}"
    wait = retry_after_s(headers)
    wait = max(0.0, wait) if wait is not None else None
    if status == 429:
        return UpstreamRateLimitedError(detail, retry_after=wait or 1.0)
    if status >= 500:
        return UpstreamUnavailableError(detail, retry_after=wait)
    return UpstreamError(detail, upstream_status=status)


def proxy_for(url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY``/``NO_PROXY`` name for ``url``, read once.

    aiohttp's ``trust_env`` would read them, and ``~/.netrc``, on every request: 0.8 ms of CPU per call.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _unreachable(exc: aiohttp.ClientError) -> str:
    """A sentence for a request that got no HTTP answer: what the network said, not where (callers need not know)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        why = (exc.os_error.strerror or "the connection failed").lower()
        return f"cannot connect to the model endpoint ({why}); check that it runs and is reachable, then retry"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the model endpoint closed the connection before it answered; retry in a few seconds"
    return f"the model endpoint could not be reached ({type(exc).__name__}); retry in a few seconds"


def _reply_of(completion: Any) -> ModelReply:
    """The parts we use of a chat completion; any other shape (an HTML page, a bare object) is an upstream fault."""
    try:
        choice = completion["choices"][0]
        usage = completion.get("usage") or {}
        content = choice["message"].get("content") or ""
        if not isinstance(content, str):
            raise TypeError(f"message content is {type(content).__name__}, not a string")
        return ModelReply(
            content=content,
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            response_model=completion.get("model"),
            response_id=completion.get("id"),
        )
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(f"model endpoint answered 200 without a usable chat completion ({exc})"[:300]) from exc


class ModelClient:
    """An OpenAI-compatible endpoint: ``base_url`` ends where ``/chat/completions`` and ``/models`` begin."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        model: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        unavailable: Callable[[], str | None] = lambda: None,
        tracing: Tracing | None = None,
    ) -> None:
        """``unavailable`` says why the endpoint cannot answer now (its process is down), or None: then a call
        fails at once with that sentence instead of waiting on a refused connection and its retries."""
        self._base_url = base_url.rstrip("/")
        self._unavailable = unavailable
        self._tracing = tracing or Tracing()
        parts = urllib.parse.urlsplit(self._base_url)
        self._server: dict[str, str | int] = {server_attributes.SERVER_ADDRESS: parts.hostname or ""}
        if parts.port is not None:
            self._server[server_attributes.SERVER_PORT] = parts.port
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._model = model
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 10.0))
        self._max_retries = max_retries
        self._proxy = proxy_for(self._base_url)
        self._session: aiohttp.ClientSession | None = None
        self._name_lock = asyncio.Lock()

    @property
    def base_url(self) -> str:
        return f"{self._base_url}/"

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use: aiohttp wants it made inside the event loop that uses it."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=1024, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers, timeout=self._timeout)
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        limit: aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> Any:
        """Send, retrying what the retry policy allows; the parsed JSON of a 2xx, else a domain error."""
        payload = None if body is None else pydantic_core.to_json(body)
        retries = self._max_retries if max_retries is None else max_retries
        url = f"{self._base_url}{path}"
        attempt = 0
        traced: dict[str, str] = {}
        self._tracing.inject(traced)  # traceparent: the model endpoint's own spans join the caller's trace
        while True:
            headers: Mapping[str, str] | None = None
            if (reason := self._unavailable()) is not None:
                raise ModelUnavailableError(reason, retry_after=5.0)
            try:
                request = self._client().request(
                    method, url, data=payload, timeout=limit or self._timeout, proxy=self._proxy, headers=traced or None
                )
                async with request as response:
                    raw = await response.read()
                    status, headers = response.status, response.headers
            except TimeoutError as exc:
                error: UpstreamError = UpstreamTimeoutError("model endpoint did not answer in time", retry_after=1.0)
                error.__cause__ = exc
            except aiohttp.ClientError as exc:
                error = ModelUnavailableError(_unreachable(exc), retry_after=5.0)
                error.__cause__ = exc
            else:
                if status < 400:
                    try:
                        return pydantic_core.from_json(raw)
                    except ValueError as exc:
                        raise UpstreamError(f"model endpoint answered {status} with a body that is not JSON") from exc
                error = status_error(status, headers, raw)
                if not should_retry(status, headers):
                    raise error
            if attempt >= retries:
                raise error
            attempt += 1
            await asyncio.sleep(_backoff_s(attempt, headers))

    async def name(self) -> str:
        """The configured model id, or the first one the endpoint lists (asked once)."""
        if self._model is None:
            async with self._name_lock:
                if self._model is None:
                    self._model = _first_model(await self._request("GET", "/models"))
        return self._model

    async def ping(self) -> None:
        """One cheap request that proves the endpoint answers (no retries: readiness must be quick)."""
        await self._request("GET", "/models", limit=aiohttp.ClientTimeout(total=3.0), max_retries=0)

    async def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        response_format: dict[str, Any] | None,
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> ModelReply:
        body: dict[str, Any] = {
            "model": await self.name(),
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if response_format is not None:
            body["response_format"] = response_format
        if seed is not None:
            body["seed"] = seed
        with self._tracing.span(f"chat {body['model']}", self._request_attributes(body), kind=SpanKind.CLIENT) as span:
            try:
                reply = _reply_of(await self._request("POST", "/chat/completions", body))
            except UpstreamError as exc:
                if span is not None:
                    span.set_attribute(error_attributes.ERROR_TYPE, exc.code)
                raise
            if span is not None:
                _describe_reply(span, reply)
            return reply

    def _request_attributes(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The GenAI semantic conventions' request attributes of a chat call (None when tracing is off)."""
        if not self._tracing.enabled:
            return None
        attributes: dict[str, Any] = {
            gen_ai.GEN_AI_OPERATION_NAME: gen_ai.GenAiOperationNameValues.CHAT.value,
            gen_ai.GEN_AI_PROVIDER_NAME: gen_ai.GenAiProviderNameValues.OPENAI.value,  # the API's protocol
            gen_ai.GEN_AI_REQUEST_MODEL: body["model"],
            gen_ai.GEN_AI_REQUEST_MAX_TOKENS: body["max_tokens"],
            gen_ai.GEN_AI_REQUEST_TEMPERATURE: body["temperature"],
            gen_ai.GEN_AI_OUTPUT_TYPE: gen_ai.GenAiOutputTypeValues.JSON.value,
            **self._server,
        }
        if "seed" in body:
            attributes[gen_ai.GEN_AI_REQUEST_SEED] = body["seed"]
        return attributes

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _describe_reply(span: Span, reply: ModelReply) -> None:
    """The GenAI semantic conventions' response attributes."""
    span.set_attribute(gen_ai.GEN_AI_USAGE_INPUT_TOKENS, reply.prompt_tokens)
    span.set_attribute(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, reply.completion_tokens)
    span.set_attribute(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS, [reply.finish_reason or ""])
    if reply.response_model:
        span.set_attribute(gen_ai.GEN_AI_RESPONSE_MODEL, str(reply.response_model))
    if reply.response_id:
        span.set_attribute(gen_ai.GEN_AI_RESPONSE_ID, str(reply.response_id))


def _first_model(page: Any) -> str:
    try:
        models = page["data"]
    except (KeyError, TypeError) as exc:
        raise UpstreamError("the model endpoint's /models answer is not a model list") from exc
    if not models:
        raise UpstreamError("the model endpoint lists no models; set EXTRACTOR_MODEL_NAME")
    try:
        return str(models[0]["id"])
    except (KeyError, TypeError) as exc:
        raise UpstreamError("the model endpoint's /models answer is not a model list") from exc
