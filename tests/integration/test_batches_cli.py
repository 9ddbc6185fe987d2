"""`extractor batch` end to end: the service (with its worker) in a thread under uvicorn, the bench's fake model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from extractor.app import create_app
from extractor.cli.batch import batch
from tests.support.app import make_settings, serve_app
from tests.support.batches import invoices

JOBS = {"concurrency": 8, "chunk_size": 2, "heartbeat_s": 2, "sweep_s": 1}


@pytest.fixture
def service(redis: object, fake_server: str) -> Iterator[str]:
    with serve_app(create_app(make_settings(model_base_url=fake_server, jobs=JOBS))) as url:
        yield url


def test_batch_command_writes_one_line_per_document_in_order_and_resumes(service: str, tmp_path: Path) -> None:
    docs = invoices(20, "inv")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    output = tmp_path / "out.jsonl"
    args = ["--schema", "receipt", "-o", str(output), "--url", service, str(source)]
    first = CliRunner().invoke(batch, args)
    assert first.exit_code == 0, first.output
    assert "20 result(s) written" in first.output
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["id"] for line in lines] == [doc["id"] for doc in docs]
    assert [line["index"] for line in lines] == list(range(20))
    assert {line["status"] for line in lines} == {"ok"}
    assert not output.with_name("out.jsonl.batch").exists()
    written = output.read_bytes()
    again = CliRunner().invoke(batch, args)
    assert again.exit_code == 0, again.output
    assert "0 result(s) written" in again.output
    assert output.read_bytes() == written  # nothing redone, nothing appended twice
