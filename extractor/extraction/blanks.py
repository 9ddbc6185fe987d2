"""An empty or blank string is not a value: it carries no information, so it becomes null.

A small model writes ``"total": ""`` for a field it did not find; kept as a value, it counts as an answer (and as a
"found" value for grounding's sake, which it is not). In an object the string becomes null; in a list the item
goes (a null item could break the list's ``items`` schema). Each change is one line of ``repairs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extractor.pointer import child_pointer

__all__ = ["null_blanks"]


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def null_blanks(data: Any) -> tuple[Any, tuple[str, ...]]:
    """A copy of ``data`` with blank strings nulled (in objects) or removed (from lists), and the log of it."""
    log: list[str] = []
    return _walk(data, "", log), tuple(log)


def _walk(data: Any, pointer: str, log: list[str]) -> Any:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            path = child_pointer(pointer, key)
            if _blank(value):
                log.append(f"{path}: blank string {value!r} is not a value, set to null")
                out[key] = None
            else:
                out[key] = _walk(value, path, log)
        return out
    if isinstance(data, list):
        kept = []
        for index, value in enumerate(data):
            path = child_pointer(pointer, index)
            if _blank(value):
                log.append(f"{path}: blank string {value!r} is not a value, removed from the list")
            else:
                kept.append(_walk(value, path, log))
        return kept
    return data
