"""The object so far of a JSON answer the model is still writing, and the state of each of its top-level fields.

The values come from pydantic-core's partial JSON parser (``from_json(..., allow_partial="trailing-strings")``),
which closes what is open and keeps a string cut short. Two things it cannot say are read here from the raw text,
by a scan that only tracks strings, escapes and nesting (it parses no value):

- **which scalar is still being written**: ``12`` may become ``12.5``, ``tr`` is not yet ``true``. A number,
  boolean or null is shown only once a character after it ends it (a space, ``,``, ``]`` or ``}``); until then
  the text is cut before it, at any depth. Strings are shown as far as they go.
- **which top-level field is complete**: a key whose value is followed, at the top level, by ``,`` or by the
  ``}`` that closes the object. Its value can no longer change. A key written but not complete is
  ``incomplete``; a property of the schema not reached yet is ``pending``.

Text before the first ``{`` (a code fence, a sentence) and after the object closes is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pydantic_core

from extractor.pointer import format_pointer
from extractor.vocabulary import FieldState

__all__ = ["PartialObject", "PartialReader", "partial_object"]

_SPACE = frozenset(" \t\r\n")
_OPEN = frozenset("{[")
_CLOSE = frozenset("}]")


@dataclass(frozen=True)
class PartialObject:
    """``data``: the values so far; ``fields``: the state of each top-level field by JSON Pointer (``/total``)."""

    data: dict[str, Any]
    fields: dict[str, FieldState]


@dataclass
class _Scan:
    """Where the text stands: inside a string or not, how deep, and what the top level has seen."""

    begin: int = -1
    """Index of the top-level ``{``; -1 until it is seen."""
    end: int = -1
    """Index just past the ``}`` that closes the top level; -1 while open."""
    depth: int = 0
    in_string: bool = False
    escaped: bool = False
    scalar_start: int = -1
    """Index where an unfinished number, ``true``, ``false`` or ``null`` starts; -1 if none is open."""
    completed: int = 0
    """Top-level values followed by ``,``: that many keys are complete."""
    closed_at: int = -1
    """Index of the last top-level ``,``: the complete fields end there; -1 before the first."""
    expect_key: bool = False
    key_start: int = -1
    last_key: str | None = None
    """The last top-level key written in full."""


class PartialReader:
    """Fed the answer piece by piece (``feed``), it says the object so far whenever it changed.

    Each piece is scanned once; the parse of the object so far is redone on each change, which costs a few
    microseconds per kilobyte of answer.
    """

    def __init__(self, properties: Iterable[str] = ()) -> None:
        """``properties``: the schema's top-level property names, reported ``pending`` until the model reaches them."""
        self._properties = list(properties)
        self._scan = _Scan()
        self._text = ""
        self._last: PartialObject | None = None

    @property
    def text(self) -> str:
        return self._text

    def feed(self, piece: str) -> PartialObject | None:
        """Take the next piece of the answer; the object so far if it differs from the one last returned, else None."""
        start = len(self._text)
        self._text += piece
        _advance(self._scan, self._text, start)
        current = self.snapshot()
        if current is None or current == self._last:
            return None
        self._last = current
        return current

    def snapshot(self) -> PartialObject | None:
        """The object so far, or None before the top-level ``{`` (or if what is written cannot be JSON).

        A field being written that cannot be JSON (a raw line break in a string, a key cut inside a nested
        object) hides only itself: the complete fields before it are still read."""
        scan = self._scan
        if scan.begin < 0:
            return None
        stop = scan.end if scan.end >= 0 else (scan.scalar_start if scan.scalar_start >= 0 else len(self._text))
        try:
            data = pydantic_core.from_json(self._text[scan.begin : stop], allow_partial="trailing-strings")
        except ValueError:
            if scan.end >= 0:
                return None
            complete = self._text[scan.begin : scan.closed_at] + "}" if scan.closed_at >= 0 else "{}"
            try:
                data = pydantic_core.from_json(complete)
            except ValueError:
                return None
        if not isinstance(data, dict):
            return None
        return PartialObject(data=data, fields=self._states(data))

    def _states(self, data: dict[str, Any]) -> dict[str, FieldState]:
        scan = self._scan
        complete = len(data) if scan.end >= 0 else scan.completed
        states = dict.fromkeys(self._properties, FieldState.PENDING)
        for index, key in enumerate(data):
            states[key] = FieldState.COMPLETE if index < complete else FieldState.INCOMPLETE
        if scan.end < 0 and scan.last_key is not None and states.get(scan.last_key) != FieldState.COMPLETE:
            states[scan.last_key] = FieldState.INCOMPLETE
        return {format_pointer([name]): state for name, state in states.items()}


def partial_object(text: str, properties: Iterable[str] = ()) -> PartialObject | None:
    """The object so far of ``text``, an answer cut anywhere; None before its first ``{``."""
    reader = PartialReader(properties)
    reader.feed(text)
    return reader.snapshot()


def _advance(scan: _Scan, text: str, start: int) -> None:
    """Scan ``text`` from ``start`` (everything before it was scanned already)."""
    for index in range(start, len(text)):
        if scan.end >= 0:
            return
        char = text[index]
        if scan.begin < 0:
            if char == "{":
                scan.begin, scan.depth, scan.expect_key = index, 1, True
        elif scan.in_string:
            _in_string(scan, text, index, char)
        else:
            _structural(scan, index, char)


def _in_string(scan: _Scan, text: str, index: int, char: str) -> None:
    if scan.escaped:
        scan.escaped = False
    elif char == "\\":
        scan.escaped = True
    elif char == '"':
        scan.in_string = False
        if scan.key_start >= 0:  # a top-level key, decoded by the parser (escapes and all)
            scan.last_key = pydantic_core.from_json(text[scan.key_start : index + 1])
            scan.key_start = -1


def _structural(scan: _Scan, index: int, char: str) -> None:
    if char == '"':
        scan.in_string, scan.scalar_start = True, -1
        if scan.depth == 1 and scan.expect_key:
            scan.key_start, scan.expect_key = index, False
    elif char in _OPEN:
        scan.depth, scan.scalar_start = scan.depth + 1, -1
    elif char in _CLOSE:
        scan.depth, scan.scalar_start = scan.depth - 1, -1
        if scan.depth == 0:
            scan.end = index + 1
    elif char == ",":
        scan.scalar_start = -1
        if scan.depth == 1:
            scan.completed += 1
            scan.closed_at = index
            scan.expect_key = True
    elif char in _SPACE or char == ":":
        scan.scalar_start = -1
    elif scan.scalar_start < 0:
        scan.scalar_start = index
