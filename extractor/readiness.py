"""Whether the two things every request needs, Redis and the model endpoint, can answer now; and if not, why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from extractor.extraction.model import ModelClient

__all__ = ["ReadinessChecks", "no_problem"]


def no_problem() -> str | None:
    return None


@dataclass(frozen=True)
class ReadinessChecks:
    """``store_problem`` says why a supervised Redis cannot answer (a sentence), or None; the model client knows its
    own supervisor's sentence."""

    redis: Redis
    model: ModelClient
    store_problem: Callable[[], str | None] = no_problem

    async def check_store(self) -> str:
        if (problem := self.store_problem()) is not None:
            return problem
        await self.redis.ping()
        return "ok"

    async def check_model(self) -> str:
        await self.model.ping()  # a supervised child that is down fails at once, with the supervisor's sentence
        return "ok"

    def store_detail(self) -> str:
        """What to tell a caller whose request Redis did not answer."""
        return self.store_problem() or "Redis did not answer; retry in a few seconds"
