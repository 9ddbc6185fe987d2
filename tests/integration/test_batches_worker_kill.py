"""A real `extractor worker` process SIGKILLed mid-batch: another one finishes it, one result per document."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import httpx2
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor import keys
from extractor.app import create_app
from extractor.local.process import free_port
from tests.support.app import make_settings
from tests.support.batches import invoices, result_lines, submit, wait_finished
from tests.support.redis_db import INTEGRATION_URL as REDIS_URL

JOBS = {"concurrency": 8, "chunk_size": 4, "heartbeat_s": 2, "sweep_s": 1, "run_in_serve": False}


def start_worker(model_url: str, metrics_port: int | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EXTRACTOR_REDIS_URL": REDIS_URL,
        "EXTRACTOR_MODEL_BASE_URL": model_url,
        "EXTRACTOR_MODEL_ENFORCEMENT": "json_schema",
        **{f"EXTRACTOR_JOBS__{name.upper()}": str(value) for name, value in JOBS.items()},
    }
    if metrics_port is not None:
        env["EXTRACTOR_JOBS__METRICS_PORT"] = str(metrics_port)
    code = "from extractor.cli.serve import worker; worker()"
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_sigkilled_worker_loses_nothing_and_doubles_nothing(redis: Redis, fake_server: str) -> None:
    settings = make_settings(model_base_url=fake_server, jobs=JOBS)
    first = start_worker(fake_server)
    second: subprocess.Popen[bytes] | None = None
    try:
        async with AsyncTestClient(create_app(settings)) as client:
            docs = invoices(200, "k")
            batch_id = (await submit(client, docs)).json()["batch_id"]
            while (await client.get(f"/v1/batches/{batch_id}")).json()["done"] < 60:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed: dict[str, Any] = (await client.get(f"/v1/batches/{batch_id}")).json()
            assert killed["counts"]["running"] > 0  # it died holding items
            metrics_port = free_port()
            second = start_worker(fake_server, metrics_port)
            status = await wait_finished(client, batch_id, within_s=40)
            assert status["counts"] == {"queued": 0, "running": 0, "ok": 200, "empty": 0, "failed": 0, "cancelled": 0}
            lines = await result_lines(client, batch_id)
            assert [line["id"] for line in lines] == [doc["id"] for doc in docs]
            assert await redis.hlen(keys.batch_results(batch_id)) == 200
            metrics = httpx2.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            finished_by_second = float(metrics.split('extractor_batch_items_total{status="ok"} ')[1].split()[0])
            assert finished_by_second == 200 - killed["done"], "the second worker counts exactly what it recorded"
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
