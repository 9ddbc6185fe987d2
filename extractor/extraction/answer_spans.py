"""Where each value sits in the model's raw JSON answer (and which one an answer cut at the token limit was writing).

Token log-probabilities come per token of the answer; to give a value a confidence, the characters of that value in
the answer must be known. ``json.loads`` throws positions away, so this is a small scanner of its own: it walks one
JSON object from the first ``{`` of the answer and records, per JSON Pointer, the ``[start, end)`` characters of each
scalar literal (a string's quotes excluded). On text that ends inside a value (a truncated answer) it stops and
names the pointer of the value that was open: the spans it gives are those of whole values only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from extractor.pointer import child_pointer

__all__ = ["AnswerSpans", "scan_answer"]

Span = tuple[int, int]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = ("true", "false", "null")
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]


class _Cut(Exception):
    """The text ended (or stopped being JSON) inside the value at ``pointer``."""

    def __init__(self, pointer: str) -> None:
        super().__init__(pointer)
        self.pointer = pointer


@dataclass(slots=True)
class AnswerSpans:
    """``spans``: characters of each scalar leaf; ``open_pointer``: the value the text ended in (None: complete)."""

    spans: dict[str, Span] = field(default_factory=dict)
    open_pointer: str | None = None
    complete: bool = False

    def open_field(self) -> str | None:
        """The top-level property that was being written when the text ended (unescaped), or None."""
        if self.open_pointer is None or self.open_pointer == "":
            return None
        first = self.open_pointer.split("/")[1]
        return first.replace("~1", "/").replace("~0", "~")


def scan_answer(text: str) -> AnswerSpans:
    """Scan the first JSON object of ``text``; never raises (a text without ``{`` gives no spans)."""
    result = AnswerSpans()
    start = text.find("{")
    if start < 0:
        return result
    try:
        _Scanner(text, result.spans).value(start, "")
        result.complete = True
    except _Cut as cut:
        result.open_pointer = cut.pointer
    return result


class _Scanner:
    def __init__(self, text: str, spans: dict[str, Span]) -> None:
        self.text = text
        self.spans = spans

    def skip(self, position: int) -> int:
        match = _WHITESPACE.match(self.text, position)
        return match.end() if match else position

    def char(self, position: int, pointer: str) -> str:
        if position >= len(self.text):
            raise _Cut(pointer)
        return self.text[position]

    def value(self, position: int, pointer: str) -> int:
        """Scan the value at ``position``; return the position just past it."""
        position = self.skip(position)
        first = self.char(position, pointer)
        if first == "{":
            return self.members(position + 1, pointer)
        if first == "[":
            return self.items(position + 1, pointer)
        if first == '"':
            return self.string(position, pointer)
        return self.scalar(position, pointer)

    def string(self, position: int, pointer: str) -> int:
        try:
            _, end = _scanstring(self.text, position + 1, True)
        except ValueError as exc:
            raise _Cut(pointer) from exc
        self.spans[pointer] = (position + 1, end - 1)
        return int(end)

    def scalar(self, position: int, pointer: str) -> int:
        match = _NUMBER.match(self.text, position)
        end = (
            match.end()
            if match
            else next((position + len(word) for word in _LITERALS if self.text.startswith(word, position)), None)
        )
        if end is None or end >= len(self.text):  # a number or word at the very end may have been cut short
            raise _Cut(pointer)
        self.spans[pointer] = (position, end)
        return end

    def members(self, position: int, pointer: str) -> int:
        position = self.skip(position)
        if self.char(position, pointer) == "}":
            return position + 1
        while True:
            if self.char(position, pointer) != '"':
                raise _Cut(pointer)
            try:
                key, position = _scanstring(self.text, position + 1, True)
            except ValueError as exc:
                raise _Cut(pointer) from exc
            position = self.skip(position)
            if self.char(position, pointer) != ":":
                raise _Cut(pointer)
            child = child_pointer(pointer, key)
            position = self.skip(self.value(position + 1, child))
            closer = self.char(position, pointer)  # ``child`` itself is closed: the text ended after it
            if closer == "}":
                return position + 1
            if closer != ",":
                raise _Cut(pointer)
            position = self.skip(position + 1)

    def items(self, position: int, pointer: str) -> int:
        position = self.skip(position)
        if self.char(position, pointer) == "]":
            return position + 1
        index = 0
        while True:
            child = child_pointer(pointer, index)
            position = self.skip(self.value(position, child))
            closer = self.char(position, pointer)
            if closer == "]":
                return position + 1
            if closer != ",":
                raise _Cut(pointer)
            position, index = position + 1, index + 1
