"""Grounding: locate every extracted leaf value in the source text and report its character span.

Each leaf is looked up exact first, then normalised (case, whitespace, punctuation, accents, ``&``/``and``,
number formats, date formats). Spans are ``[start, end)`` offsets into the original text, so
``text[start:end]`` is the evidence. The normalised views of the text are built at most once per call.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache
from itertools import pairwise
from typing import Annotated, Any, NamedTuple

from pydantic import Field

from extractor.months import MONTHS
from extractor.pointer import child_pointer
from extractor.vocabulary import MatchKind

__all__ = [
    "FieldGrounding",
    "apply_strict",
    "ground",
    "iter_leaves",
]

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class FieldGrounding:
    """Where one leaf was found: ``grounded`` is None when the check does not apply (booleans, blank strings).

    The response's ``fields`` member holds these as they are (pydantic reads the dataclass)."""

    span: Annotated[Span | None, Field(description="[start, end) character offsets of the value in the text.")]
    grounded: Annotated[bool | None, Field(description="Found in the text; null where it cannot apply (booleans).")]
    match: MatchKind | None
    confidence: Annotated[
        float | None,
        Field(description="How sure the value is, in [0, 1]: token probabilities, grounding and sample agreement."),
    ] = None

    def to_json(self) -> dict[str, Any]:
        """The wire form used in the response's ``fields`` member."""
        span = list(self.span) if self.span is not None else None
        wire = {"span": span, "grounded": self.grounded, "match": self.match}
        return wire if self.confidence is None else {**wire, "confidence": self.confidence}


_NOT_APPLICABLE = FieldGrounding(span=None, grounded=None, match=None)
_NOT_FOUND = FieldGrounding(span=None, grounded=False, match=None)


# --- walking the data -------------------------------------------------------------------------------------------


