"""The one door to the model endpoint: OpenAI-compatible chat completions over ``aiohttp``, and its errors.

Not the ``openai`` SDK: on the same calls it costs several times the CPU (docs/benchmarks.md, model client CPU),
and a batch worker is CPU-bound on exactly this call. What the SDK did for us is kept, in the same terms: the
bearer key, a timeout per request, and its retry policy (connection errors, timeouts, 408, 409, 429 and 5xx, honouring
``retry-after-ms``/``Retry-After`` up to two minutes and ``x-should-retry``, else backoff from 0.5 s to 8 s with
jitter).

Network retries belong to this client alone (``model_max_retries``); nothing above it retries a network fault
again, so retries never multiply.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import logging
import math
import random
import re
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pydantic_core
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.trace import Span, SpanKind

from extractor.errors import (
    ContextOverflowError,
    DeadlineExceededError,
    ModelUnavailableError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from extractor.extraction.breaker import CircuitBreaker
from extractor.extraction.deadline import check_remaining, remaining_s
from extractor.extraction.stream import StreamedCompletion, sse_data
from extractor.telemetry.tracing import Tracing

__all__ = ["ModelClient", "ModelReply", "proxy_for", "retry_after_s", "should_retry", "status_error"]

log = logging.getLogger(__name__)

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
    logprobs: tuple[tuple[str, float], ...] | None = None
    """Each answer token and its log-probability, when asked for (``logprobs=True``) and given."""


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


_WINDOW_REFUSED = re.compile(r"maximum context length is (\d+) tokens", re.IGNORECASE)
"""How OpenAI, vLLM and llama-cpp-python refuse a prompt that does not fit: "This model's maximum context length
is 4096 tokens. However, you requested 10713 tokens (...)"."""


def refused_window(body: bytes) -> int | None:
    """The context window an endpoint named when it refused a prompt as too long; None for any other answer.
    llama.cpp's own server says it with ``"type": "exceed_context_size_error"`` and ``"n_ctx"``."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        n_ctx = error.get("n_ctx")
        if isinstance(n_ctx, int) and not isinstance(n_ctx, bool) and n_ctx > 0:
            return n_ctx
    match = _WINDOW_REFUSED.search(_error_message(body))
    return int(match.group(1)) if match else None


def status_error(status: int, headers: Mapping[str, str], body: bytes, *, expected: bool = False) -> UpstreamError:
    """The domain error of an HTTP error answer from the model endpoint. Its own message is logged, not passed on:
    it may name internals of the endpoint that callers of this service should not see. An ``expected`` answer (a
    404 to a probe of ``/props`` or ``/tokenize`` on a server without them) is logged at debug level."""
    level = logging.DEBUG if expected else logging.WARNING
    log.log(level, "model endpoint answered %d: %s", status, _error_message(body))
    detail = f"the model endpoint answered {status}; the service log has its message"
    wait = retry_after_s(headers)
    wait = max(0.0, wait) if wait is not None else None
    if status == 429:
        return UpstreamRateLimitedError(detail, retry_after=wait or 1.0)
    if status >= 500:
        return UpstreamUnavailableError(detail, retry_after=wait)
    if status == 400 and (window := refused_window(body)) is not None:
        return ContextOverflowError(
            f"the model endpoint refused the prompt as longer than its {window}-token context window; set "
            f"EXTRACTOR_MODEL_CONTEXT_TOKENS={window} (or less) so that documents are split to fit it",
            window=window,
        )
    return UpstreamError(detail, upstream_status=status)


def proxy_for(url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY``/``NO_PROXY`` name for ``url``, read once.

    aiohttp's ``trust_env`` would read them, and ``~/.netrc``, on every request (its cost: docs/benchmarks.md,
    model client CPU).
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


def _within_deadline(timeout: aiohttp.ClientTimeout) -> tuple[aiohttp.ClientTimeout, bool]:
    """``timeout`` shortened to the request's deadline, and whether it was (a timeout then ends the request)."""
    left = check_remaining()
    if left is None or (timeout.total is not None and timeout.total <= left):
        return timeout, False
    return aiohttp.ClientTimeout(total=left, connect=timeout.connect, sock_read=timeout.sock_read), True


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
            logprobs=_token_logprobs(choice.get("logprobs")),
        )
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(f"model endpoint answered 200 without a usable chat completion ({exc})"[:300]) from exc


