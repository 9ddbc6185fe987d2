"""``extractor batch``: a JSONL file or a folder of texts through a running service, with a progress bar."""

from __future__ import annotations

import json
from pathlib import Path

import click
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from extractor.cli.batch_run import BatchRun, read_documents
from extractor.cli.service import service_client, service_options
from extractor.extraction.result import ExtractOptions

__all__ = ["batch"]

_COLUMNS = (
    TextColumn("[bold]{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TextColumn("{task.fields[rate]:.1f} docs/s"),
    TimeRemainingColumn(),
)


@click.command()
@click.option("--schema", "schema_ref", required=True, help="`receipt` or `receipt@2`.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Results JSONL.")
@click.option("--options", "options_json", default="{}", help="Extraction options as JSON, e.g. '{\"cache\": false}'.")
@service_options
@click.argument("source", type=click.Path(exists=True, path_type=Path))
def batch(schema_ref: str, output: Path, options_json: str, url: str, api_key: str | None, source: Path) -> None:
    """Extract from SOURCE (a JSONL file of {"id", "text"} or a folder of text files) with a running service.

    Results are appended to OUTPUT in input order as they finish; run it again to resume an interrupted run.
    """
    try:
        options = json.loads(options_json)
        ExtractOptions.model_validate(options)
    except (ValueError, ValidationError) as exc:
        raise click.BadParameter(str(exc), param_hint="--options") from exc
    documents = read_documents(source)
    with service_client(url, api_key) as client, Progress(*_COLUMNS) as progress:
        task = progress.add_task(schema_ref, total=len(documents), rate=0.0)

        def show(done: int, total: int, rate: float) -> None:
            progress.update(task, completed=done, total=total, rate=rate)

        written = BatchRun(client, schema_ref, options, output).run(documents, show)
    click.echo(f"{written} result(s) written to {output}")
