"""`extractor schemas sync DIR` against a real `extractor serve` process (Redis db 12): schemas kept in a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis

from extractor.local.process import free_port
from tests.support.processes import started
from tests.support.redis_db import SUBPROCESS_URL as REDIS_URL

CITY = {"type": "object", "properties": {"city": {"type": ["string", "null"]}}}
TOWN = {"json_schema": {"type": "object", "properties": {"town": {"type": ["string", "null"]}}}, "description": "town"}
TOP_LEVEL_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture
def service() -> Iterator[str]:
    redis.Redis.from_url(REDIS_URL).flushdb()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXTRACTOR_")} | {
        "EXTRACTOR_REDIS_URL": REDIS_URL,
        "EXTRACTOR_MODEL_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # registering never calls the model
        "EXTRACTOR_PORT": str(port),
        "EXTRACTOR_JOBS__RUN_IN_SERVE": "false",
    }
    url = f"http://127.0.0.1:{port}"
    try:
        with started([sys.executable, "-m", "extractor", "serve"], f"{url}/healthz", env=env, grace_s=30):
            yield url
    finally:
        redis.Redis.from_url(REDIS_URL).flushdb()


def sync(url: str, folder: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "extractor", "schemas", "sync", str(folder), "--url", url, *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def schemas_on(url: str) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in httpx2.get(f"{url}/v1/schemas", timeout=5).json()}


def write(folder: Path, name: str, content: dict[str, Any]) -> None:
    (folder / f"{name}.json").write_text(json.dumps(content))


def test_a_folder_synced_again_and_again_changes_only_what_changed(service: str, tmp_path: Path) -> None:
    write(tmp_path, "city", CITY)
    write(tmp_path, "town", TOWN)

    planned = sync(service, tmp_path, "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines() == [
        "+ city: new, as city@1",
        "+ town: new, as town@1",
        "dry run, nothing changed: would have 2 created, 0 updated, 0 restored, 0 retired, 0 unchanged",
    ]
    assert "city" not in schemas_on(service)

    first = sync(service, tmp_path)
    assert first.stdout.splitlines()[-1] == "2 created, 0 updated, 0 restored, 0 retired, 0 unchanged"
    again = sync(service, tmp_path)
    assert again.stdout.splitlines() == ["= city@1: unchanged", "= town@1: unchanged", again.stdout.splitlines()[-1]]
    assert schemas_on(service)["town"]["description"] == "town"
    assert schemas_on(service)["city"]["version"] == 1

    write(tmp_path, "city", {**CITY, "required": ["city"]})
    changed = sync(service, tmp_path)
    assert "~ city: city@1 -> city@2" in changed.stdout
    assert '    +    "required": [' in changed.stdout.splitlines(), "the diff shows what changed"
    assert schemas_on(service)["city"]["version"] == 2

    (tmp_path / "town.json").unlink()
    kept = sync(service, tmp_path)
    assert "town" not in kept.stdout, "without --prune a schema missing from the folder is left alone"
    pruned = sync(service, tmp_path, "--prune")
    assert "- town: retire (not in the folder; town@1 stays readable)" in pruned.stdout
    assert schemas_on(service)["town"]["retired"] is True
    assert schemas_on(service)["receipt"]["retired"] is False, "bundled schemas are never pruned"

    write(tmp_path, "town", TOWN)
    restored = sync(service, tmp_path)
    assert "^ town: restore town@1 (retired, content unchanged)" in restored.stdout
    assert (schemas_on(service)["town"]["retired"], schemas_on(service)["town"]["version"]) == (False, 1)


def test_the_top_level_schemas_folder_is_what_the_service_bundles(service: str) -> None:
    result = sync(service, TOP_LEVEL_SCHEMAS, "--prune")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 created, 0 updated, 0 restored, 0 retired, 5 unchanged"


def test_a_file_that_would_shadow_a_bundled_schema_stops_the_sync_before_any_change(
    service: str, tmp_path: Path
) -> None:
    write(tmp_path, "city", CITY)
    write(tmp_path, "receipt", CITY)
    result = sync(service, tmp_path)
    assert result.returncode == 1
    assert "receipt: bundled schema name(s), reserved for every tenant; rename the file(s)" in result.stderr
    assert "city" not in schemas_on(service)
