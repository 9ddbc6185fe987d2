"""The domain error tree, the one table of what each kind of error is as a problem document (RFC 9457): its status
and when it happens, and the ``Problem`` model that every problem document is built from.

An HTTP answer (``api/problems.py`` adds the media type and ``Retry-After``) and a batch's result line carry the
same document; the status is the one the same failure answers on ``/v1/extract``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "PROBLEM_TABLE",
    "AuthError",
    "BatchLostError",
    "BatchNotFoundError",
    "ChunkAbandonedError",
    "CircuitOpenError",
    "ConflictError",
    "ContextOverflowError",
    "DeadlineExceededError",
    "ExtractionFailedError",
    "ExtractorError",
    "HeadersTooLargeError",
    "IdempotencyMismatchError",
    "IncompleteExtractionError",
    "InternalError",
    "InvalidInputError",
    "InvalidSchemaError",
    "ModelUnavailableError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Problem",
    "RateLimitedError",
    "SchemaNotFoundError",
    "SchemaTooLargeError",
    "StoreUnavailableError",
    "TruncatedOutputError",
    "UnsupportedMediaTypeError",
    "UpstreamError",
    "UpstreamRateLimitedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
]


class Problem(BaseModel):
    """An RFC 9457 problem document. Members beside these carry details: ``pointer``, ``errors``, ``output``..."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Stable, one per kind of problem.", examples=["schema-not-found"])
    title: str = Field(examples=["Schema not found"])
    status: int = Field(description="The HTTP status this problem answers with.", examples=[404])
    detail: str = Field(description="What happened and what to do, in a sentence.", examples=["no schema 'recept'"])

    def document(self) -> dict[str, Any]:
        """The JSON object."""
        return self.model_dump(mode="json")


