"""Processes a test starts and waits for, and waiting until something is true.

Ports, spawning and the wait itself are ``extractor.local.process``'s, the code that starts the bundled Redis and
model: a child here gets its own session, its output appended to a log, and the parent-death signal, so none
outlives a killed test run. A child that exits or does not answer in time fails the test with the end of its log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from extractor.local.process import free_port, spawn, terminate, wait_until

__all__ = ["ROOT", "answers", "fake_openai", "started", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]
_LOG_TAIL_CHARS = 4000


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    """Poll ``check`` until it is true; fail the test, naming ``what``, once ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(interval_s)


def answers(url: str) -> bool:
    """``url`` answers 200 now (a refused connection or a time-out is a no)."""
    try:
        return httpx.get(url, timeout=2.0).status_code == httpx.codes.OK
    except httpx.TransportError:
        return False


def _failure(log_path: Path) -> Callable[[str], Exception]:
    def error(message: str) -> Exception:
        tail = log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:] if log_path.is_file() else ""
        return AssertionError(f"{message}\n{tail}")

    return error


def _temporary_log(program: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f"{Path(program).name}-", suffix=".log")
    os.close(fd)
    return Path(name)


@contextmanager
def started(
    argv: Sequence[str],
    ready_url: str,
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    timeout_s: float = 60.0,
    grace_s: float = 10.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` from the repository root and wait until ``ready_url`` answers 200; after the block, SIGTERM
    it and SIGKILL it after ``grace_s``. ``env`` replaces ours. Without ``log_path`` the output goes to a temporary
    file, removed when the block ends without an error."""
    own_log = log_path is None
    log = log_path or _temporary_log(argv[0])
    proc = spawn(argv, log, cwd=ROOT, env=env)
    try:
        what = " ".join(argv[:4])
        wait_until(lambda: answers(ready_url), proc, timeout_s=timeout_s, what=what, log_path=log, error=_failure(log))
        yield proc
    finally:
        terminate(proc, grace_s)
    if own_log:
        log.unlink(missing_ok=True)


@contextmanager
def fake_openai(latency_ms: int = 0, *options: str, log_path: Path | None = None) -> Iterator[str]:
    """``python -m bench.fake_openai`` (``options`` are its flags) on a free loopback port; yields its base URL,
    ``http://127.0.0.1:PORT/v1``."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.fake_openai", "--port", str(port), "--latency-ms", str(latency_ms), *options]
    url = f"http://127.0.0.1:{port}/v1"
    with started(argv, f"{url}/models", log_path=log_path, timeout_s=20, grace_s=0.5):  # no state to lose
        yield url
