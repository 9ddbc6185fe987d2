"""The registry's validator: jsonschema's Draft 2020-12 with ECMA-262-style regular expressions.

JSON Schema patterns are ECMA-262 regexes; Python's ``re`` lacks Unicode property escapes such as ``\\p{Letter}``,
which the ``regex`` package supports. Every pattern runs through ``extractor.patterns``, with a time limit: a value
whose match takes too long is reported as not matching, so a catastrophic pattern costs milliseconds, not the
event loop. ``format`` stays an annotation, as the specification's default.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import regex
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator

from extractor.patterns import PatternTimeoutError, compile_pattern, search

__all__ = ["ExtractorValidator", "check_schema", "validator_for"]


def _pattern(validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        matched = search(pattern, instance)
    except PatternTimeoutError as exc:
        yield ValidationError(f"{str(instance)[:80]!r} could not be checked against {pattern!r}: {exc}")
        return
    if not matched:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Validator, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            try:
                matched = search(pattern, name)
            except PatternTimeoutError as exc:
                yield ValidationError(f"property name {name[:80]!r}: {exc}", path=[name])
                continue
            if matched:
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)  # type: ignore[attr-defined]


ExtractorValidator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties}
)


def validator_for(schema: Mapping[str, Any]) -> Validator:
    return ExtractorValidator(schema)


_META_FORMATS = FormatChecker()


@_META_FORMATS.checks("regex", raises=regex.error)
def _is_regex(value: object) -> bool:
    """Patterns in a schema are checked with the engine that will run them, not Python's ``re``."""
    return not isinstance(value, str) or compile_pattern(value) is not None


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.SchemaError`` unless ``schema`` is a valid Draft 2020-12 schema."""
    ExtractorValidator.check_schema(dict(schema), format_checker=_META_FORMATS)  # type: ignore[call-arg]
