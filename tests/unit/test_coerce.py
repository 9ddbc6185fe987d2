from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extractor.extraction.coerce import coerce


def _field(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"v": schema}}


# --- each coercion --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "value", "expected", "line"),
    [
        ({"type": "number"}, "12.50", 12.5, "/v: '12.50' -> 12.5 (string to number)"),
        ({"type": "number"}, " -3 ", -3, "/v: ' -3 ' -> -3 (string to number)"),
        ({"type": "number"}, "1,234.50", 1234.5, "/v: '1,234.50' -> 1234.5 (string to number)"),
        ({"type": "number"}, "1,234,567", 1234567, "/v: '1,234,567' -> 1234567 (string to number)"),
        ({"type": "number"}, "2.5e3", 2500.0, "/v: '2.5e3' -> 2500.0 (string to number)"),
        ({"type": "integer"}, "3", 3, "/v: '3' -> 3 (string to integer)"),
        ({"type": "integer"}, "12.0", 12, "/v: '12.0' -> 12 (string to integer)"),
        ({"type": "integer"}, 3.0, 3, "/v: 3.0 -> 3 (number to integer)"),
        ({"type": "string"}, 12, "12", "/v: 12 -> '12' (number to string)"),
        ({"type": "string"}, 12.5, "12.5", "/v: 12.5 -> '12.5' (number to string)"),
        ({"type": "boolean"}, "TRUE", True, "/v: 'TRUE' -> true (string to boolean)"),
        ({"type": "boolean"}, "false", False, "/v: 'false' -> false (string to boolean)"),
        ({"type": ["number", "null"]}, "", None, "/v: '' -> null (string to null)"),
        ({"type": ["integer", "null"]}, "null", None, "/v: 'null' -> null (string to null)"),
        ({"type": ["number", "null"]}, "7.25", 7.25, "/v: '7.25' -> 7.25 (string to number)"),
    ],
)
def test_safe_coercions_are_applied_and_logged(schema: dict[str, Any], value: Any, expected: Any, line: str) -> None:
    result, log = coerce({"v": value}, _field(schema))
    assert result == {"v": expected}
    assert type(result["v"]) is type(expected)
    assert log == (line,)


def test_root_value_is_logged_with_a_root_label() -> None:
    assert coerce("42", {"type": "integer"}) == (42, ("(root): '42' -> 42 (string to integer)",))


# --- refusals: left unchanged, nothing logged -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "integer"}, "12.5"),
        ({"type": "integer"}, 12.5),
        ({"type": "number"}, "1,234"),  # may be a decimal comma
        ({"type": "number"}, "12,5"),
        ({"type": "number"}, "1.234,50"),
        ({"type": "number"}, "$12.50"),
        ({"type": "number"}, "twelve"),
        ({"type": "number"}, "1e999"),
        ({"type": "number"}, "9" * 200),
        ({"type": "number"}, True),
        ({"type": "number"}, ""),
        ({"type": "string"}, True),
        ({"type": "string"}, None),
        ({"type": "boolean"}, "yes"),
        ({"type": "boolean"}, 1),
        ({"type": "null"}, "none"),
        ({"type": ["string", "null"]}, ""),  # a string is wanted: "" stays ""
        ({"type": ["string", "null"]}, "null"),
        ({"type": ["integer", "string"]}, 3.0),  # 3 or "3.0": ambiguous
        ({"type": "object"}, '{"a": 1}'),
        ({"type": "array"}, "[1]"),
        ({"type": "number"}, 12),
        ({}, "12"),
    ],
)
def test_unsafe_or_ambiguous_values_are_left_unchanged(schema: dict[str, Any], value: Any) -> None:
    result, log = coerce({"v": value}, _field(schema))
    assert result == {"v": value}
    assert type(result["v"]) is type(value)
    assert log == ()


# --- structure --------------------------------------------------------------------------------------------------------

RECEIPT: dict[str, Any] = {
    "type": "object",
    "$defs": {
        "money": {"type": "object", "properties": {"amount": {"type": "number"}, "currency": {"type": "string"}}},
        "count": {"type": "integer"},
    },
    "definitions": {"flag": {"type": "boolean"}},
    "properties": {
        "total": {"$ref": "#/$defs/money"},
        "lines": {
            "type": "array",
            "items": {"type": "object", "properties": {"qty": {"$ref": "#/$defs/count"}, "sku": {"type": "string"}}},
        },
        "pair": {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
            "items": {"type": "boolean"},
        },
        "meta": {"type": "object", "additionalProperties": {"$ref": "#/definitions/flag"}},
        "a/b": {"type": "number"},
    },
}


def test_nested_paths_are_logged_as_json_pointers() -> None:
    instance = {
        "total": {"amount": "12.50", "currency": 978},
        "lines": [{"qty": "2", "sku": 1001}, {"qty": 4.0}],
        "pair": ["7", 8, "False", "true"],
        "meta": {"gift": "TRUE"},
        "a/b": "1",
    }
    result, log = coerce(instance, RECEIPT)
    assert result == {
        "total": {"amount": 12.5, "currency": "978"},
        "lines": [{"qty": 2, "sku": "1001"}, {"qty": 4}],
        "pair": [7, "8", False, True],
        "meta": {"gift": True},
        "a/b": 1,
    }
    assert log == (
        "/total/amount: '12.50' -> 12.5 (string to number)",
        "/total/currency: 978 -> '978' (number to string)",
        "/lines/0/qty: '2' -> 2 (string to integer)",
        "/lines/0/sku: 1001 -> '1001' (number to string)",
        "/lines/1/qty: 4.0 -> 4 (number to integer)",
        "/pair/0: '7' -> 7 (string to integer)",
        "/pair/1: 8 -> '8' (number to string)",
        "/pair/2: 'False' -> false (string to boolean)",
        "/pair/3: 'true' -> true (string to boolean)",
        "/meta/gift: 'TRUE' -> true (string to boolean)",
        "/a~1b: '1' -> 1 (string to number)",
    )


