"""Reliability figures (docs/reliability.md): what a request waits, and what the service spends, when the model hangs
or fails; how long ``/healthz`` stalls while hostile schemas are registered.

    python -m bench.reliability [--redis redis://127.0.0.1:6379/1] [--deadline-s 60] [--json out.json]

The service runs in this process under uvicorn (as ``extractor serve`` runs it, limits included), the fake model
(``bench/fake_openai.py``) in a thread of its own with hangs or failures; settings are the defaults unless a flag
says otherwise. Three measurements:

1. **hung model**: 20 concurrent ``/v1/extract`` (cache off) while every model call hangs: each request's wait and
   the number of upstream calls; then 20 more, which the open circuit breaker answers at once.
2. **failing upstream**: 16 clients for 10 s while half of the model calls answer 500: throughput and outcomes.
3. **hostile schemas**: the slowest ``/healthz`` while 8 schemas of 2,000 properties and one with a catastrophic
   pattern and example are registered at once.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.common import machine, table, write_json
from bench.fake_openai import create_fake_app
from extractor.app import create_app
from extractor.cli.http import bounded_httptools
from extractor.limit_settings import LimitSettings
from extractor.settings import Settings

CONCURRENT = 20


class _Counting:
    """The fake model, counting its chat calls."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
            self.calls += 1
        await self.app(scope, receive, send)


@contextmanager
def _served(app: Any, **options: Any) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, lifespan="on", access_log=False, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _service(settings: Settings) -> Any:
    return _served(create_app(settings), http=bounded_httptools(settings.limits.max_header_bytes))


async def _wave(client: httpx.AsyncClient, count: int) -> list[tuple[int, float]]:
    body = {"schema": "receipt", "text": "Total 12.50 EUR", "options": {"cache": False}}

    async def one() -> tuple[int, float]:
        started = time.perf_counter()
        answer = await client.post("/v1/extract", json=body)
        return answer.status_code, time.perf_counter() - started

    return await asyncio.gather(*(one() for _ in range(count)))


def hung_model(settings: Settings) -> list[list[Any]]:
    fake = _Counting(create_fake_app(hang_rate=1.0))
    with _served(fake) as model_url, _service(settings.model_copy(update={"model_base_url": f"{model_url}/v1"})) as url:

        async def run() -> list[list[Any]]:
            async with httpx.AsyncClient(base_url=url, timeout=600) as client:
                rows = []
                for label in ("hung model: first 20", "hung model: next 20 (breaker open)"):
                    before = fake.calls
                    answers = await _wave(client, CONCURRENT)
                    waits = sorted(w for _, w in answers)
                    statuses = dict(Counter(s for s, _ in answers))
                    rows.append(
                        [label, f"{waits[len(waits) // 2]:.2f}", f"{waits[-1]:.2f}", fake.calls - before, statuses]
                    )
                return rows

        return asyncio.run(run())


def failing_upstream(settings: Settings, seconds: float = 10.0, clients: int = 16) -> list[Any]:
    fake = _Counting(create_fake_app(latency_ms=50, fail_rate=0.5, seed=1))
    with _served(fake) as model_url, _service(settings.model_copy(update={"model_base_url": f"{model_url}/v1"})) as url:

        async def run() -> list[Any]:
            outcomes: Counter[int] = Counter()
            ends = time.perf_counter() + seconds
            async with httpx.AsyncClient(base_url=url, timeout=600) as client:

                async def loop() -> None:
                    while time.perf_counter() < ends:
                        outcomes.update(status for status, _ in await _wave(client, 1))

                await asyncio.gather(*(loop() for _ in range(clients)))
            total = sum(outcomes.values())
            return ["failing upstream (50% 500s)", f"{total / seconds:.1f} req/s", "-", fake.calls, dict(outcomes)]

        return asyncio.run(run())


def hostile_schemas(settings: Settings) -> list[Any]:
    fake = create_fake_app()
    with _served(fake) as model_url, _service(settings.model_copy(update={"model_base_url": f"{model_url}/v1"})) as url:

        async def run() -> list[Any]:
            wide = {f"p{i}": {"type": "string", "pattern": "^(a|a)*$"} for i in range(2000)}
            redos = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(a|a)*$"}}}
            async with httpx.AsyncClient(base_url=url, timeout=600) as client:
                work = [
                    client.put(f"/v1/schemas/wide{i}", json={"json_schema": {"type": "object", "properties": wide}})
                    for i in range(8)
                ]
                work.append(
                    client.put("/v1/schemas/redos", json={"json_schema": redos, "examples": [{"a": "a" * 40 + "!"}]})
                )
                tasks = [asyncio.ensure_future(w) for w in work]
                pending = set(tasks)
                slowest = 0.0
                while pending:
                    started = time.perf_counter()
                    await client.get("/healthz")
                    slowest = max(slowest, time.perf_counter() - started)
                    _, pending = await asyncio.wait(pending, timeout=0.02)
                statuses = dict(Counter(task.result().status_code for task in tasks))
            return ["hostile schemas: /healthz", "-", f"{slowest:.3f}", 0, statuses]

        return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/1")
    parser.add_argument("--deadline-s", type=float, default=LimitSettings().request_deadline_s)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    settings = Settings(
        redis_url=args.redis,
        model_base_url="http://unused.test/v1",
        model_enforcement="json_schema",
        limits=LimitSettings(request_deadline_s=args.deadline_s),
    )
    rows = [*hung_model(settings), failing_upstream(settings), hostile_schemas(settings)]
    write_json(args.json, {"machine": machine(), "deadline_s": args.deadline_s, "rows": rows})
    print(table(["measurement", "median s / rate", "slowest s", "upstream calls", "answers"], rows))


if __name__ == "__main__":
    main()
