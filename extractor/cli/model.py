"""``extractor model serve``: the bundled model's OpenAI-compatible server alone, for other tools."""

from __future__ import annotations

import time

import click

from extractor.cli.serve import exit_cleanly_on_signals
from extractor.errors import ExtractorError
from extractor.settings import Settings
from extractor.telemetry.logs import configure_logging

__all__ = ["model"]


@click.group()
def model() -> None:
    """The bundled local model."""


@model.command("serve")
@click.option("--port", type=int, default=8080, show_default=True)
def model_serve(port: int) -> None:
    """Run the bundled model's OpenAI-compatible server alone, for other tools (Ctrl-C stops it)."""
    from extractor.local.model import LocalModelServer, local_model_available
    from extractor.local.process import describe_exit

    configure_logging(Settings())
    if not local_model_available():
        raise click.ClickException("the bundled model is not installed: install it with `bash scripts/install`")
    server = LocalModelServer(port=port)
    exit_cleanly_on_signals()
    try:
        url = server.start()
        click.echo(f"bundled model at {url} (model {server.model_name!r}); Ctrl-C stops it")
        while server.alive():
            time.sleep(1)
        raise click.ClickException(f"the model server {describe_exit(server.exit_code() or 0)}; see {server.log_path}")
    except ExtractorError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        server.stop()
