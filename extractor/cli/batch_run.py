"""``extractor batch``: send a JSONL file or a folder of texts to a running service, write results as they finish.

Resuming: results go to the output file in submission order and a sidecar file (``<output>.batch``) names the batch
and how many lines the output held before it. A rerun follows the same batch from where the file stops; if that
batch is gone, it submits only the documents whose ids are not in the output yet. The Idempotency-Key is the digest
of what is submitted, so a run interrupted between submitting and writing the sidecar does not start a second batch.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extractor.client import Batch, Client, NotFoundError

__all__ = ["BatchRun", "read_documents", "read_done_ids"]

_POLL_S = 0.5


def read_documents(source: Path) -> list[tuple[str, str]]:
    """``(id, text)`` from a JSONL file (``{"id", "text"}`` per line) or a folder of text files (id: file name)."""
    if source.is_dir():
        return [(path.name, path.read_text(encoding="utf-8")) for path in sorted(source.iterdir()) if path.is_file()]
    documents = []
    with source.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                item = json.loads(line)
                if not isinstance(item, dict) or "id" not in item or "text" not in item:
                    raise ValueError(f'{source}:{number}: expected {{"id", "text"}}')
                documents.append((str(item["id"]), str(item["text"])))
    return documents


def read_done_ids(output: Path) -> list[str]:
    """Ids of the complete result lines in ``output``; a partial last line (an interrupted write) is cut off."""
    if not output.exists():
        return []
    raw = output.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if len(complete) != len(raw):
        output.write_bytes(complete)
    return [json.loads(line)["id"] for line in complete.splitlines() if line.strip()]


@dataclass
class BatchRun:
    """One `extractor batch` run against a service; ``on_progress(done, total, rate)`` drives the progress bar."""

    client: Client
    schema_ref: str
    options: dict[str, Any]
    output: Path

    @property
    def sidecar(self) -> Path:
        return self.output.with_name(self.output.name + ".batch")

    def run(self, documents: list[tuple[str, str]], on_progress: Callable[[int, int, float], None]) -> int:
        """Process every document not already in the output; returns how many result lines were written."""
        done_ids = read_done_ids(self.output)
        batch_id, base = self._resume() or self._submit(documents, set(done_ids), len(done_ids))
        if batch_id is None:
            return 0
        written = 0
        with self.output.open("a", encoding="utf-8") as out:
            for lines, status in self._follow(batch_id, len(done_ids) - base):
                out.writelines(lines)
                out.flush()
                written += len(lines)
                on_progress(base + status.done, base + status.total, status.documents_per_second)
        self.sidecar.unlink(missing_ok=True)
        return written

    def _resume(self) -> tuple[str, int] | None:
        if not self.sidecar.exists():
            return None
        saved = json.loads(self.sidecar.read_text())
        try:
            self.client.get_batch(saved["batch_id"])
        except NotFoundError:
            return None
        return saved["batch_id"], int(saved["base"])

    def _submit(self, documents: list[tuple[str, str]], done: set[str], base: int) -> tuple[str | None, int]:
        pending = [{"id": doc_id, "text": text} for doc_id, text in documents if doc_id not in done]
        if not pending:
            return None, base
        body = {"schema": self.schema_ref, "documents": pending, "options": self.options}
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        batch = self.client.create_batch(self.schema_ref, pending, options=self.options, idempotency_key=key)
        batch_id = batch.batch_id
        self.sidecar.write_text(json.dumps({"batch_id": batch_id, "base": base}))
        return batch_id, base

    def _follow(self, batch_id: str, offset: int) -> Iterator[tuple[list[str], Batch]]:
        """Yield new result lines (in order) with the batch's status, until every line is in."""
        while True:
            lines = [result.line + "\n" for result in self.client.batch_results(batch_id, offset=offset)]
            offset += len(lines)
            snapshot = self.client.get_batch(batch_id)
            yield lines, snapshot
            if offset >= snapshot.total:
                return
            if not lines:
                time.sleep(_POLL_S)
