"""Merge the results of a document's parts into one object, field by field, by the rules the schema declares.

A property may declare its rule with the ``x-merge`` keyword. The rules, and the kinds of value each applies to:

- ``first`` (scalars' default): the first value in document order; a value found in the text (or one that cannot be
  checked, such as a boolean) is preferred over one grounding could not find. When parts hold different values,
  every distinct candidate is reported under ``conflicts`` (the kept one first). On an object or an array,
  ``first`` takes the whole value from one part (atomic), so its members stay consistent.
- ``union`` (arrays' default): the items of every part in document order, each normalised value once. Items are
  kept whole: an array of objects is deduplicated by the normalised object, and ``x-merge`` inside items is unused.
- ``max``, ``min``: the largest or smallest number or string (ISO dates compare as strings).
- ``sum``: the total of the numbers; the same evidence (the same span of the original text, as the overlap
  between parts gives twice) is counted once.
- ``longest``: the longest string, or the array with most items.
- ``vote``: the most frequent normalised value (the same evidence counted once); a tie goes to the earliest.

An object without a rule merges property by property (recursively); with ``first`` it is taken whole. A rule that
does not fit the values found (``sum`` over strings) falls back to ``first``. Values are compared by
``evaluation.normalize.normalize_value``: the same normal forms the evaluation scores with.

Spans in each part's grounding are offsets into the part; the merged ``fields`` hold them as offsets into the
original text (the part's start added). The merged object is empty by the usual rule (``empty.empty_reason``), so
it is empty only when no part found a grounded value. Validating the merged object against the schema (a
``union`` can exceed ``maxItems``, a ``sum`` a ``maximum``) is the sequencer's job, as for a single call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from extractor.evaluation.normalize import normalize_value
from extractor.extraction.empty import empty_reason
from extractor.extraction.grounding import FieldGrounding, iter_leaves
from extractor.extraction.split import Part
from extractor.pointer import SchemaDocument, child_pointer, iter_subschemas

__all__ = [
    "MERGE_KEYWORD",
    "MERGE_RULES",
    "Candidate",
    "MergeRule",
    "MergedResult",
    "PartResult",
    "merge_results",
    "merge_rule_problem",
]

MergeRule = Literal["first", "union", "max", "min", "sum", "longest", "vote"]
MERGE_RULES: frozenset[str] = frozenset(get_args(MergeRule))
MERGE_KEYWORD = "x-merge"

Span = tuple[int, int]

# The rules that make sense for each JSON type; a rule outside its type's set is refused at registration.
_RULES_FOR_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"first", "max", "min", "longest", "vote"}),
    "number": frozenset({"first", "max", "min", "sum", "vote"}),
    "integer": frozenset({"first", "max", "min", "sum", "vote"}),
    "boolean": frozenset({"first", "vote"}),
    "array": frozenset({"union", "first", "longest"}),
    "object": frozenset({"first"}),
}


# --- inputs and outputs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartResult:
    """One part's extraction: its data (None when the part was empty) and grounding (None when grounding was off),
    with spans into the part's text."""

    part: Part
    data: Mapping[str, Any] | None
    fields: Mapping[str, FieldGrounding] | None


@dataclass(frozen=True)
class Candidate:
    """One part's value for a field the parts disagree on, with its span in the original text."""

    value: Any
    part: int
    span: Span | None
    grounded: bool | None

    def to_json(self) -> dict[str, Any]:
        span = list(self.span) if self.span is not None else None
        return {"value": self.value, "part": self.part, "span": span, "grounded": self.grounded}


@dataclass(frozen=True)
class MergedResult:
    """The merged object (None when no part held a value), its grounding in the original, and the conflicts."""

    data: dict[str, Any] | None
    fields: dict[str, FieldGrounding] | None
    conflicts: dict[str, list[Candidate]] = field(default_factory=dict)

    @property
    def empty_reason(self) -> str | None:
        """Why the whole document is empty (``empty.EMPTY_REASONS``), or None when it is not."""
        return empty_reason(self.data, self.fields)


# --- registration check ------------------------------------------------------------------------------------------