def iter_leaves(data: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(json_pointer, value)`` for every scalar leaf of ``data`` (nulls included), in document order."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from iter_leaves(value, child_pointer(pointer, key))
    elif isinstance(data, list | tuple):
        for position, value in enumerate(data):
            yield from iter_leaves(value, child_pointer(pointer, position))
    else:
        yield pointer, data


# --- normalised text matching ------------------------------------------------------------------------------------

# The text is folded once per call (lower case, accents off) keeping every character in place, so a match in the
# folded text is a span of the original. A value becomes a small regex over its tokens (letter/digit runs): any run
# of punctuation or whitespace may separate tokens ("ACME Corp." for "Acme Corp"), "and" may be "&", and short
# letter tokens are read as abbreviations that may carry inner punctuation or touch each other ("L.P." for "LP",
# "RJ" for "R. J.").
_TOKEN_RE = re.compile(r"[^\W_]+|&")
_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")
_ABBREVIATION_LENGTH = 4


@lru_cache(maxsize=4096)
def _base_letter(char: str) -> str:
    """Map "é" to "e": the first character of the canonical decomposition when the rest are combining marks."""
    decomposed = unicodedata.normalize("NFD", char)
    if len(decomposed) > 1 and all(unicodedata.combining(mark) for mark in decomposed[1:]):
        return decomposed[0]
    return char


def _fold(text: str) -> str:
    """Lower-case and strip accents without moving any character ("İ" is the one letter whose lower case grows)."""
    folded = text.replace("\u0130", "i").lower()
    if len(folded) != len(text):
        return text
    if folded.isascii():
        return folded
    return _NON_ASCII_RE.sub(lambda match: _base_letter(match.group()), folded)


def _is_abbreviation(token: str) -> bool:
    return token.isalpha() and len(token) <= _ABBREVIATION_LENGTH


def _token_pattern(token: str) -> str:
    if token in ("and", "&"):
        return "(?:and|&)"
    if _is_abbreviation(token):
        return r"[^\w\s]?".join(token)  # letters need no escaping
    return re.escape(token)


def _gap_pattern(left: str, right: str) -> str:
    return r"[\W_]*" if _is_abbreviation(left) and _is_abbreviation(right) else r"[\W_]+"


@lru_cache(maxsize=1024)
def _value_tokens(value: str) -> tuple[str, ...]:
    return tuple(_TOKEN_RE.findall(_fold(value)))


@lru_cache(maxsize=1024)
def _tokens_pattern(tokens: tuple[str, ...]) -> re.Pattern[str]:
    """The regex for a value's tokens in the folded text."""
    parts = [_token_pattern(tokens[0])]
    for left, right in pairwise(tokens):
        parts += [_gap_pattern(left, right), _token_pattern(right)]
    return re.compile("".join(parts))


# --- numbers -----------------------------------------------------------------------------------------------------

# A number is a whole token: never glued to a letter, digit, "." or "," before it ("5" is not in "15" or "A5"), and
# runs of digits are read whole ("3" is not in "2023" or "3.2"). One cheap scan finds the runs (it starts at a digit,
# so the regex engine skips ahead fast); the few runs found are checked in Python.
_NUMBER_RUN_RE = re.compile(r"\d[\d,.'\u2019]*(?:[ \u00a0\u202f]\d[\d,.'\u2019]*)*")
_NUMBER_PIECE_RE = re.compile(r"[^ \u00a0\u202f]+")
_NUMBER_RE = re.compile(r"\d{1,3}(?:[,.'\u2019]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?")
_SPACED_NUMBER_RE = re.compile(r"\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:[.,]\d+)?")
_TRAILING = ",.'\u2019"
_GROUPING = str.maketrans("", "", "'\u2019 \u00a0\u202f")
_MINUS = "-\u2212"


def _glued(text: str, position: int) -> bool:
    """True when the character before ``position`` would make a number start mid-token."""
    return position > 0 and (text[position - 1].isalnum() or text[position - 1] in "_.,")


def _number_key(number: float) -> float | None:
    """Comparison key: rounding absorbs float noise such as 0.1 + 0.2."""
    try:
        return round(float(number), 9)
    except OverflowError:
        return None


def _number_readings(token: str) -> set[float]:
    """Every value a written number can mean: "1,234" is 1234 (grouping) or 1.234 (decimal comma)."""
    sign = -1.0 if token[0] in _MINUS else 1.0
    digits = token.lstrip(_MINUS).translate(_GROUPING)
    separators = [char for char in digits if char in ".,"]
    if not separators:
        return {sign * float(digits)}
    last = separators[-1]
    head, _, tail = digits.rpartition(last)
    readings: set[float] = set()
    if separators.count(last) == 1:
        readings.add(sign * float(f"{head.replace(',', '').replace('.', '')}.{tail}"))
    if len(tail) == 3 and len(set(separators)) == 1 and not digits.startswith("0"):
        readings.add(sign * float(digits.replace(last, "")))
    return readings


class _NumberToken(NamedTuple):  # a tuple: built for every number of every text, and ordered by span
    span: Span
    written: str


def _number_tokens(text: str) -> dict[str, list[Span]]:
    """Every whole-token number in the text (a leading minus sign included), grouped by how it is written."""
    found: dict[str, list[Span]] = {}

    def add(start: int, written: str, pattern: re.Pattern[str]) -> None:
        written = written.rstrip(_TRAILING)  # "5." ending a sentence, "2023," in a list
        if _glued(text, start) or not pattern.fullmatch(written):
            return
        end = start + len(written)
        if start > 0 and text[start - 1] in _MINUS and not _glued(text, start - 1):
            start -= 1
        found.setdefault(text[start:end], []).append((start, end))

    for run in _NUMBER_RUN_RE.finditer(text):
        pieces = list(_NUMBER_PIECE_RE.finditer(run.group()))
        for piece in pieces:
            add(run.start() + piece.start(), piece.group(), _NUMBER_RE)
        if len(pieces) > 1:
            add(run.start(), run.group(), _SPACED_NUMBER_RE)  # "1 234,50"
    return found


def _index_numbers(text: str) -> dict[float, list[_NumberToken]]:
    index: dict[float, list[_NumberToken]] = {}
    for written, spans in _number_tokens(text).items():
        for reading in _number_readings(written):
            index.setdefault(round(reading, 9), []).extend(_NumberToken(span, written) for span in spans)
    return {key: sorted(tokens) for key, tokens in index.items()}


# --- dates -------------------------------------------------------------------------------------------------------

_MONTHS = MONTHS
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})(?!\d)"
_ISO_VALUE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
_DATE_WINDOW = (40, 16)  # characters before and after a year that can belong to the same written date


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _full_year(year: str) -> int:
    """Two-digit years pivot at 70: "24" is 2024, "99" is 1999."""
    number = int(year)
    if len(year) > 2:
        return number
    return number + (2000 if number < 70 else 1900)


def _named_month(match: re.Match[str]) -> Iterable[date | None]:
    return (_safe_date(int(match["year"]), _MONTHS[match["month"].lower()], int(match["day"])),)


def _year_first(match: re.Match[str]) -> Iterable[date | None]:
    return (_safe_date(int(match["year"]), int(match["month"]), int(match["day"])),)


