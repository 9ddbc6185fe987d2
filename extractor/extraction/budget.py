"""The token budget: how much document text one model call may carry, and how tokens are counted.

The model's context window holds the prompt and the answer together. The document's share is what is left after
the prompt's own tokens (system message, the document's delimiters, the chat template, and the schema where the
endpoint puts it into the prompt), the answer's reserve (``max_tokens``), and a small safety margin.

The window is, first found wins: the setting (``EXTRACTOR_MODEL_CONTEXT_TOKENS``), the bundled server's own
``n_ctx``, what the endpoint reports (llama.cpp server's ``/props``; vLLM's ``max_model_len`` or llama.cpp's
``meta.n_ctx_train`` in ``/v1/models``), else a conservative default. Tokens are counted by the endpoint's
tokenizer where it has one (llama-cpp-python's ``/extras/tokenize/count``, llama.cpp's and vLLM's ``/tokenize``),
else estimated from characters: the ratio and how it was measured are in docs/long-documents.md.

Every network call goes through ``ServerApi``, which the model client implements; tests script it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from extractor.errors import ExtractorError, UpstreamError

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_CONTEXT_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "Budget",
    "ContextWindow",
    "EndpointTokenCounter",
    "EstimatedTokenCounter",
    "ServerApi",
    "TokenCounter",
    "discover_window",
    "prompt_overhead",
    "resolve_window",
    "window_from_models",
    "window_from_props",
]

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 3.0
"""Characters per token assumed without a tokenizer: below what was measured on every Kleister-NDA stretch."""

DEFAULT_CONTEXT_TOKENS = 8192
"""The window assumed when neither the setting nor the endpoint says: small enough for any current model."""

MESSAGE_OVERHEAD_TOKENS = 8
"""Chat-template tokens around one message (ChatML: ``<|im_start|>role\\n`` ... ``<|im_end|>\\n``), rounded up."""

_COUNT_CONCURRENCY = 8


class ServerApi(Protocol):
    """JSON requests to the model server, beside its OpenAI API: ``path`` is from the server's root
    (``/props``, ``/tokenize``, ``/v1/models``). Errors are the model client's domain errors."""

    async def server_json(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any: ...


class TokenCounter(Protocol):
    """Counts tokens of many texts at once (one batch of requests where counting is remote)."""

    async def count(self, texts: Sequence[str]) -> list[int]: ...


# --- counting ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EstimatedTokenCounter:
    """Tokens estimated as characters / ``chars_per_token``, rounded up: no tokenizer, no network."""

    chars_per_token: float = CHARS_PER_TOKEN

    def estimate(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token)

    async def count(self, texts: Sequence[str]) -> list[int]:
        return [self.estimate(text) for text in texts]


@dataclass(frozen=True)
class _Dialect:
    """One server's tokenize endpoint: where, the body for a text, and the count in its answer."""

    name: str
    path: str
    body: Callable[[str, str], dict[str, Any]]
    read: Callable[[Any], int]


def _count_member(answer: Any) -> int:
    return int(answer["count"])


def _tokens_member(answer: Any) -> int:
    return len(answer["tokens"])


# Tried in order until one answers; the bundled server's first. Dispatch through this table, never by server name.
_DIALECTS = (
    _Dialect("llama-cpp-python", "/extras/tokenize/count", lambda text, model: {"input": text}, _count_member),
    _Dialect("llama.cpp", "/tokenize", lambda text, model: {"content": text}, _tokens_member),
    _Dialect("vllm", "/tokenize", lambda text, model: {"model": model, "prompt": text}, _count_member),
)
_PROBE_TEXT = "How many tokens?"


def _is_definite(exc: ExtractorError) -> bool:
    """A definite "not here" (404, 405, 422...), as opposed to a fault worth trying again later (429, 5xx, network)."""
    status = exc.extra.get("upstream_status")
    return type(exc) is UpstreamError and isinstance(status, int) and 400 <= status < 500


class EndpointTokenCounter:
    """The endpoint's own tokenizer, found by trying each known tokenize endpoint once; the estimate otherwise.

    A definite refusal (404, 422) of every dialect is remembered: the estimate is used from then on. A transient
    fault (timeout, 5xx) falls back to the estimate for that call only and tries again on the next.
    """

    def __init__(self, server: ServerApi, model: str, fallback: EstimatedTokenCounter | None = None) -> None:
        self._server = server
        self._model = model
        self._fallback = fallback or EstimatedTokenCounter()
        self._dialect: _Dialect | None = None
        self._unsupported = False
        self._lock = asyncio.Lock()

    @property
    def dialect(self) -> str | None:
        """The tokenizer in use, once found; None while unknown or when the estimate is used."""
        return self._dialect.name if self._dialect is not None else None

    async def count(self, texts: Sequence[str]) -> list[int]:
        dialect = await self._find_dialect()
        if dialect is None:
            return await self._fallback.count(texts)
        permits = asyncio.Semaphore(_COUNT_CONCURRENCY)

        async def one(text: str) -> int:
            async with permits:
                return dialect.read(
                    await self._server.server_json("POST", dialect.path, dialect.body(text, self._model))
                )

        try:
            return list(await asyncio.gather(*(one(text) for text in texts)))
        except (ExtractorError, KeyError, TypeError, ValueError) as exc:
            log.warning("token count by %s failed (%s); estimating this time", dialect.name, exc)
            return await self._fallback.count(texts)

    async def _find_dialect(self) -> _Dialect | None:
        if self._dialect is not None or self._unsupported:
            return self._dialect
        async with self._lock:
            if self._dialect is None and not self._unsupported:
                self._dialect, self._unsupported = await self._probe()
        return self._dialect

    async def _probe(self) -> tuple[_Dialect | None, bool]:
        """The first dialect that answers with a count, and whether every one definitely refused."""
        definite = True
        for dialect in _DIALECTS:
            try:
                answer = await self._server.server_json("POST", dialect.path, dialect.body(_PROBE_TEXT, self._model))
                if dialect.read(answer) > 0:
                    log.info("counting tokens with the endpoint's tokenizer (%s)", dialect.name)
                    return dialect, False
            except ExtractorError as exc:
                definite = definite and _is_definite(exc)
            except (KeyError, TypeError, ValueError):
                pass  # answered, but not in this dialect
        log.info("the endpoint has no tokenizer we know; estimating %.1f characters per token", CHARS_PER_TOKEN)
        return None, definite


# --- the window --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContextWindow:
    """The model's context window in tokens (prompt and answer together), and where that figure came from."""

    tokens: int
    source: str


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def window_from_props(props: Any) -> int | None:
    """llama.cpp server's ``/props``: the per-slot ``n_ctx`` of ``default_generation_settings`` (what one request
    may use when the server runs several slots)."""
    if not isinstance(props, Mapping):
        return None
    settings = props.get("default_generation_settings")
    return _positive_int(settings.get("n_ctx")) if isinstance(settings, Mapping) else None


def window_from_models(page: Any, model: str) -> int | None:
    """``/v1/models``: vLLM's ``max_model_len``, else llama.cpp's ``meta.n_ctx_train`` for ``model`` (or the only
    model listed). ``n_ctx_train`` is what the model was trained for; a server started with a smaller ``-c`` has
    less, which is why ``/props`` is asked first."""
    models = page.get("data") if isinstance(page, Mapping) else None
    if not isinstance(models, list):
        return None
    entries = [entry for entry in models if isinstance(entry, Mapping)]
    chosen = [entry for entry in entries if entry.get("id") == model] or (entries if len(entries) == 1 else [])
    for entry in chosen:
        meta = entry.get("meta")
        found = _positive_int(entry.get("max_model_len")) or (
            _positive_int(meta.get("n_ctx_train")) if isinstance(meta, Mapping) else None
        )
        if found is not None:
            return found
    return None


_REPORTS: tuple[tuple[str, Callable[[Any, str], int | None]], ...] = (
    ("/props", lambda answer, model: window_from_props(answer)),
    ("/v1/models", window_from_models),
)


async def discover_window(server: ServerApi, model: str) -> ContextWindow | None:
    """What the endpoint reports about its window, or None when it reports nothing we know."""
    for path, read in _REPORTS:
        try:
            found = read(await server.server_json("GET", path), model)
        except ExtractorError:
            continue
        if found is not None:
            return ContextWindow(found, f"endpoint {path}")
    return None


async def resolve_window(
    *, configured: int | None, bundled: int | None, server: ServerApi | None, model: str
) -> ContextWindow:
    """The window, first found wins: the setting, the bundled server's ``n_ctx``, the endpoint's report, default."""
    if configured is not None:
        return ContextWindow(configured, "setting")
    if bundled is not None:
        return ContextWindow(bundled, "bundled server")
    if server is not None and (reported := await discover_window(server, model)) is not None:
        return reported
    log.warning(
        "the model's context window is unknown; assuming %d tokens (set EXTRACTOR_MODEL_CONTEXT_TOKENS)",
        DEFAULT_CONTEXT_TOKENS,
    )
    return ContextWindow(DEFAULT_CONTEXT_TOKENS, "default")


# --- the budget --------------------------------------------------------------------------------------------------


async def prompt_overhead(
    counter: TokenCounter, messages: Sequence[Mapping[str, str]], extra: Sequence[str] = ()
) -> int:
    """Prompt tokens besides the document: ``messages`` built around an empty document, plus the chat template's
    tokens per message and the assistant's turn, plus ``extra`` texts the endpoint adds to the prompt (the schema,
    where ``json_schema`` enforcement puts it into the prompt rather than into a grammar)."""
    texts = [message["content"] for message in messages] + list(extra)
    counts = await counter.count(texts)
    return sum(counts) + MESSAGE_OVERHEAD_TOKENS * (len(messages) + 1)


@dataclass(frozen=True)
class Budget:
    """How one model call's window is shared: ``document`` tokens are what a part may hold."""

    window: int
    overhead: int
    reserve: int
    margin: int = 0

    @classmethod
    def of(cls, window: int, overhead: int, reserve: int) -> Budget:
        """A budget with the default safety margin: 2% of the window, at least 16 tokens (pieces counted apart
        may tokenize one or two tokens differently once joined)."""
        return cls(window=window, overhead=overhead, reserve=reserve, margin=max(16, window // 50))

    @property
    def document(self) -> int:
        """Tokens left for the document; zero or less means the prompt and answer alone do not fit."""
        return self.window - self.overhead - self.reserve - self.margin

    def answer_room(self, prompt_tokens: int) -> int:
        """The ``max_tokens`` a call with ``prompt_tokens`` of prompt may ask for (a re-ask's prompt is longer:
        it carries the refused answer and the errors), never more than the reserve."""
        return max(0, min(self.reserve, self.window - prompt_tokens - self.margin))
