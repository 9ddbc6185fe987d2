"""CPU the service spends per ``POST /v1/extract`` on a cache miss, in-process and deterministic, for one source tree.

The app of ``--tree`` (its own ``extractor`` package, imported from that directory) is built with
``create_app`` and driven through ``httpx.ASGITransport`` in the same thread and event loop (Litestar's
``AsyncTestClient`` runs the app in a thread of its own, which ``cProfile`` does not see) by ``--concurrency``
coroutines, ``--requests`` requests in all, against an instant fake model (``bench.fake_openai``, latency 0) in
its own process, so its CPU is not counted. The body is the one ``bench.overhead`` and the lead's load script
send (the bundled ``contact`` schema, ``options.cache=false``). Printed: ``time.process_time()`` per request
without a profiler (the test client's own cost included, the same for every tree), then under ``cProfile`` the
functions with the most own time and the most cumulative time per request. ``--save`` keeps the profile;
``--compare A B`` prints two saved profiles side
by side per function (microseconds per request), so that what a change costs can be read function by function::

    python bench/request_cpu.py --tree /tmp/before --save /tmp/cpu-before.prof
    python bench/request_cpu.py --tree /work/main --save /tmp/cpu-after.prof
    python bench/request_cpu.py --compare /tmp/cpu-before.prof /tmp/cpu-after.prof

A machine loaded by others changes CPU time per request less than wall time, but caches and frequency still move
it by a few percent: compare runs made one after the other, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import os
import pstats
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
TEXT = (
    "Hi team, following up on yesterday's call. You can reach me at dana.whitfield@northwind-labs.example or on "
    "+1 415 555 0134. I'm the procurement lead at Northwind Labs, 400 Harbor Way, Suite 12, Oakland CA 94607. "
    "Best regards, Dana Whitfield"
)
BODY = {"schema": "contact", "text": TEXT, "options": {"cache": False}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _fake_model(port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "bench.fake_openai", "--port", str(port), "--latency-ms", "0"]
    proc = subprocess.Popen(argv, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the fake model did not start")


async def _drive(app: Any, requests: int, concurrency: int, profile: cProfile.Profile | None) -> tuple[int, float]:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for _ in range(100):  # the bundled schemas are registered in the background at startup
            if (await client.post("/v1/extract", json=BODY)).status_code == 200:
                break
            await asyncio.sleep(0.1)
        for _ in range(50):  # warm-up: imports, caches, first connections
            assert (await client.post("/v1/extract", json=BODY)).status_code == 200
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                answer = await client.post("/v1/extract", json=BODY)
                assert answer.status_code == 200, answer.text

        started = time.process_time()
        if profile is not None:
            profile.enable()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if profile is not None:
            profile.disable()
        return requests, time.process_time() - started


def _run(args: argparse.Namespace) -> None:
    tree = str(Path(args.tree).resolve())
    sys.path.insert(0, tree)
    extractor = importlib.import_module("extractor")
    print("extractor from", extractor.__file__)
    assert str(extractor.__file__).startswith(tree), "the tree's own extractor must be the one imported"
    from extractor.app import create_app
    from extractor.settings import Settings

    port = _free_port()
    fake = _fake_model(port)
    try:
        settings = Settings(
            redis_url=f"redis://127.0.0.1:6379/{args.redis_db}",
            model_base_url=f"http://127.0.0.1:{port}/v1",
            model_name="fake",
            model_enforcement="json_schema",
        )
        for _ in range(args.rounds):
            n, cpu = asyncio.run(_drive(create_app(settings), args.requests, args.concurrency, None))
            print(f"no profiler: {n} requests, cpu {1000 * cpu / n:.3f} ms/request")
        profile = cProfile.Profile()
        n, cpu = asyncio.run(_drive(create_app(settings), args.requests, args.concurrency, profile))
        print(f"under cProfile: {n} requests, cpu {1000 * cpu / n:.3f} ms/request")
    finally:
        fake.kill()
        fake.wait()
    stats = pstats.Stats(profile)
    if args.save:
        stats.dump_stats(args.save)
        Path(args.save + ".n").write_text(str(n))
    _top(stats, n, "tottime", args.top)
    _top(stats, n, "cumulative", args.top)


def _key(func: tuple[str, int, str]) -> str:
    path, line, name = func
    for marker in ("/extractor/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path[path.index(marker) + 1 :]
            break
    return f"{path}:{line}({name})"


def _table(stats: pstats.Stats) -> dict[str, tuple[float, float, int]]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    return {_key(func): (tt, ct, nc) for func, (_cc, nc, tt, ct, _callers) in raw.items()}


def _top(stats: pstats.Stats, n: int, sort: str, count: int) -> None:
    rows = sorted(_table(stats).items(), key=lambda kv: kv[1][0 if sort == "tottime" else 1], reverse=True)
    print(f"\n{sort} per request (us): own, cumulative, calls per request, function")
    for name, (tt, ct, nc) in rows[:count]:
        print(f"{1e6 * tt / n:9.1f} {1e6 * ct / n:9.1f} {nc / n:7.2f}  {name}")


def _compare(before_path: str, after_path: str, count: int) -> None:
    def load(path: str) -> tuple[dict[str, tuple[float, float, int]], int]:
        return _table(pstats.Stats(path)), int(Path(path + ".n").read_text())

    (before, nb), (after, na) = load(before_path), load(after_path)
    for column, label in ((0, "own"), (1, "cumulative")):
        names = set(before) | set(after)

        def per(table: dict[str, tuple[float, float, int]], name: str, n: int, col: int = column) -> float:
            return 1e6 * table[name][col] / n if name in table else 0.0

        rows = sorted(names, key=lambda k: max(per(before, k, nb), per(after, k, na)), reverse=True)
        print(f"\n{label} time per request (us): before, after, after-before, function")
        for name in rows[:count]:
            b, a = per(before, name, nb), per(after, name, na)
            print(f"{b:9.1f} {a:9.1f} {a - b:+9.1f}  {name}")
        deltas = sorted(names, key=lambda k: per(after, k, na) - per(before, k, nb), reverse=True)
        print(f"\n{label}: largest increases (us/request)")
        for name in deltas[:count]:
            b, a = per(before, name, nb), per(after, name, na)
            print(f"{b:9.1f} {a:9.1f} {a - b:+9.1f}  {name}")
        total_b = sum(v[0] for v in before.values()) * 1e6 / nb
        total_a = sum(v[0] for v in after.values()) * 1e6 / na
        if column == 0:
            print(f"total own time per request: before {total_b:.1f} us, after {total_a:.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default=str(HERE), help="the source tree whose extractor is measured")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1, help="runs without the profiler before the profiled one")
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("BENCH_REDIS_DB", "5")))
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--save", help="write the profile here (pstats) for --compare")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="two profiles saved with --save")
    args = parser.parse_args()
    if args.compare:
        _compare(args.compare[0], args.compare[1], args.top)
    else:
        _run(args)


if __name__ == "__main__":
    main()
