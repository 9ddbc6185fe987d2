"""`extractor serve` with nothing configured: bundled Redis and model start, are supervised, stop with the service."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.processes import wait_for
from tests.support.serving import serve

pytestmark = pytest.mark.e2e

SCHEMA = {"json_schema": {"type": "object", "properties": {"city": {"type": ["string", "null"]}}}}
RECEIPT = {
    "schema": "receipt",
    "text": "ACME Market\n2024-03-05\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR",
    "options": {"cache": False},
}


def _readiness(url: str) -> str:
    """What ``/readyz`` says of the model: "ok", a failed call, or the supervisor's sentence once it saw the exit."""
    return str(httpx.get(f"{url}/readyz", timeout=10).json()["checks"]["model"])


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_exits_only_after_its_children_and_keeps_data(tmp_path: Path, stop_signal: signal.Signals) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir) as served:
        children = served.process.children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "redis-server" in names
        assert "llama_cpp.server" in names
        assert httpx.put(f"{served.url}/v1/schemas/place", json=SCHEMA).status_code == 201

        served.process.send_signal(stop_signal)
        assert served.process.wait(timeout=60) == 0
        alive = [child.pid for child in children if psutil.pid_exists(child.pid)]
        assert alive == [], f"children still running when serve had exited: {alive}"
    assert (data_dir / "redis.conf").exists()

    with serve(data_dir) as served:
        again = httpx.get(f"{served.url}/v1/schemas/place")
        assert again.status_code == 200
        assert again.json()["version"] == 1


def test_a_model_server_killed_mid_request_is_restarted_while_requests_get_503(tmp_path: Path) -> None:
    with serve(tmp_path / "data") as served:
        extract = f"{served.url}/v1/extract"
        assert httpx.post(extract, json=RECEIPT, timeout=120).status_code == 200
        model = served.child("llama_cpp.server")

        with ThreadPoolExecutor(4) as pool:
            in_flight = [pool.submit(httpx.post, extract, json=RECEIPT, timeout=120) for _ in range(4)]
            wait_for(lambda: model.cpu_percent(0.05) > 0, 10, "the model is generating")
            model.kill()
            wait_for(lambda: _readiness(served.url).startswith("the bundled model server"), 5, "the exit seen")
            during = httpx.post(extract, json=RECEIPT, timeout=120)
            answers = [future.result() for future in in_flight]

        assert during.status_code == 503
        assert during.headers["content-type"].startswith("application/problem+json")
        assert int(during.headers["retry-after"]) >= 1
        problem = during.json()
        assert problem["type"] == "model-unavailable"
        assert problem["detail"].startswith("the bundled model server was killed by SIGKILL and is being restarted")
        assert {answer.status_code for answer in answers} <= {200, 503}, [answer.text for answer in answers]

        wait_for(lambda: httpx.get(f"{served.url}/readyz", timeout=10).status_code == 200, 60, "ready again")
        after = httpx.post(extract, json=RECEIPT, timeout=120)
        assert after.status_code == 200, after.text
        assert served.child("llama_cpp.server").pid != model.pid
        assert served.process.is_running()
