"""Streamed extraction: what streaming costs and what it buys.

``fake`` (the default): ``extractor serve`` against a fake model that writes a receipt at a fixed rate (one piece of
``--piece-chars`` characters every ``--token-ms``; a request without ``stream`` is answered whole after the same
time, as a real model would). Per request: the time from the model's first piece to the first ``partial`` event
the client reads, and the total time of the streamed extraction against the same one as JSON, in interleaved
rounds (cache off)::

    python -m bench.streaming fake --rounds 5 --requests 20 --token-ms 10

``local``: the bundled model (llama.cpp, SmolLM2-135M), in process, on a few receipts (bundled ``receipt`` schema)
and contracts (the first 1,500 characters of Kleister NDA documents, ``nda`` schema): the time to the first field
``complete`` against the time to the whole answer::

    python -m bench.streaming local --receipts 4 --contracts 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from bench.common import PYTHON, SERVE, Server, free_port, machine, rotations, table, write_json

RECEIPT = {
    "merchant": "ACME Market",
    "date": "2024-03-05",
    "total": 3.7,
    "currency": "EUR",
    "items": [{"name": "Bread", "price": 2.5}, {"name": "Milk", "price": 1.2}],
}
RECEIPT_TEXT = "ACME Market\n2024-03-05\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR\n"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kleister_nda" / "train.jsonl"
RECEIPTS = [
    RECEIPT_TEXT,
    "CORNER CAFE\n12 High Street\n2024-06-01 08:14\nFlat white 3.20\nCroissant 2.10\nTOTAL GBP 5.30\nThank you!\n",
    "BAUHAUS Filiale 214\nDatum 17.02.2024\nSchrauben 4,99\nDübel 2,49\nSumme EUR 7,48\nBar bezahlt\n",
    "Pharmacy Plus\nInvoice 88213  Mar 3, 2024\nIbuprofen 200mg x2   8.98\nTax 0.72\nTotal USD 9.70\n",
    "FRESH FOODS\n2023-12-24\nTurkey 24.00\nCranberries 3.50\nPotatoes 2.25\nTOTAL 29.75 EUR\n",
]


# --- the fake model -------------------------------------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "c", "object": "chat.completion.chunk", "model": "fake-model", "choices": [choice]}
    return f"data: {json.dumps(body)}\n\n".encode()


def fake_app(token_s: float, piece_chars: int) -> web.Application:
    """The fake model; ``GET /first-pieces`` lists the wall-clock time each streamed answer's first piece was sent."""
    answer = json.dumps(RECEIPT)
    pieces = [answer[i : i + piece_chars] for i in range(0, len(answer), piece_chars)]
    usage = {"prompt_tokens": 100, "completion_tokens": len(pieces), "total_tokens": 100 + len(pieces)}
    first_pieces: list[float] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            await asyncio.sleep(token_s * len(pieces))
            message = {"role": "assistant", "content": answer}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response({"id": "c", "model": "fake-model", "choices": [choice], "usage": usage})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, piece in enumerate(pieces):  # on a fixed schedule: timer overshoot does not add up piece by piece
            await asyncio.sleep(max(0.0, start + (index + 1) * token_s - loop.time()))
            if index == 0:
                first_pieces.append(time.time())
            await response.write(_chunk({"content": piece}))
        await response.write(_chunk({}, "stop"))
        usage_chunk = {"id": "c", "model": "fake-model", "choices": [], "usage": usage}
        await response.write(f"data: {json.dumps(usage_chunk)}\n\ndata: [DONE]\n\n".encode())
        return response

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def firsts(_: web.Request) -> web.Response:
        return web.json_response(first_pieces)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/first-pieces", firsts)
    return app


# --- fake-model rounds ----------------------------------------------------------------------------------------------


async def _streamed(http: httpx.AsyncClient) -> tuple[float, float]:
    """One streamed extraction: (wall time of the first ``partial`` event, total ms)."""
    started, first = time.perf_counter(), 0.0
    body = {"schema": "receipt", "text": RECEIPT_TEXT, "options": {"cache": False}}
    headers = {"accept": "text/event-stream"}
    async with http.stream("POST", "/v1/extract", json=body, headers=headers) as response:
        async for line in response.aiter_lines():  # to the end: the stream ends after ``final``
            if not first and line == "event: partial":
                first = time.time()
    return first, (time.perf_counter() - started) * 1000


