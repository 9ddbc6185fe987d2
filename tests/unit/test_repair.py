from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extractor.extraction.repair import Repaired, RepairError, parse_json


def _has(result: Repaired, fragment: str) -> bool:
    return any(fragment in line for line in result.repairs)


# --- valid JSON passes through untouched ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": [true, null, 2.5], "c": "x, }\\" \'y\'"}',
        "[]",
        '  {"nested": {"deep": [1, {"k": "v"}]}}\n',
        '{"dup": 1, "dup": 2}',
    ],
)
def test_valid_json_is_exactly_json_loads(text: str) -> None:
    result = parse_json(text)
    assert result.value == json.loads(text)
    assert result.repairs == ()


@pytest.mark.parametrize(("text", "expected"), [("42", 42), ('"hello"', "hello"), ("null", None)])
def test_top_level_scalar_is_returned_as_is(text: str, expected: Any) -> None:
    assert parse_json(text) == Repaired(expected, ())


# Infinity is excluded like NaN: json.dumps writes it, but it is not JSON and parse_json refuses it (tested below).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)
containers = st.one_of(st.lists(json_values, max_size=5), st.dictionaries(st.text(), json_values, max_size=5))


@given(containers)
def test_any_dumped_container_round_trips_without_repairs(value: Any) -> None:
    assert parse_json(json.dumps(value)) == Repaired(value, ())


@given(containers)
def test_any_indented_container_round_trips_without_repairs(value: Any) -> None:
    assert parse_json(json.dumps(value, indent=2, ensure_ascii=False)) == Repaired(value, ())


prose = st.text(alphabet=st.sampled_from(list("abc .:!?\n")), max_size=12)


@given(containers, prose, prose)
def test_any_container_in_a_fence_with_prose_is_recovered_exactly(value: Any, before: str, after: str) -> None:
    result = parse_json(f"{before}```json\n{json.dumps(value)}\n```{after}")
    assert result.value == value
    assert _has(result, "removed markdown code fence")


@given(containers, st.data())
def test_any_truncation_is_closed_or_refused_never_crashes(value: Any, data: st.DataObject) -> None:
    text = json.dumps(value)
    cut = text[: data.draw(st.integers(1, len(text)))]
    try:
        result = parse_json(cut)
    except RepairError:
        return
    assert isinstance(result.value, type(value))
    assert (result.repairs == ()) == (cut == text)


@given(st.text(alphabet=st.sampled_from(list("{}[]:,\"' \\aTN1.-\n`u")), max_size=40))
def test_any_garbage_raises_only_repair_error(text: str) -> None:
    try:
        result = parse_json(text)
    except RepairError:
        return
    assert result.value == json.loads(json.dumps(result.value))


# --- one test per repair kind ---------------------------------------------------------------------------------------


def test_byte_order_mark_is_removed() -> None:
    result = parse_json('\ufeff{"a": 1}')
    assert result == Repaired({"a": 1}, ("removed byte order mark",))


def test_code_fence_is_removed() -> None:
    result = parse_json('```json\n{"total": 12.5}\n```')
    assert result.value == {"total": 12.5}
    assert result.repairs == ("removed markdown code fence at offset 0",)


def test_code_fence_without_language_or_closing_fence() -> None:
    result = parse_json('```\n{"a": [1, 2]}')
    assert result.value == {"a": [1, 2]}
    assert _has(result, "removed markdown code fence")


def test_prose_around_a_fenced_block_is_removed_and_logged() -> None:
    result = parse_json('Here you go:\n```json\n{"a": 1}\n```\nHope this helps!')
    assert result.value == {"a": 1}
    assert _has(result, "removed markdown code fence at offset 13")
    assert _has(result, "removed text before the JSON value (offsets 0-13)")
    assert _has(result, "removed text after the JSON value")


def test_prose_before_and_after_the_object_is_removed() -> None:
    text = 'Sure! The data is {"a": "x, } ]", "b": 2}. Let me know.'
    result = parse_json(text)
    assert result.value == {"a": "x, } ]", "b": 2}
    assert result.repairs == (
        "removed text before the JSON value (offsets 0-18)",
        f"removed text after the JSON value (offsets {text.index('.')}-{len(text)})",
    )


def test_prose_around_a_top_level_array_keeps_the_whole_array() -> None:
    result = parse_json('Results: [{"a": 1}, {"a": 2}] done')
    assert result.value == [{"a": 1}, {"a": 2}]


def test_prose_around_an_array_of_literals() -> None:
    assert parse_json("Flags: [true, null] ok").value == [True, None]


