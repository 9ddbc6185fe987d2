"""Per-schema presence rules: which fields must hold a (grounded) value before an answer counts as non-empty.

Grounding asks "is this value in the text?"; it never asks "is this document about the subject at all?". A weather
question holds a place, which a small model will happily call a receipt's merchant, and the place is in the text.
A schema says what makes a real record with the root keyword ``x-required-for-presence``: a list of alternatives,
each a property name or a list of names that must all be present. A receipt, say::

    "x-required-for-presence": ["total", ["merchant", "date"]]

is present when it has a total, or a merchant and a date. A field is present when it holds a non-null value and,
when grounding ran, at least one of its values was found in the text as more than one character (a field of
booleans only: when it is non-null). A lone digit or letter is in almost every text: finding one proves nothing.
No keyword: every answer with a value is present, as before. The keyword is ours: it is stripped from the schema
sent to the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from extractor.extraction.grounding import FieldGrounding, iter_leaves
from extractor.pointer import child_pointer

__all__ = ["PRESENCE_KEYWORD", "describe_rule", "presence_rule", "presence_rule_problem", "unmet_presence"]

PRESENCE_KEYWORD = "x-required-for-presence"

Rule = tuple[tuple[str, ...], ...]


def presence_rule_problem(schema: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(pointer, sentence)`` saying what is wrong with the schema's presence rule, or None when it is usable."""
    if PRESENCE_KEYWORD not in schema:
        return None
    pointer = f"/{PRESENCE_KEYWORD}"
    raw = schema[PRESENCE_KEYWORD]
    usage = f'{PRESENCE_KEYWORD} is a list of property names or lists of names, e.g. ["total", ["merchant", "date"]]'
    if not isinstance(raw, list) or not raw:
        return pointer, usage
    declared = schema.get("properties")
    properties: Mapping[str, Any] = declared if isinstance(declared, Mapping) else {}
    for index, alternative in enumerate(raw):
        names = [alternative] if isinstance(alternative, str) else alternative
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            return f"{pointer}/{index}", usage
        unknown = [name for name in names if name not in properties]
        if unknown:
            return f"{pointer}/{index}", f"{PRESENCE_KEYWORD} names {unknown[0]!r}, which is not a property of the root"
    return None


def presence_rule(schema: Mapping[str, Any]) -> Rule:
    """The schema's alternatives as tuples of names (empty: no rule). Call on a checked schema."""
    raw = schema.get(PRESENCE_KEYWORD)
    if not isinstance(raw, list):
        return ()
    return tuple((item,) if isinstance(item, str) else tuple(item) for item in raw)


def describe_rule(rule: Rule) -> str:
    """``total, or merchant and date``: the rule as a reader would say it."""
    return ", or ".join(" and ".join(names) for names in rule)


def _present(name: str, data: Mapping[str, Any], fields: Mapping[str, FieldGrounding] | None) -> bool:
    pointer = child_pointer("", name)
    leaves = [(p, v) for p, v in iter_leaves(data.get(name), pointer) if v is not None]
    if not leaves:
        return False
    if fields is None:
        return True
    checks = [fields.get(p) for p, _ in leaves]
    if all(g is None or g.grounded is None for g in checks):  # booleans: grounding does not apply
        return True
    return any(g is not None and g.grounded is True and _evidence(g) for g in checks)


def _evidence(grounding: FieldGrounding) -> bool:
    """Found as more than one character (a value found without a span counts)."""
    return grounding.span is None or grounding.span[1] - grounding.span[0] > 1


def unmet_presence(rule: Sequence[Sequence[str]], data: Mapping[str, Any], fields: Mapping[str, Any] | None) -> bool:
    """True when ``rule`` is set and no alternative of it has all its fields present in ``data``."""
    if not rule:
        return False
    return not any(all(_present(name, data, fields) for name in names) for names in rule)
