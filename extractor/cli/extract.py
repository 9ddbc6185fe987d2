"""``extractor extract``: one document through a running service; ``--stream`` shows the fields fill in live."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from extractor.answers import AttemptEvent, PartialEvent
from extractor.cli.service import echo_json, service_client, service_options
from extractor.extraction.result import ExtractionResult
from extractor.pointer import parse_pointer
from extractor.vocabulary import FieldState, GroundingMode

__all__ = ["extract"]

_STYLE = {FieldState.PENDING: "dim", FieldState.INCOMPLETE: "yellow", FieldState.COMPLETE: "green"}


@click.command()
@click.option("--schema", "schema_ref", required=True, help="`receipt` or `receipt@2`.")
@click.option("--grounding", type=click.Choice([mode.value for mode in GroundingMode]), default=None)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option("--stream", is_flag=True, help="Show the fields as the model writes them (on stderr), then the JSON.")
@click.argument("file", type=click.File("r"))
@service_options
def extract(
    schema_ref: str, grounding: str | None, no_cache: bool, stream: bool, file: TextIO, url: str, api_key: str | None
) -> None:
    """Extract from FILE (`-` for stdin) with a running service; prints the result as JSON."""
    options: dict[str, Any] = {"cache": not no_cache}
    if grounding:
        options["grounding"] = grounding
    with service_client(url, api_key) as client:
        if stream:
            result = show_live(client.extract_stream(schema_ref, file.read(), options=options), Console(stderr=True))
        else:
            result = client.extract(schema_ref, file.read(), options=options)
        echo_json(result.model_dump(mode="json"))


def show_live(events: Iterable[PartialEvent | AttemptEvent | ExtractionResult], console: Console) -> ExtractionResult:
    """Draw each ``partial`` event as a table of fields until the result comes; a re-ask is a line above it."""
    try:
        with Live(fields_table(None), console=console, auto_refresh=False) as live:
            for event in events:
                if isinstance(event, ExtractionResult):
                    return event
                if isinstance(event, AttemptEvent):
                    live.console.print(f"[yellow]attempt {event.attempt}[/]: {'; '.join(event.errors[:3])}")
                live.update(fields_table(event if isinstance(event, PartialEvent) else None), refresh=True)
    finally:
        console.line()  # what follows on stderr (a problem document) starts on a line of its own
    raise click.ClickException("the service ended the stream before its final event")


def fields_table(event: PartialEvent | None) -> Table:
    """One row per top-level field: its state and its value so far."""
    title = "waiting for the model" if event is None else f"attempt {event.attempt}"
    if event is not None and event.parts:
        title += f", part {event.part} of {event.parts}"
    table = Table("field", "state", "value", title=title, title_justify="left")
    for pointer, state in (event.fields if event else {}).items():
        value = event.data.get(parse_pointer(pointer)[0]) if event else None
        shown = "" if state == FieldState.PENDING else json.dumps(value, ensure_ascii=False)[:80]
        table.add_row(pointer, f"[{_STYLE[state]}]{state}[/]", shown)
    return table
