"""The one decision "is there anything here?", taken once per document, after grounding (and after the merge of a
long document's parts), with its reason.

In order:

1. ``min_confidence`` nulls the values below it (``confidence.apply_min_confidence``);
2. the empty rule (``empty.empty_reason``): no value left (``no_values``) or none found in the text
   (``not_grounded``);
3. the schema's presence rule (``presence``): values that do not make a record of this kind (``no_presence``).

Of the candidates in issue 13 this is the one kept: a presence flag decoded first, a yes/no call and an empty
few-shot example were not measured to help the bundled model (docs/benchmarks.md, "Empty answers").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from extractor.extraction.confidence import apply_min_confidence
from extractor.extraction.empty import empty_reason
from extractor.extraction.grounding import FieldGrounding, iter_leaves
from extractor.extraction.presence import describe_rule, presence_rule, unmet_presence

__all__ = ["Decision", "decide"]

_INDEX = re.compile(r"/\d+(?=/|$)")


@dataclass(frozen=True, slots=True)
class Decision:
    """The data and fields kept, and why the answer is empty (None: it is not)."""

    data: dict[str, Any] | None
    fields: dict[str, FieldGrounding] | None
    reason: str | None


def decide(
    schema: Mapping[str, Any],
    data: dict[str, Any] | None,
    fields: dict[str, FieldGrounding] | None,
    repairs: list[str],
    *,
    min_confidence: float | None = None,
) -> Decision:
    """Apply the steps above to a valid, grounded answer; what they change is logged in ``repairs``."""
    if min_confidence and fields:
        kept, dropped = apply_min_confidence(data, fields, min_confidence)
        if dropped:
            repairs.extend(dropped)
            fields = carry_fields(fields, data, kept)
            data = kept
    reason = empty_reason(data, fields)
    rule = presence_rule(schema)
    if reason is None and data is not None and unmet_presence(rule, data, fields):
        reason = "no_presence"
        repairs.append(f"empty: an answer of this schema needs {describe_rule(rule)} found in the text")
    return Decision(data, fields, reason)


def carry_fields(fields: Mapping[str, FieldGrounding], before: Any, after: Any) -> dict[str, FieldGrounding]:
    """``fields`` re-keyed for ``after``, a copy of ``before`` with some leaves nulled or list items removed."""
    old = [(pointer, value) for pointer, value in iter_leaves(before) if pointer in fields]
    used: set[str] = set()
    carried: dict[str, FieldGrounding] = {}
    for pointer, value in iter_leaves(after):
        if value is None:
            continue
        shape = _INDEX.sub("/#", pointer)
        for old_pointer, old_value in old:
            if old_pointer not in used and _INDEX.sub("/#", old_pointer) == shape and old_value == value:
                used.add(old_pointer)
                carried[pointer] = fields[old_pointer]
                break
    return carried