class ExtractorError(Exception):
    """Base of every error extractor raises on purpose.

    ``code`` is the stable machine-readable name (the problem document's ``type``), ``extra`` holds
    members that go into the problem document beside ``detail``; ``retry_after`` (seconds) is set when a
    retry may succeed and we know (or were told) when.
    """

    code = "extractor-error"
    title = "Extractor error"

    def __init__(self, detail: str, *, retry_after: float | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.extra: dict[str, Any] = extra

    @property
    def status(self) -> int:
        """The status of the nearest class in ``PROBLEM_TABLE`` along this error's MRO."""
        return next(PROBLEM_TABLE[cls].status for cls in type(self).__mro__ if cls in PROBLEM_TABLE)

    def problem(self, **more: Any) -> Problem:
        """The problem document of this error, with ``more`` members beside its own."""
        return Problem(type=self.code, title=self.title, status=self.status, detail=self.detail, **self.extra, **more)


class InternalError(ExtractorError):
    """A bug: what the caller sees of an unexpected exception (the exception itself is logged)."""

    code = "internal-error"
    title = "Internal error"

    def __init__(self) -> None:
        super().__init__("an unexpected error occurred; it is logged")


class InvalidInputError(ExtractorError):
    code = "invalid-input"
    title = "Invalid input"


class DuplicateDocumentIdError(InvalidInputError):
    code = "duplicate-document-id"
    title = "Duplicate document id"


class InvalidSchemaError(InvalidInputError):
    code = "invalid-schema"
    title = "Invalid JSON Schema"


class PayloadTooLargeError(InvalidInputError):
    code = "payload-too-large"
    title = "Payload too large"


class IdempotencyMismatchError(InvalidInputError):
    code = "idempotency-key-mismatch"
    title = "Idempotency-Key reused with a different body"


class SchemaTooLargeError(InvalidInputError):
    """The schema's prompt and the answer's reserve leave no room for the document in the model's context window."""

    code = "schema-too-large"
    title = "Schema too large for the model"


class ConflictError(ExtractorError):
    code = "conflict"
    title = "Conflict"


class AuthError(ExtractorError):
    code = "unauthorized"
    title = "Missing or unknown API key"


class NotFoundError(ExtractorError):
    code = "not-found"
    title = "Not found"


class SchemaNotFoundError(NotFoundError):
    code = "schema-not-found"
    title = "Schema not found"


class BatchNotFoundError(NotFoundError):
    code = "batch-not-found"
    title = "Batch not found"


class ExtractionFailedError(ExtractorError):
    """The model's output could not be made valid within the attempt limit and token budget."""

    code = "extraction-failed"
    title = "Extraction failed"


class TruncatedOutputError(ExtractionFailedError):
    """The model stopped at its token limit (``finish_reason == "length"``); not re-asked unchanged."""

    code = "output-truncated"
    title = "Model output truncated"


class IncompleteExtractionError(ExtractionFailedError):
    """Some parts of a long document failed and the request asked for a complete result (``require_complete``)."""

    code = "extraction-incomplete"
    title = "Extraction incomplete"


class UpstreamError(ExtractorError):
    """The model endpoint failed."""

    code = "upstream-error"
    title = "Model endpoint error"


class ContextOverflowError(UpstreamError):
    """The endpoint refused a prompt as longer than its context window, and said how long that is (``window``)."""

    code = "context-overflow"
    title = "Prompt longer than the model's context window"

    @property
    def window(self) -> int | None:
        """The window the endpoint named (raised with ``window=``)."""
        value = self.extra.get("window")
        return value if isinstance(value, int) else None


class UpstreamRateLimitedError(UpstreamError):
    code = "upstream-rate-limited"
    title = "Model endpoint rate limited"


class UpstreamUnavailableError(UpstreamError):
    code = "upstream-unavailable"
    title = "Model endpoint unavailable"


class UpstreamTimeoutError(UpstreamError):
    code = "upstream-timeout"
    title = "Model endpoint timed out"


class ModelUnavailableError(UpstreamError):
    """No model endpoint can be reached at all (for example the bundled model server died)."""

    code = "model-unavailable"
    title = "Model unavailable"


class StoreUnavailableError(ExtractorError):
    code = "store-unavailable"
    title = "Redis unavailable"


class CircuitOpenError(UpstreamUnavailableError):
    """The model endpoint failed repeatedly: calls are refused at once until its cool-down ends."""

    code = "circuit-open"
    title = "Model endpoint paused after repeated failures"


class DeadlineExceededError(UpstreamTimeoutError):
    """The request's total time (model retries and re-asks included) ran out."""

    code = "deadline-exceeded"
    title = "Request deadline exceeded"


class RateLimitedError(ExtractorError):
    """The tenant sent more requests than its rate, or has too many in flight."""

    code = "rate-limited"
    title = "Too many requests"


class HeadersTooLargeError(InvalidInputError):
    code = "headers-too-large"
    title = "Request headers too large"


class UnsupportedMediaTypeError(InvalidInputError):
    code = "unsupported-media-type"
    title = "Unsupported media type"


class BatchLostError(BatchNotFoundError):
    """The batch existed (its id says when it was made) but Redis no longer holds its data: lost, not unknown."""

    code = "batch-lost"
    title = "Batch lost"


class ChunkAbandonedError(ExtractorError):
    """A batch's chunk failed on its last attempt: its unfinished documents fail with this (result lines only)."""

    code = "chunk-abandoned"
    title = "Chunk abandoned"


class _Entry(NamedTuple):
    status: int
    when: str
    """For the OpenAPI description of the status."""


PROBLEM_TABLE: dict[type[ExtractorError], _Entry] = {
    InvalidInputError: _Entry(400, "Malformed request"),
    AuthError: _Entry(401, "Missing or unknown API key (when API keys are configured)"),
    NotFoundError: _Entry(404, "Not found"),
    SchemaNotFoundError: _Entry(404, "Unknown schema or version"),
    BatchNotFoundError: _Entry(404, "Unknown batch"),
    BatchLostError: _Entry(410, "The batch existed but Redis lost its data (restarted without persistence)"),
    ConflictError: _Entry(409, "Conflict with a bundled schema's name"),
    PayloadTooLargeError: _Entry(413, "Over a size limit"),
    UnsupportedMediaTypeError: _Entry(415, "The body's Content-Type is not one the route reads"),
    RateLimitedError: _Entry(429, "Over the tenant's request rate or requests in flight; see Retry-After"),
    HeadersTooLargeError: _Entry(431, "Request headers too large or too many"),
    InvalidSchemaError: _Entry(422, "Invalid JSON Schema"),
    IdempotencyMismatchError: _Entry(422, "Idempotency-Key reused with a different body"),
    DuplicateDocumentIdError: _Entry(422, "Two documents of a batch share an id"),
    ExtractionFailedError: _Entry(422, "No valid output within the attempts"),
    TruncatedOutputError: _Entry(422, "The model's output was cut off at its token limit"),
    IncompleteExtractionError: _Entry(422, "Some parts of a long document failed (`require_complete`)"),
    SchemaTooLargeError: _Entry(422, "The schema's prompt leaves the document no room in the model's window"),
    UpstreamError: _Entry(502, "The model endpoint failed or refused the request"),
    ContextOverflowError: _Entry(502, "The model endpoint refused a prompt as longer than its window, twice"),
    UpstreamUnavailableError: _Entry(502, "The model endpoint answered that it is unavailable"),
    UpstreamRateLimitedError: _Entry(503, "The model endpoint is rate-limiting; see Retry-After"),
    ModelUnavailableError: _Entry(503, "The model cannot be reached; see Retry-After"),
    StoreUnavailableError: _Entry(503, "Redis unavailable; see Retry-After"),
    CircuitOpenError: _Entry(503, "The model endpoint failed repeatedly: calls paused; see Retry-After"),
    ChunkAbandonedError: _Entry(503, "A batch's chunk failed on its last attempt (in result lines only)"),
    UpstreamTimeoutError: _Entry(504, "The model endpoint did not answer in time"),
    DeadlineExceededError: _Entry(504, "The request ran past its total deadline"),
    InternalError: _Entry(500, "A bug: it is logged"),
    ExtractorError: _Entry(500, "A bug: it is logged"),
}
"""Every error class, with its own entry (a test checks): the status it answers with and when that happens."""
