"""What a registered schema is: the definition a client sends, and the immutable version we keep."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from extractor.errors import InvalidInputError

__all__ = [
    "NAME_PATTERN",
    "SchemaDefinition",
    "SchemaSummary",
    "SchemaVersion",
    "canonical_hash",
    "check_name",
    "parse_ref",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})(?:@(?P<version>[1-9][0-9]{0,8}))?$")


class SchemaDefinition(BaseModel):
    """The body of ``PUT /v1/schemas/{name}``."""

    model_config = ConfigDict(extra="forbid")

    json_schema: dict[str, Any] = Field(description="A JSON Schema (Draft 2020-12) whose root is an object.")
    description: str | None = Field(None, max_length=2000, description="What the schema extracts, for the model.")
    instructions: str | None = Field(None, max_length=4000, description="Extra guidance added to the prompt.")
    examples: list[dict[str, Any]] = Field(default_factory=list, max_length=20)


class SchemaVersion(BaseModel):
    """One immutable version of a named schema."""

    name: str
    version: int
    hash: str
    json_schema: dict[str, Any]
    description: str | None = None
    instructions: str | None = None
    examples: list[dict[str, Any]] = Field(default_factory=list)
    created_at: str

    @property
    def ref(self) -> str:
        """The form results cite: ``receipt@3``."""
        return f"{self.name}@{self.version}"


class SchemaSummary(SchemaVersion):
    """A schema's latest version plus whether it is retired and whose namespace holds it."""

    retired: bool = False
    bundled: bool = False


def canonical_hash(definition: SchemaDefinition) -> str:
    """sha256 of the definition's canonical JSON (sorted keys, no spaces): equal content, equal hash."""
    canonical = json.dumps(definition.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def parse_ref(ref: str) -> tuple[str, int | None] | None:
    """``"receipt"`` -> ("receipt", None); ``"receipt@3"`` -> ("receipt", 3); anything else -> None."""
    match = _REF.match(ref)
    if match is None:
        return None
    version = match.group("version")
    return match.group("name"), int(version) if version else None


def check_name(name: str) -> None:
    """Refuse a schema name outside ``NAME_PATTERN`` on every route (a ``:`` would reach into another key's space)."""
    if parse_ref(name) != (name, None):
        raise InvalidInputError(
            f"schema name {name[:80]!r} must be 1-64 letters, digits, `_`, `.` or `-`, starting with a letter or digit",
            name=name[:80],
        )
