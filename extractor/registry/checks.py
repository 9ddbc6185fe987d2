"""Refuse a schema before it is stored: Draft 2020-12 validity, size and nesting limits, no remote ``$ref``, no
local ``$ref`` that leads nowhere or loops without descending into the value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from jsonschema.exceptions import SchemaError

from extractor.errors import InvalidSchemaError, PayloadTooLargeError
from extractor.extraction.merge import merge_rule_problem
from extractor.extraction.presence import presence_rule_problem
from extractor.nesting import depth_of
from extractor.patterns import budget
from extractor.pointer import PointerError, SchemaDocument, child_pointer, format_pointer
from extractor.registry.schema import SchemaDefinition
from extractor.registry.validator import check_schema, validator_for
from extractor.settings import RegistrySettings

__all__ = ["EXAMPLE_BUDGET_S", "check_content", "check_definition", "check_limits", "remote_refs"]

EXAMPLE_BUDGET_S = 1.0
"""Longest the pattern matches of one example may take together (the check runs off the event loop)."""


def check_definition(definition: SchemaDefinition, limits: RegistrySettings) -> None:
    """Raise a 4xx-mapped error that says what is wrong and where, or return when the schema may be stored.

    ``check_limits`` then ``check_content``: the first is cheap and bounds what the second may cost."""
    check_limits(definition, limits)
    check_content(definition)


def check_limits(definition: SchemaDefinition, limits: RegistrySettings) -> None:
    """The cheap checks, before anything recursive or costly runs on the schema: size, nesting, property count."""
    schema = definition.json_schema
    try:
        size = len(json.dumps(schema))
    except RecursionError:
        size = limits.max_schema_bytes + 1
    if size > limits.max_schema_bytes:
        raise PayloadTooLargeError(f"schema is over {limits.max_schema_bytes} bytes", limit=limits.max_schema_bytes)
    _check_shape(schema, limits)
    if depth_of(schema, stop_after=limits.max_depth + 1) > limits.max_depth + 1:
        raise InvalidSchemaError(f"schema nests deeper than {limits.max_depth} levels (in an array)")
    for index, example in enumerate(definition.examples):
        if depth_of(example, stop_after=limits.max_depth + 1) > limits.max_depth + 1:
            raise InvalidSchemaError(
                f"example {index} nests deeper than {limits.max_depth} levels", pointer=f"/examples/{index}"
            )


def check_content(definition: SchemaDefinition) -> None:
    """The costly checks (meta-validation, references, examples), once ``check_limits`` passed; pattern matches
    in the examples are bounded in time."""
    schema = definition.json_schema
    try:
        check_schema(schema)
    except SchemaError as exc:
        where = format_pointer(exc.path)
        raise InvalidSchemaError(
            f"not a valid Draft 2020-12 schema at {where or 'the root'}: {exc.message}", pointer=where
        ) from exc
    if schema.get("type") != "object":
        raise InvalidSchemaError('the root of an extraction schema must be {"type": "object", ...}', pointer="/type")
    if (merge_problem := merge_rule_problem(schema)) is not None:
        pointer, message = merge_problem
        raise InvalidSchemaError(message, pointer=pointer)
    if (presence_problem := presence_rule_problem(schema)) is not None:
        pointer, message = presence_problem
        raise InvalidSchemaError(message, pointer=pointer)
    _check_refs(schema)
    for example in definition.examples:
        with budget(EXAMPLE_BUDGET_S):
            errors = sorted(validator_for(schema).iter_errors(example), key=lambda e: list(e.path))
        if errors:
            raise InvalidSchemaError(f"an example does not match the schema: {errors[0].message}", pointer="/examples")


def _check_shape(schema: dict[str, Any], limits: RegistrySettings) -> None:
    properties = 0
    for pointer, depth, node in _walk(schema, "", 0):
        if depth > limits.max_depth:
            raise InvalidSchemaError(f"schema nests deeper than {limits.max_depth} levels", pointer=pointer)
        for keyword, ref in _references(node):
            raise InvalidSchemaError(
                f"remote {keyword} {ref!r} is refused: put the definition under $defs", pointer=f"{pointer}/{keyword}"
            )
        if isinstance(node.get("properties"), dict):
            properties += len(node["properties"])
    if properties > limits.max_properties:
        raise InvalidSchemaError(f"schema has {properties} properties; the limit is {limits.max_properties}")


def _check_refs(schema: dict[str, Any]) -> None:
    """Before any validator runs on the schema: an unresolvable or cyclic ``$ref`` would fail every extraction."""
    try:
        SchemaDocument(schema).check_refs()
    except PointerError as exc:
        raise InvalidSchemaError(str(exc), pointer=exc.pointer) from exc


_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def remote_refs(schema: Any) -> list[str]:
    """Every reference that points outside the document: a ``$ref``/``$dynamicRef`` not starting with ``#``,
    and a ``$schema`` other than Draft 2020-12's (a custom meta-schema would have to be fetched)."""
    return [ref for _, _, node in _walk(schema, "", 0) for _, ref in _references(node)]


def _references(node: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = [(k, node.get(k)) for k in ("$ref", "$dynamicRef")]
    remote = [(k, v) for k, v in pairs if isinstance(v, str) and not v.startswith("#")]
    meta = node.get("$schema")
    if isinstance(meta, str) and meta.rstrip("#") != _DRAFT_2020_12:
        remote.append(("$schema", meta))
    return remote


def _walk(root: Any, pointer: str, depth: int) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Every subschema object with its JSON Pointer and nesting depth, in document order; a loop, not a recursion,
    so that a schema nested past Python's recursion limit is measured (and refused), not a crash."""
    stack: list[tuple[Any, str, int]] = [(root, pointer, depth)]
    while stack:
        node, where, level = stack.pop()
        if isinstance(node, dict):
            yield where, level, node
            children = [
                (v, child_pointer(where, k), level + (1 if isinstance(v, dict | list) else 0)) for k, v in node.items()
            ]
        elif isinstance(node, list):
            children = [(v, child_pointer(where, i), level) for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
