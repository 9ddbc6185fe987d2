"""The total time one request may take, retries and re-asks included, carried in a context variable.

Set once at the edge (``api/limits.py``) for each HTTP request; the model client reads it to shorten each attempt's
timeout, to skip a retry that could not finish in time, and to stop waiting for an upstream permit. Tasks started
inside the request (parts of a long document) inherit it. Nothing set (a batch item): no deadline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from extractor.errors import DeadlineExceededError

__all__ = ["check_remaining", "remaining_s", "within"]

_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


@contextlib.contextmanager
def within(seconds: float | None) -> Iterator[None]:
    """Everything inside the block must be done within ``seconds`` (None: no limit); an enclosing, earlier
    deadline still holds."""
    if seconds is None:
        yield
        return
    ends = time.monotonic() + seconds
    current = _deadline.get()
    token = _deadline.set(ends if current is None else min(current, ends))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining_s() -> float | None:
    """Seconds left before the deadline (may be negative), or None without one."""
    ends = _deadline.get()
    return None if ends is None else ends - time.monotonic()


def check_remaining() -> float | None:
    """``remaining_s``, raising ``DeadlineExceededError`` (504) once it has passed."""
    left = remaining_s()
    if left is not None and left <= 0:
        raise DeadlineExceededError("the request took longer than the service allows and was stopped; retry later")
    return left
