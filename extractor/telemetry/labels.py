"""Bounded label values: tenants and schema names are chosen by users, and each value of a label is a new time
series in Prometheus, so a label keeps a bounded set of values and folds the rest into ``other``."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["OTHER", "BoundedLabel"]

OTHER = "other"


class BoundedLabel:
    """The values of an allow-list when one is given, else the first ``limit`` values this process sees; any other
    value is ``other``. First-seen rather than top-N: a value's label never changes while the process lives, so
    a counter never splits between its own name and ``other``."""

    def __init__(self, allowed: Iterable[str] = (), limit: int = 20) -> None:
        self._kept = set(allowed)
        self._fixed = bool(self._kept)
        self._limit = limit

    def __call__(self, value: str) -> str:
        if value in self._kept:
            return value
        if self._fixed or len(self._kept) >= self._limit:
            return OTHER
        self._kept.add(value)
        return value