def _declared_type(node: Mapping[str, Any]) -> str | None:
    """The one non-null JSON type a schema declares, else None."""
    kind = node.get("type")
    kinds = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else []
    named = [k for k in kinds if k != "null"]
    return named[0] if len(named) == 1 else None


def merge_rule_problem(schema: Any, pointer: str = "") -> tuple[str, str] | None:
    """The first ``x-merge`` that is not a known rule, or not one for its declared type: (pointer, message)."""
    if not isinstance(schema, Mapping):
        return None
    if MERGE_KEYWORD in schema:
        rule, where = schema[MERGE_KEYWORD], child_pointer(pointer, MERGE_KEYWORD)
        if not isinstance(rule, str) or rule not in MERGE_RULES:
            return where, f"{MERGE_KEYWORD} must be one of {', '.join(sorted(MERGE_RULES))}, not {json.dumps(rule)}"
        kind = _declared_type(schema)
        if kind in _RULES_FOR_TYPE and rule not in _RULES_FOR_TYPE[kind]:
            allowed = ", ".join(sorted(_RULES_FOR_TYPE[kind]))
            return where, f"{MERGE_KEYWORD} {rule!r} does not apply to a {kind}; use one of {allowed}"
    for _, relative, sub in iter_subschemas(schema):
        if (problem := merge_rule_problem(sub, pointer + relative)) is not None:
            return problem
    return None


# --- reading the schema at merge time ----------------------------------------------------------------------------


_RESOLVE_DEPTH = 16