async def _plain(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    body = {"schema": "receipt", "text": RECEIPT_TEXT, "options": {"cache": False}}
    response = await http.post("/v1/extract", json=body)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def fake_rounds(args: argparse.Namespace, service: str, fake: str) -> dict[str, Any]:
    totals: dict[str, list[float]] = {"json": [], "stream": []}
    per_round: list[dict[str, float]] = []
    first_partial_ms: list[float] = []
    async with httpx.AsyncClient(base_url=service, timeout=60) as http, httpx.AsyncClient(timeout=5) as probe:
        await _plain(http)  # warm-up: schema, enforcement, connections
        await _streamed(http)
        for order in rotations(["json", "stream"], args.rounds):
            medians: dict[str, float] = {}
            for name in order:
                times: list[float] = []
                for _ in range(args.requests):
                    if name == "json":
                        times.append(await _plain(http))
                        continue
                    first, total = await _streamed(http)
                    times.append(total)
                    sent = (await probe.get(f"{fake}/first-pieces")).json()[-1]
                    first_partial_ms.append((first - sent) * 1000)
                totals[name] += times
                medians[name] = statistics.median(times)
            per_round.append(medians)
    json_ms, stream_ms = statistics.median(totals["json"]), statistics.median(totals["stream"])
    return {
        "json_median_ms": round(json_ms, 1),
        "stream_median_ms": round(stream_ms, 1),
        "stream_vs_json": round(stream_ms / json_ms, 4),
        "rounds_stream_vs_json": [round(r["stream"] / r["json"], 4) for r in per_round],
        "first_piece_to_first_partial_ms": {
            "median": round(statistics.median(first_partial_ms), 2),
            "p90": round(sorted(first_partial_ms)[int(0.9 * (len(first_partial_ms) - 1))], 2),
            "n": len(first_partial_ms),
        },
    }


def run_fake(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as logs:
        fake_port, port = free_port(), free_port()
        fake_argv = [PYTHON, "-m", "bench.streaming", "serve-fake", "--port", str(fake_port)]
        fake_argv += ["--token-ms", str(args.token_ms), "--piece-chars", str(args.piece_chars)]
        env = {
            "EXTRACTOR_REDIS_URL": args.redis_url,
            "EXTRACTOR_MODEL_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
            "EXTRACTOR_MODEL_NAME": "fake-model",
            "EXTRACTOR_MODEL_ENFORCEMENT": "json_schema",
            "EXTRACTOR_MODEL_CONTEXT_TOKENS": "8192",
        }
        with (
            Server(fake_argv, fake_port, "/v1/models", log=Path(logs) / "fake.log"),
            Server([*SERVE, "--port", str(port)], port, "/healthz", env=env, log=Path(logs) / "serve.log"),
        ):
            result = asyncio.run(fake_rounds(args, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{fake_port}"))
    return {"machine": machine(), "token_ms": args.token_ms, "piece_chars": args.piece_chars, **result}


# --- the bundled model ----------------------------------------------------------------------------------------------


def _contracts(n: int) -> list[str]:
    lines = [json.loads(line) for line in DATA.read_text().splitlines()[:n] if line.strip()]
    return [str(item.get("text", ""))[:1500] for item in lines]


async def _timed(service: Any, schema: str, text: str) -> dict[str, Any]:
    from extractor.answers import PartialEvent
    from extractor.extraction.result import ExtractOptions
    from extractor.vocabulary import FieldState

    started = time.perf_counter()
    marks: dict[str, float] = {}

    def sink(event: Any) -> None:
        now = (time.perf_counter() - started) * 1000
        marks.setdefault("first_partial", now)
        if isinstance(event, PartialEvent) and FieldState.COMPLETE in event.fields.values():
            marks.setdefault("first_complete", now)

    try:
        result = await service.extract("default", schema, text, ExtractOptions(cache=False), events=sink)
        status = result.status
    except Exception as exc:  # a failed extraction still has its timings
        status = type(exc).__name__
    total = (time.perf_counter() - started) * 1000
    return {"schema": schema, "status": str(status), "total_ms": round(total, 1)} | {
        key: round(value, 1) for key, value in marks.items()
    }


async def local_rounds(args: argparse.Namespace) -> list[dict[str, Any]]:
    from extractor.local.model import LocalModelServer
    from extractor.registry.service import read_definitions
    from extractor.runtime import bundled_schema_dir, open_runtime
    from extractor.settings import Settings

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as logs, LocalModelServer(log_dir=Path(logs)) as server:
        settings = Settings(
            redis_url=args.redis_url,
            model_base_url=server.base_url,
            model_name=server.model_name,
            model_context_tokens=server.n_ctx,
            model_timeout_s=300,
            model_idle_timeout_s=120,
        )
        async with open_runtime(settings) as runtime:
            await runtime.registry.register_bundled(read_definitions(bundled_schema_dir(settings)))
            docs = [("receipt", t) for t in RECEIPTS[: args.receipts]]
            docs += [("nda", t) for t in _contracts(args.contracts)]
            for schema, text in docs:
                rows.append(await _timed(runtime.extraction, schema, text))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["fake", "local", "serve-fake"], nargs="?", default="fake")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="per contender per round")
    parser.add_argument("--token-ms", type=float, default=10.0)
    parser.add_argument("--piece-chars", type=int, default=4)
    parser.add_argument("--port", type=int, default=0, help="serve-fake: where")
    parser.add_argument("--receipts", type=int, default=4)
    parser.add_argument("--contracts", type=int, default=4)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.mode == "serve-fake":
        web.run_app(fake_app(args.token_ms / 1000, args.piece_chars), host="127.0.0.1", port=args.port, print=None)
        return
    if args.mode == "fake":
        report = run_fake(args)
        print(
            table(
                ["contender", "median ms"], [["json", report["json_median_ms"]], ["stream", report["stream_median_ms"]]]
            )
        )
        print(f"stream / json: {report['stream_vs_json']} (rounds: {report['rounds_stream_vs_json']})")
        print(f"model's first piece -> client's first partial event: {report['first_piece_to_first_partial_ms']}")
    else:
        rows = asyncio.run(local_rounds(args))
        report = {"machine": machine(), "rows": rows}
        keys = ["schema", "status", "first_partial", "first_complete", "total_ms"]
        print(table(keys, [[row.get(key, "-") for key in keys] for row in rows]))
    write_json(args.json, report)


if __name__ == "__main__":
    main()
