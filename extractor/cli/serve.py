"""``extractor serve`` (the service, with the bundled Redis and model when none is configured) and
``extractor worker`` (batch workers alone)."""

from __future__ import annotations

import logging
import math
import signal
from contextlib import ExitStack
from types import FrameType

import click
import uvloop

from extractor.errors import ExtractorError
from extractor.settings import Settings
from extractor.telemetry.logs import configure_logging

__all__ = ["exit_cleanly_on_signals", "serve", "worker"]


def exit_cleanly_on_signals() -> None:
    """SIGTERM and SIGINT end ``serve`` through its ``with`` blocks, so it exits only once its children have.

    uvicorn drains on either signal, then raises it again; with the default SIGTERM action that kills the process
    before the children are stopped. Raised as ``SystemExit(0)`` here, it unwinds like any return.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, stop)


@click.command()
@click.option("--host", default=None, help="Bind address (default EXTRACTOR_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default EXTRACTOR_PORT or 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Run the HTTP service; starts a bundled Redis and model when none is configured."""
    import uvicorn

    from extractor.app import create_app
    from extractor.cli.http import bounded_httptools
    from extractor.gc_tuning import tune_for_service
    from extractor.local.embedded import start_embedded

    settings = Settings()
    configure_logging(settings)  # the service's own format (EXTRACTOR_LOG_FORMAT) from the first line on
    exit_cleanly_on_signals()
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
            http=bounded_httptools(settings.limits.max_header_bytes),  # 431 past it, before the headers are read
            h11_max_incomplete_event_size=settings.limits.max_header_bytes,
        )


@click.command()
@click.option("--id", "worker_id", default=None, help="Worker id shown in SAQ's worker info (default: a uuid).")
def worker(worker_id: str | None) -> None:
    """Run a batch worker alone (EXTRACTOR_REDIS_URL and EXTRACTOR_MODEL_BASE_URL required); SIGTERM stops it."""
    from extractor.gc_tuning import tune_for_service
    from extractor.jobs.lifecycle import run_until_signalled
    from extractor.jobs.metrics import serve_metrics
    from extractor.runtime import open_runtime
    from extractor.telemetry.tracing import Tracing

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
        async with open_runtime(settings, tracing=Tracing.from_env(), with_queue=True) as runtime:
            tune_for_service()
            await run_until_signalled(runtime.worker(worker_id=worker_id), settings.shutdown_grace_s)

    uvloop.run(main())  # the worker is CPU-bound on I/O plumbing: uvloop's is cheaper than asyncio's
