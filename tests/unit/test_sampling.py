"""``extractor eval --limit``: a seeded sample, one case per length stratum, long documents kept."""

from __future__ import annotations

from extractor.evaluation.runner import EvalCase
from extractor.evaluation.sampling import sample_by_length

# Lengths shuffled against file order, so a "first N" sample would be no sample of lengths at all.
CASES = [EvalCase(id=str(n), text="x" * ((n * 37) % 100 + 1), expected=None) for n in range(100)]


def test_no_limit_or_a_large_one_keeps_every_case_in_order() -> None:
    assert sample_by_length(CASES, None) == CASES
    assert sample_by_length(CASES, 100) == CASES


def test_each_length_stratum_gives_one_case_and_the_longest_is_kept() -> None:
    sample = sample_by_length(CASES, 5, seed=3)
    lengths = sorted(len(case.text) for case in sample)
    assert len(sample) == 5
    assert [(length - 1) // 20 for length in lengths] == [0, 1, 2, 3, 4]  # one from each fifth of the lengths
    assert lengths[-1] > 80


def test_the_sample_keeps_file_order_and_the_seed_fixes_it() -> None:
    sample = sample_by_length(CASES, 10, seed=7)
    positions = [CASES.index(case) for case in sample]
    assert positions == sorted(positions)
    assert sample_by_length(CASES, 10, seed=7) == sample
    assert sample_by_length(CASES, 10, seed=8) != sample
