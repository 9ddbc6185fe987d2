"""What the client raises: a problem document (RFC 9457) the service answered, as a typed exception, or no answer.

The service's ``type`` says what happened; the status says what a caller can do about it, so the classes follow
the status, with the one ``type`` a caller branches on (an extraction that found no valid output) split out.
"""

from __future__ import annotations

import json

import httpx
from pydantic import ValidationError

from extractor.errors import Problem

__all__ = [
    "ExtractionFailedError",
    "ExtractorAPIError",
    "ExtractorClientError",
    "InvalidRequestError",
    "NotFoundError",
    "ServiceUnreachableError",
    "UnauthorizedError",
    "UnavailableError",
    "UpstreamError",
    "error_for",
    "error_of_problem",
]

PROBLEM_JSON = "application/problem+json"


class ExtractorClientError(Exception):
    """Base of everything the client raises."""


class ServiceUnreachableError(ExtractorClientError):
    """No answer from the service: it refused the connection, timed out or broke it (after the retries allowed)."""


class ExtractorAPIError(ExtractorClientError):
    """The service answered with a problem document; ``problem`` holds every member, extras included."""

    def __init__(self, problem: Problem, *, retry_after: float | None = None) -> None:
        super().__init__(f"{problem.status} {problem.type}: {problem.detail}")
        self.problem = problem
        self.status: int = problem.status or 0
        self.type = problem.type
        self.title = problem.title
        self.detail = problem.detail
        self.retry_after = retry_after


class InvalidRequestError(ExtractorAPIError):
    """400, 409, 413, or a 422 other than a failed extraction: the same request would be refused again."""


class UnauthorizedError(ExtractorAPIError):
    """401: the API key is missing or unknown."""


class NotFoundError(ExtractorAPIError):
    """404: no such schema, version or batch (for this API key's tenant)."""


class ExtractionFailedError(ExtractorAPIError):
    """422 ``extraction-failed`` or ``output-truncated``: no valid output within the attempts. The problem carries
    the model's last ``output``, its ``errors``, ``attempts`` and ``usage``."""


class UpstreamError(ExtractorAPIError):
    """502 or 504: the model endpoint failed, refused the request or did not answer in time."""


class UnavailableError(ExtractorAPIError):
    """503: the model or Redis is unavailable, rate-limited or the service is stopping; ``retry_after`` says when
    to try again. The client raises it once its own retries are spent."""


_BY_TYPE: dict[str, type[ExtractorAPIError]] = {
    "extraction-failed": ExtractionFailedError,
    "output-truncated": ExtractionFailedError,
}
_BY_STATUS: dict[int, type[ExtractorAPIError]] = {
    400: InvalidRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    409: InvalidRequestError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    502: UpstreamError,
    503: UnavailableError,
    504: UpstreamError,
}


def _problem(response: httpx.Response) -> Problem:
    """The answer's problem document; a body that is none (a proxy's HTML page) becomes ``about:blank``."""
    try:
        body = json.loads(response.content)
        if isinstance(body, dict):
            return Problem.model_validate({**body, "status": response.status_code})
    except (ValueError, ValidationError):
        pass
    detail = response.text[:500] or response.reason_phrase
    return Problem(type="about:blank", title=response.reason_phrase, status=response.status_code, detail=detail)


def error_for(response: httpx.Response, retry_after: float | None) -> ExtractorAPIError:
    """The typed exception of an error answer (its body already read)."""
    return error_of_problem(_problem(response), retry_after)


def error_of_problem(problem: Problem, retry_after: float | None = None) -> ExtractorAPIError:
    """The typed exception of a problem document: an error answer's, or a streamed extraction's ``error`` event."""
    cls = _BY_TYPE.get(problem.type) or _BY_STATUS.get(problem.status or 0, ExtractorAPIError)
    return cls(problem, retry_after=retry_after)
