"""The messages sent to the model. Short on purpose: a compact field list, not the pasted schema.

The document goes only into the user message, between delimiters; the system message says what to extract and
that null is the answer for anything the document does not state. Bump ``PROMPT_VERSION`` on any change here:
it is part of every cache key.
"""

from __future__ import annotations

from collections.abc import Sequence

from extractor.registry.compiled import CompiledSchema

__all__ = ["PROMPT_VERSION", "Message", "build_messages", "build_reask"]

PROMPT_VERSION = "p1"

Message = dict[str, str]

_SYSTEM = (
    "Extract {what} from the document as one JSON object with these fields:\n{fields}\n"
    "Copy values exactly as the document writes them. Use null for any field the document does not state; "
    "never guess.{instructions}"
)
_REASK = (
    "That reply is not valid: {errors}\n"
    "Answer again with the corrected JSON object only, using null where the document does not say."
)


def build_messages(schema: CompiledSchema, text: str) -> list[Message]:
    version = schema.version
    instructions = f"\n{version.instructions}" if version.instructions else ""
    system = _SYSTEM.format(
        what=version.description or f"the {version.name} details", fields=schema.fields, instructions=instructions
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": f"Document:\n<<<\n{text}\n>>>"}]


def build_reask(messages: Sequence[Message], reply: str, errors: Sequence[str]) -> list[Message]:
    """A new message list (the input is not touched) with the bad reply and the errors that make it bad."""
    listed = "; ".join(errors[:8]) + (f" (and {len(errors) - 8} more)" if len(errors) > 8 else "")
    return [
        *messages,
        {"role": "assistant", "content": reply},
        {"role": "user", "content": _REASK.format(errors=listed)},
    ]
