"""The "empty" rule: when an extraction result holds nothing that the document supports.

A result is **empty** when either

1. it holds no value at all: every leaf is null, an empty (or whitespace-only) string, or an empty list or
   object; or
2. grounding ran and not one of its string or number values was found in the document text.

Booleans cannot be checked against the text, so a result whose only values are booleans is judged by rule 1
alone. A leaf that grounding did not report on counts as not found. An empty result is a success
(``status: "empty"``, ``data: null``), distinct from a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extractor.extraction.grounding import FieldGrounding, iter_leaves

__all__ = ["EMPTY_REASONS", "empty_reason", "is_empty"]

EMPTY_REASONS = ("no_values", "not_grounded")
"""Rule 1 and rule 2 above: what ``empty_reason`` answers for an empty result."""


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _is_groundable(value: Any) -> bool:
    """Strings and numbers can be looked up in the text; booleans cannot."""
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def is_empty(data: Any, fields: Mapping[str, FieldGrounding] | None) -> bool:
    """Apply the rule above; ``fields`` is the output of ``grounding.ground`` or None when grounding was off."""
    return empty_reason(data, fields) is not None


def empty_reason(data: Any, fields: Mapping[str, FieldGrounding] | None) -> str | None:
    """Which rule makes the result empty (``no_values``, ``not_grounded``), or None when it is not."""
    values = [(pointer, value) for pointer, value in iter_leaves(data) if not _is_blank(value)]
    if not values:
        return "no_values"
    if fields is None:
        return None
    groundable = [pointer for pointer, value in values if _is_groundable(value)]
    if not groundable or any(_found(fields.get(pointer)) for pointer in groundable):
        return None
    return "not_grounded"


def _found(grounding: FieldGrounding | None) -> bool:
    return grounding is not None and grounding.grounded is True
