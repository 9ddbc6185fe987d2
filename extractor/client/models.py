"""The answers the client hands back: the service's own models (``extractor.answers``, ``ExtractionResult``,
``SchemaVersion``...), and a batch's result line read into one typed object."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from extractor.answers import Batch, BatchEvent, Health, Readiness
from extractor.errors import Problem
from extractor.extraction.result import ExtractionResult
from extractor.vocabulary import ItemStatus

__all__ = ["Batch", "BatchEvent", "BatchResult", "Health", "Readiness"]


class BatchResult(BaseModel):
    """One document's line of a batch's results: its extraction result, or the problem it failed with."""

    id: str
    index: int
    status: ItemStatus
    result: ExtractionResult | None = None
    error: Problem | None = None
    line: str = Field("", exclude=True, repr=False, description="The NDJSON line as the service sent it.")

    @classmethod
    def from_line(cls, line: str) -> BatchResult:
        """The ok and empty lines are a ``/v1/extract`` result with ``id`` and ``index`` beside it."""
        item = json.loads(line)
        status = ItemStatus(item["status"])
        result = ExtractionResult.model_validate(item) if status in (ItemStatus.OK, ItemStatus.EMPTY) else None
        return cls(id=item["id"], index=item["index"], status=status, result=result, error=item.get("error"), line=line)
