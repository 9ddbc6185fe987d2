"""Interval estimates and per-field scoring, checked against hand-computed values."""

from __future__ import annotations

import json
import math

import pytest

from extractor.evaluation.stats import (
    Estimate,
    FieldScore,
    clustered_mean_ci,
    mean_ci,
    paired_difference_ci,
    ratio_ci,
    score_document,
    summarize,
)

TOL = 1e-9


def test_mean_ci_matches_hand_computation() -> None:
    # mean .75; sample variance (3 * .0625 + .5625) / 3 = .25; se = sqrt(.25 / 4) = .25
    estimate = mean_ci([1, 0, 1, 1])
    assert estimate.value == pytest.approx(0.75, abs=TOL)
    assert estimate.se == pytest.approx(0.25, abs=TOL)
    assert estimate.low == pytest.approx(0.75 - 1.96 * 0.25, abs=TOL)
    assert estimate.high == pytest.approx(0.75 + 1.96 * 0.25, abs=TOL)
    assert estimate.n == 4


def test_mean_ci_uses_the_given_z() -> None:
    estimate = mean_ci([1, 0, 1, 1], z=1.0)
    assert (estimate.low, estimate.high) == pytest.approx((0.5, 1.0), abs=TOL)


def test_mean_ci_of_nothing_is_nan() -> None:
    estimate = mean_ci([])
    assert estimate.n == 0
    assert all(math.isnan(x) for x in (estimate.value, estimate.se, estimate.low, estimate.high))


def test_mean_ci_of_one_observation_has_unknown_spread() -> None:
    estimate = mean_ci([0.4])
    assert estimate.value == 0.4
    assert estimate.n == 1
    assert all(math.isnan(x) for x in (estimate.se, estimate.low, estimate.high))


def test_clustered_se_is_larger_when_fields_of_a_document_move_together() -> None:
    # Four documents of three fields each, every field of a document right or wrong together.
    values = [1.0] * 3 + [1.0] * 3 + [0.0] * 3 + [1.0] * 3
    clusters = ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"] * 3
    plain = mean_ci(values)
    clustered = clustered_mean_ci(values, clusters)
    # plain: s² = (9 * .0625 + 3 * .5625) / 11 = 2.25 / 11, se² = s² / 12
    assert plain.se == pytest.approx(math.sqrt(2.25 / 132), abs=TOL)
    # clustered: residual sums .75, .75, -2.25, .75; se² = 4/3 * 6.75 / 144 = .0625
    assert clustered.value == pytest.approx(0.75, abs=TOL)
    assert clustered.se == pytest.approx(0.25, abs=TOL)
    assert clustered.n == 12
    # Perfect within-document correlation: worth exactly the four per-document means, not twelve observations.
    assert clustered.se == pytest.approx(mean_ci([1, 1, 0, 1]).se, abs=TOL)
    assert clustered.se > 1.9 * plain.se


def test_clustered_se_equals_plain_se_with_one_observation_per_cluster() -> None:
    # G = N: CR1 gives N/(N-1) * Σe² / N² = Σe² / (N (N-1)) = s² / N, the plain variance of the mean.
    values = [0.3, 1.7, 2.0, -0.4, 5.5, 0.0, 1.1]
    plain = mean_ci(values)
    clustered = clustered_mean_ci(values, list(range(len(values))))
    assert clustered.value == pytest.approx(plain.value, abs=TOL)
    assert clustered.se == pytest.approx(plain.se, abs=TOL)
    assert (clustered.low, clustered.high) == pytest.approx((plain.low, plain.high), abs=TOL)


def test_clustered_mean_of_one_cluster_has_unknown_spread() -> None:
    estimate = clustered_mean_ci([1.0, 0.0, 1.0], ["doc"] * 3)
    assert estimate.value == pytest.approx(2 / 3, abs=TOL)
    assert math.isnan(estimate.se)


