"""Deterministic repair of almost-JSON model output.

Every change is logged, and any change that would drop, move or invent data is refused with ``RepairError``:
the caller then re-asks the model instead of trusting a guess.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from extractor.nesting import depth_of

__all__ = ["RepairError", "Repaired", "parse_json"]


class RepairError(ValueError):
    """The text cannot be made into JSON without dropping or moving data."""


@dataclass(frozen=True)
class Repaired:
    """A parsed JSON value and one human-readable line per change made to reach it (empty if none)."""

    value: Any
    repairs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Window:
    """The part of the original text still taken for JSON; offsets stay those of the original text."""

    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Token:
    """One lexical piece of the candidate: ``punct`` ({}[]:,), ``string``, ``bare`` (numbers, words) or ``space``."""

    kind: str
    text: str
    offset: int
    span: int  # length in the original text; ``text`` may change length when repaired
    closed: bool = True

    @property
    def end(self) -> int:
        return self.offset + self.span


_Tokens = tuple[_Token, ...]
_WindowStep = Callable[[_Window], tuple[_Window, tuple[str, ...]]]
_TokenStep = Callable[[_Tokens], tuple[_Tokens, tuple[str, ...]]]

_PUNCT = frozenset("{}[]:,")
_QUOTES = frozenset("\"'")
_CLOSERS = {"{": "}", "[": "]"}
_PYTHON_LITERALS = {"True": "true", "False": "false", "None": "null"}
# An object, or an array whose first member looks like JSON (so prose like "[see below]" is skipped).
_CANDIDATE = re.compile(r"\{|\[(?=\s*(?:[\[\]{\"'\d-]|(?:null|true|false|None|True|False)\b|$))")
_FENCE_OPEN = re.compile(r"```[ \t]*(?:[A-Za-z][\w+-]*)?[ \t]*\r?\n?")
_FENCE = "```"
# A string cut inside an escape: an odd run of backslashes, optionally with a partial \uXXXX, at the end.
_PARTIAL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\(?:u[0-9a-fA-F]{0,3})?\Z")


MAX_ANSWER_DEPTH = 64
"""Deepest nesting accepted in a model's answer: deeper, every later step would recurse past Python's limit."""


def parse_json(text: str) -> Repaired:
    """Parse model output as JSON, repairing what can be repaired without dropping or inventing data.

    Valid JSON is returned exactly as ``json.loads`` reads it, with no repairs. Raises ``RepairError``, also for an
    answer nested deeper than ``MAX_ANSWER_DEPTH``.
    """
    try:
        repaired = _parse_json(text)
    except RecursionError:
        repaired = None
    if repaired is None or depth_of(repaired.value, stop_after=MAX_ANSWER_DEPTH) > MAX_ANSWER_DEPTH:
        raise RepairError(f"the answer nests deeper than {MAX_ANSWER_DEPTH} levels")
    return repaired


def _parse_json(text: str) -> Repaired:
    try:
        return Repaired(_loads(text), ())
    except json.JSONDecodeError:
        pass
    except _ConstantError as exc:
        raise _constant_error(exc.name, _tokenize(text, 0, len(text))) from None
    window = _Window(text, 0, len(text))
    repairs: list[str] = []
    for window_step in _WINDOW_STEPS:
        window, done = window_step(window)
        repairs.extend(done)
    tokens = tuple(_tokenize(text, window.start, window.end))
    for token_step in _TOKEN_STEPS:
        tokens, done = token_step(tokens)
        repairs.extend(done)
    return Repaired(_load_tokens(tokens), tuple(repairs))


# --- scanning ---------------------------------------------------------------------------------------------------


def _tokenize(text: str, start: int, end: int) -> Iterator[_Token]:
    """Split ``text[start:end]`` into tokens; strings (either quote) are kept whole, so nothing inside is touched."""
    pos = start
    while pos < end:
        char = text[pos]
        if char in _PUNCT:
            yield _Token("punct", char, pos, 1)
            pos += 1
        elif char in _QUOTES:
            stop, closed = _string_end(text, pos, end)
            yield _Token("string", text[pos:stop], pos, stop - pos, closed)
            pos = stop
        else:
            stop = _run_end(text, pos, end)
            yield _Token("space" if char.isspace() else "bare", text[pos:stop], pos, stop - pos)
            pos = stop


def _string_end(text: str, start: int, end: int) -> tuple[int, bool]:
    """Return where the string opened at ``start`` ends (after its closing quote) and whether it was closed."""
    quote, pos = text[start], start + 1
    while pos < end:
        if text[pos] == "\\":
            pos += 2
        elif text[pos] == quote:
            return pos + 1, True
        else:
            pos += 1
    return end, False


def _run_end(text: str, start: int, end: int) -> int:
    """Return the end of the run of whitespace, or of bare characters (words, numbers), starting at ``start``."""
    space, pos = text[start].isspace(), start
    while pos < end and text[pos].isspace() == space and text[pos] not in _PUNCT and text[pos] not in _QUOTES:
        pos += 1
    return pos


def _track(tokens: Iterable[_Token]) -> Iterator[tuple[_Token, tuple[str, ...]]]:
    """Yield each token with the brackets still open after it; a mismatched closer raises ``RepairError``."""
    stack: list[str] = []
    for token in tokens:
        if token.kind == "punct" and token.text in _CLOSERS:
            stack.append(token.text)
        elif token.kind == "punct" and token.text in "}]":
            if not stack or _CLOSERS[stack[-1]] != token.text:
                expected = f"'{_CLOSERS[stack[-1]]}'" if stack else "nothing"
                raise RepairError(f"unexpected '{token.text}' at offset {token.offset} (expected {expected})")
            stack.pop()
        yield token, tuple(stack)


def _open_brackets(tokens: _Tokens) -> tuple[str, ...]:
    """Return the brackets left open at the end of ``tokens``, innermost last."""
    last = deque(_track(tokens), maxlen=1)  # consume the scan, keep only the final state
    return last[0][1] if last else ()


def _significant(tokens: Iterable[_Token]) -> list[_Token]:
    return [token for token in tokens if token.kind != "space"]


def _next_significant(tokens: _Tokens, index: int) -> _Token | None:
    # Indexing, not slicing: a slice per call would make the steps quadratic on long outputs.
    return next((tokens[i] for i in range(index + 1, len(tokens)) if tokens[i].kind != "space"), None)


def _find_candidate(text: str, start: int, end: int) -> int | None:
    match = _CANDIDATE.search(text, start, end)
    return None if match is None else match.start()


# --- window steps: narrow the text to the one JSON value ---------------------------------------------------------


def _strip_bom(window: _Window) -> tuple[_Window, tuple[str, ...]]:
    """Drop a leading byte order mark, which ``json.loads`` rejects."""
    if not window.text.startswith("\ufeff", window.start):
        return window, ()
    return replace(window, start=window.start + 1), ("removed byte order mark",)


def _strip_code_fence(window: _Window) -> tuple[_Window, tuple[str, ...]]:
    """Keep only the inside of a markdown code fence that opens before the JSON value."""
    opening = _FENCE_OPEN.search(window.text, window.start, window.end)
    first = _find_candidate(window.text, window.start, window.end)
    if opening is None or (first is not None and first < opening.start()):
        return window, ()
    closing = window.text.rfind(_FENCE, opening.end(), window.end)
    end = window.end if closing == -1 else closing
    repairs = [f"removed markdown code fence at offset {opening.start()}"]
    repairs += _prose_notes(window.text, (window.start, opening.start()), (end + len(_FENCE), window.end))
    return _Window(window.text, opening.end(), end), tuple(repairs)


def _isolate_value(window: _Window) -> tuple[_Window, tuple[str, ...]]:
    """Keep the first balanced object or array; refuse when a second one follows (choosing would drop data)."""
    start = _find_candidate(window.text, window.start, window.end)
    if start is None:
        raise RepairError(f"no JSON object or array found (text starts {window.text[window.start :][:40]!r})")
    end = next((token.end for token, stack in _track(_tokenize(window.text, start, window.end)) if not stack), None)
    end = window.end if end is None else end
    second = _find_candidate(window.text, end, len(window.text))
    if second is not None:
        raise RepairError(
            f"found a second JSON value at offset {second} after the one at offset {start}; "
            "choosing one would drop data"
        )
    notes = _prose_notes(window.text, (window.start, start), (end, window.end))
    return _Window(window.text, start, end), notes


def _prose_notes(text: str, before: tuple[int, int], after: tuple[int, int]) -> tuple[str, ...]:
    """Describe non-blank text dropped before and after the kept part."""
    spans = (("before", before), ("after", after))
    return tuple(
        f"removed text {where} the JSON value (offsets {lo}-{hi})" for where, (lo, hi) in spans if text[lo:hi].strip()
    )


# --- token steps: fix the value itself ------------------------------------------------------------------------------


def _convert_single_quotes(tokens: _Tokens) -> tuple[_Tokens, tuple[str, ...]]:
    """Turn 'single-quoted' strings into JSON strings; refuse when quotes inside make the boundaries ambiguous."""
    out: list[_Token] = []
    repairs: list[str] = []
    for index, token in enumerate(tokens):
        if token.kind != "string" or token.text[0] != "'":
            out.append(token)
            continue
        body = token.text[1:-1] if token.closed else token.text[1:]
        follower = _next_significant(tokens, index)
        if '"' in body or (follower is not None and not (follower.kind == "punct" and follower.text in ",:]}")):
            raise RepairError(f"ambiguous single-quoted string at offset {token.offset}: {token.text[:40]!r}")
        text = '"' + body.replace("\\'", "'") + ('"' if token.closed else "")
        out.append(replace(token, text=text))
        repairs.append(f"replaced single quotes with double quotes at offset {token.offset}")
    return tuple(out), tuple(repairs)


_CONTROL = re.compile(r"[\x00-\x1f]")
_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_control_characters(tokens: _Tokens) -> tuple[_Tokens, tuple[str, ...]]:
    """Escape raw control characters (a newline, a tab) inside strings: JSON forbids them, the data is the same."""
    out: list[_Token] = []
    repairs: list[str] = []
    for token in tokens:
        if token.kind == "string" and _CONTROL.search(token.text):
            escaped = _CONTROL.sub(lambda m: _CONTROL_ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), token.text)
            out.append(replace(token, text=escaped))
            repairs.append(f"escaped control characters inside the string at offset {token.offset}")
        else:
            out.append(token)
    return tuple(out), tuple(repairs)


def _replace_python_literals(tokens: _Tokens) -> tuple[_Tokens, tuple[str, ...]]:
    """Turn Python's ``True``/``False``/``None`` (outside strings) into JSON's ``true``/``false``/``null``."""
    out: list[_Token] = []
    repairs: list[str] = []
    for token in tokens:
        literal = _PYTHON_LITERALS.get(token.text) if token.kind == "bare" else None
        if literal is None:
            out.append(token)
            continue
        out.append(replace(token, text=literal))
        repairs.append(f"replaced Python literal {token.text} with {literal} at offset {token.offset}")
    return tuple(out), tuple(repairs)


def _close_truncated(tokens: _Tokens) -> tuple[_Tokens, tuple[str, ...]]:
    """Close a string and brackets left open at the end of truncated output; refuse a key left without a value."""
    stack = _open_brackets(tokens)
    last = tokens[-1] if tokens else None
    open_string = last is not None and last.kind == "string" and not last.closed
    if not stack and not open_string:
        return tokens, ()
    _refuse_dangling_key(tokens, stack)
    out = list(tokens)
    repairs: list[str] = []
    if last is not None and open_string:
        if _PARTIAL_ESCAPE.search(last.text[1:]):
            raise RepairError(f"string at offset {last.offset} is cut inside an escape sequence")
        out[-1] = replace(last, text=last.text + last.text[0], closed=True)
        repairs.append(f"closed unterminated string at offset {last.offset}")
    closers = "".join(_CLOSERS[bracket] for bracket in reversed(stack))
    if closers:
        end = out[-1].end
        out.extend(_Token("punct", closer, end, 0) for closer in closers)
        repairs.append(f"appended {closers!r} at offset {end} to close truncated output")
    return tuple(out), tuple(repairs)


def _refuse_dangling_key(tokens: _Tokens, stack: tuple[str, ...]) -> None:
    """Raise when truncation left an object key without its value: closing it would invent or drop data."""
    significant = _significant(tokens)
    if not stack or stack[-1] != "{" or not significant:
        return
    last = significant[-1]
    before = significant[-2] if len(significant) > 1 else None
    if last.kind == "punct" and last.text == ":":
        key = before.text if before is not None else "?"
        raise RepairError(f"key {key} before offset {last.offset} has no value (output truncated)")
    if last.kind == "string" and before is not None and before.kind == "punct" and before.text in "{,":
        raise RepairError(f"key {last.text} at offset {last.offset} has no colon or value (output truncated)")


def _remove_trailing_commas(tokens: _Tokens) -> tuple[_Tokens, tuple[str, ...]]:
    """Drop commas directly before a closing bracket."""
    out: list[_Token] = []
    repairs: list[str] = []
    for index, token in enumerate(tokens):
        follower = _next_significant(tokens, index) if token.kind == "punct" and token.text == "," else None
        if follower is not None and follower.kind == "punct" and follower.text in "}]":
            repairs.append(f"removed trailing comma at offset {token.offset}")
            continue
        out.append(token)
    return tuple(out), tuple(repairs)


_WINDOW_STEPS: tuple[_WindowStep, ...] = (_strip_bom, _strip_code_fence, _isolate_value)
_TOKEN_STEPS: tuple[_TokenStep, ...] = (
    _convert_single_quotes,
    _escape_control_characters,
    _replace_python_literals,
    _close_truncated,
    _remove_trailing_commas,
)


# --- loading --------------------------------------------------------------------------------------------------------


def _loads(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity, which are not JSON and would pass a ``number`` check."""
    return json.loads(text, parse_constant=_refuse_constant)


class _ConstantError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _refuse_constant(name: str) -> Any:
    raise _ConstantError(name)


def _constant_error(name: str, tokens: Iterable[_Token]) -> RepairError:
    offset = next((token.offset for token in tokens if token.kind == "bare" and token.text == name), None)
    return RepairError(f"{name} at offset {offset} is not valid JSON (JSON has no NaN or Infinity)")


def _load_tokens(tokens: _Tokens) -> Any:
    """Parse the repaired tokens; a failure is reported at its offset in the original text."""
    text = "".join(token.text for token in tokens)
    try:
        return _loads(text)
    except json.JSONDecodeError as exc:
        raise RepairError(f"cannot repair: {exc.msg} at offset {_original_offset(tokens, exc.pos)}") from exc
    except _ConstantError as exc:
        raise _constant_error(exc.name, tokens) from None


def _original_offset(tokens: _Tokens, position: int) -> int:
    """Map a position in the repaired text back to the original text (repairs change lengths)."""
    seen = 0
    for token in tokens:
        if position < seen + len(token.text):
            return token.offset + position - seen
        seen += len(token.text)
    return tokens[-1].end if tokens else 0
