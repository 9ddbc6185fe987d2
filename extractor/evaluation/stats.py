"""Interval estimates for evaluation scores, in pure Python.

Every interval is a normal (Wald) interval ``value ± z * se``; nothing is clipped here. Standard errors
are either the plain standard error of a mean (observations independent) or cluster-robust (observations
in the same cluster, such as the fields of one document, may be correlated).

Undefined quantities are ``nan`` rather than an exception, so a report over a tiny set still renders:
no observations give ``nan`` everywhere, and one observation (or one cluster) gives the value with
``se``, ``low`` and ``high`` all ``nan``, since the spread of a single observation is unknown, not zero.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extractor.evaluation.normalize import normalize_value, values_match

__all__ = [
    "Comparison",
    "Estimate",
    "FieldScore",
    "FieldSummary",
    "Report",
    "clustered_mean_ci",
    "compare_scores",
    "mean_ci",
    "paired_difference_ci",
    "paired_ratio_difference_ci",
    "ratio_ci",
    "score_document",
    "score_field",
    "summarize",
    "wilson_ci",
]

Z_95 = 1.96


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its standard error, interval and the number of observations it rests on."""

    value: float
    se: float
    low: float
    high: float
    n: int

    @classmethod
    def from_se(cls, value: float, se: float, n: int, z: float = Z_95) -> Estimate:
        """Build the Wald interval ``value ± z * se``."""
        return cls(value=value, se=se, low=value - z * se, high=value + z * se, n=n)

    def clipped(self, low: float = 0.0, high: float = 1.0) -> Estimate:
        """Return a copy whose interval is clipped to ``[low, high]`` (for rates, which cannot leave [0, 1])."""
        return Estimate(self.value, self.se, _clip(self.low, low, high), _clip(self.high, low, high), self.n)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict; ``nan`` becomes ``None`` because JSON has no NaN."""
        return {
            "value": _json_float(self.value),
            "se": _json_float(self.se),
            "low": _json_float(self.low),
            "high": _json_float(self.high),
            "n": self.n,
        }


def _clip(x: float, low: float, high: float) -> float:
    return x if math.isnan(x) else min(max(x, low), high)


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else x


_NAN = math.nan
_EMPTY = Estimate(_NAN, _NAN, _NAN, _NAN, 0)


def mean_ci(xs: Sequence[float], z: float = Z_95) -> Estimate:
    """Mean of ``xs`` with the standard error of the mean, ``se = sqrt(s² / n)`` where ``s²`` has ``n - 1``.

    ``n = 0`` gives ``nan`` everywhere; ``n = 1`` gives the value with ``se = nan`` (see the module docstring).
    """
    n = len(xs)
    if n == 0:
        return _EMPTY
    mean = math.fsum(xs) / n
    if n == 1:
        return Estimate(mean, _NAN, _NAN, _NAN, 1)
    variance = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return Estimate.from_se(mean, math.sqrt(variance / n), n, z)


def wilson_ci(successes: int, n: int, z: float = Z_95) -> Estimate:
    """A proportion ``successes / n`` with Wilson's score interval, which stays inside [0, 1] and is not empty at 0/n.

    Rates near 0 or 1 on a few dozen documents (how often an unrelated text is answered ``empty``) are where the
    Wald interval of :func:`mean_ci` collapses to a point. ``se`` is the plain ``sqrt(p(1-p)/n)``; ``n = 0`` gives
    ``nan``.
    """
    if n == 0:
        return _EMPTY
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Estimate(p, math.sqrt(p * (1 - p) / n), max(0.0, centre - half), min(1.0, centre + half), n)


def ratio_ci(
    numerators: Sequence[float], denominators: Sequence[float], clusters: Sequence[Hashable], z: float = Z_95
) -> Estimate:
    """Ratio of sums ``R = Σy / Σx`` with a cluster-robust standard error by linearisation (delta method).

    With cluster totals ``Y_g = Σ_{i∈g} y_i`` and ``X_g = Σ_{i∈g} x_i`` over ``G`` clusters::

        Var(R) ≈ G / (G - 1) · Σ_g (Y_g - R·X_g)² / (Σ_g X_g)²

    ``Y_g - R·X_g`` is the linearised influence of cluster ``g`` on ``R`` (its residuals sum to zero), and
    ``G / (G - 1)`` is the CR1 small-sample factor. Precision (correct / predicted), recall (correct / gold)
    and rates among a subset of cells are all such ratios. ``n`` is the number of observations with
    ``x > 0``. ``Σx = 0`` gives ``nan`` everywhere; one cluster gives the value with ``se = nan``.
    """
    _check_lengths(numerators, denominators, clusters)
    totals: dict[Hashable, list[float]] = {}
    for y, x, cluster in zip(numerators, denominators, clusters, strict=True):
        total = totals.setdefault(cluster, [0.0, 0.0])
        total[0] += y
        total[1] += x
    n = sum(1 for x in denominators if x > 0)
    x_sum = math.fsum(x for _, x in totals.values())
    if x_sum == 0:
        return Estimate(_NAN, _NAN, _NAN, _NAN, n)
    ratio = math.fsum(y for y, _ in totals.values()) / x_sum
    groups = len(totals)
    if groups < 2:
        return Estimate(ratio, _NAN, _NAN, _NAN, n)
    squares = math.fsum((y - ratio * x) ** 2 for y, x in totals.values())
    variance = groups / (groups - 1) * squares / x_sum**2
    return Estimate.from_se(ratio, math.sqrt(variance), n, z)


def clustered_mean_ci(values: Sequence[float], clusters: Sequence[Hashable], z: float = Z_95) -> Estimate:
    """Mean over all observations with a cluster-robust (CR1) standard error.

    With ``N`` observations in ``G`` clusters, mean ``ȳ`` and cluster residual sums ``e_g = Σ_{i∈g} (y_i - ȳ)``::

        se² = G / (G - 1) · Σ_g e_g² / N²

    This is :func:`ratio_ci` with every denominator 1. With one observation per cluster (``G = N``) it equals
    the plain standard error of :func:`mean_ci` exactly; when observations within a cluster move together it
    is larger, because a cluster then carries less information than its size suggests.
    """
    return ratio_ci(values, [1.0] * len(values), clusters, z)


def paired_difference_ci(
    a: Sequence[float], b: Sequence[float], clusters: Sequence[Hashable] | None = None, z: float = Z_95
) -> Estimate:
    """Mean of the per-item differences ``b - a`` on the same items, with its interval.

    Without ``clusters`` the standard error is that of the mean difference (:func:`mean_ci`); with them
    (for example the document of each field) it is cluster-robust (:func:`clustered_mean_ci`).
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    differences = [y - x for x, y in zip(a, b, strict=True)]
    if clusters is None:
        return mean_ci(differences, z)
    return clustered_mean_ci(differences, clusters, z)