def test_ratio_ci_by_linearisation() -> None:
    # Cluster totals: a (Y=1, X=2), b (1, 1), c (1, 0). R = 3/3 = 1.
    # Residuals Y - R X: -1, 0, 1; Var = 3/2 * 2 / 3² = 1/3.
    estimate = ratio_ci([1, 0, 1, 1], [1, 1, 1, 0], ["a", "a", "b", "c"])
    assert estimate.value == pytest.approx(1.0, abs=TOL)
    assert estimate.se == pytest.approx(math.sqrt(1 / 3), abs=TOL)
    assert estimate.n == 3


def test_ratio_ci_with_no_denominator_is_nan() -> None:
    estimate = ratio_ci([0, 0], [0, 0], ["a", "b"])
    assert math.isnan(estimate.value)
    assert estimate.n == 0


def test_ratio_ci_refuses_ragged_columns() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        ratio_ci([1, 0], [1], ["a", "b"])


def test_paired_difference_is_b_minus_a() -> None:
    # d = [0, 1, 0, 1]: mean .5, s² = 1/3, se = sqrt(1/12)
    estimate = paired_difference_ci([1, 0, 1, 0], [1, 1, 1, 1])
    assert estimate.value == pytest.approx(0.5, abs=TOL)
    assert estimate.se == pytest.approx(math.sqrt(1 / 12), abs=TOL)


def test_paired_difference_clustered_by_document() -> None:
    # d = [0, 1, 0, 1] with clusters x, y, x, y: residual sums -1 and 1; se² = 2/1 * 2 / 16 = .25
    estimate = paired_difference_ci([1, 0, 1, 0], [1, 1, 1, 1], clusters=["x", "y", "x", "y"])
    assert estimate.value == pytest.approx(0.5, abs=TOL)
    assert estimate.se == pytest.approx(0.5, abs=TOL)


def test_paired_difference_refuses_unpaired_samples() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference_ci([1, 0], [1])


def test_estimate_to_json_has_no_nan() -> None:
    assert mean_ci([1.0]).to_json() == {"value": 1.0, "se": None, "low": None, "high": None, "n": 1}
    assert Estimate.from_se(0.5, 0.1, 10, z=2).to_json() == pytest.approx(
        {"value": 0.5, "se": 0.1, "low": 0.3, "high": 0.7, "n": 10}
    )


def test_estimate_clipped_keeps_value_and_se() -> None:
    clipped = Estimate.from_se(0.9, 0.1, 5).clipped()
    assert (clipped.value, clipped.se, clipped.high) == (0.9, 0.1, 1.0)
    assert clipped.low == pytest.approx(0.9 - 0.196, abs=TOL)


def test_score_document_flags_invented_and_missed() -> None:
    gold = {"term": "2_years", "state": None, "party": "X Corp", "date": None, "wrong": "Alpha"}
    pred = {"term": "2 years", "state": "Oregon", "party": None, "date": None, "wrong": "Beta"}
    scores = {s.field: s for s in score_document(pred, gold, ["term", "state", "party", "date", "wrong"])}
    flags = {
        name: (s.exact, s.correct, s.invented, s.missed, s.pred_present, s.gold_present) for name, s in scores.items()
    }
    assert flags == {
        "term": (True, True, False, False, True, True),
        "state": (False, False, True, False, True, False),
        "party": (False, False, False, True, False, True),
        "date": (True, False, False, False, False, False),
        "wrong": (False, False, False, True, True, True),
    }


def test_score_document_treats_an_empty_result_as_all_null() -> None:
    scores = score_document(None, {"a": "x", "b": None}, ["a", "b"])
    assert [(s.field, s.exact, s.missed, s.pred_present) for s in scores] == [
        ("a", False, True, False),
        ("b", True, False, False),
    ]


def test_score_document_reads_missing_keys_as_null() -> None:
    (score,) = score_document({}, {"other": 1}, ["a"])
    assert (score.exact, score.pred_present, score.gold_present) == (True, False, False)


