from __future__ import annotations

from typing import Any

import pytest

from extractor.extraction.empty import is_empty
from extractor.extraction.grounding import FieldGrounding, apply_strict, ground
from extractor.vocabulary import MatchKind

FOUND = FieldGrounding((0, 4), True, MatchKind.EXACT)
MISSING = FieldGrounding(None, False, None)
UNCHECKED = FieldGrounding(None, None, None)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        [],
        {"vendor": None, "items": []},
        {"vendor": "", "note": "   ", "items": [], "meta": {}},
        {"items": [{"name": None}, {"name": ""}]},
    ],
)
def test_no_value_at_all_is_empty_with_or_without_grounding(data: Any) -> None:
    assert is_empty(data, None) is True
    assert is_empty(data, {}) is True


def test_any_value_is_not_empty_when_grounding_did_not_run() -> None:
    assert is_empty({"vendor": "Globex", "total": None}, None) is False
    assert is_empty({"paid": False}, None) is False
    assert is_empty({"count": 0}, None) is False


def test_one_grounded_value_is_enough() -> None:
    data = {"vendor": "Acme", "total": 99.0}
    assert is_empty(data, {"/vendor": FOUND, "/total": MISSING}) is False


def test_nothing_grounded_is_empty() -> None:
    data = {"vendor": "Globex", "total": 99.0, "items": [{"name": "gear"}]}
    fields = {"/vendor": MISSING, "/total": MISSING, "/items/0/name": MISSING}
    assert is_empty(data, fields) is True


def test_booleans_alone_are_judged_by_the_all_null_rule_only() -> None:
    assert is_empty({"paid": True, "signed": False}, {"/paid": UNCHECKED, "/signed": UNCHECKED}) is False


def test_booleans_do_not_rescue_ungrounded_strings_and_numbers() -> None:
    data = {"paid": True, "vendor": "Globex"}
    assert is_empty(data, {"/paid": UNCHECKED, "/vendor": MISSING}) is True


def test_a_leaf_missing_from_fields_counts_as_not_found() -> None:
    assert is_empty({"vendor": "Globex"}, {}) is True


def test_blank_strings_do_not_count_as_groundable_values() -> None:
    data = {"vendor": "", "paid": True}
    assert is_empty(data, {"/paid": UNCHECKED}) is False


def test_with_real_grounding() -> None:
    receipt = {"vendor": "Acme Corp", "total": 12.5, "paid": True}
    assert is_empty(receipt, ground(receipt, "ACME Corp. receipt, total $12.50")) is False
    assert is_empty(receipt, ground(receipt, "The weather in Lisbon was mild all week.")) is True


def test_strict_mode_output_of_an_irrelevant_document_is_empty() -> None:
    data = {"vendor": "Globex", "total": 99.0}
    stripped, _ = apply_strict(data, ground(data, "Meeting notes: nothing about money."))
    assert is_empty(stripped, None) is True
