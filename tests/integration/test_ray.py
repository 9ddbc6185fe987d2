"""Ray Data on a local Ray (2 CPUs): extractor's pipeline in Ray actors over a few hundred documents against the fake
model server, the example from JSONL to Parquet, and the second mode through a running service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from extractor.app import create_app
from extractor.client import BatchResult
from extractor.integrations.ray import COLUMNS, ExtractBatches, ExtractViaService
from tests.support.app import make_settings, serve_app

ray = pytest.importorskip("ray", reason="install the extra: pip install -e '.[ray]'")  # under CI a skip fails

pytestmark = [
    pytest.mark.ray,
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*"),  # Ray's own settings warn about themselves
]

ROOT = Path(__file__).resolve().parents[2]
RECEIPT = ROOT / "schemas" / "receipt.json"
DOCS = 300


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"r{n}", "index": n, "text": f"ACME Market receipt {n}\n2024-03-05\nBread 2.50\nTOTAL {n % 97}.70 EUR"}
        for n in range(count)
    ]


def _check(records: list[dict[str, Any]], rows: list[dict[str, Any]], schema_ref: str) -> None:
    """One record per row, each with the row's id and index, its ``result`` a batch results line."""
    assert sorted(r["index"] for r in records) == list(range(len(rows)))
    by_index = {r["index"]: r for r in records}
    for row in rows:
        record = by_index[row["index"]]
        assert set(record) == set(COLUMNS)
        line = BatchResult.from_line(record["result"])
        assert (line.id, line.index, line.status) == (row["id"], row["index"], record["status"])
        assert record["status"] in ("ok", "empty"), record["result"]
        assert json.loads(record["result"])["schema"] == schema_ref
    assert any(r["status"] == "ok" for r in records)


def test_extract_batches_runs_the_pipeline_in_ray_actors(local_ray: None, fake_server: str) -> None:
    rows = _rows(DOCS)
    dataset = ray.data.from_items(rows).map_batches(
        ExtractBatches,
        fn_constructor_args=("receipt",),
        fn_constructor_kwargs={
            "schema_file": str(RECEIPT),
            "settings": {"model_base_url": fake_server, "model_max_retries": 0},  # enforcement: probed per actor
            "concurrency": 64,
        },
        batch_size=50,
        batch_format="numpy",
        concurrency=2,
    )
    records = dataset.take_all()
    _check(records, rows, "receipt@1")
    ok = json.loads(next(r["result"] for r in records if r["status"] == "ok"))
    assert ok["enforcement"] == "json_schema"
    assert ok["fields"], "grounding ran: every value located in the text"


def test_the_example_reads_jsonl_and_writes_parquet(local_ray: None, fake_server: str, tmp_path: Path) -> None:
    from examples.ray_extract import main  # the example imports ray: only once the module's import of it passed

    rows = _rows(120)
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"
    schema = ["--schema", "receipt", "--schema-file", str(RECEIPT)]
    main(
        [
            str(source),
            str(out),
            *schema,
            "--model-base-url",
            fake_server,
            "--model-enforcement",
            "json_schema",
            "--actors",
            "1",
        ]
    )
    records = ray.data.read_parquet(str(out)).take_all()
    _check(records, rows, "receipt@1")


@pytest.fixture
def service_url(redis: Redis, fake_server: str) -> Iterator[str]:
    settings = make_settings(model_base_url=fake_server, jobs={"run_in_serve": False})
    with serve_app(create_app(settings)) as url:
        yield url


def test_extract_via_service_sends_each_document_to_the_running_service(local_ray: None, service_url: str) -> None:
    rows = _rows(100)
    dataset = ray.data.from_items(rows).map_batches(
        ExtractViaService,
        fn_constructor_args=("receipt",),
        fn_constructor_kwargs={"url": service_url, "concurrency": 16},
        batch_size=25,
        batch_format="numpy",
        concurrency=1,
    )
    records = dataset.take_all()
    _check(records, rows, "receipt@1")
