"""Issue 13's pipeline steps, each alone: blank strings, presence rules, the relevance decision, confidence from token
log-probabilities, ``min_confidence``, salvaging an invalid field and keeping the closed fields of a cut answer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from extractor.errors import InvalidSchemaError
from extractor.extraction.answer_spans import scan_answer
from extractor.extraction.blanks import null_blanks
from extractor.extraction.confidence import (
    agreement,
    apply_min_confidence,
    logprob_confidences,
    raw_leaves,
    score_fields,
)
from extractor.extraction.grounding import FieldGrounding, ground
from extractor.extraction.presence import PRESENCE_KEYWORD, presence_rule, presence_rule_problem, unmet_presence
from extractor.extraction.relevance import decide
from extractor.extraction.salvage import salvage_invalid, salvage_truncated
from extractor.extraction.truncation import keep_closed_fields
from extractor.local.model import LocalModelServer
from extractor.registry.checks import check_definition
from extractor.registry.compiled import compile_schema
from extractor.registry.schema import SchemaDefinition, SchemaVersion
from extractor.settings import RegistrySettings
from extractor.vocabulary import EnforcementLevel, MatchKind

RECEIPT: dict[str, Any] = {
    "type": "object",
    PRESENCE_KEYWORD: ["total", ["merchant", "date"]],
    "properties": {
        "merchant": {"type": ["string", "null"]},
        "date": {"type": ["string", "null"]},
        "total": {"type": ["number", "null"]},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
    },
}


def compiled(schema: dict[str, Any]) -> Any:
    version = SchemaVersion(name="t", version=1, hash="h", json_schema=schema, created_at="2026-01-01T00:00:00Z")
    return compile_schema(version)


# --- blank strings ------------------------------------------------------------------------------------------------


def test_blank_strings_become_null_and_leave_lists() -> None:
    data, log = null_blanks({"total": "", "merchant": "  ", "tags": ["a", " ", ""], "date": "2024", "n": 0})
    assert data == {"total": None, "merchant": None, "tags": ["a"], "date": "2024", "n": 0}
    assert log == (
        "/total: blank string '' is not a value, set to null",
        "/merchant: blank string '  ' is not a value, set to null",
        "/tags/1: blank string ' ' is not a value, removed from the list",
        "/tags/2: blank string '' is not a value, removed from the list",
    )


# --- presence rules -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ("total", f"/{PRESENCE_KEYWORD}"),
        ([], f"/{PRESENCE_KEYWORD}"),
        ([["merchant", 3]], f"/{PRESENCE_KEYWORD}/0"),
        (["total", ["merchant", "nope"]], f"/{PRESENCE_KEYWORD}/1"),
    ],
)
def test_a_bad_presence_rule_is_refused_at_registration(rule: Any, where: str) -> None:
    schema = {**RECEIPT, PRESENCE_KEYWORD: rule}
    assert presence_rule_problem(schema) is not None
    with pytest.raises(InvalidSchemaError) as caught:
        check_definition(SchemaDefinition(json_schema=schema), RegistrySettings())
    assert caught.value.extra["pointer"] == where


def test_presence_needs_one_alternative_grounded() -> None:
    rule = presence_rule(RECEIPT)
    assert rule == (("total",), ("merchant", "date"))
    text = "Paris, tomorrow: sunny. Shop Bob 2024-03-05"
    only_place = {"merchant": "Paris", "date": None, "total": None}
    assert unmet_presence(rule, only_place, ground(only_place, text))
    place_and_date = {"merchant": "Shop Bob", "date": "2024-03-05", "total": None}
    assert not unmet_presence(rule, place_and_date, ground(place_and_date, text))
    invented_total = {"merchant": None, "date": None, "total": 12.5}
    assert unmet_presence(rule, invented_total, ground(invented_total, text))  # in the data, not in the text
    assert not unmet_presence(rule, invented_total, None)  # grounding off: a value is enough
    assert not unmet_presence((), only_place, None)  # no rule: as before


def test_a_single_character_found_in_the_text_is_no_evidence_of_presence() -> None:
    rule = presence_rule(RECEIPT)
    text = "What will the weather be in Kuwait 1 day from now? Lunch at Bob's: 12.50"
    lone_digit = {"merchant": "Kuwait", "date": None, "total": 1}
    fields = ground(lone_digit, text)
    assert fields["/total"].grounded is True  # found: grounding itself is unchanged
    assert unmet_presence(rule, lone_digit, fields)  # but a "1" is in almost any text
    real_total = {"merchant": None, "date": None, "total": 12.5}
    assert not unmet_presence(rule, real_total, ground(real_total, text))
    no_span = {"/total": FieldGrounding(None, True, MatchKind.NORMALIZED)}
    assert not unmet_presence(rule, lone_digit, no_span)  # found without a span: counts, as before


def test_the_keyword_is_not_sent_to_the_model_and_strings_get_a_length_limit() -> None:
    schema = compiled(RECEIPT)
    assert PRESENCE_KEYWORD not in schema.wire_schema
    grammar = schema.wire_for(EnforcementLevel.JSON_OBJECT_SCHEMA)
    assert grammar["properties"]["merchant"]["maxLength"] == 500
    assert grammar["properties"]["tags"]["items"]["maxLength"] == 500
    assert "maxLength" not in schema.wire_for(EnforcementLevel.JSON_SCHEMA)["properties"]["merchant"]


def test_decide_gives_the_reason_and_logs_it() -> None:
    text = "What will the weather be in Paris tomorrow?"
    data = {"merchant": "Paris", "date": "tomorrow", "total": None, "tags": None}
    repairs: list[str] = []
    decision = decide(RECEIPT, data, ground(data, text), repairs)
    assert decision.reason is None  # merchant and date are both in the text: the rule is met
    data = {"merchant": "Paris", "date": None, "total": None, "tags": None}
    decision = decide(RECEIPT, data, ground(data, text), repairs)
    assert decision.reason == "no_presence"
    assert repairs == ["empty: an answer of this schema needs total, or merchant and date found in the text"]
    assert decide(RECEIPT, {"merchant": None}, {}, []).reason == "no_values"


def test_decide_applies_min_confidence_first() -> None:
    data = {"merchant": "Shop", "date": "2024", "total": 3.5, "tags": ["x", "y"]}
    fields = {
        "/merchant": FieldGrounding((0, 4), True, MatchKind.EXACT, 0.9),
        "/date": FieldGrounding((5, 9), True, MatchKind.EXACT, 0.9),
        "/total": FieldGrounding((10, 13), True, MatchKind.EXACT, 0.2),
        "/tags/0": FieldGrounding((14, 15), True, MatchKind.EXACT, 0.1),
        "/tags/1": FieldGrounding((16, 17), True, MatchKind.EXACT, 0.8),
    }
    repairs: list[str] = []
    decision = decide(RECEIPT, data, fields, repairs, min_confidence=0.5)
    assert decision.data == {"merchant": "Shop", "date": "2024", "total": None, "tags": ["y"]}
    assert decision.fields is not None
    assert decision.fields["/tags/0"].span == (16, 17)  # re-keyed after the removal
    assert repairs == [
        "/total: confidence 0.20 below min_confidence 0.5, set to null",
        "/tags/0: confidence 0.10 below min_confidence 0.5, removed from the list",
    ]
    assert decision.reason is None


# --- confidence ---------------------------------------------------------------------------------------------------


def test_confidence_from_token_logprobs_of_the_value_only() -> None:
    tokens = [('{"', -0.1), ("merchant", -0.1), ('":', -0.1), (' "AC', -0.5), ("ME", -1.5), ('",', -3.0)]
    tokens += [(' "total', -0.1), ('":', -0.1), (" 3", -0.2), (".7", -0.4), ("}", -5.0)]
    content = "".join(t for t, _ in tokens)
    confidences = logprob_confidences(content, tokens)
    assert confidences["/merchant"] == pytest.approx(math.exp((-0.5 - 1.5) / 2))
    assert confidences["/total"] == pytest.approx(math.exp((-0.2 - 0.4) / 2))
    assert logprob_confidences(content, [("other", -1.0)]) == {}  # tokens that do not spell the answer


def test_score_fields_combines_logprobs_grounding_and_agreement() -> None:
    text = "ACME market, total 3.70"
    data = {"merchant": "ACME Market", "total": 3.7, "date": "2024-01-01"}
    fields = ground(data, text)
    raw = raw_leaves({"merchant": "ACME Market", "total": "3.70"}, {"/merchant": 0.8, "/total": 0.9})
    scored = score_fields(data, fields, raw)
    assert scored["/merchant"].confidence == pytest.approx(0.8 * 0.9)  # found after normalising case
    # "3.70" written, 3.7 kept: the same value, its log-probability applies; found as "3.70", a normalised match
    assert scored["/total"].confidence == pytest.approx(0.9 * 0.9)
    assert scored["/date"].confidence == pytest.approx(0.2)  # no log-probabilities: the prior of "not found"
    assert scored["/merchant"].span == fields["/merchant"].span
    agreeing = score_fields(data, fields, raw, agreement(data, [{"merchant": "ACME Market", "total": 4.0}]))
    assert agreeing["/merchant"].confidence == pytest.approx(0.8 * 0.9)
    assert agreeing["/total"].confidence == pytest.approx(0.9 * 0.9 * 0.5)


def test_min_confidence_nulls_only_values_below() -> None:
    fields = {"/a": FieldGrounding(None, True, None, 0.4), "/b": FieldGrounding(None, True, None, 0.6)}
    data, log = apply_min_confidence({"a": "x", "b": "y", "c": None}, fields, 0.5)
    assert data == {"a": None, "b": "y", "c": None}
    assert log == ("/a: confidence 0.40 below min_confidence 0.5, set to null",)


# --- salvage and truncation ---------------------------------------------------------------------------------------


def test_an_object_in_a_list_of_strings_is_nulled_not_a_failure() -> None:
    schema = compiled(RECEIPT)
    salvaged = salvage_invalid(schema, {"merchant": "Shop", "tags": [{"name": "x"}], "total": 3}, 3)
    assert salvaged is not None
    assert salvaged.data == {"merchant": "Shop", "tags": None, "total": 3}
    assert salvaged.repairs[0].startswith("/tags: still invalid after 3 attempt(s) (")
    assert salvage_invalid(schema, "not an object", 3) is None


def test_answer_spans_name_the_value_that_was_cut() -> None:
    assert scan_answer('{"a": "x", "b": [1, 2').open_field() == "b"
    assert scan_answer('{"a": "x", "b": 12').open_field() == "b"  # a number at the end may be cut short
    assert scan_answer('{"a": "x", "b').open_field() is None  # between fields: nothing was cut
    assert scan_answer('{"a": "x"}').complete


def test_a_cut_answer_keeps_its_closed_fields() -> None:
    names = ["merchant", "total", "date"]
    kept = keep_closed_fields('{"merchant": "Shop", "total": 3.5, "date": "the the the the', names)
    assert kept is not None
    assert kept.data == {"merchant": "Shop", "total": 3.5, "date": None}
    kept = keep_closed_fields('{"merchant": "Shop", "total": 12', names)
    assert kept is not None
    assert kept.data == {"merchant": "Shop", "total": None, "date": None}
    assert kept.cut == "total"
    assert kept.repairs == (
        "/total: cut off at the token limit, set to null",
        "not written before the token limit, set to null: date",
    )
    assert keep_closed_fields("no json at all", ["a"]) is None
    first = keep_closed_fields('{"merchant": "ACME', names)  # cut in its first field: nothing is kept
    assert first is not None
    assert first.data == {"merchant": None, "total": None, "date": None}
    assert first.cut == "merchant"
    assert first.repairs == (
        "/merchant: cut off at the token limit, set to null",
        "not written before the token limit, set to null: total, date",
    )


def test_salvage_truncated_coerces_and_validates() -> None:
    schema = compiled(RECEIPT)
    salvaged = salvage_truncated(schema, '{"merchant": "", "total": "3.50", "tags": ["a", "b", "c c c c')
    assert salvaged is not None
    assert salvaged.data == {"merchant": None, "total": 3.5, "tags": None, "date": None}
    assert any("cut off" in line for line in salvaged.repairs)
    assert any("blank string" in line for line in salvaged.repairs)


def test_the_bundled_model_server_keeps_logits_only_when_logprobs_are_on() -> None:
    def flag(server: LocalModelServer) -> str:
        command = server.command(Path("model.gguf"), 8080)
        return command[command.index("--logits_all") + 1]

    assert flag(LocalModelServer()) == "false"
    assert flag(LocalModelServer(logprobs=True)) == "true"