class _Schema:
    """Looks up a property's subschema and rule, following local ``$ref`` and a nullable ``anyOf``."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self._document = SchemaDocument(root)

    def resolve(self, node: Any, depth: int = 0) -> dict[str, Any]:
        """``node`` with a local ``$ref`` and a single non-null ``anyOf``/``oneOf`` branch folded in (the node's own
        keywords, ``x-merge`` among them, win over the target's)."""
        if not isinstance(node, Mapping) or depth > _RESOLVE_DEPTH:
            return {}
        out = dict(node)
        target = self._document.follow(node)
        out.pop("$ref", None)
        if target is not None:
            out = {**self.resolve(target[1], depth + 1), **out}
        for key in ("anyOf", "oneOf"):
            branches = [b for b in out.get(key, []) if isinstance(b, Mapping) and b.get("type") != "null"]
            if len(branches) == 1:
                out = {**self.resolve(branches[0], depth + 1), **{k: v for k, v in out.items() if k != key}}
        return out

    @staticmethod
    def kind(node: Mapping[str, Any], values: Sequence[Any]) -> str:
        """``object``, ``array`` or ``scalar``: from the schema, else from the first value found."""
        declared = _declared_type(node)
        if declared == "object" or "properties" in node:
            return "object"
        if declared == "array" or "items" in node:
            return "array"
        if declared is None and values:
            first = values[0]
            return "object" if isinstance(first, Mapping) else "array" if isinstance(first, list) else "scalar"
        return "scalar"


# --- candidates --------------------------------------------------------------------------------------------------

_GROUNDED, _UNCHECKED, _NOT_FOUND = 0, 1, 2


@dataclass(frozen=True)
class _Found:
    """One part's value at one place of the merged object, and where it sits in that part's data."""

    result: PartResult
    value: Any
    pointer: str

    def groundings(self, target: str) -> Iterator[tuple[str, FieldGrounding]]:
        """This value's leaves' grounding, re-keyed under ``target`` and with spans into the original text."""
        fields = self.result.fields
        if fields is None:
            return
        offset = self.result.part.start
        pairs = zip(iter_leaves(self.value, self.pointer), iter_leaves(self.value, target), strict=True)
        for (source, value), (leaf, _) in pairs:
            found = fields.get(source) if value is not None else None
            if found is not None:
                span = None if found.span is None else (found.span[0] + offset, found.span[1] + offset)
                yield leaf, FieldGrounding(span=span, grounded=found.grounded, match=found.match)

    def evidence(self) -> int:
        """How well the text supports this value: grounded, not checkable, or not found (best leaf counts)."""
        fields = self.result.fields
        if fields is None:
            return _UNCHECKED
        leaves = (pointer for pointer, value in iter_leaves(self.value, self.pointer) if not _is_blank(value))
        return min((_tier(fields.get(pointer)) for pointer in leaves), default=_NOT_FOUND)

    def span(self) -> Span | None:
        """The original-text span of a scalar value."""
        return next((found.span for _, found in self.groundings("")), None)

    def candidate(self) -> Candidate:
        grounded = next((found.grounded for _, found in self.groundings("")), None)
        return Candidate(value=self.value, part=self.result.part.index, span=self.span(), grounded=grounded)


def _tier(found: FieldGrounding | None) -> int:
    if found is None or found.grounded is None:
        return _UNCHECKED
    return _GROUNDED if found.grounded else _NOT_FOUND


def _is_blank(value: Any) -> bool:
    """Absent, as the empty rule reads it: null, a blank string, an empty list or object."""
    if isinstance(value, Mapping | list):
        return all(_is_blank(leaf) for _, leaf in iter_leaves(value))
    return value is None or (isinstance(value, str) and not value.strip())


def _key(value: Any) -> str:
    """The comparison key: equal for values with the same normal form (``True`` is not ``1``)."""
    return json.dumps(normalize_value(value), sort_keys=True, default=str)


def _supported(found: Sequence[_Found]) -> list[_Found]:
    """The values the text supports (grounded or not checkable), or all of them when none is."""
    return [item for item in found if item.evidence() < _NOT_FOUND] or list(found)


def _by_evidence(found: Sequence[_Found]) -> list[_Found]:
    """Unique evidence: a value whose span another value already has (the overlap between parts) counted once."""
    seen: set[Span] = set()
    unique = []
    for item in found:
        span = item.span()
        if span is None or span not in seen:
            unique.append(item)
        if span is not None:
            seen.add(span)
    return unique


# --- the merge ---------------------------------------------------------------------------------------------------


class _Merger:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = _Schema(schema)
        self.fields: dict[str, FieldGrounding] = {}
        self.conflicts: dict[str, list[Candidate]] = {}

    def take(self, item: _Found, pointer: str) -> Any:
        """Keep ``item``'s value whole at ``pointer``, with its grounding."""
        self.fields.update(item.groundings(pointer))
        return item.value

    def node(self, schema: Any, found: Sequence[_Found], pointer: str, rule: str | None = None) -> Any:
        resolved = self.schema.resolve(schema)
        present = [item for item in found if not _is_blank(item.value)]
        if not present:
            return None
        rule = rule or resolved.get(MERGE_KEYWORD)
        kind = self.schema.kind(resolved, [item.value for item in present])
        if kind == "object" and rule is None:
            return self.object(resolved, [item for item in present if isinstance(item.value, Mapping)], pointer)
        if kind in ("object", "array") or not all(_is_scalar(item.value) for item in present):
            whole = _WHOLE.get(rule or ("union" if kind == "array" else "first"), _first_whole)
            return whole(self, present, pointer)
        scalar = _SCALAR.get(rule or "first", _first)
        return scalar(self, _supported(present), present, pointer)

    def object(self, schema: Mapping[str, Any], found: Sequence[_Found], pointer: str) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties", {})
        names = list(dict.fromkeys([*properties, *(name for item in found for name in item.value)]))
        merged: dict[str, Any] = {}
        for name in names:
            children = [
                _Found(item.result, item.value[name], child_pointer(item.pointer, name))
                for item in found
                if name in item.value
            ]
            outer = properties.get(name, {})
            rule = outer.get(MERGE_KEYWORD) if isinstance(outer, Mapping) else None
            merged[name] = self.node(outer, children, child_pointer(pointer, name), rule)
        return merged


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list)


# Scalar rules get the supported values (``pool``) and every value found (``present``), in document order.
_ScalarRule = Callable[[_Merger, list[_Found], list[_Found], str], Any]
_WholeRule = Callable[[_Merger, list[_Found], str], Any]


def _first(merger: _Merger, pool: list[_Found], present: list[_Found], pointer: str) -> Any:
    kept = pool[0]
    distinct = {_key(kept.value): kept}
    for item in present:
        distinct.setdefault(_key(item.value), item)
    if len(distinct) > 1:
        merger.conflicts[pointer] = [item.candidate() for item in distinct.values()]
    return merger.take(kept, pointer)


