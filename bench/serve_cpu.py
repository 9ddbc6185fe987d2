"""CPU time of ``extractor serve`` per cache-miss ``POST /v1/extract``, this tree against another, interleaved.

The fake model answers at once; ``--clients`` concurrent clients post the ``contact`` schema with ``bench.overhead``'s
text and ``options.cache=false`` for ``--seconds``; the serve process's own CPU time (``/proc/<pid>/stat``, user +
system) over that window, divided by the requests it answered, is the figure. CPU time, unlike latency, hardly
depends on what else the machine runs, so the comparison holds on a loaded machine.

    python -m bench.serve_cpu --baseline /tmp/before --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis

from bench.common import PYTHON, ROOT, SERVE, Server, cpu_s, free_port, table
from bench.overhead import TEXT


async def _load(url: str, seconds: float, clients: int) -> int:
    body = {"schema": "contact", "text": TEXT, "options": {"cache": False}}
    done = 0
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:

        async def client() -> None:
            nonlocal done
            while time.monotonic() < end:
                async with session.post(f"{url}/v1/extract", json=body) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"extractor answered {response.status}")
                done += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return done


def _measure(tree: Path, env: dict[str, str], seconds: float, clients: int) -> float:
    """ms of serve CPU per request for the service of ``tree``, after a warm-up."""
    redis.Redis.from_url(env["EXTRACTOR_REDIS_URL"]).flushdb()
    port = free_port()
    with Server([*SERVE, "--port", str(port)], port, "/healthz", env=env, cwd=tree) as server:
        assert server.pid is not None
        asyncio.run(_load(server.url, 2.0, clients))
        before = cpu_s(server.pid)
        requests = asyncio.run(_load(server.url, seconds, clients))
        return (cpu_s(server.pid) - before) * 1000 / requests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="Another source tree (e.g. a git archive).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    fake_port = free_port()
    fake = [PYTHON, "-m", "bench.fake_openai", "--port", str(fake_port), "--latency-ms", "0"]
    env = {
        "EXTRACTOR_REDIS_URL": args.redis_url,
        "EXTRACTOR_MODEL_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
        "EXTRACTOR_MODEL_NAME": "fake-model",
        "EXTRACTOR_MODEL_ENFORCEMENT": "json_schema",
    }
    trees = {"baseline": args.baseline.resolve(), "this tree": ROOT}
    runs: dict[str, list[float]] = {name: [] for name in trees}
    with Server(fake, fake_port, "/v1/models"):
        for _ in range(args.rounds):
            for name, tree in trees.items():
                runs[name].append(round(_measure(tree, env, args.seconds, args.clients), 3))
    rows: list[list[Any]] = [[name, " ".join(f"{v:.3f}" for v in values)] for name, values in runs.items()]
    print(table(["tree", "ms CPU per request, each round"], rows))
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
