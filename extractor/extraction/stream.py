"""A streamed chat completion as an OpenAI-compatible endpoint sends it: server-sent events, one chunk each.

The framing is the part of server-sent events these endpoints use: ``data: {chunk}`` lines, a blank line after
each event, ``data: [DONE]`` at the end; comments (``: ping``) and other fields are skipped. No installed library
reads it from an aiohttp body (the openai SDK's decoder is private to its httpx transport, ``sse-starlette`` only
writes events), so ``sse_data`` is a line reader over ``response.content``.

``StreamedCompletion`` adds the chunks up: the content, the finish reason, and the usage when the endpoint sends it
(asked with ``stream_options.include_usage``; llama-cpp-python's server ignores it, and then the completion tokens
are the content pieces counted, one token each on the servers we know, and the prompt tokens unknown, 0).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from extractor.errors import UpstreamError

__all__ = ["StreamedCompletion", "sse_data"]

DONE = "[DONE]"


async def sse_data(lines: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """The data of each event (its ``data:`` lines joined), until ``[DONE]`` or the end of the body."""
    data: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line:
            name, _, value = line.partition(":")
            if name == "data":
                data.append(value.removeprefix(" "))
            continue
        if data:
            payload = "\n".join(data)
            data.clear()
            if payload == DONE:
                return
            yield payload
    if data and (payload := "\n".join(data)) != DONE:
        yield payload


@dataclass
class StreamedCompletion:
    """The chunks of one streamed chat completion, added up."""

    pieces: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int | None = None
    """As the endpoint reported it; None if it did not."""
    response_model: str | None = None
    response_id: str | None = None
    logprobs: list[Any] = field(default_factory=list)
    """The ``choices[0].logprobs.content`` entries of every chunk, in order (when asked for and given)."""

    @property
    def started(self) -> bool:
        """Whether content arrived: from then on the call is not sent again (retries only before the first token)."""
        return bool(self.pieces)

    @property
    def content(self) -> str:
        return "".join(self.pieces)

    @property
    def output_tokens(self) -> int:
        return len(self.pieces) if self.completion_tokens is None else self.completion_tokens

    def add(self, chunk: Any) -> str:
        """Take one chunk; its piece of content ('' if none). An error chunk, or one of no known shape, raises."""
        try:
            if isinstance(chunk.get("error"), dict | str):
                raise UpstreamError(f"the model endpoint reported an error mid-stream: {_message(chunk['error'])}")
            self.response_model = chunk.get("model") or self.response_model
            self.response_id = chunk.get("id") or self.response_id
            if usage := chunk.get("usage"):
                self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                self.completion_tokens = int(usage.get("completion_tokens") or 0)
            choices = chunk.get("choices") or []
            if not choices:
                return ""
            self.finish_reason = choices[0].get("finish_reason") or self.finish_reason
            if isinstance(entries := (choices[0].get("logprobs") or {}).get("content"), list):
                self.logprobs.extend(entries)
            piece = (choices[0].get("delta") or {}).get("content") or ""
        except (AttributeError, TypeError, ValueError) as exc:
            raise UpstreamError(f"the model endpoint streamed a chunk of no known shape ({exc})"[:300]) from exc
        if not isinstance(piece, str):
            raise UpstreamError(f"the model endpoint streamed content of type {type(piece).__name__}, not a string")
        if piece:
            self.pieces.append(piece)
        return piece


def _message(error: Any) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    return str(message or "no message")[:200]
