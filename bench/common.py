"""Shared benchmark plumbing: subprocess servers on free loopback ports, closed-loop timing, percentiles, output.

Every benchmark runs its contenders in interleaved rounds (A, B, C, then B, C, A, ...) so slow drift of the
machine (other load, thermal, GC) falls on all of them alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from extractor.local.process import free_port, spawn, wait_until

__all__ = [
    "PYTHON",
    "SERVE",
    "Server",
    "closed_loop",
    "cpu_s",
    "free_port",
    "machine",
    "percentile",
    "processes",
    "receipt_documents",
    "rotations",
    "run_json",
    "summarize_latencies",
    "table",
    "wait_http",
    "write_json",
]

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SERVE = [PYTHON, "-c", "from extractor.cli import main; main()", "serve"]
"""``extractor serve``, the same code path, spelled so that no ``pkill -f 'extractor serve'`` elsewhere hits it."""


@dataclass
class Server:
    """A server subprocess in its own session, ready once ``ready_path`` answers 2xx; stopped with its group."""

    argv: Sequence[str]
    port: int
    ready_path: str = "/"
    env: Mapping[str, str] | None = None
    log: Path | None = None
    cwd: Path = ROOT
    """The source tree it runs from (``python -c`` imports the ``extractor`` of its working directory)."""
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> Server:
        log = self.log or Path(os.devnull)
        self._proc = spawn(self.argv, log, cwd=self.cwd, env={**os.environ, **(self.env or {})})
        what = f"{self.argv[:3]} on {self.url}{self.ready_path}"
        try:
            wait_until(self._answers, self._proc, timeout_s=timeout_s, what=what, log_path=log, error=RuntimeError)
        except RuntimeError:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url + self.ready_path, timeout=1.0).is_success
        except httpx.TransportError:
            return False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between order statistics."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_latencies(latencies_ms: Sequence[float], seconds: float) -> dict[str, float]:
    """Median, p90, p99 and mean latency in ms, and requests per second over ``seconds`` of wall time."""
    return {
        "n": len(latencies_ms),
        "median_ms": round(percentile(latencies_ms, 50), 3),
        "p90_ms": round(percentile(latencies_ms, 90), 3),
        "p99_ms": round(percentile(latencies_ms, 99), 3),
        "mean_ms": round(sum(latencies_ms) / max(1, len(latencies_ms)), 3),
        "rps": round(len(latencies_ms) / seconds, 1) if seconds else float("nan"),
    }


async def closed_loop(
    call: Callable[[], Awaitable[None]], requests: int, concurrency: int
) -> tuple[list[float], float]:
    """Run ``requests`` calls with ``concurrency`` workers each issuing the next as soon as one ends.

    Returns per-request latencies (ms) and wall seconds.
    """
    latencies: list[float] = []
    remaining = iter(range(requests))

    async def worker() -> None:
        for _ in remaining:
            start = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


def run_json(argv: Sequence[str], label: str) -> Any:
    """Run a benchmark round in a fresh process (from the repository root); its stdout is one JSON document."""
    done = subprocess.run(list(argv), cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def rotations(names: Sequence[str], rounds: int) -> list[list[str]]:
    """Round ``r`` runs the contenders rotated by ``r``, so none is always first (cold) or last."""
    return [[names[(r + i) % len(names)] for i in range(len(names))] for r in range(rounds)]


def machine() -> dict[str, Any]:
    """nproc, CPU model, RAM and Python: what a reader needs to compare figures."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first, *rest = row
        return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))])

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])])


def write_json(path: Path | None, result: Mapping[str, Any]) -> None:
    """Write ``result`` as indented JSON when a path is given."""
    if path is not None:
        path.write_text(json.dumps(result, indent=2) + "\n")


def cpu_s(pid: int) -> float:
    """User plus system CPU time of a process so far, in seconds (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def processes(commands: Sequence[tuple[list[str], dict[str, str]]]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start each ``(argv, extra environment)`` quietly; terminate them all at the end (killed after 10 s)."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        for argv, env in commands:
            started.append(
                subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_http(url: str, process: subprocess.Popen[bytes], within_s: float = 30.0) -> None:
    """Until ``url`` answers below 500; fails at once if ``process``, which serves it, exits first."""

    def up() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(url, timeout=1).status_code < 500
        return False

    wait_until(up, process, timeout_s=within_s, what=url, log_path=Path(os.devnull), error=RuntimeError)


def receipt_documents(count: int) -> list[dict[str, str]]:
    """``count`` small receipts, each different, for batch benchmarks."""
    return [
        {"id": f"d{n}", "text": f"ACME Market receipt {n}\n2024-03-05\nBread 2.50\nTOTAL {n % 97}.70 EUR\n"}
        for n in range(count)
    ]
