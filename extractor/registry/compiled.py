"""A schema version made ready for extraction: its validator, its wire form for the model, its field list.

Every field is nullable in extraction: null is the answer for anything a document does not state, so the
validator and the wire form allow null for each property (the registered schema is otherwise the source of truth).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema.protocols import Validator

from extractor.extraction.merge import MERGE_KEYWORD
from extractor.extraction.presence import PRESENCE_KEYWORD
from extractor.patterns import budget
from extractor.pointer import SchemaDocument, format_pointer, map_subschemas
from extractor.registry.schema import SchemaVersion
from extractor.registry.validator import validator_for
from extractor.vocabulary import EnforcementLevel

__all__ = [
    "MAX_STRING_CHARS",
    "CompiledSchema",
    "compile_schema",
    "field_lines",
    "nullable",
    "strict_wire_schema",
    "with_length_limits",
]

# Keywords OpenAI's strict json_schema mode does not accept; a schema using any falls back to strict=false.
_NOT_STRICT = frozenset(
    {"patternProperties", "dependentSchemas", "if", "then", "else", "not", "unevaluatedProperties", "contains"}
)


_FIELD_DEPTH = 4
VALIDATION_BUDGET_S = 0.05
"""Longest the pattern matches of one validation of a model answer may take together."""


@dataclass(frozen=True)
class CompiledSchema:
    version: SchemaVersion
    validator: Validator
    wire_schema: dict[str, Any]
    strict: bool
    fields: str
    document: SchemaDocument  # the registered schema, its references looked up once for every extraction
    grammar_schema: dict[str, Any] | None = None
    """The wire form with a length limit on every string (``with_length_limits``), for grammar-enforcing endpoints."""

    def wire_for(self, level: EnforcementLevel) -> dict[str, Any]:
        """The schema to send at ``level``: grammar endpoints (llama.cpp's ``json_object`` with a schema) get the
        length-limited form, so a model repeating itself inside one string is stopped early; OpenAI's strict mode
        accepts fewer keywords and gets the plain one."""
        if level == EnforcementLevel.JSON_OBJECT_SCHEMA and self.grammar_schema is not None:
            return self.grammar_schema
        return self.wire_schema

    def invalid_fields(self, instance: Any) -> set[str]:
        """The top-level properties that hold a validation error."""
        with budget(VALIDATION_BUDGET_S):
            return {str(e.absolute_path[0]) for e in self.validator.iter_errors(instance) if e.absolute_path}

    def errors(self, instance: Any) -> list[str]:
        """Validation errors as ``/pointer: message`` lines (``/`` for the root), empty when valid. The schema's
        pattern matches together take at most ``VALIDATION_BUDGET_S`` (this runs on the event loop)."""
        with budget(VALIDATION_BUDGET_S):
            found = sorted(self.validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
        return [f"{format_pointer(e.absolute_path) or '/'}: {e.message}" for e in found]


def compile_schema(version: SchemaVersion) -> CompiledSchema:
    relaxed = nullable(version.json_schema)
    wire, strict = strict_wire_schema(relaxed)
    return CompiledSchema(
        version=version,
        validator=validator_for(relaxed),
        wire_schema=wire,
        strict=strict,
        fields="\n".join(field_lines(version.json_schema)),
        document=SchemaDocument(version.json_schema),
        grammar_schema=with_length_limits(wire),
    )


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
    out = map_subschemas(schema, nullable)
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
        out = map_subschemas(node, close)
        out.pop(MERGE_KEYWORD, None)  # ours, for merging parts; strict endpoints refuse keywords they do not know
        out.pop(PRESENCE_KEYWORD, None)  # ours too: which fields make an answer non-empty
        if _NOT_STRICT & out.keys():
            strict = False
        if isinstance(out.get("properties"), dict):
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        elif out.get("type") == "object":
            strict = False
        return out

    return close(schema), strict


MAX_STRING_CHARS = 500
"""The longest string value a grammar lets the model write where the schema sets no ``maxLength`` of its own."""


def with_length_limits(schema: dict[str, Any], limit: int = MAX_STRING_CHARS) -> dict[str, Any]:
    """A copy of ``schema`` where each string type with no limit of its own (``maxLength``, ``enum``, ``const``,
    ``format``, ``pattern``) gets ``maxLength``."""

    def limit_strings(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = map_subschemas(node, limit_strings)
        kinds = out.get("type")
        is_string = kinds == "string" or (isinstance(kinds, list) and "string" in kinds)
        if is_string and not ({"maxLength", "enum", "const", "format", "pattern"} & out.keys()):
            out["maxLength"] = limit
        return out

    result: dict[str, Any] = limit_strings(schema)
    return result


def field_lines(schema: dict[str, Any]) -> Iterator[str]:
    """A compact field list for the prompt: ``- total (number): grand total paid``; nested objects indented.

    Nesting is listed to ``_FIELD_DEPTH`` levels: deeper (or recursive, through ``$ref``) fields are left to the
    enforced schema, so a self-referencing schema gives a finite list.
    """
    return _field_lines(schema, SchemaDocument(schema), "")


def _field_lines(schema: dict[str, Any], document: SchemaDocument, indent: str) -> Iterator[str]:
    for name, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, document)
        kind, inner = _describe(sub, document)
        note = sub.get("description") or sub.get("title")
        yield f"{indent}- {name} ({kind})" + (f": {note}" if note else "")
        if inner is not None and len(indent) < 2 * _FIELD_DEPTH:
            yield from _field_lines(inner, document, indent + "  ")


def _resolve(sub: Any, document: SchemaDocument, followed: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``sub`` seen through its ``$ref`` chain (the keywords beside each ``$ref`` win) and through a lone non-null
    ``anyOf``/``oneOf`` branch; ``followed`` ends a chain that comes back on itself."""
    if not isinstance(sub, dict):
        return {}
    target = document.follow(sub)
    if target is not None and target[0] not in followed:
        own = {k: v for k, v in sub.items() if k != "$ref"}
        return {**_resolve(target[1], document, followed | {target[0]}), **own}
    for key in ("anyOf", "oneOf"):
        branches = [b for b in sub.get(key, []) if isinstance(b, dict) and b.get("type") != "null"]
        if len(branches) == 1:
            return {**_resolve(branches[0], document, followed), **{k: v for k, v in sub.items() if k != key}}
    return sub


def _describe(sub: dict[str, Any], document: SchemaDocument) -> tuple[str, dict[str, Any] | None]:
    """A short type label and, for objects or lists of objects, the schema to list beneath."""
    kind = sub.get("type", "any")
    if isinstance(kind, list):
        kind = "/".join(k for k in kind if k != "null") or "null"
    if "enum" in sub:
        return "one of " + ", ".join(map(str, sub["enum"])), None
    if kind == "array":
        items = _resolve(sub.get("items", {}), document)
        item_kind, inner = _describe(items, document)
        return f"list of {item_kind}", inner
    if kind == "object" and "properties" in sub:
        return "object", sub
    fmt = sub.get("format")
    return f"{kind}, {fmt}" if fmt else str(kind), None
