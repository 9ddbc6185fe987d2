"""Refuse a schema before it is stored: Draft 2020-12 validity, size and nesting limits, no remote ``$ref``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from jsonschema.exceptions import SchemaError

from extractor.errors import InvalidSchemaError, PayloadTooLargeError
from extractor.registry.schema import SchemaDefinition
from extractor.registry.validator import check_schema, validator_for
from extractor.settings import RegistrySettings

__all__ = ["check_definition", "remote_refs"]


def check_definition(definition: SchemaDefinition, limits: RegistrySettings) -> None:
    """Raise a 4xx-mapped error that says what is wrong and where, or return when the schema may be stored."""
    schema = definition.json_schema
    size = len(json.dumps(schema))
    if size > limits.max_schema_bytes:
        raise PayloadTooLargeError(
            f"schema is {size} bytes; the limit is {limits.max_schema_bytes}", limit=limits.max_schema_bytes
        )
    try:
        check_schema(schema)
    except SchemaError as exc:
        where = "/" + "/".join(str(p) for p in exc.path)
        raise InvalidSchemaError(f"not a valid Draft 2020-12 schema at {where}: {exc.message}", pointer=where) from exc
    if schema.get("type") != "object":
        raise InvalidSchemaError('the root of an extraction schema must be {"type": "object", ...}', pointer="/type")
    _check_shape(schema, limits)
    for example in definition.examples:
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


def _walk(node: Any, pointer: str, depth: int) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Every subschema object with its JSON Pointer and nesting depth."""
    if isinstance(node, dict):
        yield pointer, depth, node
        for key, value in node.items():
            child = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
            yield from _walk(value, child, depth + (1 if isinstance(value, dict | list) else 0))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{pointer}/{index}", depth)
