"""Batch throughput against the ideal, and the service's memory while it streams results.

Starts a fake OpenAI-compatible server (fixed latency), the HTTP service (no in-process worker) and N
`extractor worker` processes on one Redis, submits DOCUMENTS distinct documents and times them from the moment
the request is sent until the batch's last item finished (its ``finished_at``, on the same machine's clock).
Ideal throughput = workers x concurrency / latency. Then streams every result back and reads the
service's peak RSS (VmHWM) before and after, and each worker's peak RSS and CPU time (the figures behind the
Kubernetes requests and limits in deploy/k8s). Linux only (reads /proc)::

    python -m bench.batch --documents 10000 --concurrency 64 --workers 1 2 --latency-ms 100 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx
from redis import Redis

from bench.common import cpu_s, processes, receipt_documents, wait_http
from extractor.local.process import free_port

__all__ = ["main", "run_once"]


def _memory_kib(pid: int) -> dict[str, int]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return fields


def run_once(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """One measured run with ``workers`` worker processes; returns its figures."""
    Redis.from_url(args.redis_url).flushdb()
    model_port, api_port = free_port(), free_port()
    model_url = f"http://127.0.0.1:{model_port}/v1"
    env = {
        "EXTRACTOR_REDIS_URL": args.redis_url,
        "EXTRACTOR_MODEL_BASE_URL": model_url,
        "EXTRACTOR_MODEL_ENFORCEMENT": "json_schema",
        "EXTRACTOR_JOBS__CONCURRENCY": str(args.concurrency),
        "EXTRACTOR_JOBS__CHUNK_SIZE": str(args.chunk_size),
        "EXTRACTOR_JOBS__RUN_IN_SERVE": "false",
        "EXTRACTOR_JOBS__MAX_DOCUMENTS": str(max(args.documents, 10_000)),
    }
    fake: tuple[list[str], dict[str, str]] = (
        [sys.executable, "-m", "bench.fake_openai", "--port", str(model_port), "--latency-ms", str(args.latency_ms)],
        {},
    )
    api = ([sys.executable, "-m", "extractor", "serve", "--port", str(api_port)], env)  # as users run it
    worker = ([sys.executable, "-c", "from extractor.cli.serve import worker; worker()"], env)
    with processes([fake, api]) as (fake_process, api_process):
        wait_http(f"{model_url}/models", fake_process)
        base = f"http://127.0.0.1:{api_port}"
        wait_http(f"{base}/healthz", api_process)
        with processes([worker] * workers) as worker_processes, httpx.Client(base_url=base, timeout=120) as client:
            time.sleep(2.0)  # workers import and connect
            body = json.dumps({"schema": "receipt", "documents": receipt_documents(args.documents)})
            idle_cpu_s = sum(cpu_s(process.pid) for process in worker_processes)  # start-up, not documents
            submitted = time.time()  # the service's clock: the batch's finished_at is its last item's end
            response = client.post("/v1/batches", content=body, headers={"content-type": "application/json"})
            response.raise_for_status()
            accepted = time.time() - submitted
            batch_id = response.json()["batch_id"]
            if args.cancel_after is not None:
                return _cancel(client, batch_id, submitted + args.cancel_after, workers)
            while (status := client.get(f"/v1/batches/{batch_id}").json())["finished_at"] is None:
                time.sleep(0.1)
            elapsed = status["finished_at"] - submitted
            worker_cpu_s = sum(cpu_s(process.pid) for process in worker_processes) - idle_cpu_s
            worker_peak_kib = max(_memory_kib(process.pid)["VmHWM"] for process in worker_processes)
            before = _memory_kib(api_process.pid)
            lines = 0
            streamed = time.monotonic()
            with client.stream("GET", f"/v1/batches/{batch_id}/results") as results:
                for _ in results.iter_lines():
                    lines += 1
            stream_s = time.monotonic() - streamed
            after = _memory_kib(api_process.pid)
    ideal = workers * args.concurrency / (args.latency_ms / 1000)
    throughput = args.documents / elapsed
    return {
        "workers": workers,
        "concurrency": args.concurrency,
        "chunk_size": args.chunk_size,
        "documents": args.documents,
        "ok": status["counts"]["ok"],
        "submit_s": round(accepted, 3),
        "first_start_s": round(status["started_at"] - submitted, 3),
        "elapsed_s": round(elapsed, 3),
        "throughput": round(throughput, 1),
        "ideal": round(ideal, 1),
        "of_ideal": round(throughput / ideal, 3),
        "result_lines": lines,
        "stream_s": round(stream_s, 3),
        "rss_before_stream_mib": round(before["VmRSS"] / 1024, 1),
        "peak_rss_before_stream_mib": round(before["VmHWM"] / 1024, 1),
        "peak_rss_after_stream_mib": round(after["VmHWM"] / 1024, 1),
        "worker_peak_rss_mib": round(worker_peak_kib / 1024, 1),
        "worker_cpu_ms_per_doc": round(1000 * worker_cpu_s / args.documents, 2),
    }


def _cancel(client: httpx.Client, batch_id: str, at: float, workers: int) -> dict[str, Any]:
    """DELETE the running batch at ``at``: how long the answer took, and whether anything ran on after it."""
    time.sleep(max(0.0, at - time.time()))
    asked = time.monotonic()
    answer = client.delete(f"/v1/batches/{batch_id}").json()
    cancel_s = time.monotonic() - asked
    time.sleep(1.0)  # anything still running would finish (or start) now
    later = client.get(f"/v1/batches/{batch_id}").json()
    return {
        "workers": workers,
        "cancel_s": round(cancel_s, 3),
        "done_at_answer": answer["done"],
        "running_at_answer": answer["counts"]["running"],
        "ok_at_answer": answer["counts"]["ok"],
        "ok_1s_later": later["counts"]["ok"],
        "cancelled": later["counts"]["cancelled"],
        "status": later["status"],
    }


def _table(rows: list[dict[str, Any]]) -> str:
    if "cancel_s" in rows[0]:
        columns = list(rows[0])
        lines = [" | ".join(columns), " | ".join("-" * len(c) for c in columns)]
        lines.extend(" | ".join(str(row[c]) for c in columns) for row in rows)
        return "\n".join(lines)
    columns = [
        "workers",
        "concurrency",
        "documents",
        "elapsed_s",
        "throughput",
        "ideal",
        "of_ideal",
        "submit_s",
        "first_start_s",
        "stream_s",
        "peak_rss_before_stream_mib",
        "peak_rss_after_stream_mib",
        "worker_peak_rss_mib",
        "worker_cpu_ms_per_doc",
    ]
    lines = [" | ".join(columns), " | ".join("-" * len(c) for c in columns)]
    lines.extend(" | ".join(str(row[c]) for c in columns) for row in rows)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.batch", description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64, help="Per worker (jobs.concurrency).")
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument(
        "--cancel-after", type=float, default=None, help="Instead: DELETE the batch this many seconds in, and time it."
    )
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/5", help="Flushed before each run (not a test suite's db)."
    )
    parser.add_argument("--json", dest="json_path", default=None, help="Also write the rows here.")
    args = parser.parse_args(argv)
    rows = [run_once(args, workers) for workers in args.workers]
    print(_table(rows))
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
