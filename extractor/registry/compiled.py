"""A schema version made ready for extraction: its validator, its wire form for the model, its field list.

Every field is nullable in extraction: null is the answer for anything a document does not state, so the
validator and the wire form allow null for each property (the registered schema is otherwise the source of truth).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema.protocols import Validator

from extractor.registry.schema import SchemaVersion
from extractor.registry.validator import validator_for

__all__ = ["CompiledSchema", "compile_schema", "field_lines", "nullable", "strict_wire_schema"]

_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
# Keywords OpenAI's strict json_schema mode does not accept; a schema using any falls back to strict=false.
_NOT_STRICT = frozenset(
    {"patternProperties", "dependentSchemas", "if", "then", "else", "not", "unevaluatedProperties", "contains"}
)


_FIELD_DEPTH = 4


@dataclass(frozen=True)
class CompiledSchema:
    version: SchemaVersion
    validator: Validator
    wire_schema: dict[str, Any]
    strict: bool
    fields: str

    def invalid_fields(self, instance: Any) -> set[str]:
        """The top-level properties that hold a validation error."""
        return {str(e.absolute_path[0]) for e in self.validator.iter_errors(instance) if e.absolute_path}

    def errors(self, instance: Any) -> list[str]:
        """Validation errors as ``/pointer: message`` lines, empty when valid."""
        found = sorted(self.validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
        return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def compile_schema(version: SchemaVersion) -> CompiledSchema:
    relaxed = nullable(version.json_schema)
    wire, strict = strict_wire_schema(relaxed)
    return CompiledSchema(
        version=version,
        validator=validator_for(relaxed),
        wire_schema=wire,
        strict=strict,
        fields="\n".join(field_lines(version.json_schema)),
    )


def _map_subschemas(node: dict[str, Any], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """A copy of ``node`` with ``fn`` applied to every direct subschema (never mutates ``node``)."""
    out = dict(node)
    for key in _SUBSCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            out[key] = {name: fn(sub) for name, sub in node[key].items()}
    for key in _SUBSCHEMA_LISTS:
        if isinstance(node.get(key), list):
            out[key] = [fn(sub) for sub in node[key]]
    for key in _SUBSCHEMA_ONE:
        if isinstance(node.get(key), dict):
            out[key] = fn(node[key])
    return out


def _allows_null(schema: Any) -> bool:
    if not isinstance(schema, dict) or not schema:
        return True
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_allows_null(sub) for sub in schema.get("anyOf", []) + schema.get("oneOf", []))


def nullable(schema: Any) -> Any:
    """Every property may be null; the root and array items keep their own rules."""
    if not isinstance(schema, dict):
        return schema
    out = _map_subschemas(schema, nullable)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            name: sub if _allows_null(sub) else {"anyOf": [sub, {"type": "null"}]}
            for name, sub in out["properties"].items()
        }
    return out


def strict_wire_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The form sent to the model: every object with properties lists them all as required and closes itself.

    The model then writes every key (null where the document is silent) and nothing else. Returns the schema and
    whether it fits OpenAI's strict mode (every object closed, no unsupported keyword).
    """
    strict = True

    def close(node: Any) -> Any:
        nonlocal strict
        if not isinstance(node, dict):
            return node
        out = _map_subschemas(node, close)
        if _NOT_STRICT & out.keys():
            strict = False
        if isinstance(out.get("properties"), dict):
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        elif out.get("type") == "object":
            strict = False
        return out

    return close(schema), strict


def field_lines(schema: dict[str, Any], indent: str = "") -> Iterator[str]:
    """A compact field list for the prompt: ``- total (number): grand total paid``; nested objects indented.

    Nesting is listed to ``_FIELD_DEPTH`` levels: deeper (or recursive, through ``$ref``) fields are left to the
    enforced schema, so a self-referencing schema gives a finite list.
    """
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    for name, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, defs)
        kind, inner = _describe(sub, defs)
        note = sub.get("description") or sub.get("title")
        yield f"{indent}- {name} ({kind})" + (f": {note}" if note else "")
        if inner is not None and len(indent) < 2 * _FIELD_DEPTH:
            yield from field_lines({**inner, "$defs": defs}, indent + "  ")


def _resolve(sub: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(sub, dict):
        return {}
    ref = sub.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target = defs.get(ref.rsplit("/", 1)[-1], {})
        return {**target, **{k: v for k, v in sub.items() if k != "$ref"}}
    for key in ("anyOf", "oneOf"):
        branches = [b for b in sub.get(key, []) if isinstance(b, dict) and b.get("type") != "null"]
        if len(branches) == 1:
            return {**_resolve(branches[0], defs), **{k: v for k, v in sub.items() if k != key}}
    return sub


def _describe(sub: dict[str, Any], defs: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A short type label and, for objects or lists of objects, the schema to list beneath."""
    kind = sub.get("type", "any")
    if isinstance(kind, list):
        kind = "/".join(k for k in kind if k != "null") or "null"
    if "enum" in sub:
        return "one of " + ", ".join(map(str, sub["enum"])), None
    if kind == "array":
        items = _resolve(sub.get("items", {}), defs)
        item_kind, inner = _describe(items, defs)
        return f"list of {item_kind}", inner
    if kind == "object" and "properties" in sub:
        return "object", sub
    fmt = sub.get("format")
    return f"{kind}, {fmt}" if fmt else str(kind), None
