"""Is a field's ``confidence`` worth reading? Bins of confidence against the share of values that were right.

Each predicted (non-null) field with a confidence is one cell: its confidence and whether it matched the gold value.
Cells are put into equal-width bins over [0, 1]; a bin's accuracy should be close to its mean confidence. The
expected calibration error is the cell-weighted mean gap, ``ECE = Σ_b (n_b / N) · |accuracy_b - confidence_b|``.

A field made of several leaves (a list) takes its least confident leaf. The paired difference of two runs' ECE has a
bootstrap interval over documents (ECE is not a mean of per-document terms), with a fixed seed so a report repeats.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extractor.evaluation.stats import Estimate

__all__ = ["Calibration", "CalibrationBin", "Cell", "calibration", "compare_calibration", "field_confidence"]

DEFAULT_BINS = 5
_BOOTSTRAP_ROUNDS = 1000
_SEED = 13


@dataclass(frozen=True, slots=True)
class Cell:
    """One predicted field: its document, confidence and whether it matched the gold value."""

    document: str
    confidence: float
    correct: bool


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


@dataclass(frozen=True, slots=True)
class Calibration:
    """The bins and their expected calibration error (``nan`` when no cell carried a confidence)."""

    bins: list[CalibrationBin]
    ece: float
    cells: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``nan`` as ``None``)."""
        return {
            "cells": self.cells,
            "ece": None if math.isnan(self.ece) else self.ece,
            "bins": [
                {"low": b.low, "high": b.high, "count": b.count, "confidence": b.confidence, "accuracy": b.accuracy}
                for b in self.bins
            ],
        }

    def to_table(self) -> str:
        """One row per non-empty bin, then the ECE."""
        if not self.cells:
            return "calibration: no predicted value carried a confidence"
        lines = ["calibration (confidence bins vs share of values right):", "  bin        values  conf.  acc."]
        rows = [b for b in self.bins if b.count]
        lines += [f"  {b.low:.1f}-{b.high:.1f}  {b.count:>8}  {b.confidence:.3f}  {b.accuracy:.3f}" for b in rows]
        lines.append(f"  expected calibration error: {self.ece:.3f} over {self.cells} values")
        return "\n".join(lines)


def field_confidence(confidences: Mapping[str, float], field: str) -> float | None:
    """The confidence of top-level ``field`` from per-pointer confidences: its own, else its least confident leaf."""
    pointer = f"/{field.replace('~', '~0').replace('/', '~1')}"
    if pointer in confidences:
        return confidences[pointer]
    inner = [value for key, value in confidences.items() if key.startswith(pointer + "/")]
    return min(inner) if inner else None


def calibration(cells: Sequence[Cell], bins: int = DEFAULT_BINS) -> Calibration:
    """Equal-width bins over [0, 1] (a confidence of 1 falls in the last) and the ECE."""
    grouped: list[list[Cell]] = [[] for _ in range(bins)]
    for cell in cells:
        grouped[min(int(cell.confidence * bins), bins - 1)].append(cell)
    table = [_bin(i / bins, (i + 1) / bins, members) for i, members in enumerate(grouped)]
    return Calibration(table, _ece(table, len(cells)), len(cells))


def _bin(low: float, high: float, members: Sequence[Cell]) -> CalibrationBin:
    if not members:
        return CalibrationBin(low, high, 0, math.nan, math.nan)
    confidence = math.fsum(c.confidence for c in members) / len(members)
    accuracy = sum(c.correct for c in members) / len(members)
    return CalibrationBin(low, high, len(members), confidence, accuracy)


def _ece(table: Sequence[CalibrationBin], total: int) -> float:
    if total == 0:
        return math.nan
    return math.fsum(b.count / total * abs(b.accuracy - b.confidence) for b in table if b.count)


def compare_calibration(
    cells_a: Sequence[Cell], cells_b: Sequence[Cell], bins: int = DEFAULT_BINS, rounds: int = _BOOTSTRAP_ROUNDS
) -> Estimate:
    """``ECE_b - ECE_a`` with a 95% percentile interval from resampling documents (both runs resample alike)."""
    difference = calibration(cells_b, bins).ece - calibration(cells_a, bins).ece
    documents = sorted({c.document for c in (*cells_a, *cells_b)})
    if math.isnan(difference) or len(documents) < 2:
        return Estimate(difference, math.nan, math.nan, math.nan, len(documents))
    by_doc_a, by_doc_b = _by_document(cells_a), _by_document(cells_b)
    rng = random.Random(_SEED)
    draws: list[float] = []
    for _ in range(rounds):
        sample = rng.choices(documents, k=len(documents))
        ece_a = calibration([c for d in sample for c in by_doc_a.get(d, [])], bins).ece
        ece_b = calibration([c for d in sample for c in by_doc_b.get(d, [])], bins).ece
        if not (math.isnan(ece_a) or math.isnan(ece_b)):
            draws.append(ece_b - ece_a)
    if len(draws) < 2:
        return Estimate(difference, math.nan, math.nan, math.nan, len(documents))
    draws.sort()
    mean = math.fsum(draws) / len(draws)
    se = math.sqrt(math.fsum((d - mean) ** 2 for d in draws) / (len(draws) - 1))
    low, high = draws[int(0.025 * len(draws))], draws[min(len(draws) - 1, int(0.975 * len(draws)))]
    return Estimate(difference, se, low, high, len(documents))


def _by_document(cells: Sequence[Cell]) -> dict[str, list[Cell]]:
    grouped: dict[str, list[Cell]] = {}
    for cell in cells:
        grouped.setdefault(cell.document, []).append(cell)
    return grouped