def _check_lengths(*columns: Sequence[Any]) -> None:
    lengths = {len(column) for column in columns}
    if len(lengths) > 1:
        raise ValueError(f"columns differ in length: {sorted(lengths)}")


@dataclass(frozen=True, slots=True)
class FieldScore:
    """How one predicted field compares with its gold value (after :func:`normalize_value`)."""

    field: str
    exact: bool
    pred_present: bool
    gold_present: bool

    @property
    def correct(self) -> bool:
        """A non-null prediction equal to the gold value."""
        return self.exact and self.pred_present

    @property
    def invented(self) -> bool:
        """A non-null prediction where the gold is null: the model made something up."""
        return self.pred_present and not self.gold_present

    @property
    def missed(self) -> bool:
        """A non-null gold value the prediction left null or got wrong."""
        return self.gold_present and not self.exact


def score_field(field: str, pred: Any, gold: Any) -> FieldScore:
    """Compare one predicted value with its gold value under the declared normalisation."""
    return FieldScore(
        field=field,
        exact=values_match(pred, gold),
        pred_present=normalize_value(pred) is not None,
        gold_present=normalize_value(gold) is not None,
    )


def score_document(
    pred: Mapping[str, Any] | None, gold: Mapping[str, Any] | None, fields: Sequence[str]
) -> list[FieldScore]:
    """Score each of ``fields`` of one document; a ``None`` document (an empty result) has every field null."""
    pred_values, gold_values = pred or {}, gold or {}
    return [score_field(field, pred_values.get(field), gold_values.get(field)) for field in fields]


