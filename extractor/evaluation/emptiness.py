"""How often the service says "nothing here": on documents whose gold is all null, and on documents that have values.

Two documents sets, two errors:

- **unrelated** (every gold field null): the right answer is ``empty``. Answering ``ok`` is a false positive: the
  service invented a record for a text that holds none.
- **relevant** (at least one gold value): answering ``empty`` is a false empty: the record was there and was lost.

A failed document is neither: it is counted apart, so a model that fails on everything cannot look honest. Rates get
Wilson intervals (they sit near 0 or 1 on a few dozen documents); paired differences between two configurations on the
same documents use the per-document differences of the indicator (:func:`stats.paired_difference_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extractor.evaluation.normalize import normalize_value
from extractor.evaluation.stats import Estimate, paired_difference_ci, wilson_ci

__all__ = ["EmptyComparison", "EmptyReport", "compare_empty", "empty_report", "has_values"]

_RATES = ("unrelated_empty", "false_positive", "false_empty")
_LABELS = {
    "unrelated_empty": "unrelated answered empty",
    "false_positive": "unrelated answered ok (false positive)",
    "false_empty": "relevant answered empty (false empty)",
}


def has_values(gold: Mapping[str, Any] | None, fields: Sequence[str]) -> bool:
    """True when at least one of ``fields`` has a non-null gold value (after normalisation)."""
    return gold is not None and any(normalize_value(gold.get(name)) is not None for name in fields)


def _indicators(relevant: Sequence[bool], statuses: Sequence[str]) -> dict[str, list[float]]:
    """Per rate, the 0/1 outcome of each document in the set the rate is about."""
    unrelated = [s for r, s in zip(relevant, statuses, strict=True) if not r]
    related = [s for r, s in zip(relevant, statuses, strict=True) if r]
    return {
        "unrelated_empty": [float(s == "empty") for s in unrelated],
        "false_positive": [float(s == "ok") for s in unrelated],
        "false_empty": [float(s == "empty") for s in related],
    }


@dataclass(frozen=True, slots=True)
class EmptyReport:
    """Empty-answer rates of one run; ``failed`` counts failures among unrelated and relevant documents."""

    unrelated: int
    relevant: int
    rates: dict[str, Estimate]
    failed: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: document counts, failures and each rate with its interval."""
        return {
            "unrelated": self.unrelated,
            "relevant": self.relevant,
            "failed": self.failed,
            **{name: estimate.to_json() for name, estimate in self.rates.items()},
        }

    def to_table(self) -> str:
        """One line per rate: ``count/n = value [low, high]``."""
        lines = [f"empty answers ({self.unrelated} unrelated, {self.relevant} relevant documents; Wilson 95%):"]
        for name in _RATES:
            estimate = self.rates[name]
            if estimate.n == 0:
                lines.append(f"  {_LABELS[name]}: -")
                continue
            count = round(estimate.value * estimate.n)
            interval = f"[{estimate.low:.2f}, {estimate.high:.2f}]"
            lines.append(f"  {_LABELS[name]}: {count}/{estimate.n} = {estimate.value:.3f} {interval}")
        lines.append(f"  failed: {self.failed['unrelated']} unrelated, {self.failed['relevant']} relevant")
        return "\n".join(lines)


def empty_report(relevant: Sequence[bool], statuses: Sequence[str]) -> EmptyReport:
    """The rates of ``statuses`` (``ok``, ``empty``, ``failed``, one per document); ``relevant``: has gold values."""
    indicators = _indicators(relevant, statuses)
    rates = {name: wilson_ci(int(sum(values)), len(values)) for name, values in indicators.items()}
    failed = {
        "unrelated": sum(1 for r, s in zip(relevant, statuses, strict=True) if not r and s == "failed"),
        "relevant": sum(1 for r, s in zip(relevant, statuses, strict=True) if r and s == "failed"),
    }
    return EmptyReport(relevant.count(False), relevant.count(True), rates, failed)


@dataclass(frozen=True, slots=True)
class EmptyComparison:
    """Paired differences B - A of each empty-answer rate on the same documents."""

    differences: dict[str, Estimate]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the differences."""
        return {name: estimate.to_json() for name, estimate in self.differences.items()}

    def to_table(self) -> str:
        """One line per rate: ``+0.123 [0.01, 0.24] *`` (``*``: the interval excludes 0)."""
        lines = ["empty answers, B - A (paired by document):"]
        for name in _RATES:
            estimate = self.differences[name]
            lines.append(f"  {_LABELS[name]}: {_signed(estimate)}")
        return "\n".join(lines)


def _signed(estimate: Estimate) -> str:
    if math.isnan(estimate.value):
        return "-"
    if math.isnan(estimate.se):
        return f"{estimate.value:+.3f}"
    mark = " *" if estimate.low > 0 or estimate.high < 0 else ""
    return f"{estimate.value:+.3f} [{estimate.low:.2f}, {estimate.high:.2f}]{mark}"


def compare_empty(relevant: Sequence[bool], statuses_a: Sequence[str], statuses_b: Sequence[str]) -> EmptyComparison:
    """Per rate, the mean of the per-document differences ``b - a`` with its interval."""
    a, b = _indicators(relevant, statuses_a), _indicators(relevant, statuses_b)
    return EmptyComparison({name: paired_difference_ci(a[name], b[name]) for name in _RATES})
