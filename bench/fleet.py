"""A fleet of batch workers on one Redis: throughput per worker and of the ideal, and what each document costs Redis.

Starts its own ``redis-server`` (so that no other client's commands are counted), the fake OpenAI-compatible
model at a fixed latency, the HTTP service (no in-process worker) and N ``extractor worker`` processes, for each N
asked. Between the submission and the batch's end it reads Redis's ``INFO commandstats`` (every command, those
that Lua scripts run included) and ``INFO cpu`` (the server's own CPU time), and each worker's CPU time. From those:
commands and Redis CPU per document, hence the ceiling of one Redis: documents per second at which its one
command thread would be busy all the time. Linux only (reads /proc)::

    python -m bench.fleet --workers 1 2 4 8 --documents 3000 --concurrency 64 --latency-ms 100 --json out.json

Every process runs on this machine: with few cores, the workers compete with the model, the service and Redis,
so throughput stops growing with workers long before Redis does; the per-document costs are what carry over.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from redis import Redis
from redis.exceptions import RedisError

from bench.common import cpu_s, machine, processes, receipt_documents, wait_http
from extractor.local.process import free_port

__all__ = ["main", "run_once"]

_SERVER_WIDE = ("info", "config|resetstat", "ping", "hello", "client|setinfo", "client|setname")
"""Commands of the measurement itself or of connecting, not of a document."""


def _redis_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    argv += ["--save", "", "--appendonly", "no"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stats(redis: Redis) -> tuple[dict[str, dict[str, float]], float]:
    """Per-command stats (calls, usec) and the server's CPU seconds (user + system, main thread and others)."""
    commands: dict[str, dict[str, float]] = {
        name: {"calls": float(v["calls"]), "usec": float(v["usec"])} for name, v in redis.info("commandstats").items()
    }
    cpu: dict[str, Any] = redis.info("cpu")
    return commands, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, now in after.items():
        was = before.get(name, {"calls": 0.0, "usec": 0.0})
        calls = now["calls"] - was["calls"]
        if calls and name.removeprefix("cmdstat_") not in _SERVER_WIDE:
            out[name.removeprefix("cmdstat_")] = {"calls": calls, "usec": now["usec"] - was["usec"]}
    return out


