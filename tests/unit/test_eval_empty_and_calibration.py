"""The metrics ``extractor eval`` adds for issue 13: empty-answer rates (Wilson intervals, paired differences) and
confidence calibration (bins, expected calibration error, bootstrap difference)."""

from __future__ import annotations

import math

import pytest

from extractor.evaluation.calibration import Cell, calibration, compare_calibration, field_confidence
from extractor.evaluation.emptiness import compare_empty, empty_report, has_values
from extractor.evaluation.runner import EvalCase, EvalRun, Outcome, calibration_cells, relevance
from extractor.evaluation.stats import wilson_ci


def test_wilson_interval_by_hand() -> None:
    # 19 of 20: p = 0.95; Wilson centre (p + z²/2n) / (1 + z²/n), half-width z/(1+z²/n)·sqrt(p(1-p)/n + z²/4n²).
    z, n, p = 1.96, 20, 0.95
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    estimate = wilson_ci(19, 20)
    assert estimate.value == pytest.approx(0.95)
    assert estimate.low == pytest.approx(centre - half)
    assert estimate.high == pytest.approx(centre + half)
    assert estimate.high < 1.0


def test_wilson_interval_is_not_a_point_at_zero_or_all() -> None:
    none, every = wilson_ci(0, 30), wilson_ci(30, 30)
    assert none.low == 0.0
    assert none.high > 0.05
    assert every.high == 1.0
    assert every.low < 0.95
    assert math.isnan(wilson_ci(0, 0).value)


def test_has_values_reads_normalised_gold() -> None:
    assert not has_values({}, ["a"])
    assert not has_values(None, ["a"])
    assert not has_values({"a": "  ", "b": []}, ["a", "b"])
    assert has_values({"a": None, "b": "x"}, ["a", "b"])
    assert not has_values({"a": None, "b": "x"}, ["a"])  # only the scored fields count


def test_empty_report_counts_each_set_apart() -> None:
    relevant = [False, False, False, False, True, True, True]
    statuses = ["empty", "empty", "ok", "failed", "ok", "empty", "failed"]
    report = empty_report(relevant, statuses)
    assert (report.unrelated, report.relevant) == (4, 3)
    assert report.rates["unrelated_empty"].value == pytest.approx(2 / 4)
    assert report.rates["false_positive"].value == pytest.approx(1 / 4)  # a failure is not a false positive
    assert report.rates["false_empty"].value == pytest.approx(1 / 3)
    assert report.failed == {"unrelated": 1, "relevant": 1}
    assert report.to_json()["false_positive"]["n"] == 4
    assert "2/4 = 0.500" in report.to_table()


def test_compare_empty_pairs_documents() -> None:
    relevant = [False, False, False, True]
    before = ["ok", "ok", "empty", "ok"]
    after = ["empty", "empty", "empty", "ok"]
    difference = compare_empty(relevant, before, after).differences
    assert difference["unrelated_empty"].value == pytest.approx(2 / 3)
    assert difference["false_positive"].value == pytest.approx(-2 / 3)
    assert difference["false_empty"].value == 0.0
    # Differences (1, 1, 0): mean 2/3, sd sqrt(1/3), se sqrt(1/9).
    assert difference["unrelated_empty"].se == pytest.approx(math.sqrt(1 / 9))


def test_calibration_bins_and_ece_by_hand() -> None:
    cells = [Cell("d1", 0.95, True), Cell("d2", 0.9, False), Cell("d3", 0.1, False), Cell("d4", 1.0, True)]
    table = calibration(cells, bins=5)
    top, bottom = table.bins[4], table.bins[0]
    assert (top.count, bottom.count) == (3, 1)  # 1.0 falls in the last bin
    assert top.confidence == pytest.approx(0.95)
    assert top.accuracy == pytest.approx(2 / 3)
    assert table.ece == pytest.approx(3 / 4 * abs(2 / 3 - 0.95) + 1 / 4 * 0.1)
    assert "0.8-1.0" in table.to_table()


def test_calibration_without_confidences_is_nan_not_zero() -> None:
    table = calibration([])
    assert math.isnan(table.ece)
    assert table.to_json()["ece"] is None
    assert math.isnan(compare_calibration([], []).value)


def test_ece_difference_is_zero_for_the_same_run_and_signed_otherwise() -> None:
    good = [Cell(f"d{i}", 0.9, i % 10 != 0) for i in range(40)]
    overconfident = [Cell(f"d{i}", 0.9, i % 2 == 0) for i in range(40)]
    same = compare_calibration(good, good)
    assert same.value == 0.0
    assert same.low == 0.0
    assert same.high == 0.0
    worse = compare_calibration(good, overconfident)
    assert worse.value == pytest.approx(abs(0.5 - 0.9) - abs(0.9 - 0.9))
    assert worse.low > 0


def test_field_confidence_takes_the_weakest_leaf_of_a_list() -> None:
    confidences = {"/total": 0.8, "/party/0": 0.9, "/party/1": 0.4, "/a~1b": 0.7}
    assert field_confidence(confidences, "total") == 0.8
    assert field_confidence(confidences, "party") == 0.4
    assert field_confidence(confidences, "a/b") == 0.7
    assert field_confidence(confidences, "missing") is None


def test_runner_builds_cells_and_relevance_from_outcomes() -> None:
    cases = [EvalCase("1", "t", {"total": "3.70"}), EvalCase("2", "t", {}), EvalCase("3", "t", None)]
    outcomes = [
        Outcome("1", "ok", {"total": 3.7, "merchant": "X"}, 1.0, confidence={"/total": 0.9, "/merchant": 0.2}),
        Outcome("2", "ok", {"total": 5}, 1.0, confidence={"/total": 0.6}),
        Outcome("3", "empty", None, 1.0),
    ]
    fields, properties = ["total", "merchant"], {"total": {"type": "number"}, "merchant": {"type": "string"}}
    assert relevance(cases, fields, properties) == [True, False, False]
    cells = calibration_cells(cases, EvalRun(outcomes, 1.0), fields, properties)
    assert [(c.confidence, c.correct) for c in cells] == [(0.9, True), (0.2, False), (0.6, False)]
