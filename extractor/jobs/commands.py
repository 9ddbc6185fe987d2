"""The click commands of batch jobs: ``extractor worker`` and ``extractor batch`` (registered on the main group)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click
import httpx
import uvloop
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from extractor.gc_tuning import tune_for_service
from extractor.jobs.client import BatchRun, read_documents
from extractor.jobs.metrics import serve_metrics
from extractor.services import build_services
from extractor.settings import Settings
from extractor.telemetry.logs import configure_logging
from extractor.telemetry.tracing import Tracing

__all__ = ["batch", "worker"]


@click.command()
@click.option("--id", "worker_id", default=None, help="Worker id shown in SAQ's worker info (default: a uuid).")
def worker(worker_id: str | None) -> None:
    """Run a batch worker alone (EXTRACTOR_REDIS_URL and EXTRACTOR_MODEL_BASE_URL required); SIGTERM stops it."""
    from extractor.jobs.runtime import run_worker

    settings = Settings()
    configure_logging(settings)
    if settings.redis_url is None:
        raise click.ClickException("`extractor worker` needs a shared Redis: set EXTRACTOR_REDIS_URL")

    if settings.jobs.metrics_port is not None:
        serve_metrics(settings.host, settings.jobs.metrics_port)
        logging.getLogger("extractor.jobs").info(
            "metrics on http://%s:%d/metrics", settings.host, settings.jobs.metrics_port
        )

    async def main() -> None:
        services = build_services(settings, tracing=Tracing.from_env())
        tune_for_service()
        try:
            await run_worker(services, worker_id=worker_id)
        finally:
            await services.aclose()

    uvloop.run(main())  # the worker is CPU-bound on I/O plumbing: uvloop's is cheaper than asyncio's


@click.command()
@click.option("--schema", "schema_ref", required=True, help="`receipt` or `receipt@2`.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Results JSONL.")
@click.option("--options", "options_json", default="{}", help="Extraction options as JSON, e.g. '{\"cache\": false}'.")
@click.option("--url", envvar="EXTRACTOR_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--api-key", envvar="EXTRACTOR_API_KEY", default=None, help="Sent as a Bearer token.")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
def batch(schema_ref: str, output: Path, options_json: str, url: str, api_key: str | None, source: Path) -> None:
    """Extract from SOURCE (a JSONL file of {"id", "text"} or a folder of text files) with a running service.

    Results are appended to OUTPUT in input order as they finish; run it again to resume an interrupted run.
    """
    documents = read_documents(source)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = httpx.Timeout(300.0, connect=5.0)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} docs/s"),
        TimeRemainingColumn(),
    )
    with httpx.Client(base_url=url, headers=headers, timeout=timeout) as client, Progress(*columns) as progress:
        task = progress.add_task(schema_ref, total=len(documents), rate=0.0)

        def show(done: int, total: int, rate: float) -> None:
            progress.update(task, completed=done, total=total, rate=rate)

        try:
            written = BatchRun(client, schema_ref, json.loads(options_json), output).run(documents, show)
        except (httpx.TransportError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{written} result(s) written to {output}")
