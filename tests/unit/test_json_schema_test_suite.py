"""The JSON-Schema-Test-Suite draft 2020-12 cases (tests/fixtures) through the registry's validator.

Required cases must all pass; optional ones (mostly ``format`` assertions, which Draft 2020-12 leaves off by
default) are reported. Cases with a remote ``$ref`` are counted apart: the registry refuses remote references.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extractor.registry.checks import remote_refs
from extractor.registry.validator import validator_for

DATA = Path(__file__).parents[1] / "fixtures" / "json_schema_test_suite" / "eval.jsonl"


def _run() -> dict[str, list[str]]:
    outcome: dict[str, list[str]] = {"passed": [], "failed": [], "optional_failed": [], "remote": []}
    for line in DATA.read_text().split("\n"):
        if not line.strip():
            continue
        case = json.loads(line)
        if remote_refs(case["schema"]):
            outcome["remote"].append(case["id"])
            continue
        valid: bool | str
        try:
            valid = validator_for(case["schema"]).is_valid(json.loads(case["text"]))
        except Exception as exc:
            valid = f"error: {exc}"
        if valid == case["expected"]["valid"]:
            outcome["passed"].append(case["id"])
        else:
            outcome["optional_failed" if case["optional"] else "failed"].append(case["id"])
    return outcome


def test_required_cases_all_pass(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = _run()
    total = sum(len(v) for k, v in outcome.items() if k != "remote")
    with capsys.disabled():
        print(
            f"\nJSON-Schema-Test-Suite 2020-12: {len(outcome['passed'])}/{total} passed "
            f"({100 * len(outcome['passed']) / total:.1f}%); required failures {len(outcome['failed'])}, "
            f"optional failures {len(outcome['optional_failed'])}; {len(outcome['remote'])} remote-$ref cases refused"
        )
    assert outcome["failed"] == []
    assert len(outcome["passed"]) > 1500