def _numeric(match: re.Match[str]) -> Iterable[date | None]:
    """Read "05/03/2024" as both 5 March and May 3: the value being grounded picks."""
    year, first, second = _full_year(match["year"]), int(match["first"]), int(match["second"])
    return _safe_date(year, second, first), _safe_date(year, first, second)


_DATE_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], Iterable[date | None]]], ...] = (
    (re.compile(r"(?<!\d)(?P<year>\d{4})([-/.])(?P<month>\d{1,2})\2(?P<day>\d{1,2})(?!\d)"), _year_first),
    (re.compile(r"(?<![\d/.-])(?P<first>\d{1,2})([-/.])(?P<second>\d{1,2})\2(?P<year>\d{4}|\d{2})(?!\d)"), _numeric),
    (re.compile(rf"\b{_MONTH}\s+{_DAY}(?:\s*,\s*|\s+){_YEAR}", re.IGNORECASE), _named_month),
    (re.compile(rf"\b{_DAY}(?:\s+day)?(?:\s+of)?[\s-]+{_MONTH}[\s,-]+{_YEAR}", re.IGNORECASE), _named_month),
)


def _find_date(text: str, wanted: date) -> list[Span]:
    """Spans of every written form of ``wanted``.

    Every form contains the year, so only short windows around the year's occurrences are parsed: this keeps
    a long document cheap however many dates it holds.
    """
    before, after = _DATE_WINDOW
    spans: set[Span] = set()
    for year in {f"{wanted.year:04d}", f"{wanted.year % 100:02d}"}:
        for start, end in _occurrences(text, year):
            if (start > 0 and text[start - 1].isdigit()) or (end < len(text) and text[end].isdigit()):
                continue
            for pattern, read in _DATE_PATTERNS:
                for match in pattern.finditer(text, max(0, start - before), end + after):
                    if wanted in read(match):
                        spans.add(match.span())
    return sorted(spans)


# --- the text index, built lazily once per call ------------------------------------------------------------------


def _occurrences(text: str, needle: str) -> Iterator[Span]:
    position = text.find(needle)
    while position != -1:
        yield position, position + len(needle)
        position = text.find(needle, position + 1)


class _TextIndex:
    """The source text plus its normalised views; each view is computed on first use only."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._dates: dict[date, list[Span]] = {}

    @cached_property
    def folded(self) -> str:
        return _fold(self.text)

    @cached_property
    def numbers(self) -> dict[float, list[_NumberToken]]:
        return _index_numbers(self.text)

    def dates(self, wanted: date) -> list[Span]:
        if wanted not in self._dates:
            self._dates[wanted] = _find_date(self.text, wanted)
        return self._dates[wanted]


# --- lookup stages -----------------------------------------------------------------------------------------------


def _at_boundaries(text: str, start: int, end: int) -> bool:
    """True when the span neither starts nor ends in the middle of a word."""
    glued_left = start > 0 and text[start].isalnum() and text[start - 1].isalnum()
    glued_right = end < len(text) and text[end - 1].isalnum() and text[end].isalnum()
    return not (glued_left or glued_right)


def _exact_word(index: _TextIndex, value: str) -> Iterator[Span]:
    return (span for span in _occurrences(index.text, value) if _at_boundaries(index.text, *span))


def _exact_string(index: _TextIndex, value: str) -> Iterator[Span]:
    """Word-aligned occurrences; occurrences inside longer words only when there is no aligned one."""
    aligned = False
    for span in _exact_word(index, value):
        aligned = True
        yield span
    if not aligned:
        yield from _occurrences(index.text, value)


def _date_string(index: _TextIndex, value: str) -> Iterable[Span]:
    match = _ISO_VALUE_RE.fullmatch(value)
    if match is None:
        return ()
    found = _safe_date(int(match[1]), int(match[2]), int(match[3]))
    return index.dates(found) if found is not None else ()


def _numbers_equal(index: _TextIndex, number: float) -> list[_NumberToken]:
    key = _number_key(number)
    return index.numbers.get(key, []) if key is not None else []


def _numeric_string(index: _TextIndex, value: str) -> Iterator[Span]:
    unsigned = value.lstrip(_MINUS)
    if not (_NUMBER_RE.fullmatch(unsigned) or _SPACED_NUMBER_RE.fullmatch(unsigned)):
        return
    for reading in sorted(_number_readings(value)):
        yield from (token.span for token in _numbers_equal(index, reading))


def _folded_tokens(index: _TextIndex, value: str) -> Iterator[Span]:
    tokens = _value_tokens(value)
    if all(token == "&" for token in tokens):
        return
    # Compiling is the costly step: skip it when a token the pattern needs verbatim is not in the text at all.
    literal = (token for token in tokens if token != "&" and not _is_abbreviation(token))
    if not all(token in index.folded for token in literal):
        return
    for match in _tokens_pattern(tokens).finditer(index.folded):
        if _at_boundaries(index.text, *match.span()):
            yield match.span()


def _written(number: float) -> str:
    return repr(number) if isinstance(number, float) else str(number)


def _number_exact(index: _TextIndex, number: float) -> Iterator[Span]:
    written = _written(number)
    return (token.span for token in _numbers_equal(index, number) if token.written == written)


def _number_normalized(index: _TextIndex, number: float) -> Iterator[Span]:
    written = _written(number)
    return (token.span for token in _numbers_equal(index, number) if token.written != written)


_Stage = Callable[[_TextIndex, Any], Iterable[Span]]

# Stages per kind of leaf, tried in order; the first stage that finds anything decides. Kinds missing here
# (booleans, blank strings) cannot be checked against the text.
_STAGES: dict[str, tuple[tuple[MatchKind, _Stage], ...]] = {
    "char": ((MatchKind.EXACT, _exact_word),),
    "string": (
        (MatchKind.EXACT, _exact_string),
        (MatchKind.NORMALIZED, _date_string),
        (MatchKind.NORMALIZED, _numeric_string),
        (MatchKind.NORMALIZED, _folded_tokens),
    ),
    "number": ((MatchKind.EXACT, _number_exact), (MatchKind.NORMALIZED, _number_normalized)),
}


def _classify(value: Any) -> tuple[str, Any]:
    """The leaf's kind (a key of ``_STAGES``) and the form of it that is searched for."""
    if isinstance(value, bool):
        return "boolean", value
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return "number", value
    if isinstance(value, str):
        needle = value.strip()
        return {0: "blank", 1: "char"}.get(len(needle), "string"), needle
    return "other", value


