"""The CLI against a real `extractor serve` process (real Redis db 12, the bench's fake OpenAI server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from extractor.local.process import free_port
from tests.support.processes import fake_openai, started
from tests.support.redis_db import SUBPROCESS_URL as REDIS_URL


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    redis.Redis.from_url(REDIS_URL).flushdb()
    port = free_port()
    log = tmp_path / "serve.log"
    with fake_openai(0, log_path=log) as model_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXTRACTOR_")} | {
            "EXTRACTOR_REDIS_URL": REDIS_URL,
            "EXTRACTOR_MODEL_BASE_URL": model_url,
            "EXTRACTOR_PORT": str(port),
            "EXTRACTOR_JOBS__RUN_IN_SERVE": "false",
        }
        url = f"http://127.0.0.1:{port}"
        with started([sys.executable, "-m", "extractor", "serve"], f"{url}/readyz", env=env, log_path=log, grace_s=30):
            yield url
    redis.Redis.from_url(REDIS_URL).flushdb()


def cli(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"EXTRACTOR_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "extractor", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def test_schemas_and_extract_from_a_shell(service: str, tmp_path: Path) -> None:
    schema_file = tmp_path / "city.json"
    schema_file.write_text(json.dumps({"type": "object", "properties": {"city": {"type": ["string", "null"]}}}))
    registered = cli(service, "schemas", "register", "city", str(schema_file), "--description", "a city")
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["version"] == 1
    listed = cli(service, "schemas", "list")
    assert "city@1\ta city" in listed.stdout.splitlines()
    assert "receipt@1" in listed.stdout
    shown = cli(service, "schemas", "show", "city@1")
    assert json.loads(shown.stdout)["description"] == "a city"

    extracted = cli(service, "extract", "--schema", "city", "-", stdin="Paris is lovely")
    assert extracted.returncode == 0, extracted.stderr
    result = json.loads(extracted.stdout)
    assert result["status"] == "ok"
    assert result["data"] == {"city": "Paris"}
    assert result["fields"]["/city"]["span"] == [0, 5]

    missing = cli(service, "extract", "--schema", "nope", "-", stdin="x")
    assert missing.returncode == 1
    assert json.loads(missing.stderr)["type"] == "schema-not-found"


def test_unreachable_service_is_a_clear_error() -> None:
    result = cli(f"http://127.0.0.1:{free_port()}", "schemas", "list")
    assert result.returncode != 0
    assert "cannot reach extractor" in result.stderr
