"""CPU per model call: the ``openai`` SDK (httpx2, and its aiohttp transport) against extractor's ``ModelClient``.

The figure behind extractor calling the model with aiohttp rather than the SDK. Each contender sends the same
chat completion (a system and a user message, a ``json_schema`` response format) to ``bench.fake_openai`` at
a fixed latency, ``--concurrency`` calls at a time, and reads the content of the answer. Each round of each
contender is a fresh process; rounds are interleaved. Reported: CPU time of the client process per call
(``time.process_time``; the figure that caps a CPU-bound batch worker), and calls per second::

    python -m bench.model_client --rounds 3 --calls 2000 --concurrency 64 --latency-ms 100 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypedDict

from bench.common import PYTHON, Server, free_port, machine, rotations, run_json, table, write_json

CONTENDERS = ("openai", "openai-aiohttp", "extractor")
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": ["string", "null"]}, "email": {"type": ["string", "null"]}},
    "required": ["name", "email"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "system", "content": "Extract the person's name and email as JSON; null when absent."},
    {"role": "user", "content": "Document:\n<<<\nDana Whitfield, dana.whitfield@northwind-labs.example\n>>>"},
]
FORMAT = {"type": "json_schema", "json_schema": {"name": "contact", "schema": SCHEMA, "strict": True}}


class Summary(TypedDict):
    """One contender's figures over its rounds."""

    cpu_ms_per_call: float
    cpu_ms_rounds: list[float]
    calls_per_s: float


def _sdk(base_url: str, aiohttp: bool) -> Callable[[], Awaitable[str]]:
    from openai import AsyncOpenAI, DefaultAioHttpClient
    from openai.types.chat import ChatCompletion

    http_client = DefaultAioHttpClient() if aiohttp else None
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=2, http_client=http_client)
    body = {"model": "fake-model", "messages": MESSAGES, "response_format": FORMAT, "max_tokens": 256}

    async def call() -> str:
        # The SDK's leanest path (what extractor used before): no per-call TypedDict transform of the body.
        completion = await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        return completion.choices[0].message.content or ""

    return call


def _extractor(base_url: str) -> Callable[[], Awaitable[str]]:
    from extractor.extraction.model import ModelClient

    client = ModelClient(base_url, "bench", model="fake-model", max_retries=2)

    async def call() -> str:
        reply = await client.complete(MESSAGES, FORMAT, max_tokens=256, temperature=0, seed=None)
        return reply.content

    return call


async def _work(name: str, base_url: str, calls: int, concurrency: int) -> dict[str, float]:
    call = _extractor(base_url) if name == "extractor" else _sdk(base_url, aiohttp=name == "openai-aiohttp")
    permits = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with permits:
            if not await call():
                raise RuntimeError("empty answer")

    await asyncio.gather(*(one() for _ in range(concurrency * 2)))  # warm-up: connections, imports
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_ms_per_call": cpu / calls * 1000, "calls_per_s": calls / wall}


def _round(name: str, base_url: str, calls: int, concurrency: int) -> dict[str, float]:
    argv = [PYTHON, "-m", "bench.model_client", "--worker", name, "--fake", base_url]
    argv += ["--calls", str(calls), "--concurrency", str(concurrency)]
    result: dict[str, float] = run_json(argv, f"{name} round")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.model_client", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000, help="Timed calls per contender per round.")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--fake", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import uvloop

        print(json.dumps(uvloop.run(_work(args.worker, args.fake, args.calls, args.concurrency))))
        return
    port = free_port()
    fake = Server(
        [PYTHON, "-m", "bench.fake_openai", "--port", str(port), "--latency-ms", str(args.latency_ms)],
        port,
        "/v1/models",
    )
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    with fake:
        for order in rotations(CONTENDERS, args.rounds):
            for name in order:
                runs[name].append(_round(name, f"{fake.url}/v1", args.calls, args.concurrency))
                print(f"  {name}: round {len(runs[name])}/{args.rounds}", file=sys.stderr)
    summary: dict[str, Summary] = {
        name: {
            "cpu_ms_per_call": round(statistics.median(r["cpu_ms_per_call"] for r in rs), 3),
            "cpu_ms_rounds": [round(r["cpu_ms_per_call"], 3) for r in rs],
            "calls_per_s": round(statistics.median(r["calls_per_s"] for r in rs), 1),
        }
        for name, rs in runs.items()
    }
    base = summary["openai"]["cpu_ms_per_call"]
    rows = [
        (
            name,
            s["cpu_ms_per_call"],
            " ".join(map(str, s["cpu_ms_rounds"])),
            f"{base / s['cpu_ms_per_call']:.1f}x",
            s["calls_per_s"],
        )
        for name, s in summary.items()
    ]
    print(table(("client", "CPU ms/call (median)", "rounds", "less CPU than openai", "calls/s"), rows))
    write_json(args.json, {"machine": machine(), "args": sys.argv[1:], "results": summary})


if __name__ == "__main__":
    main()
