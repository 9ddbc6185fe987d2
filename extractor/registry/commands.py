"""``extractor schemas sync``: keep a running service's schemas equal to a folder of schema files (schemas as code)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from extractor.errors import InvalidInputError
from extractor.registry.sync import Action, plan_sync, read_schema_folder, render_change

__all__ = ["sync_command"]


@click.command("sync")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--prune", is_flag=True, help="Retire your schemas that have no file in FOLDER.")
@click.option("--dry-run", is_flag=True, help="Print the changes and make none.")
@click.option("--url", envvar="EXTRACTOR_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--api-key", envvar="EXTRACTOR_API_KEY", default=None, help="Sent as a Bearer token.")
def sync_command(folder: Path, prune: bool, dry_run: bool, url: str, api_key: str | None) -> None:
    """Register every FOLDER/NAME.json that is new or changed (a new version only when the content differs), and
    print the diff; safe to run again and again, e.g. from a deploy pipeline."""
    from extractor.cli import _call, _client  # the CLI's one HTTP client; imported here, as cli.py imports us

    try:
        local = read_schema_folder(folder)
        with _client(url, api_key) as client:
            changes = plan_sync(local, _call(client, "GET", "/v1/schemas"), prune=prune, folder=str(folder))
            for change in changes:
                for line in render_change(change):
                    click.echo(line)
            for change in [] if dry_run else changes:
                path = f"/v1/schemas/{change.name}"
                if change.definition is not None:  # create, update or restore
                    _call(client, "PUT", path, json=change.definition.model_dump(mode="json"))
                elif change.action is Action.RETIRE:
                    _call(client, "DELETE", path)
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