def test_bracketed_prose_before_the_object_is_not_taken_for_json() -> None:
    assert parse_json('Output [see below]: {"a": 1}').value == {"a": 1}


def test_trailing_commas_are_removed_with_their_offsets() -> None:
    text = '{"a": [1, 2, ], "b": "x,]",\n}'
    result = parse_json(text)
    assert result.value == {"a": [1, 2], "b": "x,]"}
    assert result.repairs == (
        f"removed trailing comma at offset {text.index(', ]')}",
        f"removed trailing comma at offset {text.rindex(',')}",
    )


def test_truncated_brackets_are_closed() -> None:
    text = '{"a": [1, 2, {"b": 3}'
    result = parse_json(text)
    assert result.value == {"a": [1, 2, {"b": 3}]}
    assert result.repairs == (f"appended ']}}' at offset {len(text)} to close truncated output",)


def test_truncated_string_is_closed() -> None:
    result = parse_json('{"a": 1, "b": "hello wor')
    assert result.value == {"a": 1, "b": "hello wor"}
    assert result.repairs == (
        "closed unterminated string at offset 14",
        "appended '}' at offset 24 to close truncated output",
    )


def test_truncated_after_a_comma_closes_and_drops_the_comma() -> None:
    result = parse_json("[1, 2,\n  ")
    assert result.value == [1, 2]
    assert _has(result, "removed trailing comma at offset 5")
    assert _has(result, "appended ']' at offset 9")


def test_single_quoted_keys_and_strings_become_double_quoted() -> None:
    result = parse_json("{'name': 'Ann', 'note': 'it\\'s fine', \"ok\": \"don't\"}")
    assert result.value == {"name": "Ann", "note": "it's fine", "ok": "don't"}
    assert result.repairs == tuple(
        f"replaced single quotes with double quotes at offset {offset}" for offset in (1, 9, 16, 24)
    )


def test_python_literals_become_json_literals_outside_strings() -> None:
    result = parse_json('{"a": True, "b": False, "c": None, "d": "True None"}')
    assert result.value == {"a": True, "b": False, "c": None, "d": "True None"}
    assert result.repairs == (
        "replaced Python literal True with true at offset 6",
        "replaced Python literal False with false at offset 17",
        "replaced Python literal None with null at offset 29",
    )


def test_several_repairs_combine() -> None:
    text = "\ufeff```json\n{'items': [{'qty': 2, 'ok': True,}, {'qty': 3"
    result = parse_json(text)
    assert result.value == {"items": [{"qty": 2, "ok": True}, {"qty": 3}]}
    for kind in ("byte order mark", "code fence", "single quotes", "Python literal", "trailing comma", "appended"):
        assert _has(result, kind), kind


# --- refusals ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1} {"b": 2}', "second JSON value at offset 9"),
        ('```json\n{"a": 1}\n```\nor\n```json\n[{"b": 2}]\n```', "second JSON value"),
        ('{"a": 1, "b":', 'key "b" before offset 12 has no value'),
        ('{"a": 1, "b"', 'key "b" at offset 9 has no colon or value'),
        ('{"a": {"b": 1, "c', "has no colon or value"),
        ("{'a': 'it's'}", "ambiguous single-quoted string at offset 6"),
        ("{'a': 'say \"hi\"'}", "ambiguous single-quoted string at offset 6"),
        ("no json here at all", "no JSON object or array found"),
        ("", "no JSON object or array found"),
        ('{"a": [1, 2}', "unexpected '}' at offset 11 (expected ']')"),
        ('{"a": 1 "b": 2}', "at offset 8"),
        ('{"a": tru', "at offset 6"),
        ('{"a": "line\\', "cut inside an escape sequence"),
        ('{"a": "\\u00', "cut inside an escape sequence"),
        ('{"a": NaN}', "NaN at offset 6 is not valid JSON"),
        ('```json\n{"a": -Infinity}\n```', "-Infinity at offset 14"),
    ],
)
def test_refusals_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(RepairError, match=re.escape(message)):
        parse_json(text)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_from_json_dumps_are_refused(value: float) -> None:
    with pytest.raises(RepairError, match="at offset 10 is not valid JSON"):
        parse_json(json.dumps({"total": value}))


def test_repair_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="second JSON value"):
        parse_json("[1][2]")


def test_raw_control_characters_inside_strings_are_escaped() -> None:
    repaired = parse_json('{"note": "line one\nline\ttwo", "n": 1}')
    assert repaired.value == {"note": "line one\nline\ttwo", "n": 1}
    assert repaired.repairs == ("escaped control characters inside the string at offset 9",)
