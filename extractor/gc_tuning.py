"""The garbage collector tuned for a long-running asyncio process (``extractor serve`` and ``extractor worker``).

Nearly every object an extraction makes dies by reference counting; what the collector finds is a handful of
cycles. At CPython's default threshold (a collection every 700 net allocations) a batch worker ran about 250
collections over 5,000 documents, 0.23-0.29 s of its 4.3 s of CPU, with pauses of up to 62 ms in which none of
its 64 model calls in flight could be answered. Measured with ``bench/batch.py`` (docs/benchmarks.md).
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
