"""Safe, logged coercions of an extracted instance toward its JSON Schema (Draft 2020-12).

Only conversions that cannot change meaning are made (``"12.50"`` to 12.5 for a number field, ``3.0`` to 3 for an
integer); anything ambiguous is left alone so the validator reports it and the model is asked again.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from extractor.patterns import budget
from extractor.pointer import MAX_WALK_DEPTH, SchemaDocument, child_pointer, item_schema, property_schema

__all__ = ["coerce"]

_ROOT_LABEL: Final = "(root)"

_Refs = frozenset[str]


class _Refused:
    """Marker returned by a converter that will not convert (``None`` is a real result: JSON null)."""


_REFUSED: Final = _Refused()


@dataclass(frozen=True, slots=True)
class _Walk:
    """What every step of one ``coerce`` call shares: the schema document (for ``$ref``) and the log."""

    document: SchemaDocument
    log: list[str] = field(default_factory=list)


COERCE_BUDGET_S = 0.05
"""Longest the pattern matches of one coercion may take together."""


def coerce(instance: Any, schema: Mapping[str, Any] | SchemaDocument) -> tuple[Any, tuple[str, ...]]:
    """Return a coerced copy of ``instance`` (never the input itself) and one log line per coercion.

    Each line names the JSON Pointer of the value, e.g. ``"/total: '12.50' -> 12.5 (string to number)"``. Pass the
    ``SchemaDocument`` of a schema used again and again: its references are then looked up once.
    """
    document = schema if isinstance(schema, SchemaDocument) else SchemaDocument(schema)
    walk = _Walk(document)
    with budget(COERCE_BUDGET_S):  # ``patternProperties`` are matched against every key: bounded, on the loop
        return _coerce(instance, document.root, "", walk, frozenset()), tuple(walk.log)


def _coerce(value: Any, schema: Any, path: str, walk: _Walk, refs: _Refs) -> Any:
    """Apply ``schema`` to ``value`` at ``path``: own type, children, then ``$ref``, ``allOf``, ``anyOf``/``oneOf``.

    ``refs`` holds the ``$ref`` targets already followed at this location, so a cyclic schema cannot loop.
    """
    if not isinstance(schema, Mapping):
        schema = {}
    value = _coerce_scalar(value, _type_names(schema.get("type")), path, walk.log)
    value = _coerce_children(value, schema, path, walk)
    target = walk.document.follow(schema)
    if target is not None and target[0] not in refs:
        value = _coerce(value, target[1], path, walk, refs | {target[0]})
    for member in _subschemas(schema.get("allOf")):
        value = _coerce(value, member, path, walk, refs)
    for keyword in ("anyOf", "oneOf"):
        value = _coerce_branches(value, _subschemas(schema.get(keyword)), path, walk, refs)
    return value


# --- structure ------------------------------------------------------------------------------------------------------


def _coerce_children(value: Any, schema: Mapping[str, Any], path: str, walk: _Walk) -> Any:
    """Rebuild an object or array with each member coerced against the schema that applies to it.

    Members deeper than ``MAX_WALK_DEPTH`` are kept as they are (a pointer has one ``/`` per level)."""
    if path.count("/") >= MAX_WALK_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            key: _coerce(item, property_schema(schema, key), child_pointer(path, key), walk, frozenset())
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _coerce(item, item_schema(schema, index), child_pointer(path, index), walk, frozenset())
            for index, item in enumerate(value)
        ]
    return value


def _subschemas(raw: Any) -> list[Any]:
    return list(raw) if isinstance(raw, list) else []


# --- branches -------------------------------------------------------------------------------------------------------


def _coerce_branches(value: Any, branches: list[Any], path: str, walk: _Walk, refs: _Refs) -> Any:
    """Coerce toward an ``anyOf``/``oneOf`` branch only when exactly one branch fits after coercion."""
    fitting: list[tuple[Any, list[str]]] = []
    for branch in branches:
        trial = _Walk(walk.document)
        candidate = _coerce(value, branch, path, trial, refs)
        if _fits(candidate, branch, walk.document, frozenset()):
            fitting.append((candidate, trial.log))
    if len(fitting) != 1:
        return value
    candidate, log = fitting[0]
    walk.log.extend(log)
    return candidate


def _fits(value: Any, schema: Any, document: SchemaDocument, refs: _Refs) -> bool:
    """Whether ``value`` has a type ``schema`` allows (``type``, ``const``, ``enum``, through refs and combinators)."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping):
        return True
    wanted = _type_names(schema.get("type"))
    enum = schema.get("enum")
    if (
        (wanted and not any(_is_type(value, name) for name in wanted))
        or ("const" in schema and not _json_equal(value, schema["const"]))
        or (isinstance(enum, list) and not any(_json_equal(value, option) for option in enum))
    ):
        return False
    target = document.follow(schema)
    if target is not None and target[0] not in refs and not _fits(value, target[1], document, refs | {target[0]}):
        return False
    if not all(_fits(value, member, document, refs) for member in _subschemas(schema.get("allOf"))):
        return False
    return all(
        not branches or any(_fits(value, branch, document, refs) for branch in branches)
        for branches in (_subschemas(schema.get("anyOf")), _subschemas(schema.get("oneOf")))
    )