def test_input_is_never_mutated_and_output_is_a_new_object() -> None:
    instance: dict[str, Any] = {"total": {"amount": "1"}, "lines": [{"qty": "2"}], "other": {"deep": ["x"]}}
    before = copy.deepcopy(instance)
    result, _ = coerce(instance, RECEIPT)
    assert instance == before
    assert result is not instance
    assert result["other"] is not instance["other"]
    assert result["other"]["deep"] is not instance["other"]["deep"]
    result["other"]["deep"].append("y")
    assert instance == before


MIXED: dict[str, Any] = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "s": {"type": "string"}, "b": {"type": ["boolean", "null"]}},
    "additionalProperties": {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
}
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
scalars |= st.sampled_from(["12.50", "3", "3.0", "1,234.5", "TRUE", "null", ""])
instances = st.dictionaries(
    st.sampled_from(["n", "s", "b", "x", "y"]),
    scalars | st.lists(scalars | st.dictionaries(st.text(max_size=3), scalars, max_size=3), max_size=4),
    max_size=5,
)


@given(instances)
def test_any_instance_is_left_unmutated_and_coercion_is_idempotent(instance: dict[str, Any]) -> None:
    before = copy.deepcopy(instance)
    result, log = coerce(instance, MIXED)
    assert instance == before
    assert all(line.startswith("/") for line in log)
    assert (json.dumps(result) == json.dumps(before)) == (log == ())  # logged exactly when something changed
    assert coerce(result, MIXED) == (result, ())


def test_all_of_members_all_apply() -> None:
    schema = {"allOf": [{"properties": {"a": {"type": "integer"}}}, {"properties": {"b": {"type": "boolean"}}}]}
    assert coerce({"a": "1", "b": "false"}, schema)[0] == {"a": 1, "b": False}


def test_unresolvable_and_remote_refs_are_ignored() -> None:
    schema = _field({"anyOf": [{"$ref": "#/$defs/missing"}, {"$ref": "https://example.com/s.json"}]})
    assert coerce({"v": "1"}, schema) == ({"v": "1"}, ())


def test_cyclic_refs_terminate() -> None:
    schema = {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
    assert coerce({"x": "1"}, schema) == ({"x": "1"}, ())


def test_recursive_schema_follows_the_instance_depth() -> None:
    schema = {
        "$defs": {
            "node": {"type": "object", "properties": {"n": {"type": "integer"}, "kids": {"items": {"$ref": "#"}}}}
        },
        "$ref": "#/$defs/node",
    }
    instance = {"n": "1", "kids": [{"n": "2", "kids": [{"n": 3.0}]}]}
    result, log = coerce(instance, schema)
    assert result == {"n": 1, "kids": [{"n": 2, "kids": [{"n": 3}]}]}
    assert log[-1] == "/kids/0/kids/0/n: 3.0 -> 3 (number to integer)"


# --- anyOf / oneOf ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["anyOf", "oneOf"])
def test_branch_coerces_when_exactly_one_branch_fits(keyword: str) -> None:
    schema = _field({keyword: [{"type": "number"}, {"type": "null"}]})
    assert coerce({"v": "12.5"}, schema) == ({"v": 12.5}, ("/v: '12.5' -> 12.5 (string to number)",))


def test_branch_with_ref_reaches_nested_fields() -> None:
    schema = {**RECEIPT, "properties": {"price": {"anyOf": [{"$ref": "#/$defs/money"}, {"type": "null"}]}}}
    result, log = coerce({"price": {"amount": "3"}}, schema)
    assert result == {"price": {"amount": 3}}
    assert log == ("/price/amount: '3' -> 3 (string to number)",)


@pytest.mark.parametrize(
    ("branches", "value"),
    [
        ([{"type": "string"}, {"type": "number"}], "12"),  # fits both: a string already, a number after coercion
        ([{"type": "integer"}, {"type": "boolean"}], "maybe"),  # fits neither
        ([{"type": "number"}, {"const": "N/A"}], "N/A"),  # fits the const only, which needs no change
        ([{"type": "object", "properties": {"a": {"type": "number"}}}, {"type": "object"}], {"a": "1"}),
    ],
)
def test_branch_is_left_alone_unless_exactly_one_fits_with_a_change(branches: list[Any], value: Any) -> None:
    assert coerce({"v": value}, _field({"anyOf": branches})) == ({"v": value}, ())


def test_enum_decides_the_branch() -> None:
    schema = _field({"oneOf": [{"type": "integer"}, {"enum": ["none", "unknown"]}]})
    assert coerce({"v": "4"}, schema)[0] == {"v": 4}
    assert coerce({"v": "unknown"}, schema) == ({"v": "unknown"}, ())
