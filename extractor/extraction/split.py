"""Split a long document into parts that each fit a token budget, cut on natural boundaries, with their offsets.

A part is an exact slice of the original text (``text[part.start:part.end] == part.text``), so a span found in a
part maps back to the original by adding ``part.start``. Cuts fall, by preference, after a blank line (paragraph),
after a sentence, after a line break, then after any whitespace: a part always ends where a word ends and the next
part starts where a word starts. Only a single "word" longer than the whole budget is cut inside (a hard cut).

Each part is as long as the budget allows (greedy), but a weaker boundary is used when the strongest one that fits
would leave the part less than half full: a short paragraph followed by a huge one does not make a tiny part.
Consecutive parts overlap by up to ``overlap`` characters (the next part starts at a boundary inside that window),
so a fact cut in two by a boundary is whole in one of them. The split is deterministic: same text, budget, counter
and overlap, same parts.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from extractor.extraction.budget import TokenCounter

__all__ = ["BOUNDARY_LEVELS", "Part", "SplitError", "ratio_counter", "split_text", "split_to_fit"]

Counter = Callable[[str], int]
"""Tokens in a piece of text. Should grow (weakly) with the text: the search for the furthest cut bisects on it."""

# A boundary is the position where the next segment starts, i.e. after the whitespace that ends the previous one.
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SENTENCE = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s+")
_LINE = re.compile(r"\n\s*")
_WORD = re.compile(r"\s+")

BOUNDARY_LEVELS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("paragraph", _PARAGRAPH),
    ("sentence", _SENTENCE),
    ("line", _LINE),
    ("word", _WORD),
)
"""Where a cut may fall, strongest first."""

_MIN_FILL = 0.5
"""A cut on a stronger boundary is taken only if it fills at least this share of the budget."""


class SplitError(ValueError):
    """The text could not be cut into parts that the counter says fit (a counter that is not monotonic)."""


@dataclass(frozen=True)
class Part:
    """One part of a document: ``text`` is ``original[start:end]``."""

    index: int
    start: int
    end: int
    text: str


class _Boundaries:
    """The sorted cut positions of one text per level, found once."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def levels(self) -> list[list[int]]:
        size = len(self.text)
        return [
            sorted({m.end() for m in pattern.finditer(self.text) if m.end() < size}) for _, pattern in BOUNDARY_LEVELS
        ]

    def between(self, level: int, low: int, high: int) -> list[int]:
        """The level's positions ``p`` with ``low < p < high``, in order."""
        positions = self.levels[level]
        return positions[bisect.bisect_right(positions, low) : bisect.bisect_left(positions, high)]

    def first_at_or_after(self, level: int, low: int, high: int) -> int | None:
        """The earliest position of ``level`` in ``[low, high)``."""
        positions = self.levels[level]
        found = bisect.bisect_left(positions, low)
        return positions[found] if found < len(positions) and positions[found] < high else None


def _furthest_fitting(candidates: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """The last candidate that fits, assuming ``fits`` holds for a prefix of ``candidates`` (bisection)."""
    low, high = 0, len(candidates)
    while low < high:
        middle = (low + high) // 2
        if fits(candidates[middle]):
            low = middle + 1
        else:
            high = middle
    return candidates[low - 1] if low else None


def _cut(text: str, start: int, budget: int, count: Counter, boundaries: _Boundaries) -> int:
    """Where the part starting at ``start`` ends: the furthest fitting boundary, strongest level first."""

    def fits(end: int) -> bool:
        return count(text[start:end]) <= budget

    if fits(len(text)):
        return len(text)
    fallback: int | None = None
    for level in range(len(BOUNDARY_LEVELS)):
        end = _furthest_fitting(boundaries.between(level, start, len(text)), fits)
        if end is None:
            continue
        if count(text[start:end]) >= budget * _MIN_FILL:
            return end
        fallback = max(fallback or end, end)
    if fallback is not None:
        return fallback
    # One "word" longer than the budget: the only place a cut falls inside a word.
    word_end = boundaries.first_at_or_after(len(BOUNDARY_LEVELS) - 1, start + 1, len(text)) or len(text)
    return _furthest_fitting(range(start + 1, word_end), fits) or start + 1


def _next_start(end: int, start: int, overlap: int, budget: int, count: Counter, boundaries: _Boundaries) -> int:
    """Where the next part starts: the earliest boundary in the overlap window, strongest level first.

    The overlap may use at most half the budget, so the next part always has room for new text.
    """
    if overlap <= 0:
        return end
    low = max(start + 1, end - overlap)
    for level in range(len(BOUNDARY_LEVELS)):
        for position in boundaries.between(level, low - 1, end):
            if count(boundaries.text[position:end]) <= budget * _MIN_FILL:
                return position
    return end


def split_text(text: str, budget: int, count: Counter, *, overlap: int = 0) -> list[Part]:
    """Parts of ``text`` of at most ``budget`` tokens each (by ``count``), overlapping by up to ``overlap`` characters.

    A text that fits is one part. Parts cover the text in order; with ``overlap=0`` they are contiguous.
    """
    if budget < 1:
        raise ValueError(f"budget must be at least 1 token, not {budget}")
    boundaries = _Boundaries(text)
    parts: list[Part] = []
    start, previous_end = 0, 0
    while True:
        end = _cut(text, start, budget, count, boundaries)
        if end <= previous_end and start < previous_end:  # the overlap left no room for new text: drop it
            start = previous_end
            end = _cut(text, start, budget, count, boundaries)
        parts.append(Part(index=len(parts), start=start, end=end, text=text[start:end]))
        if end >= len(text):
            return parts
        start, previous_end = _next_start(end, start, overlap, budget, count, boundaries), end


def ratio_counter(chars_per_token: float) -> Counter:
    """A counter that estimates tokens as characters divided by ``chars_per_token``, rounded up."""
    if chars_per_token <= 0:
        raise ValueError("chars_per_token must be positive")
    return lambda piece: math.ceil(len(piece) / chars_per_token)


_FIT_ROUNDS = 6
_DENSITY_SLACK = 0.9


async def split_to_fit(text: str, budget: int, counter: TokenCounter, *, overlap: int = 0) -> list[Part]:
    """Parts that fit ``budget`` by ``counter`` (a real tokenizer or an estimate), with few counter calls.

    The whole text is counted once; the split then estimates with the text's own characters per token, and the
    parts are counted in one batch. If a part is still over budget (a denser stretch of text), the split is redone
    with the densest ratio seen, a little tighter, until every part fits.
    """
    (total,) = await counter.count([text])
    if total <= budget:
        return [Part(index=0, start=0, end=len(text), text=text)]
    chars_per_token = len(text) / total
    for _ in range(_FIT_ROUNDS):
        parts = split_text(text, budget, ratio_counter(chars_per_token), overlap=overlap)
        counts = await counter.count([part.text for part in parts])
        over = [(part, tokens) for part, tokens in zip(parts, counts, strict=True) if tokens > budget]
        if not over:
            return parts
        densest = min(len(part.text) / tokens for part, tokens in over)
        chars_per_token = min(chars_per_token, densest) * _DENSITY_SLACK
    raise SplitError(f"no split of a {len(text)}-character text fits {budget} tokens after {_FIT_ROUNDS} rounds")