def _token_logprobs(raw: Any) -> tuple[tuple[str, float], ...] | None:
    """``choices[0].logprobs.content`` as ``(token, logprob)`` pairs; None when absent or not of that shape."""
    content = raw.get("content") if isinstance(raw, dict) else None
    if not isinstance(content, list):
        return None
    try:
        return tuple((str(entry["token"]), float(entry["logprob"])) for entry in content)
    except (KeyError, TypeError, ValueError):
        return None


class ModelClient:
    """An OpenAI-compatible endpoint: ``base_url`` ends where ``/chat/completions`` and ``/models`` begin."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        model: str | None = None,
        timeout_s: float = 60.0,
        idle_timeout_s: float | None = None,
        max_retries: int = 2,
        unavailable: Callable[[], str | None] = lambda: None,
        tracing: Tracing | None = None,
        breaker: CircuitBreaker | None = None,
        concurrency: int = 1024,
    ) -> None:
        """``unavailable`` says why the endpoint cannot answer now (its process is down), or None: then a call
        fails at once with that sentence instead of waiting on a refused connection and its retries.
        ``idle_timeout_s`` bounds the silence between two pieces of a streamed answer (the wait for the first
        included); ``timeout_s`` bounds the whole call either way. ``breaker`` pauses calls after repeated
        failures; ``concurrency`` bounds the calls in flight (a request's deadline bounds its wait for a turn)."""
        self._base_url = base_url.rstrip("/")
        self._root_url = self._base_url.removesuffix("/v1")  # where /props, /tokenize and /extras/... live
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
        self._stream_timeout = aiohttp.ClientTimeout(
            total=timeout_s, connect=min(timeout_s, 10.0), sock_read=idle_timeout_s
        )
        self._max_retries = max_retries
        self._proxy = proxy_for(self._base_url)
        self._session: aiohttp.ClientSession | None = None
        self._name_lock = asyncio.Lock()
        self._breaker = breaker or CircuitBreaker(failures=5, cooldown_s=10.0)
        self._permits = asyncio.Semaphore(concurrency)

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
        root: bool = False,
        read: Callable[[aiohttp.ClientResponse], Awaitable[Any]] | None = None,
    ) -> Any:
        """Send, retrying what the retry policy allows; the parsed JSON of a 2xx, else a domain error.

        ``path`` is from the base URL, or from the server's root (the base URL less its ``/v1``) with ``root``.
        ``read`` reads a 2xx answer instead (a stream): a timeout or network fault it lets out is retried like any
        other, so it lets them out only before anything was handed on."""
        payload = None if body is None else pydantic_core.to_json(body)
        retries = self._max_retries if max_retries is None else max_retries
        url = f"{self._root_url if root else self._base_url}{path}"
        attempt = 0
        traced: dict[str, str] = {}
        self._tracing.inject(traced)  # traceparent: the model endpoint's own spans join the caller's trace
        while True:
            headers: Mapping[str, str] | None = None
            if (reason := self._unavailable()) is not None:
                raise ModelUnavailableError(reason, retry_after=5.0)
            timeout, last_chance = _within_deadline(limit or self._timeout)
            try:
                async with self._turn():
                    request = self._client().request(
                        method, url, data=payload, timeout=timeout, proxy=self._proxy, headers=traced or None
                    )
                    async with request as response:
                        if response.status < 500:
                            self._breaker.succeeded()
                        else:
                            self._breaker.failed()
                        if read is not None and response.status < 400:
                            return await read(response)
                        raw = await response.read()
                        status, headers = response.status, response.headers
            except TimeoutError as exc:
                self._breaker.failed()
                if last_chance:
                    raise DeadlineExceededError(
                        "the model did not answer within the request's deadline; retry later", retry_after=1.0
                    ) from exc
                error: UpstreamError = UpstreamTimeoutError("model endpoint did not answer in time", retry_after=1.0)
                error.__cause__ = exc
            except aiohttp.ClientError as exc:
                self._breaker.failed()
                error = ModelUnavailableError(_unreachable(exc), retry_after=5.0)
                error.__cause__ = exc
            else:
                if status < 400:
                    try:
                        return pydantic_core.from_json(raw)
                    except ValueError as exc:
                        raise UpstreamError(f"model endpoint answered {status} with a body that is not JSON") from exc
                error = status_error(status, headers, raw, expected=root and status == 404)
                if not should_retry(status, headers):
                    raise error
            if attempt >= retries:
                raise error
            attempt += 1
            delay = _backoff_s(attempt, headers)
            if (left := remaining_s()) is not None and left <= delay:
                raise error  # a retry could not finish within the request's deadline
            await asyncio.sleep(delay)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One call's turn: the breaker lets it through, then a permit (waited for within the deadline)."""
        self._breaker.before_call()
        try:
            async with asyncio.timeout(remaining_s()):
                await self._permits.acquire()
        except TimeoutError:
            self._breaker.released()
            raise DeadlineExceededError(
                "the service was too busy to call the model within the request's deadline; retry later",
                retry_after=1.0,
            ) from None
        try:
            yield
        except asyncio.CancelledError:
            self._breaker.released()
            raise
        finally:
            self._permits.release()

    async def name(self) -> str:
        """The configured model id, or the first one the endpoint lists (asked once)."""
        if self._model is None:
            async with self._name_lock:
                if self._model is None:
                    self._model = _first_model(await self._request("GET", "/models"))
        return self._model

    async def server_json(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """A JSON request beside the OpenAI API, ``path`` from the server's root (``/props``, ``/tokenize``): what
        ``extraction.budget`` asks about the context window and the tokenizer. No retries: each question has a
        fallback, and a server without the endpoint answers 404 at once."""
        return await self._request(method, path, body, max_retries=0, root=True)

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
        on_text: Callable[[str], None] | None = None,
        logprobs: bool = False,
    ) -> ModelReply:
        """One chat completion. With ``on_text`` it is streamed (``stream: true``, usage asked for): ``on_text``
        gets each piece of content as it arrives, and a fault is sent again only before the first piece."""
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
        if logprobs:
            body |= {"logprobs": True, "top_logprobs": 1}  # llama.cpp's server gives none when top_logprobs is unset
        if on_text is not None:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        with self._tracing.span(f"chat {body['model']}", self._request_attributes(body), kind=SpanKind.CLIENT) as span:
            try:
                if on_text is None:
                    reply = _reply_of(await self._request("POST", "/chat/completions", body))
                else:
                    read = functools.partial(_read_stream, on_text=on_text)
                    limit = self._stream_timeout
                    reply = await self._request("POST", "/chat/completions", body, limit=limit, read=read)
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


