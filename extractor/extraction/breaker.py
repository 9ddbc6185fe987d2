"""A circuit breaker for one model endpoint: after repeated failures, calls fail at once for a cool-down instead
of each waiting out its own timeout and retries; then one probe call decides whether the endpoint is back.

Owned by the model client, beside its retry policy, so that one place decides "the model is unwell". What counts as
a failure is the client's to say (timeouts, refused connections, 5xx); an answer the model got wrong is not one.
"""

from __future__ import annotations

import time
from enum import StrEnum

from extractor.errors import CircuitOpenError

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failures: int, cooldown_s: float) -> None:
        self._threshold = failures
        self._cooldown_s = cooldown_s
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        return BreakerState.HALF_OPEN if self._remaining() <= 0 else BreakerState.OPEN

    def _remaining(self) -> float:
        return 0.0 if self._opened_at is None else self._opened_at + self._cooldown_s - time.monotonic()

    def before_call(self) -> None:
        """Let a call through, or raise ``CircuitOpenError`` (503 with ``Retry-After``): while open, and while
        half-open for every call but the one probe."""
        state = self.state
        if state == BreakerState.CLOSED:
            return
        if state == BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return
        wait = max(self._remaining(), 1.0)
        raise CircuitOpenError(
            "the model endpoint failed repeatedly; calls to it are paused for a few seconds, retry after that",
            retry_after=wait,
        )

    def succeeded(self) -> None:
        self._failures, self._opened_at, self._probing = 0, None, False

    def failed(self) -> None:
        """A failure: counted while closed; a failed probe opens the breaker again for a full cool-down."""
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._opened_at, self._probing = time.monotonic(), False

    def released(self) -> None:
        """A call that let through neither succeeded nor failed (cancelled): the next one may probe."""
        self._probing = False
