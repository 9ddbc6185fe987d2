"""Merging the parts' results: per-field rules, conflicts, spans in the original text, the empty rule, registration."""

from __future__ import annotations

from typing import Any

import pytest

from extractor.errors import InvalidSchemaError
from extractor.extraction.grounding import FieldGrounding, ground
from extractor.extraction.merge import Candidate, PartResult, merge_results, merge_rule_problem
from extractor.extraction.split import Part, ratio_counter, split_text
from extractor.registry.checks import check_definition
from extractor.registry.compiled import compile_schema
from extractor.registry.schema import SchemaDefinition, SchemaVersion
from extractor.settings import RegistrySettings

CONTRACT = (
    "MUTUAL NON-DISCLOSURE AGREEMENT\n\n"
    "This Agreement is made on January 5, 2021 between Acme Corp. and Globex Inc. "
    "The fee is 1,000 dollars.\n\n"
    "Confidential Information includes designs. This Agreement is governed by the laws of Delaware. "
    "A further fee of 250 dollars applies.\n\n"
    "Signed for Globex Inc. and for Initech LLC. Any dispute goes to the courts of New York. "
    "The term is two years. The fee is 1,000 dollars.\n"
)

NDA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "parties": {"type": "array", "items": {"type": "string"}},
        "effective_date": {"type": "string"},
        "jurisdiction": {"type": "string"},
        "total_fees": {"type": "number", "x-merge": "sum"},
        "largest_fee": {"anyOf": [{"$ref": "#/$defs/money"}, {"type": "null"}], "x-merge": "max"},
        "term": {"type": "string", "x-merge": "longest"},
        "mutual": {"type": "boolean", "x-merge": "vote"},
    },
    "$defs": {"money": {"type": "number"}},
}


def parts_of(text: str) -> list[Part]:
    """Three parts on the paragraph boundaries of the contract above."""
    parts = split_text(text, 200, ratio_counter(1.0))
    assert len(parts) == 3
    return parts


def result(part: Part, data: dict[str, Any] | None) -> PartResult:
    """A part's answer as the per-part pipeline gives it: grounded against the part's own text."""
    return PartResult(part=part, data=data, fields=None if data is None else ground(data, part.text))


def known_answers() -> list[PartResult]:
    first, second, third = parts_of(CONTRACT)
    return [
        result(first, {
            "parties": ["Acme Corp.", "Globex Inc."], "effective_date": "2021-01-05", "jurisdiction": None,
            "total_fees": 1000, "largest_fee": 1000, "term": None, "mutual": True,
        }),
        result(second, {
            "parties": [], "effective_date": None, "jurisdiction": "Delaware",
            "total_fees": 250, "largest_fee": 250, "term": None, "mutual": None,
        }),
        result(third, {
            "parties": ["GLOBEX INC", "Initech LLC"], "effective_date": "March 3, 2022", "jurisdiction": "New York",
            "total_fees": 1000, "largest_fee": 1000, "term": "two years", "mutual": False,
        }),
    ]  # fmt: skip


def evidence(merged_fields: dict[str, FieldGrounding], pointer: str) -> str:
    span = merged_fields[pointer].span
    assert span is not None
    return CONTRACT[span[0] : span[1]]


def test_the_merge_of_known_part_answers_gives_the_object_conflicts_and_spans() -> None:
    merged = merge_results(NDA, known_answers())
    assert merged.data == {
        "parties": ["Acme Corp.", "Globex Inc.", "Initech LLC"],  # "GLOBEX INC" is "Globex Inc." normalised
        "effective_date": "2021-01-05",  # first grounded
        "jurisdiction": "Delaware",  # first; New York is a conflict
        "total_fees": 2250,  # 1000 + 250 + 1000: the last fee is a second statement, at another span
        "largest_fee": 1000,
        "term": "two years",
        "mutual": True,  # one vote each: the earliest wins
    }
    assert set(merged.conflicts) == {"/jurisdiction", "/effective_date"}
    jurisdiction = merged.conflicts["/jurisdiction"]
    assert [candidate.value for candidate in jurisdiction] == ["Delaware", "New York"], "the kept one first"
    assert [candidate.part for candidate in jurisdiction] == [1, 2]
    for candidate in jurisdiction:
        assert candidate.span is not None
        assert CONTRACT[candidate.span[0] : candidate.span[1]] == candidate.value
    stray = merged.conflicts["/effective_date"][1]
    assert stray == Candidate(value="March 3, 2022", part=2, span=None, grounded=False), "not in the text, flagged"
    assert merged.fields is not None
    assert evidence(merged.fields, "/parties/0") == "Acme Corp."
    assert evidence(merged.fields, "/parties/2") == "Initech LLC"
    assert evidence(merged.fields, "/effective_date") == "January 5, 2021"
    assert evidence(merged.fields, "/jurisdiction") == "Delaware"
    assert evidence(merged.fields, "/term") == "two years"
    assert merged.fields["/total_fees"] == FieldGrounding(span=None, grounded=True, match=None)
    assert merged.empty_reason is None


def test_the_overlap_is_counted_once_by_sum_and_vote() -> None:
    text = "Fee 40 paid. Fee 60 paid."
    first, second = Part(0, 0, 13, text[:13]), Part(1, 4, len(text), text[4:])  # "40 paid." is in both
    schema = {"type": "object", "properties": {"fee": {"type": "number", "x-merge": "sum"}}}
    merged = merge_results(
        schema, [result(first, {"fee": 40}), result(second, {"fee": 40}), result(second, {"fee": 60})]
    )
    assert merged.data == {"fee": 100}


