"""``extractor schemas``: list, show and register schemas on a running service, or sync them from a folder
(schemas as code)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click

from extractor.cli.service import echo_json, service_client, service_options
from extractor.errors import InvalidInputError
from extractor.registry.sync import Action, plan_sync, read_schema_folder, render_change

__all__ = ["schemas"]


@click.group()
def schemas() -> None:
    """List, show and register schemas on a running service."""


@schemas.command("list")
@service_options
def schemas_list(url: str, api_key: str | None) -> None:
    """One line per schema: name@version, and its description."""
    with service_client(url, api_key) as client:
        for item in client.list_schemas():
            flags = " (retired)" if item.retired else ""
            click.echo(f"{item.ref}{flags}\t{item.description or ''}")


@schemas.command("show")
@click.argument("ref")
@service_options
def schemas_show(ref: str, url: str, api_key: str | None) -> None:
    """Print a schema (`name` for the latest, `name@N` for one version)."""
    name, _, version = ref.partition("@")
    with service_client(url, api_key) as client:
        shown = client.get_schema_version(name, int(version)) if version else client.get_schema(name)
        echo_json(shown.model_dump(mode="json"))


@schemas.command("register")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--description", default=None)
@click.option("--instructions", default=None)
@service_options
def schemas_register(
    name: str, file: Path, description: str | None, instructions: str | None, url: str, api_key: str | None
) -> None:
    """Register FILE as the next version of NAME: a bare JSON Schema, or a full {json_schema, description, ...}."""
    document = json.loads(file.read_text())
    body = document if "json_schema" in document else {"json_schema": document}
    body |= {k: v for k, v in (("description", description), ("instructions", instructions)) if v}
    with service_client(url, api_key) as client:
        echo_json(client.register_schema(name, body).model_dump(mode="json"))


@schemas.command("sync")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--prune", is_flag=True, help="Retire your schemas that have no file in FOLDER.")
@click.option("--dry-run", is_flag=True, help="Print the changes and make none.")
@service_options
def schemas_sync(folder: Path, prune: bool, dry_run: bool, url: str, api_key: str | None) -> None:
    """Register every FOLDER/NAME.json that is new or changed (a new version only when the content differs), and
    print the diff; safe to run again and again, e.g. from a deploy pipeline."""
    try:
        local = read_schema_folder(folder)
        with service_client(url, api_key) as client:
            remote = [summary.model_dump(mode="json") for summary in client.list_schemas()]
            changes = plan_sync(local, remote, prune=prune, folder=str(folder))
            for change in changes:
                for line in render_change(change):
                    click.echo(line)
            for change in [] if dry_run else changes:
                if change.definition is not None:  # create, update or restore
                    client.register_schema(change.name, change.definition)
                elif change.action is Action.RETIRE:
                    client.retire_schema(change.name)
    except InvalidInputError as exc:
        raise click.ClickException(exc.detail) from exc
    counts = Counter(change.action for change in changes)
    summary = ", ".join(f"{counts[action]} {_PAST[action]}" for action in Action)
    click.echo(f"{'dry run, nothing changed: would have ' if dry_run else ''}{summary}")


_PAST = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.RESTORE: "restored",
    Action.RETIRE: "retired",
    Action.UNCHANGED: "unchanged",
}
