"""``extractor``: run the service, or talk to a running one from a shell."""

from __future__ import annotations

import click

from extractor.cli.batch import batch
from extractor.cli.eval import eval_command, export_command
from extractor.cli.extract import extract
from extractor.cli.model import model
from extractor.cli.schemas import schemas
from extractor.cli.serve import serve, worker

__all__ = ["main"]


@click.group()
@click.version_option(package_name="extractor")
def main() -> None:
    """Structured-output extraction: named JSON Schemas in, grounded and validated JSON out."""


for _command in (serve, worker, model, extract, schemas, batch, eval_command, export_command):
    main.add_command(_command)
