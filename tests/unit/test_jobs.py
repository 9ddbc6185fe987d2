"""Batch job pieces that need no Redis: chunking, backoff, submission parsing and digests, the CLI's input/resume."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from extractor.api.batches import parse_submission
from extractor.cli.batch_run import read_documents, read_done_ids
from extractor.errors import InvalidInputError, UpstreamRateLimitedError, UpstreamUnavailableError
from extractor.jobs.cancels import CancelWatch
from extractor.jobs.queue import chunk_key, chunks
from extractor.jobs.retry import backoff_delay, is_transient
from extractor.jobs.service import body_digest
from extractor.jobs.state import BatchRecord
from extractor.settings import JobsSettings

DOCS = [{"id": "a", "text": "first"}, {"id": "b", "text": "second"}]


def test_chunks_cover_every_index_once() -> None:
    assert list(chunks(10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(chunks(0, 4)) == []
    assert chunk_key("b1", 8) == "{extractor:batches}:b1:8"


async def test_a_cancel_stops_the_batch_s_chunks_even_those_that_register_after_it() -> None:
    watch = CancelWatch()

    async def chunk() -> int:
        await asyncio.sleep(60)
        return 1

    running, other, late = (asyncio.create_task(chunk()) for _ in range(3))
    with watch.watching("b1", running), watch.watching("b2", other):
        watch.cancel("b1")
        await asyncio.sleep(0)
        assert running.cancelled()
        assert not other.done()
        with watch.watching("b1", late):  # its claim raced the cancel: it stops as it registers
            await asyncio.sleep(0)
            assert late.cancelled()
    other.cancel()
    for n in range(2000):  # the batches it remembers are bounded
        watch.cancel(f"x{n}")
    fresh = asyncio.create_task(chunk())
    with watch.watching("b1", fresh):
        await asyncio.sleep(0)
        assert not fresh.done(), "b1 was forgotten among 2,000 later cancels"
    fresh.cancel()


def test_backoff_doubles_honours_retry_after_and_is_capped() -> None:
    settings = JobsSettings(retry_base_s=0.5, retry_max_s=10)
    plain = UpstreamUnavailableError("503")
    assert [backoff_delay(plain, n, settings) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_delay(UpstreamRateLimitedError("429", retry_after=7), 1, settings) == 7
    assert backoff_delay(UpstreamRateLimitedError("429", retry_after=60), 1, settings) == 10
    assert is_transient(plain)
    assert not is_transient(InvalidInputError("bad"))


def test_json_and_ndjson_bodies_give_the_same_submission_and_digest() -> None:
    as_json = parse_submission(
        json.dumps({"schema": "receipt", "documents": DOCS, "options": {"grounding": "off"}}).encode(),
        "application/json",
        None,
        None,
    )
    ndjson = "\n".join(json.dumps(d) for d in DOCS).encode()
    as_ndjson = parse_submission(ndjson, "application/x-ndjson; charset=utf-8", "receipt", '{"grounding": "off"}')
    assert as_json == as_ndjson
    assert as_json.documents == [("a", "first"), ("b", "second")]
    assert body_digest(as_json) == body_digest(as_ndjson)
    other = parse_submission(ndjson, "application/x-ndjson", "receipt", None)
    assert body_digest(other) != body_digest(as_json)


@pytest.mark.parametrize(
    ("body", "content_type", "schema", "options", "needle"),
    [
        (b'{"schema": "receipt", "documents": []}', "application/json", None, None, "documents"),
        (b'{"id": "a"}', "application/x-ndjson", "receipt", None, "line 1"),
        (b'{"id": "a", "text": "x"}', "application/x-ndjson", None, None, "schema"),
        (b'{"id": "a", "text": "x"}', "application/x-ndjson", "receipt", "{nope", "options is not JSON"),
    ],
)
def test_bad_submissions_say_what_is_wrong(
    body: bytes, content_type: str, schema: str | None, options: str | None, needle: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_submission(body, content_type, schema, options)
    assert needle in caught.value.detail + json.dumps(caught.value.extra)


def test_record_status_and_throughput() -> None:
    counts = {"queued": 0, "running": 0, "ok": 8, "empty": 1, "failed": 1, "cancelled": 0}
    record = BatchRecord("b", "t", "receipt@1", {}, 10, 4, "d", False, counts, 100.0, 100.0, 105.0)
    assert record.status == "finished"
    assert record.done == 10
    assert record.throughput() == 2.0
    queued = BatchRecord("b", "t", "receipt@1", {}, 10, 4, "d", False, counts, 100.0, None, None)
    assert queued.status == "queued"
    assert queued.throughput() == 0.0
    assert BatchRecord("b", "t", "r", {}, 10, 4, "d", True, counts, 1.0, None, None).status == "cancelled"
    cut = {**counts, "ok": 2, "cancelled": 6}
    cancelled = BatchRecord("b", "t", "receipt@1", {}, 10, 4, "d", True, cut, 100.0, 100.0, 102.0)
    assert cancelled.throughput() == 2.0, "4 processed in 2 s: cancelled items are not throughput"


def test_read_documents_from_jsonl_and_folder(tmp_path: Path) -> None:
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n\n")
    assert read_documents(jsonl) == [("a", "first"), ("b", "second")]
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "z.txt").write_text("zed")
    (folder / "a.txt").write_text("ay")
    assert read_documents(folder) == [("a.txt", "ay"), ("z.txt", "zed")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        read_documents(bad)


def test_read_done_ids_cuts_a_partial_last_line(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    assert read_done_ids(output) == []
    output.write_text('{"id": "a", "index": 0}\n{"id": "b", "index": 1}\n{"id": "c", "ind')
    assert read_done_ids(output) == ["a", "b"]
    assert output.read_text().endswith("}\n")
