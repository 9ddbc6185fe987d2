"""Which item failures the queue retries, and how long it waits.

One retry owner per failure kind: the model client retries network faults itself (``model_max_retries``);
what still surfaces as a transient upstream error is retried here, per document, with backoff that honours the
upstream's ``Retry-After``. Redis failing under the pipeline (a blip, a failover) is transient too. Everything else
fails the document at once.
"""

from __future__ import annotations

from redis.exceptions import RedisError

from extractor.errors import (
    ModelUnavailableError,
    StoreUnavailableError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from extractor.settings import JobsSettings

__all__ = ["TRANSIENT", "backoff_delay", "exponential_delay", "is_transient", "redis_pause"]

_PAUSE_MIN_S = 0.1
_PAUSE_MAX_S = 5.0

TRANSIENT: tuple[type[Exception], ...] = (
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
    UpstreamTimeoutError,
    ModelUnavailableError,
    StoreUnavailableError,
    RedisError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)


def backoff_delay(exc: BaseException, attempt: int, settings: JobsSettings) -> float:
    """Seconds before try ``attempt + 1``: the exponential delay, or ``Retry-After`` when it asks for longer."""
    exponential = exponential_delay(attempt, settings)
    asked = float(getattr(exc, "retry_after", None) or 0.0)
    return min(max(exponential, asked), settings.retry_max_s)


def exponential_delay(attempt: int, settings: JobsSettings) -> float:
    """``retry_base_s`` doubled per try, capped at ``retry_max_s``."""
    return float(min(settings.retry_base_s * 2.0 ** (attempt - 1), settings.retry_max_s))


def redis_pause(previous_s: float) -> float:
    """The next wait of a loop that keeps trying Redis while it is away: 0.1 s, doubling, at most 5 s."""
    return min(max(previous_s * 2, _PAUSE_MIN_S), _PAUSE_MAX_S)