def test_first_prefers_a_grounded_value_to_an_earlier_ungrounded_one() -> None:
    text = "Part one says nothing. Part two: the buyer is Initech."
    parts = [Part(0, 0, 23, text[:23]), Part(1, 23, len(text), text[23:])]
    schema = {"type": "object", "properties": {"buyer": {"type": "string"}}}
    merged = merge_results(schema, [result(parts[0], {"buyer": "Hooli"}), result(parts[1], {"buyer": "Initech"})])
    assert merged.data == {"buyer": "Initech"}
    assert merged.fields is not None
    assert merged.fields["/buyer"].span == (46, 53)
    assert [candidate.value for candidate in merged.conflicts["/buyer"]] == ["Initech", "Hooli"]


def test_nested_objects_merge_by_property_unless_first_keeps_them_whole() -> None:
    text = "Ship to Paris. Postcode 75001. Bill to Lyon, postcode 69001."
    parts = [Part(0, 0, 15, text[:15]), Part(1, 15, len(text), text[15:])]
    address = {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}
    schema = {"type": "object", "properties": {"ship": address, "bill": {**address, "x-merge": "first"}}}
    answers = [
        result(parts[0], {"ship": {"city": "Paris", "zip": None}, "bill": {"city": "Paris", "zip": None}}),
        result(parts[1], {"ship": {"city": None, "zip": "75001"}, "bill": {"city": "Lyon", "zip": "69001"}}),
    ]
    merged = merge_results(schema, answers)
    assert merged.data == {"ship": {"city": "Paris", "zip": "75001"}, "bill": {"city": "Paris", "zip": None}}
    assert merged.fields is not None
    assert text[slice(*merged.fields["/ship/zip"].span or (0, 0))] == "75001"


def test_arrays_of_objects_union_by_normalised_object() -> None:
    text = "Item Widget 2. Item widget 2. Item Gadget 5."
    parts = [Part(0, 0, 15, text[:15]), Part(1, 15, len(text), text[15:])]
    line = {"type": "object", "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}}}
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": line}}}
    answers = [
        result(parts[0], {"items": [{"name": "Widget", "qty": 2}]}),
        result(parts[1], {"items": [{"name": "widget", "qty": 2}, {"name": "Gadget", "qty": 5}]}),
    ]
    merged = merge_results(schema, answers)
    assert merged.data == {"items": [{"name": "Widget", "qty": 2}, {"name": "Gadget", "qty": 5}]}
    assert merged.fields is not None
    assert text[slice(*merged.fields["/items/1/name"].span or (0, 0))] == "Gadget"


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        ("max", [3, 9, 9, 4], 9),
        ("min", ["2021-05-01", "2020-01-31", "2022-01-01"], "2020-01-31"),
        ("longest", ["Acme", "Acme Corporation", "Acme Corp"], "Acme Corporation"),
        ("vote", ["NY", "CA", "NY"], "NY"),
        ("vote", ["CA", "NY"], "CA"),
        ("sum", ["a", "b"], "a"),  # a rule that does not fit the values falls back to first
    ],
)
def test_scalar_rules(rule: str, values: list[Any], expected: Any) -> None:
    schema = {"type": "object", "properties": {"v": {"x-merge": rule}}}
    answers = [PartResult(Part(i, i, i + 1, " "), {"v": value}, None) for i, value in enumerate(values)]
    merged = merge_results(schema, answers)
    assert merged.data == {"v": expected}
    assert merged.fields is None, "grounding was off"


def test_the_document_is_empty_only_when_no_part_found_a_grounded_value() -> None:
    text = "Nothing of interest here. Nor here."
    parts = [Part(0, 0, 26, text[:26]), Part(1, 26, len(text), text[26:])]
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    nothing = merge_results(schema, [result(parts[0], None), result(parts[1], None)])
    assert nothing.data is None
    assert nothing.empty_reason == "no_values"
    invented = merge_results(schema, [result(parts[0], {"name": "Zed"}), result(parts[1], {"name": None})])
    assert invented.empty_reason == "not_grounded"
    found = merge_results(schema, [result(parts[0], {"name": "Zed"}), result(parts[1], {"name": "Nor"})])
    assert found.empty_reason is None
    assert found.data == {"name": "Nor"}


# --- registration ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "properties": {"a": {"type": "string", "x-merge": "frist"}}}, "/properties/a/x-merge"),
        ({"type": "object", "properties": {"a": {"type": "string", "x-merge": "sum"}}}, "/properties/a/x-merge"),
        ({"type": "object", "properties": {"a": {"type": "array", "x-merge": 3}}}, "/properties/a/x-merge"),
        ({"type": "object", "$defs": {"m": {"type": "number", "x-merge": "union"}}}, "/$defs/m/x-merge"),
        ({"type": "object", "properties": {"x-merge": {"type": "string"}}}, None),  # a property of that name
        ({"type": "object", "properties": {"a": {"type": ["number", "null"], "x-merge": "sum"}}}, None),
    ],
)
def test_merge_rules_are_checked_at_registration(schema: dict[str, Any], problem: str | None) -> None:
    found = merge_rule_problem(schema)
    assert (found[0] if found else None) == problem
    if problem is None:
        check_definition(SchemaDefinition(json_schema=schema), RegistrySettings())
        return
    with pytest.raises(InvalidSchemaError) as raised:
        check_definition(SchemaDefinition(json_schema=schema), RegistrySettings())
    assert raised.value.extra["pointer"] == problem


def test_the_model_never_sees_x_merge() -> None:
    version = SchemaVersion(name="nda", version=1, hash="sha256:0", json_schema=NDA, created_at="2026-11-30")
    assert "x-merge" not in str(compile_schema(version).wire_schema)
