"""Which item failures the queue retries, and how long it waits.

One retry owner per failure kind: the openai client retries network faults itself (``model_max_retries``);
what still surfaces as a transient upstream error is retried here, per document, with backoff that honours the
upstream's ``Retry-After``. Everything else fails the document at once.
"""

from __future__ import annotations

from extractor.errors import (
    ExtractorError,
    ModelUnavailableError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from extractor.settings import JobsSettings

__all__ = ["TRANSIENT", "backoff_delay", "is_transient"]

TRANSIENT: tuple[type[ExtractorError], ...] = (
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
    UpstreamTimeoutError,
    ModelUnavailableError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)


def backoff_delay(exc: ExtractorError, attempt: int, settings: JobsSettings) -> float:
    """Seconds before try ``attempt + 1``: the exponential delay, or ``Retry-After`` when it asks for longer."""
    exponential = settings.retry_base_s * 2.0 ** (attempt - 1)
    asked = float(getattr(exc, "retry_after", None) or 0.0)
    return min(max(exponential, asked), settings.retry_max_s)
