"""JSON Pointer (RFC 6901), local ``$ref`` resolution against ``referencing`` on the JSON-Schema-Test-Suite, the
registry's refusal of cyclic and unresolvable references, and the walks that must end on recursive schemas."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from hypothesis import given
from hypothesis import strategies as st
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from extractor.extraction.coerce import coerce
from extractor.pointer import (
    MAX_WALK_DEPTH,
    PointerError,
    SchemaDocument,
    escape_token,
    format_pointer,
    inline_refs,
    iter_subschemas,
    map_subschemas,
    parse_pointer,
    resolve_pointer,
    unescape_token,
)
from extractor.registry.checks import remote_refs

# --- RFC 6901 ----------------------------------------------------------------------------------------------------

# Section 5's document, and what each of its pointers names (section 5 as strings, section 6 as URI fragments).
RFC_DOCUMENT: dict[str, Any] = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}
RFC_STRINGS = [
    ("", RFC_DOCUMENT),
    ("/foo", ["bar", "baz"]),
    ("/foo/0", "bar"),
    ("/", 0),
    ("/a~1b", 1),
    ("/c%d", 2),
    ("/e^f", 3),
    ("/g|h", 4),
    ("/i\\j", 5),
    ('/k"l', 6),
    ("/ ", 7),
    ("/m~0n", 8),
]
RFC_FRAGMENTS = [
    ("#", RFC_DOCUMENT),
    ("#/foo", ["bar", "baz"]),
    ("#/foo/0", "bar"),
    ("#/", 0),
    ("#/a~1b", 1),
    ("#/c%25d", 2),
    ("#/e%5Ef", 3),
    ("#/g%7Ch", 4),
    ("#/i%5Cj", 5),
    ("#/k%22l", 6),
    ("#/%20", 7),
    ("#/m~0n", 8),
]


@pytest.mark.parametrize(("pointer", "expected"), RFC_STRINGS)
def test_rfc6901_section5_pointers(pointer: str, expected: Any) -> None:
    assert resolve_pointer(RFC_DOCUMENT, pointer) == expected
    assert format_pointer(parse_pointer(pointer)) == pointer


@pytest.mark.parametrize(("fragment", "expected"), RFC_FRAGMENTS)
def test_rfc6901_section6_uri_fragments(fragment: str, expected: Any) -> None:
    assert SchemaDocument(RFC_DOCUMENT).resolve(fragment) == expected


@pytest.mark.parametrize(
    ("pointer", "why"),
    [
        ("foo", "start with '/'"),
        ("/m~2n", "followed by 0 or 1"),
        ("/m~", "followed by 0 or 1"),
        ("/missing", "does not exist"),
        ("/foo/2", "does not exist"),
        ("/foo/01", "does not exist"),
        ("/foo/-", "does not exist"),
        ("/foo/0/x", "does not exist"),
    ],
)
def test_malformed_or_dangling_pointers_are_refused(pointer: str, why: str) -> None:
    with pytest.raises(PointerError, match=why):
        resolve_pointer(RFC_DOCUMENT, pointer)


@pytest.mark.parametrize(
    ("token", "escaped"), [("a", "a"), ("~", "~0"), ("/", "~1"), ("~1", "~01"), ("/~", "~1~0"), ("", ""), (3, "3")]
)
def test_escaping(token: str | int, escaped: str) -> None:
    assert escape_token(token) == escaped
    assert unescape_token(escaped) == str(token)


@given(st.lists(st.text(alphabet="ab~/01 %", max_size=6), max_size=5))
def test_pointers_round_trip(tokens: list[str]) -> None:
    pointer = format_pointer(tokens)
    assert parse_pointer(pointer) == tuple(tokens)
    document: Any = 42
    for token in reversed(tokens):
        document = {token: document}
    assert resolve_pointer(document, pointer) == 42


# --- the JSON-Schema-Test-Suite's $ref cases, against referencing ------------------------------------------------

SUITE = Path(__file__).parents[1] / "fixtures" / "json_schema_test_suite" / "eval.jsonl"
REF_GROUPS = ("ref", "defs", "anchor")


def _suite_schemas() -> dict[str, Any]:
    """One schema per test group of ``ref.json``, ``defs.json`` and ``anchor.json`` (``jsts-draft2020-12-ref-3``)."""
    schemas: dict[str, Any] = {}
    for line in SUITE.read_text().split("\n")[:-1]:
        case = json.loads(line)
        group = case["id"].rsplit("-", 1)[0]
        if group.removeprefix("jsts-draft2020-12-").rsplit("-", 1)[0] in REF_GROUPS:
            schemas.setdefault(group, case["schema"])
    return schemas


SUITE_SCHEMAS = _suite_schemas()


def _refs(node: Any, base: str, pointer: str = "") -> Iterator[tuple[str, Any, str, str]]:
    """``(pointer, subschema, base URI, $ref)`` for each ``$ref`` in a schema position, with the base URI that
    ``referencing`` resolves it against (the ``$id``s above it joined)."""
    if not isinstance(node, dict):
        return
    if isinstance(node.get("$id"), str):
        base = urljoin(base, node["$id"])
    if isinstance(node.get("$ref"), str):
        yield pointer, node, base, node["$ref"]
    for _, suffix, child in iter_subschemas(node):
        yield from _refs(child, base, pointer + suffix)


def test_the_fixture_holds_the_ref_groups() -> None:
    names = {g.removeprefix("jsts-draft2020-12-") for g in SUITE_SCHEMAS}
    assert {"ref-0", "ref-3", "ref-35", "defs-0", "anchor-0", "anchor-3"} <= names
    assert len(SUITE_SCHEMAS) == 36 + 1 + 4


@pytest.mark.parametrize("group", sorted(SUITE_SCHEMAS))
def test_local_refs_resolve_to_what_referencing_resolves(group: str) -> None:
    schema = SUITE_SCHEMAS[group]
    resource = DRAFT202012.create_resource(schema)
    registry: Registry[Any] = Registry().with_resource(resource.id() or "", resource).crawl()
    document = SchemaDocument(schema)
    for pointer, node, base, ref in _refs(schema, resource.id() or ""):
        if not ref.startswith("#"):
            assert remote_refs(schema), f"{group}: {ref!r} is neither followed here nor refused by the registry"
            continue
        expected = registry.resolver(base).lookup(ref).contents
        assert document.resolve(ref, node) is expected, (group, pointer, ref)


def test_every_local_ref_of_the_suite_is_covered() -> None:
    local = [ref for s in SUITE_SCHEMAS.values() for _, _, _, ref in _refs(s, "") if ref.startswith("#")]
    assert len(local) >= 25
    assert {"#", "#/$defs/tilde~0field", "#/$defs/percent%25field", "#/$defs/foo%22bar", "#foo"} <= set(local)
    assert "#/$defs//$defs/" in local  # empty reference tokens


@pytest.mark.parametrize("group", sorted(SUITE_SCHEMAS))
def test_no_suite_schema_is_refused_for_its_local_refs(group: str) -> None:
    SchemaDocument(SUITE_SCHEMAS[group]).check_refs()


def test_fragment_refs_resolve_inside_the_resource_that_holds_them() -> None:
    foo = {"$id": "other.json", "$defs": {"inner": {"type": "string"}}, "$ref": "#/$defs/inner"}
    schema = {"$defs": {"inner": {"type": "integer"}}, "properties": {"foo": foo}}
    assert SchemaDocument(schema).resolve("#/$defs/inner", foo) == {"type": "string"}
    assert SchemaDocument(schema).resolve("#/$defs/inner") == {"type": "integer"}
    assert SchemaDocument(schema).resolve("#", foo) is foo


# --- refusals: unresolvable and cyclic references ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "pointer", "why"),
    [
        ({"$ref": "#"}, "/$ref", "cycle"),
        ({"type": "object", "$ref": "#"}, "/$ref", "cycle"),
        ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}}, "/$defs/b/$ref", "cycle"),
        ({"properties": {"a": {"$ref": "#/properties/a"}}}, "/properties/a/$ref", "cycle"),
        ({"allOf": [{"$ref": "#"}]}, "/allOf/0/$ref", "cycle"),
        ({"anyOf": [{"type": "string"}, {"not": {"$ref": "#/anyOf/1"}}]}, "/anyOf/1/not/$ref", "cycle"),
        ({"$defs": {"a": {"$anchor": "x", "allOf": [{"$ref": "#x"}]}}}, "/$defs/a/allOf/0/$ref", "cycle"),
        ({"$defs": {"d": {"$dynamicAnchor": "n", "$dynamicRef": "#n"}}}, "/$defs/d/$dynamicRef", "cycle"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "/properties/a/$ref", "cannot be resolved"),
        ({"properties": {"a": {"$ref": "#nowhere"}}}, "/properties/a/$ref", "cannot be resolved"),
        ({"properties": {"a": {"$ref": "#/$defs/x~2"}}}, "/properties/a/$ref", "cannot be resolved"),
        ({"properties": {"a": {"$ref": "#/properties/a/type"}, "b": {}}}, "/properties/a/$ref", "cannot be"),
        (
            {"properties": {"a": {"type": "string", "$ref": "#/properties/a/type"}}},
            "/properties/a/$ref",
            "not a schema",
        ),
        ({"properties": {"a": {"$dynamicRef": "#nope"}}}, "/properties/a/$dynamicRef", "cannot be resolved"),
    ],
)
def test_refs_that_lead_nowhere_or_loop_in_place_are_refused(schema: Any, pointer: str, why: str) -> None:
    with pytest.raises(PointerError, match=why) as refused:
        SchemaDocument(schema).check_refs()
    assert refused.value.pointer == pointer


TREE: dict[str, Any] = {
    "type": "object",
    "properties": {"root": {"$ref": "#/$defs/node"}},
    "$defs": {
        "node": {
            "type": "object",
            "properties": {"n": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        }
    },
}


@pytest.mark.parametrize(
    "schema",
    [
        TREE,
        {"properties": {"next": {"$ref": "#"}}},
        {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "object"}}},
        {"anyOf": [{"type": "null"}, {"type": "array", "items": {"$ref": "#"}}]},
        {"$defs": {"bool": True}, "properties": {"a": {"$ref": "#/$defs/bool"}, "b": {"$ref": "#/$defs/bool"}}},
        {"enum": [{"$ref": "#/nowhere"}]},  # data, not a reference
    ],
)
def test_recursion_through_the_value_is_accepted(schema: Any) -> None:
    SchemaDocument(schema).check_refs()


# --- walks that end on recursive schemas ---------------------------------------------------------------------------


def test_schemas_at_follows_a_tree_to_any_depth() -> None:
    instance = {"root": {"n": 1, "children": [{"n": 2, "children": [{"n": 3}]}]}}
    found = SchemaDocument(TREE).schemas_at(instance, "/root/children/0/children/0/n")
    assert {"type": "integer"} in found
    nodes = SchemaDocument(TREE).schemas_at(instance, "/root/children/0")
    assert TREE["$defs"]["node"] in nodes
    with pytest.raises(PointerError):
        SchemaDocument(TREE).schemas_at(instance, "/root/children/5")


def test_schemas_at_ends_on_in_place_cycles() -> None:
    looping = {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}
    assert len(SchemaDocument(looping).schemas_at({}, "")) == 4


def test_coerce_stops_at_the_walk_depth_on_a_deep_instance() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "next": {"$ref": "#"}}}
    deep: dict[str, Any] = {"n": "0"}
    for level in range(1, 400):
        deep = {"n": str(level), "next": deep}
    result, log = coerce(deep, schema)
    assert result["n"] == 399
    assert len(log) == MAX_WALK_DEPTH
    assert coerce(deep, SchemaDocument(schema)) == (result, log), "a prepared document walks the same"


def test_inline_refs_puts_definitions_in_place_without_touching_the_input() -> None:
    schema = {
        "properties": {"doc": {"$ref": "#/$defs/Doc", "description": "one"}, "all": {"items": {"$ref": "#/$defs/Doc"}}},
        "$defs": {"Doc": {"type": "object", "properties": {"id": {"$ref": "#/$defs/Id"}}}, "Id": {"type": "string"}},
    }
    before = copy.deepcopy(schema)
    inlined = inline_refs(schema)
    assert schema == before
    doc = {"type": "object", "properties": {"id": {"type": "string"}}}
    assert inlined == {"properties": {"doc": {**doc, "description": "one"}, "all": {"items": doc}}}
    with pytest.raises(PointerError, match="recursive"):
        inline_refs(TREE)


def test_map_subschemas_reaches_every_applicator_and_copies() -> None:
    schema = {"properties": {"a": {}}, "items": {}, "anyOf": [{}], "propertyNames": {}, "enum": [{}], "const": {}}
    mapped = map_subschemas(schema, lambda sub: {"seen": True})
    assert mapped == {
        "properties": {"a": {"seen": True}},
        "items": {"seen": True},
        "anyOf": [{"seen": True}],
        "propertyNames": {"seen": True},
        "enum": [{}],
        "const": {},
    }
    assert schema["items"] == {}
