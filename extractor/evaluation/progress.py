"""``extractor eval --resume FILE``: each document's outcome appended to FILE (JSON lines) the moment it comes, and
read back at the next start, so that a run of hours that was stopped goes on where it was instead of starting over.

The outcomes kept are those of whatever ran before: resume with the same command (data, schema, options, service).
A line cut short by a stop in the middle of its write is not kept; that document runs again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import TracebackType

from extractor.evaluation.runner import Outcome, outcome_from_json, outcome_json

__all__ = ["ProgressFile", "last_outcomes"]

log = logging.getLogger(__name__)


class ProgressFile:
    """The outcomes in ``path`` (read once), and ``path`` open to append new ones."""

    def __init__(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        self._done = {outcome.id: outcome for outcome in last_outcomes(text)}
        self._file = path.open("a", encoding="utf-8")
        if text and not text.endswith("\n"):
            self._file.write("\n")  # the cut line stays alone on its line
        if self._done:
            log.info("%s holds %d outcomes: those documents are not run again", path, len(self._done))

    def done(self, case_id: str) -> Outcome | None:
        return self._done.get(case_id)

    def record(self, outcome: Outcome) -> None:
        self._file.write(json.dumps(outcome_json(outcome)) + "\n")
        self._file.flush()

    def __enter__(self) -> ProgressFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._file.close()


def last_outcomes(text: str) -> list[Outcome]:
    """Each document's last outcome in ``text``, a ``--resume`` file (also read by ``eval --rescore``); a line cut
    short by a stop is not one (its document runs again)."""
    outcomes: dict[str, Outcome] = {}
    for line in text.splitlines():
        try:
            outcome = outcome_from_json(json.loads(line))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        outcomes[outcome.id] = outcome
    return list(outcomes.values())