def _locate(index: _TextIndex, value: Any, used: set[Span]) -> FieldGrounding:
    """First stage with a hit wins; within it, prefer a span no earlier leaf took (repeated list values)."""
    kind, needle = _classify(value)
    stages = _STAGES.get(kind)
    if stages is None:
        return _NOT_APPLICABLE
    for match, stage in stages:
        first: Span | None = None
        for span in stage(index, needle):
            if span not in used:
                return FieldGrounding(span=span, grounded=True, match=match)
            first = first or span
        if first is not None:
            return FieldGrounding(span=first, grounded=True, match=match)
    return _NOT_FOUND


def ground(data: Any, text: str) -> dict[str, FieldGrounding]:
    """Locate every non-null leaf of ``data`` in ``text``; keys are JSON Pointers ("/items/0/name")."""
    index = _TextIndex(text)
    used: set[Span] = set()
    fields: dict[str, FieldGrounding] = {}
    for pointer, value in iter_leaves(data):
        if value is None:
            continue
        grounding = _locate(index, value, used)
        if grounding.span is not None:
            used.add(grounding.span)
        fields[pointer] = grounding
    return fields


# --- strict mode -------------------------------------------------------------------------------------------------


def _preview(value: Any, limit: int = 60) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= limit else f"{shown[: limit - 1]}…"


def _ungrounded(fields: Mapping[str, FieldGrounding], pointer: str) -> bool:
    grounding = fields.get(pointer)
    return grounding is not None and grounding.grounded is False


def _null_ungrounded(data: Any, pointer: str, fields: Mapping[str, FieldGrounding], log: list[str]) -> Any:
    if isinstance(data, Mapping):
        return {key: _null_ungrounded(value, child_pointer(pointer, key), fields, log) for key, value in data.items()}
    if isinstance(data, list | tuple):
        kept = []
        for index, value in enumerate(data):
            path = child_pointer(pointer, index)
            if _ungrounded(fields, path):  # a null list item would break `items`: the item goes instead
                log.append(f"{path}: {_preview(value)} not found in text, removed from the list")
            else:
                kept.append(_null_ungrounded(value, path, fields, log))
        return kept
    grounding = fields.get(pointer)
    if grounding is None or grounding.grounded is not False:
        return data
    log.append(f"{pointer}: {_preview(data)} not found in text, set to null")
    return None


def apply_strict(data: Any, fields: Mapping[str, FieldGrounding]) -> tuple[Any, tuple[str, ...]]:
    """A copy of ``data`` where every leaf not found in the text is null (a list item is removed), one log line each.

    Paths after a removed list item shift: ground the result again for its spans.
    """
    log: list[str] = []
    return _null_ungrounded(data, "", fields, log), tuple(log)
