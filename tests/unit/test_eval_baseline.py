"""``extractor eval --rescore B.json --baseline A.json``: two saved runs (two versions of the service, measured apart)
compared offline, with the empty-answer rates and calibration of issue 13. No service is called."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from extractor.cli.eval import eval_command

CASES = [
    {"id": "r1", "text": "ACME Market TOTAL 3.70", "expected": {"merchant": "ACME Market", "total": 3.7}},
    {"id": "u1", "text": "play some jazz", "expected": {}},
    {"id": "u2", "text": "weather in Paris", "expected": {}},
]


def saved(path: Path, outcomes: list[dict[str, Any]]) -> Path:
    counts = {s: sum(o["status"] == s for o in outcomes) for s in ("ok", "empty", "failed")}
    document = {
        "config": f"service {path.stem}",
        "fields": ["merchant", "total"],
        "properties": {"merchant": {"type": ["string", "null"]}, "total": {"type": ["number", "null"]}},
        "run": {"counts": counts, "seconds": 1.0, "outcomes": outcomes},
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def outcome(doc: str, status: str, data: dict[str, Any] | None = None, **confidence: float) -> dict[str, Any]:
    pointers = {f"/{name}": value for name, value in confidence.items()}
    return {"id": doc, "status": status, "data": data, "latency_ms": 1.0, "error": None, "confidence": pointers}


def test_two_saved_runs_are_compared_offline(tmp_path: Path) -> None:
    data = tmp_path / "mix.jsonl"
    data.write_text("\n".join(json.dumps(case) for case in CASES) + "\n", encoding="utf-8")
    before = saved(
        tmp_path / "before.json",
        [
            outcome("r1", "ok", {"merchant": "ACME Market", "total": None}),
            outcome("u1", "ok", {"merchant": "jazz", "total": None}),
            outcome("u2", "ok", {"merchant": "Paris", "total": None}),
        ],
    )
    after = saved(
        tmp_path / "after.json",
        [
            outcome("r1", "ok", {"merchant": "ACME Market", "total": 3.7}, merchant=0.9, total=0.8),
            outcome("u1", "empty"),
            outcome("u2", "ok", {"merchant": "Paris", "total": None}, merchant=0.3),
        ],
    )
    args = ["--schema", "receipt", "--data", str(data), "--rescore", str(after), "--baseline", str(before), "--json"]
    result = CliRunner().invoke(eval_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["config"].startswith("baseline ")
    assert out["compare"]["config"].startswith("saved ")
    assert out["empty"]["unrelated_empty"]["value"] == 0.0
    assert out["compare"]["empty"]["unrelated_empty"]["value"] == 0.5
    assert out["compare"]["empty_difference"]["false_positive"]["value"] == -0.5
    assert out["calibration"]["cells"] == 0
    assert out["compare"]["calibration"]["cells"] == 3
    assert out["compare"]["difference"]["overall"]["recall"]["value"] == 0.5  # total found: 1/2 -> 2/2
    text = CliRunner().invoke(eval_command, args[:-1], catch_exceptions=False).output
    assert "unrelated answered empty" in text
    assert "expected calibration error, B - A: - (a run gave no confidences)" in text


def test_a_saved_run_of_other_documents_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "mix.jsonl"
    data.write_text(json.dumps(CASES[0]) + "\n", encoding="utf-8")
    other = saved(tmp_path / "other.json", [outcome("u1", "empty")])
    result = CliRunner().invoke(eval_command, ["--schema", "receipt", "--data", str(data), "--rescore", str(other)])
    assert result.exit_code == 2
    assert "did not score every document of --data" in result.output


def test_a_saved_run_is_scored_on_a_subset_of_its_documents(tmp_path: Path) -> None:
    """A run of a whole set (the Kleister-NDA split) scored on part of it (the contracts that fit in one prompt)."""
    data = tmp_path / "subset.jsonl"
    data.write_text(json.dumps(CASES[2]) + "\n" + json.dumps(CASES[0]) + "\n", encoding="utf-8")
    whole = saved(
        tmp_path / "whole.json",
        [
            outcome("r1", "ok", {"merchant": "ACME Market", "total": 3.7}),
            outcome("u1", "ok", {"merchant": "jazz", "total": None}),
            outcome("u2", "empty"),
        ],
    )
    args = ["--schema", "receipt", "--data", str(data), "--rescore", str(whole), "--json"]
    result = CliRunner().invoke(eval_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [o["id"] for o in out["run"]["outcomes"]] == ["u2", "r1"]  # the --data documents, in their order
    assert out["run"]["counts"] == {"ok": 1, "empty": 1, "failed": 0}
    assert out["empty"]["unrelated_empty"]["value"] == 1.0  # u1, answered ok, is not among them
    assert out["report"]["overall"]["recall"]["value"] == 1.0


def test_a_resume_file_is_scored_with_the_bundled_schema_fields(tmp_path: Path) -> None:
    """``--resume`` writes an outcome per line as it goes: a run of hours can be scored before it ends."""
    data = tmp_path / "mix.jsonl"
    data.write_text("\n".join(json.dumps(case) for case in CASES[:2]) + "\n", encoding="utf-8")
    progress = tmp_path / "progress.jsonl"
    lines = [
        json.dumps(outcome("r1", "ok", {"merchant": "ACME Market", "total": 3.7})),
        json.dumps(outcome("u1", "ok", {"merchant": "jazz", "total": None})),
        json.dumps(outcome("u1", "empty")),  # run again after a stop: the last outcome counts
        '{"id": "u2", "sta',  # cut short by a stop
    ]
    progress.write_text("\n".join(lines), encoding="utf-8")
    args = ["--schema", "receipt", "--data", str(data), "--rescore", str(progress), "--json"]
    result = CliRunner().invoke(eval_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["config"] == "saved " + str(progress) + " (--resume file progress.jsonl)"
    assert "items" in out["fields"]  # the bundled receipt schema's fields: the file does not name them
    assert out["run"]["counts"] == {"ok": 1, "empty": 1, "failed": 0}
    assert out["report"]["fields"]["total"]["recall"]["value"] == 1.0
    unknown = CliRunner().invoke(eval_command, ["--schema", "mine", *args[2:]])
    assert unknown.exit_code == 2
    assert "not a bundled schema: pass --register-schema FILE" in unknown.output
    named = CliRunner().invoke(eval_command, ["--schema", "mine", "--fields", "total", *args[2:]])
    assert named.exit_code == 0, named.output
    assert json.loads(named.output)["fields"] == ["total"]


def test_a_resume_file_of_one_line_is_a_resume_file(tmp_path: Path) -> None:
    data = tmp_path / "mix.jsonl"
    data.write_text(json.dumps(CASES[1]) + "\n", encoding="utf-8")
    progress = tmp_path / "progress.jsonl"
    progress.write_text(json.dumps(outcome("u1", "empty")) + "\n", encoding="utf-8")  # one line: a JSON document too
    args = ["--schema", "receipt", "--data", str(data), "--rescore", str(progress), "--json"]
    result = CliRunner().invoke(eval_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["run"]["counts"] == {"ok": 0, "empty": 1, "failed": 0}


def test_a_file_that_is_no_saved_run_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "mix.jsonl"
    data.write_text(json.dumps(CASES[0]) + "\n", encoding="utf-8")
    notes = tmp_path / "notes.txt"
    notes.write_text("first line\nsecond line\n", encoding="utf-8")
    result = CliRunner().invoke(eval_command, ["--schema", "receipt", "--data", str(data), "--rescore", str(notes)])
    assert result.exit_code == 2
    assert "is neither the --json output of extractor eval nor a --resume file" in result.output
