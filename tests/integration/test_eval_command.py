"""``extractor eval`` and ``extractor export`` end to end on 10 SNIPS lines, against real Redis (db 6).

Over HTTP: the app in-process with the model scripted at the transport. On the command line: ``--in-process``
against the benchmark fake server in a subprocess. Also the paired-difference maths behind ``--compare``.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient
from redis import Redis as SyncRedis

from extractor.cli.eval import eval_command, export_command
from extractor.client import AsyncClient
from extractor.evaluation.runner import HttpBackend, fit_gold, load_cases, run_eval, score_run
from extractor.evaluation.stats import paired_difference_ci, paired_ratio_difference_ci
from extractor.registry.schema import SchemaDefinition
from tests.support.app import app_client, make_settings
from tests.support.fake_model import FakeModel
from tests.support.processes import fake_openai

ROOT = Path(__file__).resolve().parents[2]
SNIPS = ROOT / "tests" / "fixtures" / "snips" / "eval.jsonl"
SNIPS_SCHEMA = ROOT / "bench" / "snips_schema.json"
REDIS_URL = "redis://127.0.0.1:6379/6"


@pytest.fixture
def snips_10(tmp_path: Path) -> Path:
    path = tmp_path / "snips10.jsonl"
    path.write_text("".join(SNIPS.read_text(encoding="utf-8").splitlines(keepends=True)[:10]), encoding="utf-8")
    return path


@pytest.fixture
def clean_redis() -> Iterator[SyncRedis]:
    client = SyncRedis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


# --- the maths of --compare -------------------------------------------------------------------------------------


def test_paired_ratio_difference_by_hand() -> None:
    # Three documents, one cell each. A: 2/4 = 0.5, B: 3/3 = 1. Influences u = (-0.125, 0.125, 0).
    estimate = paired_ratio_difference_ci(([1, 0, 1], [1, 1, 2]), ([1, 1, 1], [1, 1, 1]), ["d1", "d2", "d3"])
    assert estimate.value == pytest.approx(0.5)
    assert estimate.se == pytest.approx(math.sqrt(1.5 * 2 * 0.125**2))
    assert estimate.low == pytest.approx(0.5 - 1.96 * estimate.se)


def test_paired_ratio_difference_with_unit_denominators_is_the_clustered_paired_mean() -> None:
    a, b = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    clusters = ["x", "x", "y", "y", "z", "z"]
    ones = [1.0] * 6
    ratio = paired_ratio_difference_ci((a, ones), (b, ones), clusters)
    mean = paired_difference_ci(a, b, clusters)
    assert (ratio.value, ratio.se) == pytest.approx((mean.value, mean.se))


def test_identical_runs_differ_by_exactly_zero() -> None:
    column = ([1.0, 0.0, 1.0], [1.0, 1.0, 1.0])
    estimate = paired_ratio_difference_ci(column, column, ["a", "b", "c"])
    assert (estimate.value, estimate.se) == (0.0, 0.0)


def test_gold_lists_are_unwrapped_only_for_single_string_fields() -> None:
    properties = {"playlist": {"type": ["string", "null"]}, "tags": {"type": ["array", "null"]}}
    gold = {"playlist": ["Flow"], "artist": ["A", "B"], "tags": ["x"]}
    assert fit_gold(gold, properties) == {"playlist": "Flow", "artist": ["A", "B"], "tags": ["x"]}
    assert fit_gold(None, properties) is None


# --- over HTTP, the model scripted at the transport --------------------------------------------------------------


@pytest.fixture
async def http_client(clean_redis: SyncRedis) -> AsyncIterator[tuple[AsyncTestClient[Any], FakeModel]]:
    model = FakeModel().reply({"playlist": "Classical Relaxations", "music_item": "track"})
    async with app_client(make_settings(redis_url=REDIS_URL), model.handler) as client:
        yield client, model


async def test_http_eval_with_compare_reports_what_strict_grounding_changes(
    http_client: tuple[AsyncTestClient[Any], FakeModel], snips_10: Path
) -> None:
    client, model = http_client
    backend = HttpBackend(AsyncClient(http_client=client))
    await backend.register("snips", SchemaDefinition.model_validate_json(SNIPS_SCHEMA.read_text()))
    properties = await backend.properties("snips")
    cases = load_cases(snips_10, expected_path="slots")
    # Every answer says playlist "Classical Relaxations": only documents containing it keep it under strict.
    holding = [c for c in cases if "classical relaxations" in c.text.casefold()]
    right = [c for c in holding if fit_gold(c.expected, properties)["playlist"] == "Classical Relaxations"]  # type: ignore[index]

    # With grounding off every answer stands; a result none of whose values is in the text is `empty` otherwise.
    ungrounded = await run_eval(backend, "snips", cases, {"grounding": "off"}, concurrency=4)
    strict = await run_eval(backend, "snips", cases, {"grounding": "strict"}, concurrency=4)
    report, comparison = score_run(cases, strict, ["playlist"], properties, baseline=ungrounded)
    base_report, _ = score_run(cases, ungrounded, ["playlist"], properties)

    assert model.chat_calls == 20
    assert ungrounded.counts == {"ok": 10, "empty": 0, "failed": 0}
    assert strict.counts["ok"] >= len(holding)
    assert base_report.fields["playlist"].predicted == 10
    assert report.fields["playlist"].predicted == len(holding)
    assert report.fields["playlist"].correct == len(right) >= 1
    assert comparison is not None
    gold_playlists = base_report.fields["playlist"].gold
    expected_gain = len(right) / len(holding) - len(right) / 10
    assert comparison.fields["playlist"]["precision"].value == pytest.approx(expected_gain)
    assert comparison.fields["playlist"]["recall"].value == pytest.approx(0.0)
    assert report.fields["playlist"].recall.value == pytest.approx(len(right) / gold_playlists)


# --- the commands, --in-process against the fake server -----------------------------------------------------------


@pytest.fixture(scope="module")
def fake_server() -> Iterator[str]:
    with fake_openai(0) as url:
        yield url


def test_eval_and_export_commands_in_process(
    fake_server: str, snips_10: Path, clean_redis: SyncRedis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EXTRACTOR_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("EXTRACTOR_MODEL_BASE_URL", fake_server)
    monkeypatch.setenv("EXTRACTOR_MODEL_ENFORCEMENT", "json_schema")
    monkeypatch.setenv("EXTRACTOR_CACHE__KEEP_RESULTS", "100")
    runner = CliRunner()
    args = ["--schema", "snips", "--data", str(snips_10), "--in-process", "--expected-path", "slots"]
    args += ["--register-schema", str(SNIPS_SCHEMA), "--json", "--compare", "grounding=off", "--concurrency", "3"]

    result = runner.invoke(eval_command, args, catch_exceptions=False)

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # log lines go to stderr, which click 8.2+ mixes into `output`
    slots = json.loads(SNIPS_SCHEMA.read_text())["json_schema"]["properties"]
    gold_values = sum(len(json.loads(line)["expected"]["slots"]) for line in snips_10.read_text().splitlines())
    assert out["documents"] == 10
    assert out["fields"] == list(slots)
    assert out["run"]["counts"] == {"ok": 10, "empty": 0, "failed": 0}
    overall = out["report"]["overall"]
    assert overall["cells"] == 10 * len(slots)
    assert overall["gold"] == gold_values
    assert 0 <= overall["exact_match"]["low"] <= overall["exact_match"]["value"] <= overall["exact_match"]["high"]
    assert out["compare"]["config"].endswith('{"grounding": "off"}')
    assert set(out["compare"]["difference"]["overall"]) == {
        "exact_match",
        "precision",
        "recall",
        "f1",
        "invented_rate",
        "missed_rate",
    }

    exported = tmp_path / "train.jsonl"
    done = runner.invoke(export_command, ["--schema", "snips", "-o", str(exported), "--all"], catch_exceptions=False)

    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(lines) == 20  # ten documents, two configurations, every result kept with --all
    texts = [json.loads(line)["text"] for line in snips_10.read_text().splitlines()]
    first = lines[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert any(f"<<<\n{t}\n>>>" in first[1]["content"] for t in texts)
    assert set(json.loads(first[2]["content"])) == set(slots)


def test_eval_refuses_a_compare_key_it_cannot_apply(snips_10: Path) -> None:
    result = CliRunner().invoke(eval_command, ["--schema", "snips", "--data", str(snips_10), "--compare", "model=x"])
    assert result.exit_code == 2
    assert "model= works only with --in-process" in result.output


def test_a_stopped_eval_resumes_where_it_was(
    fake_server: str, snips_10: Path, clean_redis: SyncRedis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--resume FILE``: the outcomes FILE holds (two, and one line cut short by a stop) are not run again; the
    others are appended as they come; a second run finds every document done."""
    monkeypatch.setenv("EXTRACTOR_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("EXTRACTOR_MODEL_BASE_URL", fake_server)
    monkeypatch.setenv("EXTRACTOR_MODEL_ENFORCEMENT", "json_schema")
    ids = [json.loads(line)["id"] for line in snips_10.read_text().splitlines()]
    progress = tmp_path / "progress.jsonl"
    kept = [{"id": ids[0], "status": "failed", "data": None, "latency_ms": 5.0, "error": "from the first sitting"}]
    kept.append({**kept[0], "id": ids[3]})
    progress.write_text("".join(json.dumps(o) + "\n" for o in kept) + '{"id": "' + ids[5] + '", "sta')
    args = ["--schema", "snips", "--data", str(snips_10), "--in-process", "--expected-path", "slots", "--no-cache"]
    args += ["--register-schema", str(SNIPS_SCHEMA), "--json", "--resume", str(progress)]

    result = CliRunner().invoke(eval_command, args, catch_exceptions=False)

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["run"]["counts"] == {"ok": 8, "empty": 0, "failed": 2}  # the fake model answers every one it gets
    errors = {o["id"]: o["error"] for o in out["run"]["outcomes"]}
    assert errors[ids[0]] == errors[ids[3]] == "from the first sitting"
    lines = progress.read_text().splitlines()
    assert len(lines) == 2 + 1 + 8  # the cut line stays, alone on its line, and the other eight follow
    recorded = [json.loads(line)["id"] for line in lines[3:]]
    assert sorted(recorded) == sorted(i for n, i in enumerate(ids) if n not in (0, 3))

    again = CliRunner().invoke(eval_command, args, catch_exceptions=False)

    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["run"]["outcomes"] == out["run"]["outcomes"]
    assert len(progress.read_text().splitlines()) == 11  # nothing ran
