"""CPU-bound work that a request may make costly (meta-validating a schema, compiling it) runs here, in a worker
thread, so that the event loop keeps answering every other request (``/healthz`` included) meanwhile.

A bounded number of threads: hostile requests queue behind each other instead of taking every core; the cheap
limits (size, nesting, property count) run before, on the loop, so what gets here is bounded too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

__all__ = ["OFFLOAD_THREADS", "off_loop"]

OFFLOAD_THREADS = 4
"""Threads per process that run offloaded checks at once."""

_P = ParamSpec("_P")
_T = TypeVar("_T")
_limiters: dict[int, CapacityLimiter] = {}


def _limiter() -> CapacityLimiter:
    """One limiter per event loop (anyio binds a limiter to the loop that first uses it)."""
    import asyncio

    loop = id(asyncio.get_running_loop())
    if loop not in _limiters:
        if len(_limiters) > 64:  # loops of finished tests or runs
            _limiters.clear()
        _limiters[loop] = CapacityLimiter(OFFLOAD_THREADS)
    return _limiters[loop]


async def off_loop(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``fn(*args, **kwargs)`` in a worker thread, at most ``OFFLOAD_THREADS`` at once per process."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=_limiter())
