"""``extractor serve`` as a user runs it: a subprocess on a free port, its children found with psutil."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from extractor.local.process import free_port

__all__ = ["Served", "serve", "wait_for"]


@dataclass
class Served:
    url: str
    process: psutil.Process
    log: Path

    def child(self, needle: str) -> psutil.Process:
        """The running descendant whose command line contains ``needle`` (``redis-server``, ``llama_cpp.server``)."""
        for child in self.process.children(recursive=True):
            if needle in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                return child
        raise AssertionError(f"no running child with {needle!r} in its command line")


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(interval_s)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == httpx.codes.OK
    except httpx.TransportError:
        return False


@contextmanager
def serve(data_dir: Path, env: Mapping[str, str] | None = None, ready_s: float = 180) -> Iterator[Served]:
    """Run `extractor serve` on a free port with only ``env`` of our settings set; SIGTERM it on the way out."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EXTRACTOR_")}
    environ |= {"EXTRACTOR_DATA_DIR": str(data_dir), "EXTRACTOR_PORT": str(port), **(env or {})}
    log_path = data_dir.parent / f"serve-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "extractor", "serve"], env=environ, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or _ready(url), ready_s, "ready", 0.5)
        assert proc.poll() is None, log_path.read_text()
        yield Served(url, psutil.Process(proc.pid), log_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
