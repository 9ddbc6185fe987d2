"""`extractor schemas sync`'s plan: what a folder of schema files changes on a service, decided before any request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extractor.errors import InvalidInputError
from extractor.registry.schema import SchemaDefinition, canonical_hash
from extractor.registry.sync import Action, plan_sync, read_schema_folder, render_change
from extractor.runtime import bundled_schema_dir
from extractor.settings import Settings

CITY = SchemaDefinition(json_schema={"type": "object", "properties": {"city": {"type": ["string", "null"]}}})
TOWN = SchemaDefinition(json_schema={"type": "object", "properties": {"town": {"type": ["string", "null"]}}})


def remote(name: str, definition: SchemaDefinition, version: int = 1, **flags: bool) -> dict[str, Any]:
    """One item of ``GET /v1/schemas``."""
    return {"name": name, "version": version, "hash": canonical_hash(definition), **definition.model_dump(), **flags}


def actions(changes: list[Any]) -> dict[str, Action]:
    return {change.name: change.action for change in changes}


def test_new_changed_unchanged_and_retired_schemas_get_the_right_action() -> None:
    local = {"city": CITY, "place": TOWN, "same": CITY, "back": CITY}
    service = [
        remote("place", CITY, 2),
        remote("same", CITY, 3),
        remote("back", CITY, 1, retired=True),
        remote("gone", TOWN, 1),
    ]
    assert actions(plan_sync(local, service, prune=False)) == {
        "back": Action.RESTORE,
        "city": Action.CREATE,
        "place": Action.UPDATE,
        "same": Action.UNCHANGED,
    }


def test_prune_retires_only_the_callers_own_live_schemas_missing_from_the_folder() -> None:
    service = [
        remote("city", CITY),
        remote("gone", TOWN),
        remote("long_gone", TOWN, retired=True),
        remote("receipt", TOWN, bundled=True),
    ]
    assert actions(plan_sync({"city": CITY}, service, prune=True)) == {"city": Action.UNCHANGED, "gone": Action.RETIRE}
    assert actions(plan_sync({"city": CITY}, service, prune=False)) == {"city": Action.UNCHANGED}


def test_a_file_may_carry_a_bundled_name_only_with_the_bundled_content() -> None:
    service = [remote("receipt", CITY, bundled=True)]
    assert actions(plan_sync({"receipt": CITY}, service, prune=False)) == {"receipt": Action.UNCHANGED}
    with pytest.raises(InvalidInputError, match=r"receipt: bundled schema name.*my_receipt\.json"):
        plan_sync({"receipt": TOWN}, service, prune=False)


def test_an_update_prints_the_diff_of_the_content() -> None:
    [change] = plan_sync({"place": TOWN}, [remote("place", CITY, 4)], prune=False, folder="schemas")
    lines = render_change(change)
    assert lines[0] == "~ place: place@4 -> place@5"
    assert "    --- place@4" in lines
    assert "    +++ schemas/place.json" in lines
    assert any(line.startswith("    -") and '"city"' in line for line in lines)
    assert any(line.startswith("    +") and '"town"' in line for line in lines)


def test_a_folder_is_read_as_bare_or_full_schema_files(tmp_path: Path) -> None:
    (tmp_path / "city.json").write_text(json.dumps(CITY.json_schema))
    (tmp_path / "town.json").write_text(json.dumps({"json_schema": TOWN.json_schema, "description": "a town"}))
    (tmp_path / "notes.txt").write_text("not a schema")
    folder = read_schema_folder(tmp_path)
    assert folder == {"city": CITY, "town": TOWN.model_copy(update={"description": "a town"})}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no \\*.json schema files"),
        ({"bad name.json": "{}"}, "bad name.json: a schema file is named NAME.json"),
        ({"city.json": "{not json"}, "city.json: not a readable JSON file"),
        ({"city.json": '{"json_schema": {}, "colour": 1}'}, "city.json: colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_folder_is_refused_before_anything_is_sent(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(InvalidInputError, match=message):
        read_schema_folder(tmp_path)


def test_the_bundled_schemas_are_the_top_level_schemas_folder() -> None:
    """`schemas/` is both the source of the bundled schemas and an example of schemas kept as code."""
    top_level = Path(__file__).resolve().parents[2] / "schemas"
    assert read_schema_folder(top_level).keys() == {"contact", "invoice", "job_posting", "nda", "receipt"}
    assert bundled_schema_dir(Settings()) == top_level  # a source checkout reads the folder itself
