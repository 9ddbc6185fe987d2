"""Evaluation maths for ``extractor eval``: value normalisation, per-field scores and interval estimates."""

from __future__ import annotations

from extractor.evaluation.normalize import normalize_value, values_match
from extractor.evaluation.stats import (
    Estimate,
    FieldScore,
    FieldSummary,
    Report,
    clustered_mean_ci,
    mean_ci,
    paired_difference_ci,
    ratio_ci,
    score_document,
    score_field,
    summarize,
)

__all__ = [
    "Estimate",
    "FieldScore",
    "FieldSummary",
    "Report",
    "clustered_mean_ci",
    "mean_ci",
    "normalize_value",
    "paired_difference_ci",
    "ratio_ci",
    "score_document",
    "score_field",
    "summarize",
    "values_match",
]
