"""Keep what an answer cut off at the token limit had already finished.

A small model that repeats itself inside one string runs into the token limit; the fields it wrote before are
finished and as good as any. ``partial.partial_object`` (the reader of streamed answers) says which top-level fields
are complete: followed by ``,`` at the top level, so their value can no longer change. Those are kept; the one being
written is set to null, since its value may be cut short (``"12"`` of ``"125"``), and the fields never reached are
null as well. An answer cut inside its first field keeps nothing: every field is null, and the result says so (it
is ``empty``, with ``truncated``), rather than losing the request to a 422 that asking again would only repeat.
The caller validates what is left and says the result was truncated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from extractor.extraction.partial import partial_object
from extractor.pointer import format_pointer
from extractor.vocabulary import FieldState

__all__ = ["Kept", "keep_closed_fields"]


@dataclass(frozen=True, slots=True)
class Kept:
    """The object with only complete fields, the field that was cut (None when the text ended between fields), and
    one log line per field nulled."""

    data: dict[str, Any]
    cut: str | None
    repairs: tuple[str, ...]


def keep_closed_fields(content: str, properties: Iterable[str]) -> Kept | None:
    """The complete top-level fields of a cut answer, every other property of the schema null; None when the answer
    is not an object at all."""
    names = list(properties)
    cut_object = partial_object(content, names)
    if cut_object is None:
        return None
    states = {name: cut_object.fields.get(format_pointer([name])) for name in {*names, *cut_object.data}}
    complete = [name for name in cut_object.data if states[name] == FieldState.COMPLETE]
    cut = next((name for name in [*cut_object.data, *names] if states[name] == FieldState.INCOMPLETE), None)
    repairs: list[str] = []
    if cut is not None:
        repairs.append(f"{format_pointer([cut])}: cut off at the token limit, set to null")
    missing = [name for name in names if name not in cut_object.data and name != cut]
    if missing:
        repairs.append(f"not written before the token limit, set to null: {', '.join(missing)}")
    data = {name: cut_object.data[name] for name in complete}
    return Kept({**dict.fromkeys(names), **data}, cut, tuple(repairs))