@dataclass(frozen=True, slots=True)
class FieldSummary:
    """Scores of one field (or of all fields together) over a set of documents.

    ``exact_match`` counts every cell (null == null is a match); ``precision``, ``recall`` and ``f1`` are about
    non-null values only; ``invented_rate`` is among gold-null cells, ``missed_rate`` among gold-non-null cells.
    Counts: ``cells`` scored, ``predicted`` and ``gold`` non-null, ``correct`` non-null predictions.
    """

    cells: int
    predicted: int
    gold: int
    correct: int
    exact_match: Estimate
    precision: Estimate
    recall: Estimate
    f1: Estimate
    invented_rate: Estimate
    missed_rate: Estimate

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the counts and every estimate."""
        counts = {"cells": self.cells, "predicted": self.predicted, "gold": self.gold, "correct": self.correct}
        return counts | {name: getattr(self, name).to_json() for name in _METRICS}


_METRICS = ("exact_match", "precision", "recall", "f1", "invented_rate", "missed_rate")
_HEADERS = ("exact", "precision", "recall", "F1", "invented", "missed")


@dataclass(frozen=True, slots=True)
class Report:
    """Per-field and overall scores of an evaluation run; ``z`` is the interval's normal quantile."""

    documents: int
    fields: dict[str, FieldSummary]
    overall: FieldSummary
    z: float = Z_95

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict: document count, ``z``, overall and per-field summaries."""
        return {
            "documents": self.documents,
            "z": self.z,
            "overall": self.overall.to_json(),
            "fields": {name: summary.to_json() for name, summary in self.fields.items()},
        }

    def to_table(self) -> str:
        """Return a plain-text table: one row per field and an overall row, each metric as ``value [low, high]``."""
        rows = [(name, summary) for name, summary in self.fields.items()] + [("overall", self.overall)]
        header = ("field", "cells", *_HEADERS)
        body = [(name, str(summary.cells), *(_format(getattr(summary, m)) for m in _METRICS)) for name, summary in rows]
        return _render(header, body, f"{self.documents} documents; intervals are value [low, high] at z = {self.z:g}")


def _render(header: Sequence[str], body: Sequence[Sequence[str]], footer: str) -> str:
    """Columns sized to their widest cell, a rule under the header, and a footer line."""
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    lines = [_format_row(tuple(header), widths), _format_row(tuple("-" * w for w in widths), widths)]
    lines += [_format_row(tuple(row), widths) for row in body]
    lines.append(footer)
    return "\n".join(lines)


def _format(estimate: Estimate) -> str:
    if math.isnan(estimate.value):
        return "-"
    if math.isnan(estimate.se):
        return f"{estimate.value:.3f}"
    return f"{estimate.value:.3f} [{estimate.low:.2f}, {estimate.high:.2f}]"


def _format_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    first, *rest = cells
    return "  ".join([first.ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(rest, widths[1:], strict=True))])


def _summarize_cells(cells: Sequence[tuple[str, FieldScore]], exact_match: Estimate, z: float) -> FieldSummary:
    """Summarise ``(document id, score)`` cells; ratios are clustered by document (see :func:`ratio_ci`)."""
    docs = [doc for doc, _ in cells]
    scores = [score for _, score in cells]
    correct = [float(s.correct) for s in scores]
    predicted = [float(s.pred_present) for s in scores]
    gold = [float(s.gold_present) for s in scores]

    def rate(numerators: Sequence[float], denominators: Sequence[float]) -> Estimate:
        return ratio_ci(numerators, denominators, docs, z).clipped()

    return FieldSummary(
        cells=len(scores),
        predicted=int(sum(predicted)),
        gold=int(sum(gold)),
        correct=int(sum(correct)),
        exact_match=exact_match.clipped(),
        precision=rate(correct, predicted),
        recall=rate(correct, gold),
        f1=rate([2 * c for c in correct], [p + g for p, g in zip(predicted, gold, strict=True)]),
        invented_rate=rate([float(s.invented) for s in scores], [1 - g for g in gold]),
        missed_rate=rate([float(s.missed) for s in scores], gold),
    )


def summarize(scores_by_doc: Mapping[str, Sequence[FieldScore]], z: float = Z_95) -> Report:
    """Aggregate per-document field scores into a :class:`Report`.

    Overall exact match is clustered by document (a document's fields succeed or fail together); per-field exact
    match has one cell per document, so its plain interval is used. Precision, recall, F1 (``2·correct /
    (predicted + gold)``) and the invented and missed rates are ratios of sums, clustered by document with the
    delta method of :func:`ratio_ci`. Intervals of these rates are clipped to [0, 1].
    """
    cells = [(doc, score) for doc, scores in scores_by_doc.items() for score in scores]
    by_field: dict[str, list[tuple[str, FieldScore]]] = {}
    for doc, score in cells:
        by_field.setdefault(score.field, []).append((doc, score))
    fields = {
        name: _summarize_cells(field_cells, mean_ci([float(s.exact) for _, s in field_cells], z), z)
        for name, field_cells in by_field.items()
    }
    overall_exact = clustered_mean_ci([float(s.exact) for _, s in cells], [doc for doc, _ in cells], z)
    return Report(documents=len(scores_by_doc), fields=fields, overall=_summarize_cells(cells, overall_exact, z), z=z)


def paired_ratio_difference_ci(
    a: tuple[Sequence[float], Sequence[float]],
    b: tuple[Sequence[float], Sequence[float]],
    clusters: Sequence[Hashable],
    z: float = Z_95,
) -> Estimate:
    """Difference ``R_b - R_a`` of two ratios of sums measured on the same cells, cluster-robust (delta method).

    ``a`` and ``b`` are ``(numerators, denominators)``. Each cluster's influence on the difference is
    ``u_g = (Yb_g - R_b·Xb_g) / ΣXb - (Ya_g - R_a·Xa_g) / ΣXa`` and ``se² = G / (G - 1) · Σ_g u_g²``: the
    pairing enters through ``u_g``, so a change that moves every document alike has a narrow interval. With every
    denominator 1 this is :func:`paired_difference_ci` with clusters. ``n`` counts the clusters.
    """
    _check_lengths(a[0], a[1], b[0], b[1], clusters)
    totals: dict[Hashable, list[float]] = {}
    for ya, xa, yb, xb, cluster in zip(a[0], a[1], b[0], b[1], clusters, strict=True):
        total = totals.setdefault(cluster, [0.0, 0.0, 0.0, 0.0])
        for i, value in enumerate((ya, xa, yb, xb)):
            total[i] += value
    xa_sum, xb_sum = (math.fsum(t[i] for t in totals.values()) for i in (1, 3))
    groups = len(totals)
    if xa_sum == 0 or xb_sum == 0:
        return Estimate(_NAN, _NAN, _NAN, _NAN, groups)
    ra = math.fsum(t[0] for t in totals.values()) / xa_sum
    rb = math.fsum(t[2] for t in totals.values()) / xb_sum
    if groups < 2:
        return Estimate(rb - ra, _NAN, _NAN, _NAN, groups)
    influence = [(yb - rb * xb) / xb_sum - (ya - ra * xa) / xa_sum for ya, xa, yb, xb in totals.values()]
    variance = groups / (groups - 1) * math.fsum(u * u for u in influence)
    return Estimate.from_se(rb - ra, math.sqrt(variance), groups, z)


def _metric_columns(scores: Sequence[FieldScore]) -> dict[str, tuple[list[float], list[float]]]:
    """Each metric of :class:`FieldSummary` as ``(numerators, denominators)`` over the cells."""
    correct = [float(s.correct) for s in scores]
    predicted = [float(s.pred_present) for s in scores]
    gold = [float(s.gold_present) for s in scores]
    return {
        "exact_match": ([float(s.exact) for s in scores], [1.0] * len(scores)),
        "precision": (correct, predicted),
        "recall": (correct, gold),
        "f1": ([2 * c for c in correct], [p + g for p, g in zip(predicted, gold, strict=True)]),
        "invented_rate": ([float(s.invented) for s in scores], [1 - g for g in gold]),
        "missed_rate": ([float(s.missed) for s in scores], gold),
    }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Paired differences (second configuration minus first) per field and overall, one Estimate per metric."""

    documents: int
    fields: dict[str, dict[str, Estimate]]
    overall: dict[str, Estimate]
    z: float = Z_95

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict shaped like :meth:`Report.to_json`, differences in place of scores."""
        return {
            "documents": self.documents,
            "z": self.z,
            "overall": {m: e.to_json() for m, e in self.overall.items()},
            "fields": {name: {m: e.to_json() for m, e in row.items()} for name, row in self.fields.items()},
        }

    def to_table(self) -> str:
        """Return a plain-text table of differences, ``value [low, high]``; an interval excluding 0 is marked ``*``."""
        rows = [*self.fields.items(), ("overall", self.overall)]
        header = ("field", *_HEADERS)
        body = [(name, *(_format_difference(row[m]) for m in _METRICS)) for name, row in rows]
        footer = f"B - A on {self.documents} documents; * marks an interval that excludes 0 (z = {self.z:g})"
        return _render(header, body, footer)


def _format_difference(estimate: Estimate) -> str:
    text = _format(estimate)
    if math.isnan(estimate.se) or math.isnan(estimate.value):
        return text
    sign = "+" if estimate.value >= 0 else ""
    mark = "*" if estimate.low > 0 or estimate.high < 0 else " "
    return f"{sign}{text}{mark}"


def _compare_cells(
    cells_a: Sequence[tuple[str, FieldScore]], cells_b: Sequence[tuple[str, FieldScore]], z: float
) -> dict[str, Estimate]:
    docs = [doc for doc, _ in cells_a]
    columns_a = _metric_columns([s for _, s in cells_a])
    columns_b = _metric_columns([s for _, s in cells_b])
    return {m: paired_ratio_difference_ci(columns_a[m], columns_b[m], docs, z) for m in _METRICS}


def compare_scores(
    scores_a: Mapping[str, Sequence[FieldScore]], scores_b: Mapping[str, Sequence[FieldScore]], z: float = Z_95
) -> Comparison:
    """Paired differences ``b - a`` of every metric on the same documents and fields, clustered by document."""
    if set(scores_a) != set(scores_b):
        raise ValueError("the two runs scored different documents")
    cells_a = [(doc, s) for doc in scores_a for s in scores_a[doc]]
    cells_b = [(doc, s) for doc in scores_a for s in scores_b[doc]]
    if [(d, s.field) for d, s in cells_a] != [(d, s.field) for d, s in cells_b]:
        raise ValueError("the two runs scored different fields")
    names = list(dict.fromkeys(s.field for _, s in cells_a))
    fields = {
        name: _compare_cells([c for c in cells_a if c[1].field == name], [c for c in cells_b if c[1].field == name], z)
        for name in names
    }
    return Comparison(len(scores_a), fields, _compare_cells(cells_a, cells_b, z), z)
