"""Training-data export: the validated results kept for a schema as chat-format fine-tuning JSONL.

Each line is ``{"messages": [system, user, assistant]}``: the exact prompt the service sent and the validated
data as the assistant's JSON answer, the shape OpenAI's fine-tuning API and most open trainers read. Only results
whose every value was found in the text are exported unless asked otherwise, so the model learns to copy, not to
invent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, TextIO

from extractor.extraction.results_log import LoggedResult, ResultsLog

__all__ = ["export_examples", "to_training_example", "write_export"]


def to_training_example(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One logged result as ``{"messages": [...prompt, assistant]}`` (a new list; the entry is not touched)."""
    answer = json.dumps(entry["data"], ensure_ascii=False, separators=(",", ":"))
    prompt = [{"role": m["role"], "content": m["content"]} for m in entry["messages"]]
    return {"messages": [*prompt, {"role": "assistant", "content": answer}]}


def _wanted(entry: LoggedResult, version_ref: str | None, include_ungrounded: bool) -> bool:
    if entry.get("data") is None or (version_ref is not None and entry.get("schema") != version_ref):
        return False
    return include_ungrounded or bool(entry.get("all_grounded"))


async def export_examples(
    log: ResultsLog, tenant: str, schema_ref: str, *, include_ungrounded: bool = False
) -> AsyncIterator[dict[str, Any]]:
    """Training examples of ``name`` (every version) or ``name@N`` (that one), oldest first.

    Results with a value not found in the text are left out unless ``include_ungrounded``.
    """
    name, _, version = schema_ref.partition("@")
    async for entry in log.read(tenant, name):
        if _wanted(entry, schema_ref if version else None, include_ungrounded):
            yield to_training_example(entry)


async def write_export(
    log: ResultsLog, tenant: str, schema_ref: str, out: TextIO, *, include_ungrounded: bool = False
) -> int:
    """Write the examples as JSONL to ``out``; return how many were written."""
    count = 0
    async for example in export_examples(log, tenant, schema_ref, include_ungrounded=include_ungrounded):
        out.write(json.dumps(example, ensure_ascii=False) + "\n")
        count += 1
    return count