def _json_equal(left: Any, right: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``true != 1``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_json_equal(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


# --- scalars --------------------------------------------------------------------------------------------------------


def _type_names(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    return tuple(name for name in raw if isinstance(name, str)) if isinstance(raw, list) else ()


def _coerce_scalar(value: Any, wanted: tuple[str, ...], path: str, log: list[str]) -> Any:
    """Convert ``value`` to one of the ``wanted`` types when exactly one safe conversion exists; log it."""
    if not wanted or any(_is_type(value, name) for name in wanted):
        return value
    results: list[tuple[str, Any]] = []
    for name in wanted:
        converted = _CONVERTERS.get(name, _refuse)(value)
        if not isinstance(converted, _Refused) and not any(_same(converted, seen) for _, seen in results):
            results.append((name, converted))
    if len(results) != 1:
        return value
    name, converted = results[0]
    log.append(f"{path or _ROOT_LABEL}: {_show(value)} -> {_show(converted)} ({_json_type(value)} to {name})")
    return converted


def _same(left: Any, right: Any) -> bool:
    return type(left) is type(right) and left == right


def _is_type(value: Any, name: str) -> bool:
    check = _TYPE_CHECKS.get(name)
    return check is not None and check(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "null": lambda value: value is None,
    "boolean": lambda value: isinstance(value, bool),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": _is_number,
    "string": lambda value: isinstance(value, str),
    "object": lambda value: isinstance(value, Mapping),
    "array": lambda value: isinstance(value, list),
}


def _json_type(value: Any) -> str:
    """The JSON type name of ``value``, for the log ("string to number")."""
    return next(
        (name for name in ("null", "boolean", "number", "string", "object", "array") if _is_type(value, name)),
        type(value).__name__,
    )


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, default=repr)


# --- converters: each returns the converted value or _REFUSED --------------------------------------------------------

_MAX_NUMBER_CHARS: Final = 100  # longer digit runs are not amounts; also keeps int() off huge inputs
# Plain digits, or digits grouped in threes by commas; optional fraction and exponent.
_NUMBER: Final = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_INTEGER: Final = re.compile(r"[+-]?\d+")
_BOOLEANS: Final = {"true": True, "false": False}
_NULLS: Final = frozenset({"", "null"})


def _refuse(value: Any) -> Any:
    return _REFUSED


def _plain_number(text: str) -> str | None:
    """``text`` without thousands separators if it is an unambiguous number, else None.

    ``"1,234"`` is refused: with a single comma and no decimal point it may be a decimal comma (1.234).
    """
    candidate = text.strip()
    if len(candidate) > _MAX_NUMBER_CHARS or not _NUMBER.fullmatch(candidate):
        return None
    if candidate.count(",") == 1 and "." not in candidate:
        return None
    plain = candidate.replace(",", "")
    return plain if math.isfinite(float(plain)) else None


def _to_number(value: Any) -> Any:
    plain = _plain_number(value) if isinstance(value, str) else None
    if plain is None:
        return _REFUSED
    return int(plain) if _INTEGER.fullmatch(plain) else float(plain)


def _to_integer(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value.is_integer() else _REFUSED
    plain = _plain_number(value) if isinstance(value, str) else None
    if plain is None:
        return _REFUSED
    number = Decimal(plain)
    return int(number) if number == number.to_integral_value() else _REFUSED


def _to_string(value: Any) -> Any:
    if not _is_number(value) or not math.isfinite(value):
        return _REFUSED
    return json.dumps(value)


def _to_boolean(value: Any) -> Any:
    return _BOOLEANS.get(value.strip().lower(), _REFUSED) if isinstance(value, str) else _REFUSED


def _to_null(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip().lower() in _NULLS else _REFUSED


_CONVERTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "number": _to_number,
    "integer": _to_integer,
    "string": _to_string,
    "boolean": _to_boolean,
    "null": _to_null,
}
