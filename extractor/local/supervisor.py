"""Keeps the children of ``extractor serve`` running and says, at once, which one is down.

Each child has a thread that polls it. When the child exits, requests and readiness learn it within one poll
(``problem`` is a sentence a person can act on), and the child is started again after a backoff that doubles with
each try. A child that needs ``max_restarts`` tries within ``window_s`` is left down, with one error line in the
log: a crash loop must not spin forever, nor hide behind a service that looks alive.

``close`` stops the restarts, then the children (last watched first), and only then ends the threads: a child
that a supervisor thread restarted holds that thread's parent-death signal, so the thread outlives it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from extractor.errors import ExtractorError
from extractor.local.process import describe_exit, outliving_children

__all__ = ["Supervised", "Supervisor"]

log = logging.getLogger("extractor")


class Supervised(Protocol):
    """A child server: started, stopped, and asked how it ended."""

    @property
    def log_path(self) -> Path | None: ...

    def start(self) -> str: ...

    def stop(self) -> None: ...

    def exit_code(self) -> int | None:
        """The child's exit status once it has exited; None while it runs (or when none was started)."""
        ...


@dataclass
class _Child:
    label: str
    service: Supervised
    tries: deque[float] = field(default_factory=deque)
    problem: str | None = None
    given_up: bool = False


class Supervisor:
    """Watches children by name ("model", "redis"); ``problem(name)`` is None while that one is up."""

    def __init__(
        self, *, poll_s: float = 0.5, backoff_s: float = 0.5, max_restarts: int = 5, window_s: float = 300.0
    ) -> None:
        self._poll_s = poll_s
        self._backoff_s = backoff_s
        self._max_restarts = max_restarts
        self._window_s = window_s
        self._children: dict[str, _Child] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._closed = threading.Event()

    def watch(self, name: str, label: str, service: Supervised) -> None:
        """Supervise ``service`` (already started) under ``name``; ``label`` names it in sentences and logs."""
        child = _Child(label, service)
        self._children[name] = child
        thread = threading.Thread(target=self._run, args=(child,), name=f"supervise-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def problem(self, name: str) -> str | None:
        """Why the child ``name`` cannot serve right now, or None (also for a name that is not supervised)."""
        child = self._children.get(name)
        return child.problem if child is not None else None

    def close(self) -> None:
        """No more restarts; stop every child (last watched first); then end the watching threads."""
        self._stopping.set()
        for child in reversed(self._children.values()):
            child.service.stop()
        self._closed.set()
        for thread in self._threads:
            thread.join()

    def _run(self, child: _Child) -> None:
        with outliving_children():
            while not self._stopping.wait(self._poll_s):
                code = child.service.exit_code()
                if code is not None and not child.given_up:
                    self._restart(child, code)
            self._closed.wait()

    def _restart(self, child: _Child, code: int) -> None:
        ended = describe_exit(code)
        child.problem = f"the {child.label} {ended} and is being restarted; retry in a few seconds"
        log.warning("%s %s (log: %s); restarting it", child.label, ended, child.service.log_path)
        while not self._stopping.is_set():
            now = time.monotonic()
            while child.tries and now - child.tries[0] > self._window_s:
                child.tries.popleft()
            if len(child.tries) >= self._max_restarts:
                self._give_up(child, ended)
                return
            delay = self._backoff_s * 2 ** len(child.tries)
            child.tries.append(now)
            if self._stopping.wait(delay):
                return
            try:
                child.service.start()
            except ExtractorError as exc:
                log.warning("restarting the %s failed: %s", child.label, exc.detail)
                continue
            child.problem = None
            log.info("%s restarted", child.label)
            return

    def _give_up(self, child: _Child, ended: str) -> None:
        child.given_up = True
        child.problem = (
            f"the {child.label} {ended} and failed {self._max_restarts} restarts within {self._window_s:.0f} s, "
            f"so it is no longer restarted; see {child.service.log_path}, then restart extractor serve"
        )
        log.error(
            "%s %s and failed %d restarts within %.0f s; it stays down (log: %s). Every request that needs it "
            "answers 503 until extractor serve is restarted",
            child.label, ended, self._max_restarts, self._window_s, child.service.log_path,
        )  # fmt: skip
