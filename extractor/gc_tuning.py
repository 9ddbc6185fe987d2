"""The garbage collector tuned for a long-running asyncio process (``extractor serve`` and ``extractor worker``).

Nearly every object an extraction makes dies by reference counting; what the collector finds is a handful of
cycles. At CPython's default threshold (a collection every 700 net allocations) a batch worker collects again and
again over a batch, and no model call in flight can be answered during a pause. What that cost and what this
saves is measured in docs/benchmarks.md (batch throughput, garbage collection).
"""

from __future__ import annotations

import gc

__all__ = ["tune_for_service"]

_THRESHOLDS = (10_000, 10, 10)


def tune_for_service() -> None:
    """Call once, after start-up: what start-up built (modules, clients, schemas) lives for the whole process, so
    it is frozen out of every later collection; the youngest generation is collected 14 times less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_THRESHOLDS)
