"""How deep a JSON value nests, measured without recursion, and JSON parsed with a bound on it.

Every JSON the service reads from outside (request bodies, query parameters, schemas, model answers) goes through
a recursive step somewhere: the parser, jsonschema, coercion, grounding. Past Python's recursion limit each one
raises ``RecursionError``, a 500; well before it, a deep value costs time for nothing. So depth is checked first,
with a loop, and a parser's own ``RecursionError`` becomes the same refusal.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["TooDeepError", "check_depth", "depth_of", "loads_bounded"]


class TooDeepError(ValueError):
    """A JSON value nests deeper than allowed; ``pointer`` is where the limit was crossed (RFC 6901)."""

    def __init__(self, limit: int, pointer: str = "") -> None:
        super().__init__(f"nests deeper than {limit} levels" + (f" (at {pointer})" if pointer else ""))
        self.limit = limit
        self.pointer = pointer


def depth_of(value: Any, stop_after: int | None = None) -> int:
    """Levels of objects and arrays in ``value`` (a scalar is 0, ``[]`` is 1); stops counting past ``stop_after``.
    Only containers go on the stack: a model's answer is mostly scalars, and this runs on every answer."""
    if not isinstance(value, dict | list):
        return 0
    deepest = 0
    stack: list[tuple[dict[Any, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if stop_after is not None and deepest > stop_after:
                return deepest
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def check_depth(value: Any, limit: int) -> None:
    """Raise ``TooDeepError`` when ``value`` nests deeper than ``limit`` levels."""
    if depth_of(value, stop_after=limit) > limit:
        raise TooDeepError(limit)


def loads_bounded(text: str | bytes, limit: int) -> Any:
    """``json.loads`` that refuses values nested deeper than ``limit`` (``TooDeepError``), however deep."""
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise TooDeepError(limit) from exc
    check_depth(value, limit)
    return value
