"""Batches through the HTTP API of an in-process app: submit, wait for the end, read the results back."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from litestar.testing import AsyncTestClient

__all__ = ["GOOD", "documents", "invoices", "metric", "result_lines", "submit", "wait_finished"]

GOOD = {"merchant": "ACME Market", "date": "2024-03-05", "total": 3.7, "currency": "EUR", "items": []}
"""A receipt the bundled ``receipt`` schema accepts: what the fake model answers for a good document."""


def documents(count: int, prefix: str = "doc") -> list[dict[str, str]]:
    return [{"id": f"{prefix}-{n}", "text": f"ACME Market receipt number {n}, TOTAL 3.70 EUR"} for n in range(count)]


def invoices(count: int, prefix: str) -> list[dict[str, str]]:
    """Documents the fake model reads as receipts: Globex's merchant word and the first number as the total, never a
    single digit (a value found as one character is no evidence of a record: it would be ``empty``)."""
    numbers = range(10, 10 + count)
    return [{"id": f"{prefix}-{n - 10}", "text": f"Invoice {n} from Globex, total {n}.50 EUR"} for n in numbers]


async def submit(client: AsyncTestClient[Any], docs: list[dict[str, str]], **extra: Any) -> Any:
    """``POST /v1/batches`` of ``docs`` against the ``receipt`` schema; ``options=`` goes in the body, the rest to
    the request."""
    body = {"schema": "receipt", "documents": docs, "options": extra.pop("options", {})}
    return await client.post("/v1/batches", json=body, **extra)


async def wait_finished(client: AsyncTestClient[Any], batch_id: str, within_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await client.get(f"/v1/batches/{batch_id}")).json()
        if body["finished_at"] is not None:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish in {within_s}s: {body}")


async def result_lines(client: AsyncTestClient[Any], batch_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/batches/{batch_id}/results", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def metric(metrics: str, name: str) -> float:
    """The value of one sample line of a Prometheus text page (0 when absent)."""
    line = next((line for line in metrics.splitlines() if line.startswith(f"{name} ")), None)
    return float(line.split()[-1]) if line else 0.0