def run_once(args: argparse.Namespace, workers: int, redis_port: int) -> dict[str, Any]:
    """One measured run with ``workers`` worker processes on the Redis at ``redis_port``; returns its figures."""
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    redis = Redis(port=redis_port, decode_responses=True)
    redis.flushall()
    model_port, api_port = free_port(), free_port()
    model_url = f"http://127.0.0.1:{model_port}/v1"
    env = {
        "EXTRACTOR_REDIS_URL": redis_url,
        "EXTRACTOR_MODEL_BASE_URL": model_url,
        "EXTRACTOR_MODEL_ENFORCEMENT": "json_schema",
        "EXTRACTOR_JOBS__CONCURRENCY": str(args.concurrency),
        "EXTRACTOR_JOBS__CHUNK_SIZE": str(args.chunk_size),
        "EXTRACTOR_JOBS__RUN_IN_SERVE": "false",
        "EXTRACTOR_JOBS__MAX_DOCUMENTS": str(max(args.documents, 10_000)),
        "EXTRACTOR_LOG_FORMAT": "json",
    }
    fake: tuple[list[str], dict[str, str]] = (
        [sys.executable, "-m", "bench.fake_openai", "--port", str(model_port), "--latency-ms", str(args.latency_ms)],
        {},
    )
    api = ([sys.executable, "-m", "extractor", "serve", "--port", str(api_port)], env)
    worker = ([sys.executable, "-m", "extractor", "worker"], env)
    with processes([fake, api]) as (fake_process, api_process):
        wait_http(f"{model_url}/models", fake_process, within_s=60.0)
        base = f"http://127.0.0.1:{api_port}"
        wait_http(f"{base}/healthz", api_process, within_s=60.0)
        with processes([worker] * workers) as fleet, httpx.Client(base_url=base, timeout=120) as client:
            time.sleep(2.0 + 0.5 * workers)  # workers import and connect (slower when many start on few cores)
            body = json.dumps({"schema": "receipt", "documents": receipt_documents(args.documents)})
            idle_s = 1.0
            idle_before = _stats(redis)[1]
            time.sleep(idle_s)  # the idle fleet's own Redis traffic (dequeue waits, sweeps, heartbeats)
            commands_before, cpu_before = _stats(redis)
            idle_cpu_rate = (cpu_before - idle_before) / idle_s
            workers_cpu_before = sum(cpu_s(process.pid) for process in fleet)
            submitted = time.time()
            response = client.post("/v1/batches", content=body, headers={"content-type": "application/json"})
            if response.is_error:
                raise RuntimeError(f"the submission answered {response.status_code}: {response.text[:500]}")
            batch_id = response.json()["batch_id"]
            deadline = time.monotonic() + args.deadline_s
            while (status := client.get(f"/v1/batches/{batch_id}").json())["finished_at"] is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the batch did not finish in {args.deadline_s:.0f}s: {status['counts']}")
                time.sleep(0.25)
            commands_after, cpu_after = _stats(redis)
            elapsed = status["finished_at"] - submitted
            workers_cpu_s = sum(cpu_s(process.pid) for process in fleet) - workers_cpu_before
    redis.close()
    docs = args.documents
    used = _delta(commands_before, commands_after)
    calls = sum(c["calls"] for c in used.values())
    redis_cpu_s = cpu_after - cpu_before
    throughput = status["counts"]["ok"] / elapsed
    ideal = workers * args.concurrency / (args.latency_ms / 1000)
    top = sorted(used.items(), key=lambda item: -item[1]["calls"])[:8]
    return {
        "workers": workers,
        "concurrency": args.concurrency,
        "chunk_size": args.chunk_size,
        "documents": docs,
        "ok": status["counts"]["ok"],
        "elapsed_s": round(elapsed, 2),
        "throughput": round(throughput, 1),
        "per_worker": round(throughput / workers, 1),
        "ideal": round(ideal, 1),
        "of_ideal": round(throughput / ideal, 3),
        "worker_cpu_ms_per_doc": round(1000 * workers_cpu_s / docs, 2),
        "redis_commands_per_doc": round(calls / docs, 2),
        "redis_cpu_us_per_doc": round(1e6 * redis_cpu_s / docs, 1),
        "redis_idle_cpu_share": round(idle_cpu_rate * elapsed / max(redis_cpu_s, 1e-9), 3),
        "redis_command_us_per_doc": round(sum(c["usec"] for c in used.values()) / docs, 1),
        "redis_ceiling_docs_s": round(docs / redis_cpu_s) if redis_cpu_s else None,
        "top_commands_per_doc": {name: round(c["calls"] / docs, 2) for name, c in top},
    }


_COLUMNS = [
    "workers",
    "documents",
    "elapsed_s",
    "throughput",
    "per_worker",
    "ideal",
    "of_ideal",
    "worker_cpu_ms_per_doc",
    "redis_commands_per_doc",
    "redis_cpu_us_per_doc",
    "redis_ceiling_docs_s",
]


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [" | ".join(_COLUMNS), " | ".join("-" * len(c) for c in _COLUMNS)]
    lines.extend(" | ".join(str(row[c]) for c in _COLUMNS) for row in rows)
    lines.extend(f"{row['workers']} worker(s), commands per document: {row['top_commands_per_doc']}" for row in rows)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64, help="Per worker (jobs.concurrency).")
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--deadline-s", type=float, default=600.0, help="A batch not finished by then is a failure.")
    parser.add_argument("--json", dest="json_path", default=None, help="Also write the rows here.")
    args = parser.parse_args(argv)
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        server = _redis_server(Path(folder), port)
        try:
            deadline = time.monotonic() + 10
            while not _pings(port):
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            rows = []
            for workers in args.workers:  # each row as it comes: a long run shows its progress
                rows.append(run_once(args, workers, port))
                print(json.dumps(rows[-1]), flush=True)
        finally:
            server.terminate()
            server.wait(10)
    print(f"machine: {machine()} (every process on these {os.cpu_count()} cores)")
    print(_table(rows))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))


def _pings(port: int) -> bool:
    try:
        with Redis(port=port, socket_connect_timeout=0.5) as redis:
            return bool(redis.ping())
    except RedisError:
        return False


if __name__ == "__main__":
    main()
