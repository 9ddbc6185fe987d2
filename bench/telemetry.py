"""What the telemetry of one extraction costs in CPU, piece by piece, in-process.

The overhead bench (``bench.overhead --baseline``) shows what a whole change costs a request; this one says which
part: the spans of one cache-miss extraction with tracing off (no-ops) and on (the SDK, spans kept in memory),
its Prometheus metrics, and its JSON log line (formatted, handed to the batching handler, written to /dev/null).
Each figure is the best of ``--repeat`` runs of ``--number`` calls, in microseconds per extraction::

    python -m bench.telemetry --number 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import logging
import os
import timeit
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.common import machine, table, write_json
from extractor.settings import MetricsSettings
from extractor.telemetry.logs import BatchingHandler, JsonFormatter, log_extraction
from extractor.telemetry.metrics import ExtractionMetrics
from extractor.telemetry.report import ExtractionReport
from extractor.telemetry.tracing import Tracing

SPANS = 9
"""A cache miss with one model call: extract, schema, cache, enforcement, chat, repair, validate, grounding, write."""


def _spans(tracing: Tracing) -> Callable[[], None]:
    def run() -> None:
        with tracing.span("extractor.extract"):
            for _ in range(SPANS - 1):
                with tracing.span("extractor.step"):
                    pass

    return run


def _metrics() -> Callable[[], None]:
    metrics = ExtractionMetrics(MetricsSettings.model_validate({"prices": {"bench-model": {"input": 1, "output": 2}}}))

    def run() -> None:
        report = ExtractionReport(tenant="bench")
        report.resolve("bench_schema@1", "bench-model")
        metrics.cache(report, hit=False)
        metrics.enforcement("http://127.0.0.1:1", "json_schema")
        metrics.model_call(report.model, "ok", 0.001)
        metrics.tokens(report, 160, 20)
        metrics.repairs(report, "parse", 0)
        metrics.repairs(report, "coerce", 0)
        report.status = "ok"
        metrics.result(report)

    return run


def _log_line() -> Callable[[], None]:
    logger = logging.getLogger("extractor.requests")
    handler = BatchingHandler(Path(os.devnull).open("w"))  # noqa: SIM115 (open for the life of the process)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    report = ExtractionReport(tenant="bench", schema="bench_schema@1", model="bench-model", status="ok", attempts=1)

    def run() -> None:
        log_extraction("extract", report, 0.0015)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    pieces = {
        f"{SPANS} spans, tracing off": _spans(Tracing()),
        f"{SPANS} spans, tracing on (SDK, in-memory export)": _spans(Tracing(provider)),
        "metrics of one extraction": _metrics(),
        "one JSON log line": _log_line(),
    }
    results = {}
    for name, run in pieces.items():
        best = min(timeit.repeat(run, number=args.number, repeat=args.repeat)) / args.number
        results[name] = round(best * 1e6, 2)
    print(table(("piece", "us per extraction"), list(results.items())))
    write_json(args.json, {"machine": machine(), "args": vars(args) | {"json": str(args.json)}, "results": results})


if __name__ == "__main__":
    main()
