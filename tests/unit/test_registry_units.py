"""Schema compilation: nullable fields, the closed wire form, the prompt's field list, refs and hashes."""

from __future__ import annotations

import copy

import pytest

from extractor.errors import InvalidSchemaError, PayloadTooLargeError
from extractor.registry.checks import check_definition
from extractor.registry.compiled import compile_schema, field_lines, nullable, strict_wire_schema
from extractor.registry.schema import SchemaDefinition, SchemaVersion, canonical_hash, parse_ref
from extractor.settings import RegistrySettings

SCHEMA = {
    "type": "object",
    "properties": {
        "total": {"type": "number", "description": "amount paid"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
    },
    "required": ["total"],
    "$defs": {"item": {"type": "object", "properties": {"name": {"type": "string"}}}},
}


def test_nullable_allows_null_per_field_without_mutating() -> None:
    before = copy.deepcopy(SCHEMA)
    version = SchemaVersion(name="r", version=1, hash="h", json_schema=SCHEMA, created_at="now")
    compiled = compile_schema(version)
    assert before == SCHEMA
    assert compiled.errors({"total": None, "items": None}) == []
    assert compiled.errors({"total": None, "items": [{"name": None}]}) == []
    assert compiled.errors({"total": "x"}) != []
    assert compiled.errors({}) == ["/: 'total' is a required property"]
    assert nullable({"type": "object", "properties": {"a": {"type": ["string", "null"]}}})["properties"]["a"] == {
        "type": ["string", "null"]
    }


def test_wire_schema_closes_objects_and_says_when_not_strict() -> None:
    wire, strict = strict_wire_schema(nullable(SCHEMA))
    assert strict is True
    assert wire["required"] == ["total", "items"]
    assert wire["additionalProperties"] is False
    assert wire["$defs"]["item"]["required"] == ["name"]
    _, loose = strict_wire_schema({"type": "object", "properties": {"meta": {"type": "object"}}})
    assert loose is False


def test_field_lines_are_compact() -> None:
    lines = list(field_lines(SCHEMA))
    assert lines == ["- total (number): amount paid", "- items (list of object)", "  - name (string)"]


def test_canonical_hash_ignores_key_order() -> None:
    a = SchemaDefinition(json_schema={"type": "object", "properties": {"a": {}, "b": {}}})
    b = SchemaDefinition(json_schema={"properties": {"b": {}, "a": {}}, "type": "object"})
    assert canonical_hash(a) == canonical_hash(b)
    assert canonical_hash(a) != canonical_hash(SchemaDefinition(json_schema=a.json_schema, description="x"))


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [("receipt", ("receipt", None)), ("receipt@3", ("receipt", 3)), ("receipt@0", None), ("a b", None), ("@1", None)],
)
def test_parse_ref(ref: str, parsed: tuple[str, int | None] | None) -> None:
    assert parse_ref(ref) == parsed


def test_checks_refuse_with_a_pointer() -> None:
    limits = RegistrySettings()
    with pytest.raises(InvalidSchemaError) as bad:
        check_definition(
            SchemaDefinition(json_schema={"type": "object", "properties": {"a": {"minimum": "x"}}}), limits
        )
    assert bad.value.extra["pointer"] == "/properties/a/minimum"
    with pytest.raises(InvalidSchemaError, match="remote"):
        check_definition(SchemaDefinition(json_schema={"type": "object", "$ref": "other.json"}), limits)
    with pytest.raises(PayloadTooLargeError):
        check_definition(SchemaDefinition(json_schema=SCHEMA), RegistrySettings(max_schema_bytes=256))
    with pytest.raises(InvalidSchemaError, match="example"):
        check_definition(SchemaDefinition(json_schema=SCHEMA, examples=[{"total": "no"}]), limits)


def test_recursive_schema_compiles_with_a_bounded_field_list() -> None:
    tree = {
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/node"}},
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
            }
        },
    }
    compiled = compile_schema(SchemaVersion(name="tree", version=1, hash="h", json_schema=tree, created_at="now"))
    lines = compiled.fields.splitlines()
    assert lines[0] == "- root (object)"
    assert 4 < len(lines) < 20
    assert compiled.errors({"root": {"name": "a", "children": [{"name": "b", "children": []}]}}) == []


def test_patterns_use_the_regex_engine_that_runs_them() -> None:
    unicode = {"type": "object", "properties": {"word": {"type": "string", "pattern": "^\\p{Letter}+$"}}}
    check_definition(SchemaDefinition(json_schema=unicode), RegistrySettings())
    compiled = compile_schema(SchemaVersion(name="w", version=1, hash="h", json_schema=unicode, created_at="now"))
    assert compiled.errors({"word": "Ünïcödé"}) == []
    assert compiled.errors({"word": "no spaces"}) != []
    bad = {"type": "object", "properties": {"a": {"type": "string", "pattern": "(unclosed"}}}
    with pytest.raises(InvalidSchemaError, match="regex"):
        check_definition(SchemaDefinition(json_schema=bad), RegistrySettings())