def _numbers(pool: list[_Found]) -> bool:
    return all(isinstance(item.value, int | float) and not isinstance(item.value, bool) for item in pool)


def _comparable(pool: list[_Found]) -> bool:
    return _numbers(pool) or all(isinstance(item.value, str) for item in pool)


def _extreme(pick: Callable[[list[_Found]], _Found]) -> _ScalarRule:
    def rule(merger: _Merger, pool: list[_Found], present: list[_Found], pointer: str) -> Any:
        if not _comparable(pool):
            return _first(merger, pool, present, pointer)
        return merger.take(pick(pool), pointer)

    return rule


def _value(item: _Found) -> Any:
    return item.value


def _sum(merger: _Merger, pool: list[_Found], present: list[_Found], pointer: str) -> Any:
    if not _numbers(pool):
        return _first(merger, pool, present, pointer)
    summands = _by_evidence(pool)
    if len(summands) == 1:
        return merger.take(summands[0], pointer)
    if any(item.result.fields is not None for item in summands):
        tiers = {item.evidence() for item in summands}
        grounded = None if _UNCHECKED in tiers else _NOT_FOUND not in tiers
        merger.fields[pointer] = FieldGrounding(span=None, grounded=grounded, match=None)  # no one span holds a sum
    return sum(item.value for item in summands)


def _longest(merger: _Merger, pool: list[_Found], present: list[_Found], pointer: str) -> Any:
    if not all(isinstance(item.value, str) for item in pool):
        return _first(merger, pool, present, pointer)
    return merger.take(max(pool, key=lambda item: len(item.value.strip())), pointer)


def _vote(merger: _Merger, pool: list[_Found], present: list[_Found], pointer: str) -> Any:
    tally: dict[str, list[_Found]] = {}
    for item in _by_evidence(pool):
        tally.setdefault(_key(item.value), []).append(item)
    winner = max(tally.values(), key=len)  # dicts keep first appearance: a tie goes to the earliest
    return merger.take(winner[0], pointer)


_SCALAR: dict[str, _ScalarRule] = {
    "first": _first,
    "max": _extreme(lambda pool: max(pool, key=_value)),  # max and min keep the first of equal values
    "min": _extreme(lambda pool: min(pool, key=_value)),
    "sum": _sum,
    "longest": _longest,
    "vote": _vote,
}


def _first_whole(merger: _Merger, present: list[_Found], pointer: str) -> Any:
    return merger.take(_supported(present)[0], pointer)


def _longest_whole(merger: _Merger, present: list[_Found], pointer: str) -> Any:
    sized = [item for item in _supported(present) if isinstance(item.value, list)]
    return merger.take(max(sized, key=lambda item: len(item.value)), pointer) if sized else None


def _union(merger: _Merger, present: list[_Found], pointer: str) -> Any:
    merged: list[Any] = []
    seen: set[str] = set()
    for item in present:
        values = item.value if isinstance(item.value, list) else [item.value]
        for position, value in enumerate(values):
            key = _key(value)
            if _is_blank(value) or key in seen:
                continue
            seen.add(key)
            source = child_pointer(item.pointer, position) if isinstance(item.value, list) else item.pointer
            merged.append(merger.take(_Found(item.result, value, source), child_pointer(pointer, len(merged))))
    return merged


_WHOLE: dict[str, _WholeRule] = {"first": _first_whole, "union": _union, "longest": _longest_whole}


def merge_results(schema: Mapping[str, Any], results: Sequence[PartResult]) -> MergedResult:
    """One object from the parts' results (in document order), by the schema's ``x-merge`` rules."""
    merger = _Merger(schema)
    found = [_Found(result, result.data, "") for result in results if result.data is not None]
    data = merger.node(schema, found, "", rule=None) if found else None
    grounding_ran = any(result.fields is not None for result in results)
    return MergedResult(
        data=data if isinstance(data, dict) else None,
        fields=merger.fields if grounding_ran else None,
        conflicts=merger.conflicts,
    )
