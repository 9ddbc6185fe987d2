"""Recent successful extractions with their prompt, per tenant and schema, for training-data export.

Off unless ``cache.keep_results`` > 0 (it keeps document texts); then a Redis stream per schema capped at that
many entries (approximate trimming, so it stays cheap).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from extractor import keys
from extractor.extraction.result import ExtractionResult

__all__ = ["LoggedResult", "ResultsLog"]

LoggedResult = dict[str, Any]
_PAGE = 500


class ResultsLog:
    def __init__(self, redis: Redis, keep: int) -> None:
        self._redis = redis
        self._keep = keep

    def keeps(self, result: ExtractionResult) -> bool:
        """Whether ``append`` would keep this result: the log is on and the result is ``ok``."""
        return self._keep > 0 and result.status == "ok"

    async def append(self, tenant: str, messages: list[dict[str, str]], result: ExtractionResult) -> None:
        """Keep an ``ok`` result with the prompt that produced it (system and user message: the text is in it)."""
        if not self.keeps(result):
            return
        entry = {
            "schema": result.schema_ref,
            "messages": messages,
            "data": result.data,
            # True only when grounding ran and found every value in the text.
            "all_grounded": bool(result.fields) and all(f.grounded is not False for f in result.fields.values()),
        }
        name = result.schema_ref.partition("@")[0]
        await self._redis.xadd(
            keys.results_log(tenant, name), {"entry": json.dumps(entry)}, maxlen=self._keep, approximate=True
        )

    async def read(self, tenant: str, schema_name: str) -> AsyncIterator[LoggedResult]:
        """Every kept entry of one schema, oldest first, paged so memory stays flat."""
        start = "-"
        while True:
            page: list[tuple[str, dict[str, str]]] = await self._redis.xrange(
                keys.results_log(tenant, schema_name), min=start, count=_PAGE
            )  # type: ignore[assignment]
            for _, fields in page:
                yield json.loads(fields["entry"])
            if len(page) < _PAGE:
                return
            start = "(" + page[-1][0]