def _three_documents() -> dict[str, list[FieldScore]]:
    fields = ["f1", "f2"]
    return {
        "d1": score_document({"f1": "a", "f2": "z"}, {"f1": "a", "f2": None}, fields),  # correct, invented
        "d2": score_document({"f1": None, "f2": "c"}, {"f1": "b", "f2": "c"}, fields),  # missed, correct
        "d3": score_document({"f1": "x", "f2": None}, {"f1": "d", "f2": None}, fields),  # wrong, null == null
    }


def test_summarize_overall() -> None:
    overall = summarize(_three_documents()).overall
    assert (overall.cells, overall.predicted, overall.gold, overall.correct) == (6, 4, 4, 2)
    assert overall.exact_match.value == pytest.approx(0.5, abs=TOL)
    assert overall.precision.value == pytest.approx(0.5, abs=TOL)
    assert overall.recall.value == pytest.approx(0.5, abs=TOL)
    assert overall.f1.value == pytest.approx(0.5, abs=TOL)
    assert overall.invented_rate.value == pytest.approx(0.5, abs=TOL)
    assert overall.missed_rate.value == pytest.approx(0.5, abs=TOL)
    # Precision per document (correct, predicted): (1, 2), (1, 1), (0, 1); residuals 0, .5, -.5;
    # Var = 3/2 * .5 / 4² = .046875
    assert overall.precision.se == pytest.approx(math.sqrt(0.046875), abs=TOL)
    assert overall.precision.n == 4


def test_summarize_per_field() -> None:
    f1 = summarize(_three_documents()).fields["f1"]
    assert (f1.cells, f1.predicted, f1.gold, f1.correct) == (3, 2, 3, 1)
    # exact [1, 0, 0]: mean 1/3, s² = 1/3, se = sqrt(1/9); a plain interval clipped to [0, 1]
    assert f1.exact_match.value == pytest.approx(1 / 3, abs=TOL)
    assert f1.exact_match.se == pytest.approx(1 / 3, abs=TOL)
    assert f1.exact_match.low == 0.0
    assert f1.precision.value == pytest.approx(0.5, abs=TOL)
    assert f1.recall.value == pytest.approx(1 / 3, abs=TOL)
    assert f1.f1.value == pytest.approx(0.4, abs=TOL)  # 2 * 1 / (2 + 3)
    assert math.isnan(f1.invented_rate.value)  # no gold-null cells
    assert f1.missed_rate.value == pytest.approx(2 / 3, abs=TOL)


def test_summarize_rate_intervals_stay_within_zero_and_one() -> None:
    report = summarize(_three_documents())
    for summary in [report.overall, *report.fields.values()]:
        for estimate in (summary.exact_match, summary.precision, summary.recall, summary.f1, summary.missed_rate):
            assert 0.0 <= estimate.low <= estimate.value <= estimate.high <= 1.0


def test_report_to_json_is_strict_json() -> None:
    report = summarize(_three_documents())
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["documents"] == 3
    assert set(data["fields"]) == {"f1", "f2"}
    assert data["fields"]["f1"]["invented_rate"]["value"] is None
    assert data["overall"]["precision"]["value"] == pytest.approx(0.5)


def test_report_to_table_has_one_row_per_field_and_overall() -> None:
    table = summarize(_three_documents()).to_table()
    lines = table.splitlines()
    assert lines[0].split() == ["field", "cells", "exact", "precision", "recall", "F1", "invented", "missed"]
    assert [line.split()[0] for line in lines[2:5]] == ["f1", "f2", "overall"]
    assert lines[2].split()[1] == "3"
    assert "0.400 [" in lines[2]  # F1 of f1 with its interval
    assert lines[2].split()[-4] == "-"  # f1 has no gold-null cell, so no invented rate
    assert "3 documents" in lines[-1]


def test_summarize_of_nothing() -> None:
    report = summarize({})
    assert report.documents == 0
    assert report.fields == {}
    assert report.overall.cells == 0
    assert math.isnan(report.overall.exact_match.value)
