"""What extractor adds on a cache miss, against a raw ``openai`` call and instructor, on one instant fake model.

Three contenders do the same extraction (the bundled ``contact`` schema, one short document):

- ``raw``: ``AsyncOpenAI.chat.completions.create`` with ``response_format=json_schema`` plus pydantic validation;
- ``instructor``: ``instructor.from_openai(..., mode=JSON_SCHEMA)`` with the same pydantic model;
- ``extractor``: ``POST /v1/extract`` to ``extractor serve`` with ``options.cache=false`` (every call a miss),
  sent with ``httpx``;
- ``extractor-aiohttp``: the same requests sent with ``aiohttp``. The service is the same; the difference between
  the two is the client's own cost, which at concurrency 32 is most of what ``httpx`` adds;
- ``baseline-aiohttp`` (with ``--baseline DIR``): the same requests to a second ``extractor serve`` run from another
  source tree (say ``git archive`` of an earlier commit), on the same fake and Redis, in the same rotation: the
  difference between it and ``extractor-aiohttp`` is what a change costs, measured round by round.

The fake model (``bench.fake_openai``, latency 0) and the service run as their own processes; each round of each
contender runs in a fresh client process, rounds interleaved. Added latency is extractor's (or instructor's) median
minus raw's median, computed per round and over all rounds::

    python -m bench.overhead --rounds 5 --requests 300 --concurrency 1 32 --json bench/overhead.json
    python -m bench.overhead --contenders raw extractor-aiohttp --baseline /tmp/before --rounds 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.common import (
    PYTHON,
    ROOT,
    SERVE,
    Server,
    closed_loop,
    free_port,
    machine,
    percentile,
    rotations,
    run_json,
    summarize_latencies,
    table,
    write_json,
)

CONTENDERS = ("raw", "instructor", "extractor", "extractor-aiohttp")
BASELINE = "baseline-aiohttp"
MODEL = "fake-model"
TEXT = (
    "Hi team, following up on yesterday's call. You can reach me at dana.whitfield@northwind-labs.example or on "
    "+1 415 555 0134. I'm the procurement lead at Northwind Labs, 400 Harbor Way, Suite 12, Oakland CA 94607. "
    "Best regards, Dana Whitfield"
)
SYSTEM = (
    "Extract a person's contact details from the document as one JSON object with these fields:\n"
    "- name (string or null): full name of the person\n- email (string or null): email address\n"
    "- phone (string or null): phone number\n- company (string or null): company or organisation\n"
    "- address (string or null): postal address\n"
    "Copy values exactly as the document writes them. Use null for any field the document does not state; never guess."
)
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Document:\n<<<\n{TEXT}\n>>>"}]


class Contact(BaseModel):
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    address: str | None


def _response_format() -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "contact", "schema": Contact.model_json_schema()}}


def _openai_client(fake_url: str) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=f"{fake_url}/v1", api_key="bench", max_retries=0, timeout=30)


def _raw(fake_url: str, _: str) -> Callable[[], Awaitable[None]]:
    client = _openai_client(fake_url)
    fmt = _response_format()

    async def call() -> None:
        reply = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, response_format=fmt, temperature=0, max_tokens=1024, seed=0
        )
        Contact.model_validate_json(reply.choices[0].message.content or "")

    return call


def _instructor(fake_url: str, _: str) -> Callable[[], Awaitable[None]]:
    import instructor

    client = instructor.from_openai(_openai_client(fake_url), mode=instructor.Mode.JSON_SCHEMA)

    async def call() -> None:
        await client.chat.completions.create(
            model=MODEL, response_model=Contact, messages=MESSAGES, temperature=0, max_tokens=1024, seed=0
        )

    return call


def _extractor(_: str, service_url: str) -> Callable[[], Awaitable[None]]:
    import httpx

    client = httpx.AsyncClient(base_url=service_url, timeout=30, limits=httpx.Limits(max_connections=256))
    body = {"schema": "contact", "text": TEXT, "options": {"cache": False}}

    async def call() -> None:
        response = await client.post("/v1/extract", json=body)
        if response.status_code != 200 or response.json()["status"] != "ok":
            raise RuntimeError(f"extractor answered {response.status_code}: {response.text[:300]}")

    return call


def _extractor_aiohttp(_: str, service_url: str) -> Callable[[], Awaitable[None]]:
    import aiohttp

    session: aiohttp.ClientSession | None = None
    body = {"schema": "contact", "text": TEXT, "options": {"cache": False}}

    async def call() -> None:
        nonlocal session
        if session is None:  # made inside the running loop, as aiohttp wants
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        async with session.post(f"{service_url}/v1/extract", json=body) as response:
            answer = await response.json()
            if response.status != 200 or answer["status"] != "ok":
                raise RuntimeError(f"extractor answered {response.status}: {str(answer)[:300]}")

    return call


_FACTORIES: dict[str, Callable[[str, str], Callable[[], Awaitable[None]]]] = {
    "raw": _raw,
    "instructor": _instructor,
    "extractor": _extractor,
    "extractor-aiohttp": _extractor_aiohttp,
    BASELINE: _extractor_aiohttp,  # the same client, sent to the baseline tree's service
}


async def _work(name: str, fake_url: str, service_url: str, requests: int, concurrency: int) -> dict[str, Any]:
    call = _FACTORIES[name](fake_url, service_url)
    await closed_loop(call, max(20, concurrency * 2), concurrency)  # warm-up: connections, imports, caches
    latencies, seconds = await closed_loop(call, requests, concurrency)
    return {"latencies": latencies, "seconds": seconds}


def _round(name: str, fake_url: str, service_url: str, requests: int, concurrency: int) -> dict[str, Any]:
    """One contender's round in a fresh client process (its output is JSON on stdout)."""
    argv = [PYTHON, "-m", "bench.overhead", "--worker", name, "--fake", fake_url, "--service", service_url]
    argv += ["--requests", str(requests), "--concurrency-one", str(concurrency)]
    result: dict[str, Any] = run_json(argv, f"{name} round")
    return result


