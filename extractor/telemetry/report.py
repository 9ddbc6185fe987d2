"""The account of one extraction, kept by the pipeline and read by metrics, the span and the log line."""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import RedisError

from extractor.errors import ExtractorError

__all__ = ["ExtractionReport", "failure_reason"]


def failure_reason(exc: BaseException) -> str:
    """The stable error type of a failure (``extraction-failed``, ``upstream-timeout``, ...): a bounded set."""
    if isinstance(exc, ExtractorError):
        return exc.code
    if isinstance(exc, RedisError):
        return "store-unavailable"
    return "internal-error"


@dataclass
class ExtractionReport:
    """What one extraction did. A batch item hands the same report to each of its tries: tokens add up, the last
    try's status stands."""

    tenant: str = ""
    schema: str = ""
    """As asked (``receipt``) until resolved, then the exact version (``receipt@3``)."""
    model: str = ""
    status: str = ""
    """``ok``, ``empty`` or ``failed``; empty while running (or when cancelled)."""
    reason: str | None = None
    """Why empty (``no_values``, ``not_grounded``, ``no_presence``) or why failed (the error type)."""
    cached: bool = False
    enforcement: str | None = None
    attempts: int = 0
    parts: int = 1
    """Parts the document was extracted in (more than one for a document too long for one model call)."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    """Of the tokens, from the price table; None for a model it does not list."""
    trace_id: str | None = None
    resolved: bool = False
    """The schema named exists (a name that does not may be anything a caller typed)."""

    def resolve(self, schema_ref: str, model: str) -> None:
        self.schema, self.model, self.resolved = schema_ref, model, True

    @property
    def schema_name(self) -> str:
        return self.schema.partition("@")[0]

    def fail(self, exc: BaseException) -> None:
        self.status, self.reason = "failed", failure_reason(exc)
