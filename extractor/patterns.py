"""The one way extractor runs a regular expression that a user wrote: a JSON Schema's ``pattern``,
``patternProperties`` and ``propertyNames`` patterns, wherever they are matched (validation, coercion, the walk
through a schema).

JSON Schema patterns are ECMA-262 regexes, with lookarounds, backreferences and Unicode property escapes; a
linear-time engine (RE2) refuses the first two, so a schema valid everywhere else would be refused here. The
``regex`` package runs them all and stops a match after a time limit (``timeout=``), releasing the GIL while it
matches. A catastrophic pattern (``^(a|a)*$`` against ``aaaa…!``) therefore costs at most ``MATCH_TIMEOUT_S`` per
match, and a ``budget`` bounds the sum over one validation, so one document cannot hold a worker thread for long.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from functools import lru_cache

import regex

__all__ = ["MATCH_TIMEOUT_S", "PatternTimeoutError", "budget", "compile_pattern", "search"]

MATCH_TIMEOUT_S = 0.05
"""Longest one match may run. Ordinary schema patterns match in microseconds."""

_deadline: ContextVar[float | None] = ContextVar("pattern_deadline", default=None)


class PatternTimeoutError(Exception):
    """A pattern did not finish matching within its time limit: the value is treated as not matching."""

    def __init__(self, pattern: str) -> None:
        super().__init__(f"pattern {pattern[:80]!r} took too long to match (over {MATCH_TIMEOUT_S * 1000:.0f} ms)")
        self.pattern = pattern


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """The compiled pattern (raises ``regex.error`` when it is not one); compiled once per process."""
    return regex.compile(pattern)


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text``; ``PatternTimeoutError`` past the time limit or the budget."""
    limit = MATCH_TIMEOUT_S
    deadline = _deadline.get()
    if deadline is not None:
        limit = min(limit, deadline - time.monotonic())
        if limit <= 0:
            raise PatternTimeoutError(pattern)
    try:
        return compile_pattern(pattern).search(text, timeout=limit) is not None
    except TimeoutError as exc:
        raise PatternTimeoutError(pattern) from exc


@contextlib.contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Bound the total time of every match inside the block (one validation, one coercion)."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)
