"""The domain error tree. No HTTP here: ``app.py`` maps each class to a status code once, at the edge."""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "BatchNotFoundError",
    "ConflictError",
    "ExtractionFailedError",
    "ExtractorError",
    "IdempotencyMismatchError",
    "InvalidInputError",
    "InvalidSchemaError",
    "ModelUnavailableError",
    "NotFoundError",
    "PayloadTooLargeError",
    "SchemaNotFoundError",
    "StoreUnavailableError",
    "TruncatedOutputError",
    "UpstreamError",
    "UpstreamRateLimitedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
]


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


class UpstreamError(ExtractorError):
    """The model endpoint failed."""

    code = "upstream-error"
    title = "Model endpoint error"


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
