"""Splitting a long document: parts cover the text, map back exactly, fit the budget, and cut only between words."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.extraction.split import Counter, Part, SplitError, ratio_counter, split_text, split_to_fit

CHARS = ratio_counter(1.0)  # one token per character: budgets read as lengths


def words(text: str) -> list[tuple[int, int]]:
    """Spans of the whitespace-free runs of ``text``."""
    spans, start = [], None
    for position, char in enumerate(text + " "):
        if char.isspace() and start is not None:
            spans.append((start, position))
            start = None
        elif not char.isspace() and start is None:
            start = position
    return spans


def check_parts(text: str, parts: Sequence[Part], budget: int, count: Counter, overlap: int) -> None:
    """Every promise of ``split_text``, checked on one split."""
    assert parts[0].start == 0
    assert parts[-1].end == len(text)
    runs = words(text)
    for index, part in enumerate(parts):
        assert part.index == index
        assert text[part.start : part.end] == part.text
        assert part.end > part.start or len(text) == 0
        assert count(part.text) <= budget or part.end - part.start == 1, "over budget"
    for before, after in itertools.pairwise(parts):
        assert before.start < after.start, "parts go forward"
        assert before.end < after.end, "parts go forward"
        assert after.start <= before.end, "no gap between parts"
        assert before.end - after.start <= overlap, "overlap within the setting"
        if overlap == 0:
            assert after.start == before.end
    for part in parts[:-1]:  # a cut inside a word only when that word alone exceeds the budget
        inside = [(start, end) for start, end in runs if start < part.end < end]
        for start, end in inside:
            assert count(text[start:end]) > budget, f"cut inside the word {text[start:end]!r}"


text_pieces = st.sampled_from(
    ["word", "a", "Contract", "1,250.00", "x" * 30, " ", "  ", "\n", "\n\n", ". ", "? ", ".\n"]
)
texts = st.lists(text_pieces, max_size=80).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=texts, budget=st.integers(min_value=1, max_value=80), overlap=st.integers(min_value=0, max_value=40))
def test_parts_cover_map_back_fit_and_cut_between_words(text: str, budget: int, overlap: int) -> None:
    parts = split_text(text, budget, CHARS, overlap=overlap)
    check_parts(text, parts, budget, CHARS, overlap)
    assert parts == split_text(text, budget, CHARS, overlap=overlap), "deterministic"


@settings(max_examples=100, deadline=None)
@given(text=texts, budget=st.integers(min_value=1, max_value=12), overlap=st.integers(min_value=0, max_value=20))
def test_a_word_counter_never_cuts_inside_a_word(text: str, budget: int, overlap: int) -> None:
    def count(piece: str) -> int:
        return len(piece.split())

    parts = split_text(text, budget, count, overlap=overlap)
    check_parts(text, parts, budget, count, overlap)
    for part in parts[:-1]:
        assert text[part.end - 1].isspace()
        assert not text[part.end].isspace()


def test_a_text_that_fits_is_one_part() -> None:
    assert split_text("short text", 100, CHARS) == [Part(index=0, start=0, end=10, text="short text")]
    assert split_text("", 5, CHARS) == [Part(index=0, start=0, end=0, text="")]


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    paragraphs = ["First paragraph. It has two sentences.", "Second one is here.", "Third paragraph ends it."]
    text = "\n\n".join(paragraphs)
    parts = split_text(text, 62, CHARS)
    assert [part.text.strip() for part in parts] == ["\n\n".join(paragraphs[:2]), paragraphs[2]]


def test_a_long_paragraph_is_cut_after_a_sentence_not_mid_sentence() -> None:
    text = "One two three four. Five six seven eight. Nine ten eleven twelve."
    parts = split_text(text, 45, CHARS)
    assert [part.text for part in parts] == ["One two three four. Five six seven eight. ", "Nine ten eleven twelve."]


def test_a_short_paragraph_does_not_make_a_tiny_part() -> None:
    long_paragraph = " ".join(["sentence number one."] * 10)
    text = f"Tiny.\n\n{long_paragraph}"
    parts = split_text(text, 100, CHARS)
    assert len(parts[0].text) >= 50, "a stronger boundary that leaves the part half empty is passed over"


def test_a_word_longer_than_the_budget_is_cut_hard() -> None:
    text = "ab " + "x" * 25 + " cd"
    parts = split_text(text, 10, CHARS)
    assert [part.text for part in parts] == ["ab ", "x" * 10, "x" * 10, "x" * 5 + " cd"]


def test_overlap_starts_the_next_part_at_a_boundary_inside_the_window() -> None:
    text = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota. Kappa lambda mu."
    parts = split_text(text, 40, CHARS, overlap=20)
    assert parts[1].start < parts[0].end, "the parts overlap"
    assert parts[1].text.startswith("Delta"), "the overlap starts at the sentence inside the window"
    check_parts(text, parts, 40, CHARS, 20)


def test_overlap_never_stalls_progress() -> None:
    text = " ".join(["word"] * 200)
    parts = split_text(text, 12, CHARS, overlap=1000)
    check_parts(text, parts, 12, CHARS, 1000)
    assert all(len(part.text) <= 12 for part in parts)


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        split_text("text", 0, CHARS)


class DenseDigits:
    """A tokenizer-like counter: four letters a token, but every digit a token of its own; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def tokens(self, text: str) -> int:
        digits = sum(char.isdigit() for char in text)
        return digits + math.ceil((len(text) - digits) / 4)

    async def count(self, texts: Sequence[str]) -> list[int]:
        self.calls.append(len(texts))
        return [self.tokens(text) for text in texts]


async def test_split_to_fit_meets_a_real_counter_with_few_calls() -> None:
    prose = " ".join(["The parties agree to keep the information confidential."] * 40)
    numbers = " ".join(["1234567890"] * 60)  # a dense stretch: the whole text's ratio underestimates it
    text = f"{prose}\n\n{numbers}\n\n{prose}"
    counter = DenseDigits()
    parts = await split_to_fit(text, 300, counter, overlap=50)
    assert all(counter.tokens(part.text) <= 300 for part in parts)
    check_parts(text, parts, 300, counter.tokens, 50)
    assert len(counter.calls) <= 4, "one count of the text, then one batch per round"


async def test_split_to_fit_keeps_a_fitting_text_whole() -> None:
    counter = DenseDigits()
    assert await split_to_fit("short", 10, counter) == [Part(index=0, start=0, end=5, text="short")]
    assert counter.calls == [1]


async def test_split_to_fit_gives_up_on_a_counter_that_never_fits() -> None:
    class Liar:
        async def count(self, texts: Sequence[str]) -> list[int]:
            return [10_000 for _ in texts]

    with pytest.raises(SplitError):
        await split_to_fit("some words here " * 50, 100, Liar())
