"""Prometheus metrics of a batch worker. Inside ``extractor serve`` they are on the service's ``/metrics``;
``extractor worker`` serves them itself on ``jobs.metrics_port`` (off by default: several workers on one machine
each need a port of their own)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = ["IN_FLIGHT", "ITEMS", "ITEM_SECONDS", "serve_metrics"]

ITEMS = Counter("extractor_batch_items", "Batch items this worker recorded, by final status.", ["status"])
IN_FLIGHT = Gauge(
    "extractor_batch_model_calls_in_flight", "Model calls this worker has in flight (at most jobs.concurrency)."
)
ITEM_SECONDS = Histogram(
    "extractor_batch_item_duration_seconds",
    "From an item's start in this worker to its recorded outcome, retries and waits for a permit included.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)


def serve_metrics(host: str, port: int) -> None:
    """Serve ``/metrics`` from a thread of this process (prometheus_client's own server)."""
    start_http_server(port, addr=host)
