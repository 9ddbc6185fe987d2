"""`extractor serve` with its bundled Redis (the model faked on a loopback port): a Redis killed under load is
restarted without the service restarting, requests meanwhile get a 503 a person can act on, and nothing is lost."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_model import FakeModel, serve_model
from tests.support.processes import wait_for
from tests.support.serving import Served, serve

SCHEMA = {"json_schema": {"type": "object", "properties": {"city": {"type": ["string", "null"]}}}}
DOCUMENT = {"schema": "place", "text": "We met in Lisbon.", "options": {"cache": False}}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    model = FakeModel().reply({"city": "Lisbon"})
    with serve_model(model.handler) as model_url:
        env = {"EXTRACTOR_MODEL_BASE_URL": model_url, "EXTRACTOR_MODEL_ENFORCEMENT": "json_schema"}
        with serve(tmp_path / "data", env, ready_s=60) as served:
            yield served


def _readiness(served: Served) -> str:
    """What ``/readyz`` says of Redis: "ok", a failed ping, or the supervisor's sentence once it saw the exit."""
    return str(httpx.get(f"{served.url}/readyz", timeout=10).json()["checks"]["redis"])


def _status(served: Served) -> int:
    return httpx.post(f"{served.url}/v1/extract", json=DOCUMENT, timeout=30).status_code


@contextmanager
def _holding_lock(path: Path) -> Iterator[None]:
    """Take the data dir's lock as soon as the killed server's exit frees it: restarts fail until we let go."""
    fd = os.open(path, os.O_RDWR)
    try:
        wait_for(lambda: _try_lock(fd), 5, "the lock freed by the killed server", interval_s=0.001)
        yield
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def test_a_killed_bundled_redis_is_restarted_with_its_data(served: Served, tmp_path: Path) -> None:
    assert httpx.put(f"{served.url}/v1/schemas/place", json=SCHEMA).status_code == 201
    assert _status(served) == 200
    time.sleep(1.5)  # the append-only file is written to disk every second
    redis_server = served.child("redis-server")

    redis_server.kill()
    with _holding_lock(tmp_path / "data" / "redis.lock"):  # the first restarts fail: a window that cannot close
        wait_for(lambda: _readiness(served).startswith("the bundled Redis server"), 5, "the supervisor saw the exit")
        ready = httpx.get(f"{served.url}/readyz", timeout=10)
        during = httpx.put(f"{served.url}/v1/schemas/other", json=SCHEMA, timeout=30)

    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith(
        "the bundled Redis server was killed by SIGKILL and is being restarted"
    )
    assert during.status_code == 503
    assert during.headers["content-type"].startswith("application/problem+json")
    assert int(during.headers["retry-after"]) >= 1
    problem: dict[str, Any] = during.json()
    assert problem["type"] == "store-unavailable"
    assert problem["detail"] == ready.json()["checks"]["redis"]

    wait_for(lambda: httpx.get(f"{served.url}/readyz", timeout=10).status_code == 200, 30, "ready again")
    assert served.child("redis-server").pid != redis_server.pid
    assert httpx.get(f"{served.url}/v1/schemas/place").json()["version"] == 1
    assert _status(served) == 200
    batch = httpx.post(
        f"{served.url}/v1/batches", json={"schema": "place", "documents": [{"id": "a", "text": "In Porto."}]}
    )
    assert batch.status_code == 202
    batch_url = f"{served.url}/v1/batches/{batch.json()['batch_id']}"
    wait_for(lambda: httpx.get(batch_url).json()["status"] == "finished", 30, "the batch finished")
    assert served.process.is_running()
