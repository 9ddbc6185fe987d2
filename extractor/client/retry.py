"""When the client sends a call again: after a 503, and after a connection error that makes resending harmless.

The client is the one retry owner between a caller and the service: the service does not retry a request, and a
caller of the client should not wrap it in retries of its own. Every call is safe to send twice (reads, a schema
registered with the same content, a retire, a cancel, an extraction, a batch under its Idempotency-Key), so what
decides is the failure: a 503 and a connection that was never opened or was broken are retried; a timeout is not,
as a slow extraction sent again is twice the work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from extractor.client.errors import ServiceUnreachableError, error_for

__all__ = ["Attempts", "RetryPolicy", "parse_retry_after"]

_RESENDABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delay-seconds or an HTTP date; ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How many times a call is sent again, and how long to wait first: the service's ``Retry-After`` when it
    gives one, else an exponential backoff with jitter; never longer than ``max_wait_s``."""

    max_retries: int = 2
    max_wait_s: float = 60.0
    backoff_s: float = 0.5

    def wait(self, retry: int, retry_after: float | None) -> float:
        """Seconds before retry number ``retry`` (from 0)."""
        if retry_after is None:
            retry_after = self.backoff_s * 2**retry * random.uniform(0.75, 1.25)
        return min(retry_after, self.max_wait_s)


class Attempts:
    """The attempts of one call: after each failure, how long to wait before the next, or the error to raise."""

    def __init__(self, policy: RetryPolicy, where: str) -> None:
        self._policy = policy
        self._where = where
        self._retries = 0

    def after_error(self, exc: httpx.TransportError) -> float:
        """The wait before sending again after ``exc``; raises :class:`ServiceUnreachableError` when it is final."""
        if isinstance(exc, _RESENDABLE) and self._retries < self._policy.max_retries:
            return self._next(None)
        raise ServiceUnreachableError(f"cannot reach extractor at {self._where}: {exc!r}") from exc

    def after_answer(self, response: httpx.Response) -> float:
        """The wait before sending again after an error answer (body read); raises its typed error when final."""
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if response.status_code == httpx.codes.SERVICE_UNAVAILABLE and self._retries < self._policy.max_retries:
            return self._next(retry_after)
        raise error_for(response, retry_after)

    def _next(self, retry_after: float | None) -> float:
        wait = self._policy.wait(self._retries, retry_after)
        self._retries += 1
        return wait
