"""`extractor serve` with nothing configured: bundled Redis and model start, stop with the service, data survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from extractor.local.process import free_port

pytestmark = pytest.mark.e2e

SCHEMA = {"json_schema": {"type": "object", "properties": {"city": {"type": ["string", "null"]}}}}


@contextmanager
def serve(data_dir: Path) -> Iterator[tuple[str, psutil.Process]]:
    """Run `extractor serve` on a free port with no Redis or model configured; SIGTERM it on the way out."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXTRACTOR_")}
    env |= {"EXTRACTOR_DATA_DIR": str(data_dir), "EXTRACTOR_PORT": str(port)}
    log = (data_dir.parent / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "extractor", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, (data_dir.parent / f"serve-{port}.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("service did not become ready in 180 s")
        yield url, psutil.Process(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        log.close()


def test_serve_starts_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir) as (url, process):
        children = process.children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "redis-server" in names
        assert "llama_cpp.server" in names
        assert httpx.put(f"{url}/v1/schemas/place", json=SCHEMA).status_code == 201
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], f"children left behind: {alive}"
    assert (data_dir / "redis.conf").exists()

    with serve(data_dir) as (url, _):
        again = httpx.get(f"{url}/v1/schemas/place")
        assert again.status_code == 200
        assert again.json()["version"] == 1


def test_dead_model_server_gives_503_not_a_hang(tmp_path: Path) -> None:
    with serve(tmp_path / "data") as (url, process):
        model = next(c for c in process.children(recursive=True) if "llama_cpp.server" in " ".join(c.cmdline()))
        model.kill()  # a zombie until the service reaps it: readiness notices the exit
        deadline = time.monotonic() + 10
        while (ready := httpx.get(f"{url}/readyz", timeout=10)).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.status_code == 503
        assert "exited" in ready.json()["checks"]["model"]
        started = time.monotonic()
        response = httpx.post(f"{url}/v1/extract", json={"schema": "receipt", "text": "ACME 3.50"}, timeout=60)
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "retry-after" in response.headers
        assert time.monotonic() - started < 30
