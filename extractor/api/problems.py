"""Problem documents at the edge: the answers built from a domain error (media type, ``Retry-After``), the problems
of the HTTP layer itself, and the OpenAPI entries read from the one table in ``errors.py``."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from litestar import Response
from litestar.openapi.datastructures import ResponseSpec
from redis.exceptions import RedisError

from extractor import errors
from extractor.errors import PROBLEM_TABLE, Problem

__all__ = [
    "PROBLEM_JSON",
    "PROBLEM_STATUS",
    "PROBLEM_TABLE",
    "error_response",
    "problem_response",
    "problems",
    "status_for",
]

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger("extractor")


PROBLEM_STATUS: dict[type[errors.ExtractorError], int] = {cls: entry.status for cls, entry in PROBLEM_TABLE.items()}

# Problems of the HTTP layer itself (Litestar's own exceptions), by status.
HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    431: "headers-too-large",
}


def status_for(exc: errors.ExtractorError) -> int:
    return exc.status


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[dict[str, Any]]:
    return Response(problem.document(), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def as_domain_error(exc: Exception, where: str, store_detail: Callable[[], str]) -> errors.ExtractorError:
    """What any exception is to the caller, logged once: a domain error as it is; Redis failing as a 503 whose
    detail is a sentence (Redis's own text, which names a host and port, is logged, not shown); anything else as a
    bug (500, logged with its traceback). ``where`` names the request in the log."""
    if isinstance(exc, RedisError):
        log.warning("%s: Redis did not answer: %s", where, exc)
        exc = errors.StoreUnavailableError(store_detail(), retry_after=2.0)
    elif not isinstance(exc, errors.ExtractorError):
        log.exception("bug: unhandled error on %s", where, exc_info=exc)
        exc = errors.InternalError()
    if exc.status >= 500:
        log.warning("%s -> %s: %s", where, exc.status, exc.detail)
    return exc


def error_response(exc: errors.ExtractorError) -> Response[dict[str, Any]]:
    """A domain error's answer: its problem document with its status, and ``Retry-After`` where known."""
    headers = None if exc.retry_after is None else {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return problem_response(exc.problem(), headers)


def _when(status: int) -> str:
    return "; ".join(dict.fromkeys(entry.when for entry in PROBLEM_TABLE.values() if entry.status == status))


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for the problem documents of ``statuses`` (400, 401, 429, 431 and 503 are always
    possible: malformed parameters, the API key, the tenant's limits, the headers, Redis)."""
    return {
        status: ResponseSpec(Problem, description=_when(status), media_type=PROBLEM_JSON, generate_examples=False)
        for status in sorted({400, 401, 429, 431, 503, *statuses})
    }