async def _read_stream(response: aiohttp.ClientResponse, *, on_text: Callable[[str], None]) -> ModelReply:
    """The reply of a streamed completion, each piece of content handed to ``on_text`` as it arrives.

    Until the first piece, a timeout or network fault goes out as it is, for ``_request`` to retry; after it, the
    call is not sent again: the fault ends it. An endpoint that ignored ``stream`` answers one piece."""
    if response.content_type != "text/event-stream":
        reply = _reply_of(pydantic_core.from_json(await response.read()))
        if reply.content:
            on_text(reply.content)
        return reply
    completion = StreamedCompletion()
    try:
        async for data in sse_data(response.content):
            if piece := completion.add(_chunk(data)):
                on_text(piece)
    except TimeoutError as exc:
        if not completion.started:
            raise
        raise UpstreamTimeoutError("the model endpoint went silent in the middle of its answer", retry_after=1) from exc
    except aiohttp.ClientError as exc:
        if not completion.started:
            raise
        raise UpstreamError("the model endpoint broke off its answer; retry in a few seconds") from exc
    if completion.finish_reason is None:
        raise UpstreamError("the model endpoint ended its stream before the answer was finished")
    return ModelReply(
        content=completion.content,
        finish_reason=completion.finish_reason,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.output_tokens,
        response_model=completion.response_model,
        response_id=completion.response_id,
        logprobs=_token_logprobs({"content": completion.logprobs}) if completion.logprobs else None,
    )


def _chunk(data: str) -> Any:
    try:
        return pydantic_core.from_json(data)
    except ValueError as exc:
        raise UpstreamError("the model endpoint streamed a chunk that is not JSON") from exc


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
