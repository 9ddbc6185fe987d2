"""Schemas kept as code: a folder of schema files compared with what a service holds, and the changes that make the
service match the folder (``extractor schemas sync``).

A file ``NAME.json`` holds a bare JSON Schema or a full ``{json_schema, description, instructions, examples}``, as
``extractor schemas register`` takes it. Content is compared by the registry's canonical hash, so a file whose
content equals the latest version changes nothing: syncing twice is syncing once.
"""

from __future__ import annotations

import difflib
import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from extractor.errors import InvalidInputError
from extractor.registry.schema import NAME_PATTERN, SchemaDefinition, canonical_hash

__all__ = ["Action", "Change", "plan_sync", "read_schema_file", "read_schema_folder", "render_change"]

_NAME = re.compile(NAME_PATTERN)
_CONTENT = ("json_schema", "description", "instructions", "examples")


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    RESTORE = "restore"
    RETIRE = "retire"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Change:
    """What a sync does to one schema: ``definition`` is what to register (none for retire and unchanged),
    ``current`` the service's latest version of it, if any."""

    action: Action
    name: str
    definition: SchemaDefinition | None = None
    current: Mapping[str, Any] | None = None
    source: str = ""


def read_schema_file(path: Path) -> SchemaDefinition:
    """One schema file: a bare JSON Schema, or ``{json_schema, description, ...}``."""
    try:
        document = json.loads(path.read_text())
        body = document if isinstance(document, dict) and "json_schema" in document else {"json_schema": document}
        return SchemaDefinition.model_validate(body)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: not a readable JSON file ({exc})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/".join(str(part) for part in first["loc"])
        raise InvalidInputError(f"{path}: {where}: {first['msg']}") from exc


def read_schema_folder(folder: Path) -> dict[str, SchemaDefinition]:
    """Every ``*.json`` in ``folder``, named by its file stem. Refuses an empty folder (a prune would retire every
    schema) and a file whose name is no schema name, before anything is sent."""
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise InvalidInputError(f"{folder}: no *.json schema files; a sync needs at least one")
    bad = [path.name for path in paths if not _NAME.match(path.stem)]
    if bad:
        raise InvalidInputError(
            f"{folder}: {', '.join(bad)}: a schema file is named NAME.json, NAME being letters, digits, `_`, `.` or "
            "`-` (at most 64, starting with a letter or digit)"
        )
    return {path.stem: read_schema_file(path) for path in paths}


def plan_sync(
    local: Mapping[str, SchemaDefinition], remote: Iterable[Mapping[str, Any]], *, prune: bool, folder: str = ""
) -> list[Change]:
    """The changes, by name, that make the service (``remote``: its ``GET /v1/schemas`` answer) match ``local``.

    A retired schema whose content is in the folder is restored (registering equal content un-retires it). With
    ``prune``, a schema of the caller's own that is not in the folder is retired; bundled schemas are never
    touched, and a file may carry a bundled schema's name only with the bundled content.
    """
    latest = {str(item["name"]): item for item in remote}
    clashes = [
        name
        for name, definition in local.items()
        if name in latest and latest[name].get("bundled") and latest[name]["hash"] != canonical_hash(definition)
    ]
    if clashes:
        raise InvalidInputError(
            f"{', '.join(sorted(clashes))}: bundled schema name(s), reserved for every tenant; rename the file(s) "
            f"(e.g. my_{sorted(clashes)[0]}.json)"
        )
    changes = [_change(name, local[name], latest.get(name), folder) for name in sorted(local)]
    if prune:
        changes += [
            Change(Action.RETIRE, name, current=item)
            for name, item in sorted(latest.items())
            if name not in local and not item.get("bundled") and not item.get("retired")
        ]
    return changes


def _change(name: str, definition: SchemaDefinition, current: Mapping[str, Any] | None, folder: str) -> Change:
    source = f"{folder.rstrip('/')}/{name}.json" if folder else f"{name}.json"
    if current is None:
        return Change(Action.CREATE, name, definition, source=source)
    if current["hash"] != canonical_hash(definition):
        return Change(Action.UPDATE, name, definition, current, source)
    if current.get("retired"):
        return Change(Action.RESTORE, name, definition, current, source)
    return Change(Action.UNCHANGED, name, current=current, source=source)


def render_change(change: Change) -> list[str]:
    """Lines describing one change: a summary line, and for an update the unified diff of the content."""
    version = int(change.current["version"]) if change.current else 0
    match change.action:
        case Action.CREATE:
            return [f"+ {change.name}: new, as {change.name}@1"]
        case Action.UPDATE:
            head = f"~ {change.name}: {change.name}@{version} -> {change.name}@{version + 1}"
            return [head, *_diff(change)]
        case Action.RESTORE:
            return [f"^ {change.name}: restore {change.name}@{version} (retired, content unchanged)"]
        case Action.RETIRE:
            return [f"- {change.name}: retire (not in the folder; {change.name}@{version} stays readable)"]
        case _:
            return [f"= {change.name}@{version}: unchanged"]


def _diff(change: Change) -> list[str]:
    assert change.current is not None
    assert change.definition is not None
    before = _pretty({key: change.current.get(key) for key in _CONTENT})
    after = _pretty(change.definition.model_dump(mode="json"))
    label = f"{change.name}@{change.current['version']}"
    return ["    " + line for line in difflib.unified_diff(before, after, label, change.source, lineterm="")]


def _pretty(content: Mapping[str, Any]) -> list[str]:
    normal = {key: content.get(key) for key in _CONTENT}
    normal["examples"] = normal["examples"] or []
    return json.dumps(normal, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
