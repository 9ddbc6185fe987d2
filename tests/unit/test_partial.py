"""The object so far of an answer cut anywhere: values only once they cannot change (strings excepted), and each
top-level field's state."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extractor.extraction.partial import PartialReader, partial_object
from extractor.pointer import format_pointer
from extractor.vocabulary import FieldState

P, INC, C = FieldState.PENDING, FieldState.INCOMPLETE, FieldState.COMPLETE
_ORDER = {P: 0, INC: 1, C: 2}

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
)
objects = st.dictionaries(st.text(max_size=8), values, max_size=6)
styles = st.sampled_from([{}, {"ensure_ascii": False}, {"indent": 2}, {"separators": (",", ":")}])


def is_prefix(partial: Any, final: Any) -> bool:
    """``partial`` is what ``final`` looks like part-written: strings may be cut short, nothing else may differ."""
    if isinstance(final, dict):
        return isinstance(partial, dict) and all(k in final and is_prefix(v, final[k]) for k, v in partial.items())
    if isinstance(final, list):
        return (
            isinstance(partial, list)
            and len(partial) <= len(final)
            and all(is_prefix(p, f) for p, f in zip(partial, final, strict=False))
        )
    if isinstance(final, str):
        return isinstance(partial, str) and final.startswith(partial)
    return type(partial) is type(final) and partial == final


def states(text: str, *properties: str) -> dict[str, FieldState]:
    snapshot = partial_object(text, properties)
    assert snapshot is not None
    return snapshot.fields


def data(text: str) -> dict[str, Any]:
    snapshot = partial_object(text)
    assert snapshot is not None
    return snapshot.data


@given(objects, styles)
def test_every_prefix_shows_only_what_the_whole_answer_says(obj: dict[str, Any], style: dict[str, Any]) -> None:
    text = json.dumps(obj, **style)
    keys = {format_pointer([key]): key for key in obj}
    reader = PartialReader(["never-written"])
    before: dict[str, FieldState] = {}
    for end in range(1, len(text) + 1):
        reader.feed(text[end - 1])
        snapshot = reader.snapshot()
        assert snapshot is not None
        assert is_prefix(snapshot.data, obj), text[:end]
        for pointer, state in snapshot.fields.items():
            if state == C:
                assert snapshot.data[keys[pointer]] == obj[keys[pointer]], text[:end]
            assert _ORDER[state] >= _ORDER[before.get(pointer, P)], f"{pointer} went back at {text[:end]!r}"
        before = snapshot.fields
        complete = [pointer for pointer, state in snapshot.fields.items() if state == C]
        assert complete == list(keys)[: len(complete)], text[:end]  # in the order written
    final = reader.snapshot()
    assert final is not None
    assert final.data == obj
    assert final.fields.pop("/never-written") == P
    assert set(final.fields.values()) <= {C}


@given(objects, st.lists(st.integers(min_value=1, max_value=7), min_size=1))
def test_pieces_of_any_size_give_the_same_object(obj: dict[str, Any], sizes: list[int]) -> None:
    text = json.dumps(obj, indent=1)
    reader, start, index = PartialReader(), 0, 0
    while start < len(text):
        size = sizes[index % len(sizes)]
        reader.feed(text[start : start + size])
        start, index = start + size, index + 1
        assert reader.snapshot() == partial_object(text[:start])


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 12',
        '{"a": 12.',
        '{"a": 12.5',
        '{"a": 1e',
        '{"a": 1e-',
        '{"a": 1e-5',
        '{"a": -',
        '{"a": tr',
        '{"a": true',
        '{"a": fals',
        '{"a": nul',
        '{"a": null',
    ],
)
def test_a_scalar_cut_mid_way_is_not_shown(text: str) -> None:
    assert data(text) == {}
    assert states(text, "a") == {"/a": INC}


@pytest.mark.parametrize(
    ("text", "value"),
    [('{"a": 12 ', 12), ('{"a": 12.5\n', 12.5), ('{"a": 1e-5 ', 1e-5), ('{"a": true ', True), ('{"a": null\t', None)],
)
def test_a_closed_scalar_is_shown_before_its_comma(text: str, value: Any) -> None:
    assert data(text) == {"a": value}
    assert states(text) == {"/a": INC}  # complete only once followed by `,` or `}`


def test_a_string_is_shown_as_far_as_it_goes_and_flagged_incomplete() -> None:
    assert data('{"a": "ACME Mar') == {"a": "ACME Mar"}
    assert states('{"a": "ACME Mar', "a", "b") == {"/a": INC, "/b": P}
    assert states('{"a": "ACME Market"', "a") == {"/a": INC}
    assert states('{"a": "ACME Market",', "a") == {"/a": C}
    assert states('{"a": "ACME Market"}', "a") == {"/a": C}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": "say \\"hi', 'say "hi'),
        ('{"a": "say \\"hi\\", then, go', 'say "hi", then, go'),
        ('{"a": "back\\\\', "back\\"),
        ('{"a": "cut \\', "cut "),
        ('{"a": "caf\\u00', "caf"),
        ('{"a": "caf\\u00e9', "café"),
        ('{"a": "smile \\ud83d', "smile "),
        ('{"a": "smile \\ud83d\\ude0', "smile "),
        ('{"a": "smile \\ud83d\\ude00', "smile \U0001f600"),
        ('{"a": "braces } and ] inside', "braces } and ] inside"),
    ],
)
def test_escapes_cut_anywhere(text: str, value: str) -> None:
    assert data(text) == {"a": value}
    assert states(text) == {"/a": INC}


def test_commas_and_braces_inside_strings_and_nested_values_complete_nothing() -> None:
    assert states('{"a": "x, y}', "a") == {"/a": INC}
    assert states('{"a": {"b": 1, "c": 2}', "a") == {"/a": INC}
    assert states('{"a": [1, 2, 3]', "a") == {"/a": INC}
    assert states('{"a": {"b": 1, "c": 2}, "d": [', "a", "d") == {"/a": C, "/d": INC}


def test_nested_scalars_follow_the_same_rule() -> None:
    assert data('{"items": [{"name": "Bread", "price": 2.') == {"items": [{"name": "Bread"}]}
    assert data('{"items": [{"name": "Bread", "price": 2.5}, {"name": "Mi') == {
        "items": [{"name": "Bread", "price": 2.5}, {"name": "Mi"}]
    }
    assert data('{"m": [1, 2, 3') == {"m": [1, 2]}


def test_a_key_written_without_its_value_is_incomplete() -> None:
    assert states('{"a": 1, "b"', "a", "b", "c") == {"/a": C, "/b": INC, "/c": P}
    assert states('{"a": 1, "b": ', "a", "b") == {"/a": C, "/b": INC}
    assert states('{"a": 1, "b', "a", "b") == {"/a": C, "/b": P}  # the key itself is not written yet


def test_keys_are_json_pointers_and_escaped_keys_are_decoded() -> None:
    assert states('{"a/b": 1, "t~x": 2, "q\\"k": "v', "a/b") == {"/a~1b": C, "/t~0x": C, '/q"k': INC}


def test_text_around_the_object_is_ignored() -> None:
    assert partial_object("Here is the JSON:\n```json\n") is None
    assert data('Here:\n```json\n{"a": 1}\n```\nand {"b": 2}') == {"a": 1}
    assert states('```json\n{"a": 1}\n```', "a", "b") == {"/a": C, "/b": P}


def test_the_reader_reports_only_changes() -> None:
    reader = PartialReader(["a"])
    assert reader.feed("Sure") is None  # nothing before the object
    first = reader.feed('{"a": ')
    assert first is not None
    assert first.fields == {"/a": INC}
    assert reader.feed("1") is None  # a scalar still open changes nothing shown
    assert reader.feed("2") is None
    done = reader.feed("}")
    assert done is not None
    assert done.data == {"a": 12}
    assert done.fields == {"/a": C}
    assert reader.feed("\n") is None


def test_what_cannot_be_json_gives_nothing() -> None:
    assert partial_object('{"a": 1, ]') is None
    assert partial_object('{"a": 1} x') == partial_object('{"a": 1}')  # closed: what follows is ignored
    assert partial_object('{"a": 1, "b": 2, "c" 3}') is None  # closed but not JSON


def test_a_field_that_cannot_be_json_hides_only_itself() -> None:
    # A small model's answer cut inside a nested key holding a raw line break: the fields before it still count.
    cut = '{"term": "5 years", "n": 2, "party": [{"name": "Dave", "x\n\ny: \'a\'} ] } {'
    assert data(cut) == {"term": "5 years", "n": 2}
    assert states(cut, "term", "n", "party", "date") == {"/term": C, "/n": C, "/party": INC, "/date": P}
    assert data('{"a" 1 ') == {}
    assert states('{"a" 1 ', "a", "b") == {"/a": INC, "/b": P}
