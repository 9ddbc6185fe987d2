"""Logs: JSON lines for log shippers or text for people, and one line per request and per batch item.

The line of an extraction carries its trace id, tenant, schema, status, reason, tokens, cost and duration, never
the document's text unless ``log_documents`` is on. ``log_format=auto`` (the default) writes text when stderr is a
terminal (someone is reading) and JSON otherwise (a container, a service manager: something is collecting).

Lines are formatted where they are logged and written to stderr in batches by a thread of their own
(``BatchingHandler``): the event loop never waits on stderr, and a line wakes no thread, where Litestar's queue
handler wakes its writer for each (what that cost: ``docs/benchmarks.md``, observability overhead).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import logging.config
import sys
import threading
import time
from typing import Any, TextIO

import pydantic_core
from litestar.logging import LoggingConfig
from opentelemetry import trace

from extractor.settings import Settings
from extractor.telemetry.report import ExtractionReport

__all__ = [
    "BatchingHandler",
    "JsonFormatter",
    "configure_logging",
    "litestar_logging",
    "log_extraction",
    "resolved_format",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_log = logging.getLogger("extractor.requests")
_QUIET = {"saq": "WARNING", "httpx": "WARNING", "httpx2": "WARNING"}
"""SAQ logs every chunk it enqueues at INFO (625 lines for a batch of 10,000 documents); httpx every request."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's ``fields`` and the current trace id."""

    _second = -1
    _stamp = ""

    def _time(self, record: logging.LogRecord) -> str:
        """ISO 8601 in UTC to the millisecond; the part up to the second is made once a second."""
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        entry: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            # a line with fields says it all in them; its text form is for the text format
            "message": fields["event"] if isinstance(fields, dict) else record.getMessage(),
        }
        if isinstance(fields, dict):
            entry.update(fields)
        elif (context := trace.get_current_span().get_span_context()).is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return pydantic_core.to_json(entry, fallback=str).decode()


class BatchingHandler(logging.Handler):
    """Keeps formatted lines and writes them every ``interval_s`` (at once for an error) from its own thread."""

    def __init__(self, stream: TextIO | None = None, interval_s: float = 0.2) -> None:
        super().__init__()
        self._stream = stream  # None: sys.stderr as it is when writing (tests swap it)
        self._lines: collections.deque[str] = collections.deque()  # append and popleft are thread-safe
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._closed = False
        self._flushing = threading.Lock()
        self._writer = threading.Thread(target=self._write_until_closed, name="log-writer", daemon=True)
        self._writer.start()
        atexit.register(self.close)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
        except Exception:
            self.handleError(record)
        if record.levelno >= logging.ERROR:
            self._wake.set()

    def flush(self) -> None:
        with self._flushing, contextlib.suppress(OSError, ValueError):  # ValueError: stderr closed (at exit)
            lines = []
            while self._lines:
                lines.append(self._lines.popleft())
            if lines:
                stream = self._stream or sys.stderr
                stream.write("\n".join(lines) + "\n")
                stream.flush()

    def _write_until_closed(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._writer.join(timeout=1.0)
        self.flush()
        atexit.unregister(self.close)
        super().close()


def resolved_format(settings: Settings) -> str:
    if settings.log_format != "auto":
        return settings.log_format
    return "text" if sys.stderr.isatty() else "json"


def _formatter(settings: Settings) -> dict[str, Any]:
    return {"()": JsonFormatter} if resolved_format(settings) == "json" else {"format": TEXT_FORMAT}


# Named as Litestar names the root's handler: it would otherwise add its own queue handler (and writer thread).
_HANDLERS: dict[str, dict[str, Any]] = {"queue_listener": {"()": BatchingHandler, "formatter": "standard"}}
_ROOT: dict[str, Any] = {"level": "INFO", "handlers": ["queue_listener"]}


def litestar_logging(settings: Settings) -> LoggingConfig:
    """The service's logging, given to Litestar."""
    return LoggingConfig(
        formatters={"standard": _formatter(settings)},
        handlers=_HANDLERS,
        root=_ROOT,
        loggers={name: {"level": level} for name, level in _QUIET.items()},
    )


def configure_logging(settings: Settings) -> None:
    """The same logging for a process without Litestar (``extractor worker``)."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"standard": _formatter(settings)},
            "handlers": _HANDLERS,
            "root": _ROOT,
            "loggers": {name: {"level": level} for name, level in _QUIET.items()},
        }
    )


class _Line:
    """The text form of a line's fields, made only if a text formatter asks for the message."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields

    def __str__(self) -> str:
        event = self._fields["event"]
        rest = " ".join(f"{key}={value}" for key, value in self._fields.items() if key != "event" and value is not None)
        return f"{event} {rest}"


def log_extraction(
    event: str, report: ExtractionReport, duration_s: float, text: str | None = None, **context: Any
) -> None:
    """The one line of a request (``event="extract"``) or a batch item (``"batch_item"``); ``text`` only when the
    ``log_documents`` setting is on (the caller decides)."""
    fields: dict[str, Any] = {
        "event": event,
        "trace_id": report.trace_id,
        **context,
        "tenant": report.tenant,
        "schema": report.schema,
        "model": report.model or None,
        "status": report.status or "cancelled",
        "reason": report.reason,
        "cached": report.cached,
        "attempts": report.attempts,
        "input_tokens": report.input_tokens,
        "output_tokens": report.output_tokens,
        "cost": None if report.cost is None else round(report.cost, 8),
        "duration_ms": round(duration_s * 1000, 3),
    }
    if report.parts > 1:  # a long document, extracted in parts
        fields["parts"] = report.parts
    if text is not None:
        fields["text"] = text
    if _log.isEnabledFor(logging.INFO):  # made by hand: the caller's file and line say nothing here, and cost
        record = _log.makeRecord(_log.name, logging.INFO, __file__, 0, _Line(fields), (), None)
        record.fields = fields
        _log.handle(record)