def _measure(
    fake_url: str, services: dict[str, str], contenders: list[str], rounds: int, requests: int, concurrency: int
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    for order in rotations(contenders, rounds):
        for name in order:
            service_url = services[BASELINE if name == BASELINE else "extractor"]
            runs[name].append(_round(name, fake_url, service_url, requests, concurrency))
            print(f"  c={concurrency} {name}: round {len(runs[name])}/{rounds}", file=sys.stderr)
    summary: dict[str, dict[str, Any]] = {
        name: summarize_latencies([x for r in rs for x in r["latencies"]], sum(r["seconds"] for r in rs))
        for name, rs in runs.items()
    }
    if BASELINE in runs and "extractor-aiohttp" in runs:
        summary["extractor-aiohttp"]["vs_baseline_median_ms_rounds"] = [
            round(percentile(mine["latencies"], 50) - percentile(base["latencies"], 50), 3)
            for mine, base in zip(runs["extractor-aiohttp"], runs[BASELINE], strict=True)
        ]
    for name in contenders:
        per_round = [
            percentile(mine["latencies"], 50) - percentile(raw["latencies"], 50)
            for mine, raw in zip(runs[name], runs["raw"], strict=True)
        ]
        summary[name]["added_median_ms"] = round(summary[name]["median_ms"] - summary["raw"]["median_ms"], 3)
        summary[name]["added_median_ms_rounds"] = [round(x, 3) for x in per_round]
        summary[name]["rps_vs_raw"] = round(summary[name]["rps"] / summary["raw"]["rps"], 3)
    return summary


def _report(results: dict[str, dict[str, Any]]) -> str:
    headers = ("contender", "conc", "median ms", "p99 ms", "added median ms", "per-round added", "req/s", "vs raw")
    rows = [
        (
            name,
            conc,
            s["median_ms"],
            s["p99_ms"],
            f"{s['added_median_ms']:+.3f}",
            " ".join(f"{x:+.2f}" for x in s["added_median_ms_rounds"]),
            s["rps"],
            f"{s['rps_vs_raw']:.2f}x",
        )
        for conc, by_name in results.items()
        for name, s in by_name.items()
    ]
    paired = [
        f"c={conc}: extractor-aiohttp minus {BASELINE}, median ms per round: "
        + " ".join(f"{x:+.3f}" for x in by_name["extractor-aiohttp"]["vs_baseline_median_ms_rounds"])
        for conc, by_name in results.items()
        if "vs_baseline_median_ms_rounds" in by_name.get("extractor-aiohttp", {})
    ]
    return "\n".join([table(headers, rows), *paired])


def _servers(redis_url: str, log_dir: Path, baseline: Path | None) -> tuple[Server, list[Server]]:
    """The fake model and the service (and the baseline tree's service, when given)."""
    fake_port = free_port()
    fake = Server(
        [PYTHON, "-m", "bench.fake_openai", "--port", str(fake_port), "--latency-ms", "0"],
        fake_port,
        "/v1/models",
        log=log_dir / "bench-fake.log",
    )
    env = {
        "EXTRACTOR_REDIS_URL": redis_url,
        "EXTRACTOR_MODEL_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
        "EXTRACTOR_MODEL_NAME": MODEL,
        "EXTRACTOR_MODEL_ENFORCEMENT": "json_schema",
    }
    trees = [("extractor", ROOT)] + ([(BASELINE, baseline.resolve())] if baseline is not None else [])
    services = []
    for name, tree in trees:
        port = free_port()
        log = log_dir / f"bench-{name}.log"
        services.append(Server([*SERVE, "--port", str(port)], port, "/healthz", env=env, log=log, cwd=tree))
    return fake, services


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300, help="Timed requests per contender per round.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument(
        "--baseline", type=Path, default=None, help="Another source tree: also measure its service (baseline-aiohttp)."
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    parser.add_argument("--worker", choices=[*CONTENDERS, BASELINE], help=argparse.SUPPRESS)
    parser.add_argument("--fake", help=argparse.SUPPRESS)
    parser.add_argument("--service", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(asyncio.run(_work(args.worker, args.fake, args.service, args.requests, args.concurrency_one))))
        return
    contenders = ["raw", *(name for name in args.contenders if name != "raw")]  # raw: every figure's reference
    contenders += [BASELINE] if args.baseline is not None else []
    fake, services = _servers(args.redis_url, args.log_dir, args.baseline)
    with fake, contextlib.ExitStack() as stack:
        names = ["extractor", BASELINE][: len(services)]
        urls = {name: stack.enter_context(server).url for name, server in zip(names, services, strict=True)}
        results = {c: _measure(fake.url, urls, contenders, args.rounds, args.requests, c) for c in args.concurrency}
    print(_report(results))
    write_json(args.json, {"machine": machine(), "args": sys.argv[1:], "results": results})


if __name__ == "__main__":
    main()
