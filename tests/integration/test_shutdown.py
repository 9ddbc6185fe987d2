"""SIGTERM, as an orchestrator sends it: real `extractor worker` and `extractor serve` processes against a slow model.

A worker stops claiming chunks, finishes those it holds within ``EXTRACTOR_SHUTDOWN_GRACE_S`` or hands them back, and
every document still gets exactly one result. The API stops accepting connections, answers the requests in flight
within the grace period, then exits. Redis db 12 (other suites use 14 and 15).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor import keys
from extractor.app import create_app
from extractor.jobs.queue import chunk_key, chunks, open_queue
from extractor.local.process import free_port
from tests.support.app import make_settings
from tests.support.batches import invoices, metric, result_lines, submit, wait_finished
from tests.support.processes import fake_openai, started
from tests.support.redis_db import SUBPROCESS_URL, flushed_db

REDIS_URL = SUBPROCESS_URL
JOBS = {"concurrency": 4, "chunk_size": 2, "heartbeat_s": 2, "sweep_s": 1, "run_in_serve": False}
DOCS = 40


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    async with flushed_db(REDIS_URL) as client:
        yield client


def environment(model_url: str, grace_s: float, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "EXTRACTOR_REDIS_URL": REDIS_URL,
        "EXTRACTOR_MODEL_BASE_URL": model_url,
        "EXTRACTOR_MODEL_ENFORCEMENT": "json_schema",
        "EXTRACTOR_SHUTDOWN_GRACE_S": str(grace_s),
        **{f"EXTRACTOR_JOBS__{name.upper()}": str(value) for name, value in JOBS.items()},
        **extra,
    }


def start_worker(
    model_url: str, grace_s: float, metrics_port: int | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    extra = {"EXTRACTOR_JOBS__METRICS_PORT": str(metrics_port)} if metrics_port else {}
    with open(log or os.devnull, "wb") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "extractor", "worker"],
            env=environment(model_url, grace_s, **extra),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def stop(*processes: subprocess.Popen[bytes] | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


async def status_of(client: AsyncTestClient[Any], batch_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/v1/batches/{batch_id}")).json()
    return body


async def sigterm_mid_batch(
    client: AsyncTestClient[Any],
    worker: subprocess.Popen[bytes],
    batch_id: str,
    exit_within_s: float,
    log: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """SIGTERM ``worker`` once some documents are done and others held; (status then, status at exit, seconds).

    With the worker's ``log``, "then" is when the worker says it stopped claiming, not when the signal was sent: a
    loaded machine may let the worker take another chunk before its loop gets to the signal."""
    while (await status_of(client, batch_id))["done"] < 4:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    at_signal = await status_of(client, batch_id)
    assert at_signal["counts"]["running"] > 0, "the worker holds items when it is told to stop"
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    if log is not None:
        while b"stopping:" not in await asyncio.to_thread(log.read_bytes) and worker.poll() is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        at_signal = await status_of(client, batch_id)
    code = await asyncio.to_thread(worker.wait, exit_within_s)
    took = time.monotonic() - started
    assert code == 0, "a SIGTERM is a clean stop"
    return at_signal, await status_of(client, batch_id), took


async def finish_with_second_worker(
    client: AsyncTestClient[Any], redis: Redis, model_url: str, batch_id: str, done_before: int
) -> None:
    """A second worker finishes the batch: every document has exactly one result, and the second worker recorded
    exactly the documents the first one had not (nothing was run to completion twice, nothing lost)."""
    metrics_port = free_port()
    second = start_worker(model_url, grace_s=5, metrics_port=metrics_port)
    try:
        status = await wait_finished(client, batch_id, within_s=60)
        assert status["counts"]["ok"] + status["counts"]["empty"] == DOCS
        assert status["counts"]["failed"] == status["counts"]["cancelled"] == 0
        lines = await result_lines(client, batch_id)
        assert [line["id"] for line in lines] == [f"slow-{n}" for n in range(DOCS)]
        assert await redis.hlen(keys.batch_results(batch_id)) == DOCS
        metrics = httpx2.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        recorded = sum(metric(metrics, f'extractor_batch_items_total{{status="{kind}"}}') for kind in ("ok", "empty"))
        assert recorded == DOCS - done_before
    finally:
        stop(second)


async def queued_chunks(batch_id: str) -> set[tuple[str, int]]:
    """(status, attempts) of each chunk still in the queue (a finished chunk's job is gone)."""
    queue = open_queue(REDIS_URL)
    try:
        jobs = [await queue.job(chunk_key(batch_id, start)) for start, _ in chunks(DOCS, JOBS["chunk_size"])]
        return {(job.status.value, job.attempts) for job in jobs if job is not None}
    finally:
        await queue.disconnect()


def slow_documents() -> list[dict[str, str]]:
    return invoices(DOCS, "slow")


async def test_a_sigtermed_worker_finishes_what_it_holds_and_claims_nothing_more(redis: Redis, tmp_path: Path) -> None:
    with fake_openai(latency_ms=700) as model_url:
        settings = make_settings(redis_url=REDIS_URL, model_base_url=model_url, jobs=JOBS)
        log = tmp_path / "worker.log"
        first = start_worker(model_url, grace_s=30, log=log)
        try:
            async with AsyncTestClient(create_app(settings)) as client:
                batch_id = (await submit(client, slow_documents())).json()["batch_id"]
                at_signal, at_exit, _ = await sigterm_mid_batch(client, first, batch_id, exit_within_s=30, log=log)
                assert at_exit["counts"]["running"] == 0, "every item it held was finished, none handed back"
                assert at_exit["counts"]["queued"] > 0, "it stopped claiming: the rest waits for another worker"
                # What it finished after the signal is what it held then (plus at most one chunk it was taking).
                held = at_signal["counts"]["running"] + JOBS["chunk_size"]
                assert at_exit["done"] - at_signal["done"] <= held
                await finish_with_second_worker(client, redis, model_url, batch_id, at_exit["done"])
        finally:
            stop(first)


async def test_a_worker_hands_back_what_it_cannot_finish_within_the_grace_period(redis: Redis) -> None:
    with fake_openai(latency_ms=3000) as model_url:
        settings = make_settings(redis_url=REDIS_URL, model_base_url=model_url, jobs=JOBS)
        first = start_worker(model_url, grace_s=0.5)
        try:
            async with AsyncTestClient(create_app(settings)) as client:
                batch_id = (await submit(client, slow_documents())).json()["batch_id"]
                _, at_exit, took = await sigterm_mid_batch(client, first, batch_id, exit_within_s=15)
                # Finishing what it held would take 9 s (10 items, 4 permits, 3 s each).
                assert took < 5, f"it stopped within the grace period plus the hand-back, not {took:.1f}s"
                assert at_exit["counts"]["running"] > 0, "it left items unfinished, for the next worker"
                # Handed back at once, not left for the sweep; and a stop spends none of a chunk's redeliveries.
                assert await queued_chunks(batch_id) == {("queued", 0)}
                await finish_with_second_worker(client, redis, model_url, batch_id, at_exit["done"])
        finally:
            stop(first)


@contextmanager
def serve(model_url: str, grace_s: float) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = environment(model_url, grace_s, EXTRACTOR_PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    with started([sys.executable, "-m", "extractor", "serve"], f"{url}/healthz", env=env, grace_s=0.5) as process:
        yield process, url


async def extract_in_flight(url: str) -> tuple[asyncio.Task[httpx2.Response], httpx2.AsyncClient]:
    client = httpx2.AsyncClient(base_url=url, timeout=60)
    body = {"schema": "receipt", "text": "ACME Market TOTAL 3.70 EUR", "options": {"cache": False}}
    request = asyncio.create_task(client.post("/v1/extract", json=body))
    await asyncio.sleep(1.0)  # sent, and waiting on the model
    assert not request.done()
    return request, client


async def test_a_sigtermed_api_answers_the_requests_in_flight_and_refuses_new_ones(redis: Redis) -> None:
    with fake_openai(latency_ms=3000) as model_url, serve(model_url, grace_s=20) as (process, url):
        request, client = await extract_in_flight(url)
        try:
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            with pytest.raises(httpx2.ConnectError):
                httpx2.get(f"{url}/healthz", timeout=2)
            response = await request
            assert response.status_code == 200, response.text
            assert response.json()["status"] in ("ok", "empty")
            assert await asyncio.to_thread(process.wait, 10) == 0
        finally:
            await client.aclose()


async def test_a_sigtermed_api_exits_within_its_grace_period(redis: Redis) -> None:
    with fake_openai(latency_ms=30_000) as model_url, serve(model_url, grace_s=1) as (process, url):
        request, client = await extract_in_flight(url)
        try:
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 15) == 0
            assert time.monotonic() - started < 6, "it cut the request at the grace period instead of waiting"
            cut = await request
            assert cut.status_code == 503, cut.text
            assert cut.headers["retry-after"] == "1"
            assert cut.json()["type"] == "shutting-down"
        finally:
            await client.aclose()
