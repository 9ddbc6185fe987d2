"""A typed Python client for the extractor service, blocking (``Client``) and for asyncio (``AsyncClient``).

    from extractor.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as client:
        result = client.extract("receipt", "ACME Market\\nTOTAL 3.70 EUR")
        print(result.status, result.data)

Answers are the service's own models (``ExtractionResult``, ``SchemaVersion``...). A problem document becomes an
:class:`ExtractorAPIError` subclass; a 503 and a broken connection are retried first, honouring ``Retry-After``.
"""

from __future__ import annotations

from extractor.client.aio import AsyncClient
from extractor.client.base import DEFAULT_TIMEOUT, DEFAULT_URL
from extractor.client.errors import (
    ExtractionFailedError,
    ExtractorAPIError,
    ExtractorClientError,
    InvalidRequestError,
    NotFoundError,
    ServiceUnreachableError,
    UnauthorizedError,
    UnavailableError,
    UpstreamError,
)
from extractor.client.models import Batch, BatchEvent, BatchResult, Health, Readiness
from extractor.client.retry import RetryPolicy
from extractor.client.sync import Client
from extractor.errors import Problem
from extractor.extraction.result import ExtractionResult, ExtractOptions
from extractor.registry.schema import SchemaDefinition, SchemaSummary, SchemaVersion

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "AsyncClient",
    "Batch",
    "BatchEvent",
    "BatchResult",
    "Client",
    "ExtractOptions",
    "ExtractionFailedError",
    "ExtractionResult",
    "ExtractorAPIError",
    "ExtractorClientError",
    "Health",
    "InvalidRequestError",
    "NotFoundError",
    "Problem",
    "Readiness",
    "RetryPolicy",
    "SchemaDefinition",
    "SchemaSummary",
    "SchemaVersion",
    "ServiceUnreachableError",
    "UnauthorizedError",
    "UnavailableError",
    "UpstreamError",
]
