"""Cache hits: extractor's ``POST /v1/extract`` answered from Redis, against the practical limit.

The limit is a bare Litestar endpoint (same uvicorn settings as ``extractor serve``: one worker, log level info)
that reads the request body, does one Redis ``GET`` of the very key extractor stored, and returns the bytes. Both
get the same POST body from ``wrk`` (Debian's package), in interleaved rounds::

    python -m bench.cache --rounds 3 --duration 5 --connections 1 32 --json bench/cache.json

Goal: extractor's hit throughput at least 70% of the bare endpoint's.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, Request, Response, post
from redis.asyncio import Redis

from bench.common import PYTHON, SERVE, Server, free_port, machine, rotations, table, write_json

CONTENDERS = ("bare", "extractor")
TEXT = "Dana Whitfield, procurement lead at Northwind Labs: dana.whitfield@northwind-labs.example, +1 415 555 0134."
BODY = json.dumps({"schema": "contact", "text": TEXT})
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def create_bare_app(redis_url: str, key: str) -> Litestar:
    """One POST route: read the body, ``GET key`` from Redis, return the bytes as JSON."""
    redis = Redis.from_url(redis_url)

    @post("/v1/extract", status_code=200)
    async def hit(request: Request[Any, Any, Any]) -> Response[bytes]:
        await request.body()
        value = await redis.get(key)
        if isinstance(value, str):  # typed bytes | str; without decode_responses it is bytes
            value = value.encode()
        return Response(value or b"null", media_type="application/json")

    return Litestar(route_handlers=[hit], on_shutdown=[redis.aclose], debug=False)


def _serve_bare(port: int, redis_url: str, key: str) -> None:
    import uvicorn

    uvicorn.run(create_bare_app(redis_url, key), host="127.0.0.1", port=port, log_level="info")


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def _wrk(url: str, connections: int, duration: int, script: Path) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url + "/v1/extract"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    percentiles = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx answers\n{out}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "median_ms": _ms(percentiles["50"]),
        "p90_ms": _ms(percentiles["90"]),
        "p99_ms": _ms(percentiles["99"]),
    }


def _warm(service_url: str, redis_url: str) -> str:
    """Make one cached result and return its Redis key (the key that appeared)."""
    from redis import Redis

    redis = Redis.from_url(redis_url, decode_responses=True)
    # decode_responses=True: the keys are str
    before: set[str] = set(redis.scan_iter("extractor:*:cache:*"))
    answer = httpx.post(service_url + "/v1/extract", content=BODY, headers={"content-type": "application/json"})
    answer.raise_for_status()
    if not httpx.post(service_url + "/v1/extract", content=BODY, headers={"content-type": "application/json"}).json()[
        "cached"
    ]:
        raise RuntimeError("the second request was not a cache hit")
    new: set[str] = set(redis.scan_iter("extractor:*:cache:*")) - before
    if len(new) != 1:
        # Already cached by an earlier run: find the key holding the same result.
        body = answer.json()
        new = {
            k
            for k in redis.scan_iter("extractor:*:cache:*")
            if json.loads(redis.get(k) or "{}").get("data") == body["data"]
        }
    return sorted(new)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="Seconds per wrk run.")
    parser.add_argument("--connections", type=int, nargs="+", default=[32])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        _serve_bare(int(args.serve_bare[0]), args.redis_url, args.serve_bare[1])
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    fake_port, service_port, bare_port = free_port(), free_port(), free_port()
    env = {
        "EXTRACTOR_REDIS_URL": args.redis_url,
        "EXTRACTOR_MODEL_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
        "EXTRACTOR_MODEL_NAME": "fake-model",
        "EXTRACTOR_MODEL_ENFORCEMENT": "json_schema",
    }
    fake = Server(
        [PYTHON, "-m", "bench.fake_openai", "--port", str(fake_port), "--latency-ms", "0"], fake_port, "/v1/models"
    )
    service = Server(
        [*SERVE, "--port", str(service_port)],
        service_port,
        "/healthz",
        env=env,
        log=args.log_dir / "bench-cache-extractor.log",
    )
    results: dict[int, dict[str, list[dict[str, float]]]] = {}
    with fake, service, tempfile.TemporaryDirectory() as tmp:
        key = _warm(service.url, args.redis_url)
        bare_argv = [PYTHON, "-m", "bench.cache", "--redis-url", args.redis_url, "--serve-bare", str(bare_port), key]
        script = Path(tmp) / "post.lua"
        script.write_text(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY)}\nwrk.headers["Content-Type"] = "application/json"\n'
        )
        with Server(bare_argv, bare_port, "/schema", log=args.log_dir / "bench-cache-bare.log") as bare:
            urls = {"bare": bare.url, "extractor": service.url}
            for connections in args.connections:
                runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
                for order in rotations(CONTENDERS, args.rounds):
                    for name in order:
                        runs[name].append(_wrk(urls[name], connections, args.duration, script))
                        print(f"  c={connections} {name}: {runs[name][-1]}", file=sys.stderr)
                results[connections] = runs
    summary = _summarize(results)
    print(_report(summary))
    write_json(args.json, {"machine": machine(), "args": sys.argv[1:], "rounds": results, "summary": summary})


def _summarize(results: dict[int, dict[str, list[dict[str, float]]]]) -> dict[str, Any]:
    """Per connection count: the median over rounds of each figure, and extractor/bare per round."""
    summary: dict[str, Any] = {}
    for connections, runs in results.items():
        row: dict[str, Any] = {}
        for name, rs in runs.items():
            row[name] = {k: round(sorted(r[k] for r in rs)[len(rs) // 2], 3) for k in rs[0]}
        ratios = [e["rps"] / b["rps"] for e, b in zip(runs["extractor"], runs["bare"], strict=True)]
        row["rps_ratio_rounds"] = [round(x, 3) for x in ratios]
        row["rps_ratio"] = round(sorted(ratios)[len(ratios) // 2], 3)
        summary[str(connections)] = row
    return summary


def _report(summary: dict[str, Any]) -> str:
    rows = []
    for connections, row in summary.items():
        for name in CONTENDERS:
            s = row[name]
            ratio = f"{row['rps_ratio']:.2f} ({' '.join(f'{x:.2f}' for x in row['rps_ratio_rounds'])})"
            rows.append(
                (name, connections, s["rps"], s["median_ms"], s["p99_ms"], ratio if name == "extractor" else "")
            )
    return table(("endpoint", "conns", "req/s", "median ms", "p99 ms", "extractor/bare req/s (rounds)"), rows)


if __name__ == "__main__":
    main()
