"""Declared value normalisation for evaluation: two values match when their normal forms are equal.

The rules, applied to predicted and gold values alike:

- ``None``, blank strings and empty lists or objects are all "absent" and normalise to ``None``.
- Booleans stay booleans; other numbers become ``float``.
- A string that is a date in a common format becomes ISO ``YYYY-MM-DD``. Slashed dates are read
  month first (``04/18/2001``), dotted dates day first (``18.04.2001``).
- A string that is an amount (``"$1,234.50"``, ``"1234.5"``, ``"EUR 12"``) becomes a ``float``.
- Any other string is casefolded, ``_`` and punctuation become spaces and whitespace is collapsed,
  so surrounding punctuation disappears and ``"NIKE, Inc."`` meets the Kleister-NDA gold ``"Nike Inc."``
  and ``"2 years"`` meets ``"2_years"``.
- Lists are normalised element-wise and sorted (by type name, then value), so they compare as multisets.
- Objects are normalised value-wise.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from extractor.months import MONTHS

__all__ = ["normalize_date", "normalize_value", "parse_amount", "values_match"]

_MONTHS = MONTHS
_MONTH = r"(?P<month_name>[a-z]+)\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})"
_TIME = r"(?:[t ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?"

# Each pattern is matched against the whole casefolded, trimmed string.
_DATE_PATTERNS = tuple(
    re.compile(pattern)
    for pattern in (
        rf"{_YEAR}-(?P<month>\d{{1,2}})-(?P<day>\d{{1,2}}){_TIME}",  # 2001-04-18, 2001-04-18T10:00:00Z
        rf"{_YEAR}/(?P<month>\d{{1,2}})/(?P<day>\d{{1,2}})",  # 2001/04/18
        rf"(?P<month>\d{{1,2}})/(?P<day>\d{{1,2}})/{_YEAR}",  # 04/18/2001 (US, month first)
        rf"(?P<day>\d{{1,2}})\.(?P<month>\d{{1,2}})\.{_YEAR}",  # 18.04.2001 (day first)
        rf"{_MONTH}\s+{_DAY},?\s+{_YEAR}",  # April 18, 2001 / Apr. 18th 2001
        rf"{_DAY}(?:\s+day)?(?:\s+of)?\s+{_MONTH},?\s+{_YEAR}",  # 18 April 2001 / 18th day of April, 2001
    )
)

_AMOUNT = re.compile(
    r"(?P<sign>[-+]?)\s*(?:[$€£¥]|usd|eur|gbp)?\s*(?P<sign2>[-+]?)"
    r"(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"\s*(?:usd|eur|gbp|[$€£¥])?"
)


def normalize_date(text: str) -> str | None:
    """Return ``text`` as ISO ``YYYY-MM-DD`` when it is a date in one of the declared formats, else ``None``."""
    candidate = " ".join(text.casefold().split())
    for pattern in _DATE_PATTERNS:
        match = pattern.fullmatch(candidate)
        if match is None:
            continue
        parts = match.groupdict()
        month = _MONTHS.get(parts["month_name"]) if parts.get("month_name") else int(parts["month"])
        if month is None:
            continue
        try:
            return date(int(parts["year"]), month, int(parts["day"])).isoformat()
        except ValueError:
            continue
    return None


def parse_amount(text: str) -> float | None:
    """Return the amount ``text`` states (optional currency, sign, thousands commas) as a float, else ``None``."""
    match = _AMOUNT.fullmatch(text.casefold().strip())
    if match is None or (match["sign"] and match["sign2"]):
        return None
    value = float(match["number"].replace(",", ""))
    return -value if "-" in (match["sign"] + match["sign2"]) else value


def _normalize_text(text: str) -> str:
    """Casefold, treat ``_`` and punctuation as spaces and collapse whitespace."""
    spaced = "".join(" " if char == "_" or unicodedata.category(char).startswith("P") else char for char in text)
    return " ".join(spaced.casefold().split())


def _normalize_string(text: str) -> Any:
    as_date = normalize_date(text)
    if as_date is not None:
        return as_date
    as_amount = parse_amount(text)
    if as_amount is not None:
        return as_amount
    return _normalize_text(text) or None


def _sort_key(value: Any) -> str:
    return json.dumps([type(value).__name__, value], sort_keys=True, default=str)


def _normalize_list(values: list[Any] | tuple[Any, ...]) -> Any:
    items = [normalize_value(item) for item in values]
    return sorted(items, key=_sort_key) or None


def _normalize_mapping(values: Mapping[str, Any]) -> Any:
    return {key: normalize_value(item) for key, item in values.items()} or None


def _normalize_number(value: float) -> float:
    return float(value)


def _keep(value: Any) -> Any:
    return value


# Checked in order: bool before int because bool is an int.
_NORMALIZERS: tuple[tuple[type | tuple[type, ...], Callable[[Any], Any]], ...] = (
    (bool, _keep),
    ((int, float), _normalize_number),
    (str, _normalize_string),
    ((list, tuple), _normalize_list),
    (Mapping, _normalize_mapping),
)


def normalize_value(value: Any) -> Any:
    """Return the declared normal form of ``value`` (see the module docstring); ``None`` means absent."""
    if value is None:
        return None
    for kind, normalizer in _NORMALIZERS:
        if isinstance(value, kind):
            return normalizer(value)
    return value


def values_match(pred: Any, gold: Any) -> bool:
    """True when ``pred`` and ``gold`` have equal normal forms (two absent values match; ``True`` is not ``1``)."""
    return _canonical(normalize_value(pred)) == _canonical(normalize_value(gold))


def _canonical(value: Any) -> str:
    # JSON text tells booleans from numbers (``true`` vs ``1.0``), which Python's ``==`` does not.
    return json.dumps(value, sort_keys=True, default=str)
