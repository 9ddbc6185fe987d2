"""Keep the valid part of an answer the repair loop could not make whole, instead of losing all of it (a 422).

Two cases, both for a valid document and schema where a small model went astray in one field:

- **out of attempts**: the last answer is JSON but a field stays invalid (an object written into a list of strings).
  Every field is nullable in extraction, so the invalid top-level fields are nulled; if the rest is then valid, that
  is the answer, each null logged.
- **cut off at the token limit**: the fields already closed are kept, the one being written is nulled
  (``truncation``), then the same coercions and checks as any answer.

Either way nothing is invented: a field is only ever taken away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from extractor.extraction.blanks import null_blanks
from extractor.extraction.coerce import coerce
from extractor.extraction.truncation import keep_closed_fields
from extractor.registry.compiled import CompiledSchema

__all__ = ["Salvaged", "salvage_invalid", "salvage_truncated"]


@dataclass(frozen=True, slots=True)
class Salvaged:
    data: dict[str, Any]
    repairs: tuple[str, ...]


def _errors_of(errors: Sequence[str], name: str) -> str:
    pointer = f"/{name.replace('~', '~0').replace('/', '~1')}"
    mine = [e.partition(": ")[2] for e in errors if e == pointer or e.startswith((pointer + "/", pointer + ":"))]
    return mine[0] if mine else "invalid"


def salvage_invalid(schema: CompiledSchema, data: Any, attempts: int) -> Salvaged | None:
    """``data`` with its invalid top-level fields nulled, when that leaves it valid; else None."""
    if not isinstance(data, dict):
        return None
    errors = schema.errors(data)
    broken = schema.invalid_fields(data)
    if not broken:
        return None
    kept = {key: None if key in broken else value for key, value in data.items()}
    if schema.errors(kept):
        return None
    repairs = tuple(
        f"/{name}: still invalid after {attempts} attempt(s) ({_errors_of(errors, name)}), set to null"
        for name in sorted(broken)
    )
    return Salvaged(kept, repairs)


def salvage_truncated(schema: CompiledSchema, content: str) -> Salvaged | None:
    """The closed fields of an answer cut at the token limit, coerced and valid; else None."""
    properties = schema.version.json_schema.get("properties") or {}
    kept = keep_closed_fields(content, list(properties))
    if kept is None:
        return None
    data, coercions = coerce(kept.data, schema.document)
    data, blanks = null_blanks(data)
    repairs = (*kept.repairs, *coercions, *blanks)
    if schema.errors(data):
        rescued = salvage_invalid(schema, data, 1)
        if rescued is None:
            return None
        return Salvaged(rescued.data, (*repairs, *rescued.repairs))
    return Salvaged(data, repairs)
