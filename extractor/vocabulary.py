"""The words of the domain that travel between modules, each defined once.

A word that only one module uses stays in that module. These are the ones that settings, the pipeline, the batch
machinery, the HTTP layer and the client all speak; as ``StrEnum`` members they compare equal to their strings, so
they serialise as themselves in JSON, in Redis and in OpenAPI.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "DEFAULT_TENANT",
    "FINAL_ITEM_STATUSES",
    "BatchStatus",
    "EnforcementLevel",
    "FieldState",
    "GroundingMode",
    "ItemStatus",
    "MatchKind",
    "ResultStatus",
    "StreamEventType",
]

DEFAULT_TENANT = "default"
"""The one tenant of a service without API keys."""


class GroundingMode(StrEnum):
    """What happens to an extracted value that cannot be found in the text."""

    ANNOTATE = "annotate"  # marked ``grounded: false``
    STRICT = "strict"  # set to null (logged in ``repairs``)
    OFF = "off"  # not looked for


class MatchKind(StrEnum):
    """How a grounded value was found in the text."""

    EXACT = "exact"
    NORMALIZED = "normalized"  # after case, whitespace, number or date normalisation


class EnforcementLevel(StrEnum):
    """How JSON output is enforced on the model, strongest first."""

    JSON_SCHEMA = "json_schema"
    JSON_OBJECT_SCHEMA = "json_object_schema"
    JSON_OBJECT = "json_object"
    PROMPT = "prompt"


class ResultStatus(StrEnum):
    """The outcome of a successful extraction."""

    OK = "ok"
    EMPTY = "empty"  # the document holds nothing the schema asks for


class ItemStatus(StrEnum):
    """Where one document of a batch is; the last four are final."""

    QUEUED = "queued"
    RUNNING = "running"
    OK = "ok"
    EMPTY = "empty"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_ITEM_STATUSES = frozenset({ItemStatus.OK, ItemStatus.EMPTY, ItemStatus.FAILED, ItemStatus.CANCELLED})


class BatchStatus(StrEnum):
    """Where a batch is as a whole."""

    QUEUED = "queued"  # no item started yet
    RUNNING = "running"
    FINISHED = "finished"  # every item final
    CANCELLED = "cancelled"


class FieldState(StrEnum):
    """Where a top-level field of an answer still being written is (``partial`` events of a streamed extraction)."""

    PENDING = "pending"  # the model has not reached it yet
    INCOMPLETE = "incomplete"  # being written: a string may be shown cut short; other scalars only once closed
    COMPLETE = "complete"  # its value is followed by ``,`` or the closing ``}``: it can no longer change


class StreamEventType(StrEnum):
    """The server-sent events of a streamed extraction (``POST /v1/extract`` with ``Accept: text/event-stream``)."""

    PARTIAL = "partial"  # the object so far
    ATTEMPT = "attempt"  # a re-ask started: the object starts over
    FINAL = "final"  # the JSON body the call answers without streaming; the stream ends
    ERROR = "error"  # the problem document the call answers without streaming; the stream ends
