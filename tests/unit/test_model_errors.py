"""Every openai exception class maps to a domain error, and every domain error to a status (httpx's
map_httpcore_exceptions test, applied here)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion

from extractor import errors
from extractor.app import PROBLEM_STATUS, status_for
from extractor.extraction.model import translate_openai_error

REQUEST = httpx2.Request("POST", "http://model.test/v1/chat/completions")


def _instance(cls: type[openai.OpenAIError], status: int = 400, headers: dict[str, str] | None = None) -> Any:
    """Build any openai exception the way the SDK does, trying the constructor shapes it uses."""
    response = httpx2.Response(status, request=REQUEST, headers=headers or {})
    attempts: list[Callable[[], Any]] = [
        lambda: cls("boom", response=response, body=None),  # type: ignore[call-arg]
        lambda: cls(response=response, body=None),  # type: ignore[call-arg]
        lambda: cls(request=REQUEST),  # type: ignore[call-arg]
        lambda: cls("boom", REQUEST, body=None),  # type: ignore[call-arg]
        lambda: cls(completion=ChatCompletion.model_construct()),  # type: ignore[call-arg]
        lambda: cls("boom", unsent_messages=[]),  # type: ignore[call-arg]
        lambda: cls("boom"),
        lambda: cls(),
    ]
    for attempt in attempts:
        try:
            return attempt()
        except TypeError:
            continue
    raise AssertionError(f"cannot construct {cls.__name__}")


OPENAI_ERRORS = sorted(
    (obj for _, obj in inspect.getmembers(openai) if inspect.isclass(obj) and issubclass(obj, openai.OpenAIError)),
    key=lambda c: c.__name__,
)
EXPECTED_STATUS = {
    "RateLimitError": 503,
    "InternalServerError": 502,
    "APITimeoutError": 504,
    "APIConnectionError": 503,
}


@pytest.mark.parametrize("cls", OPENAI_ERRORS, ids=lambda c: c.__name__)
def test_every_openai_error_maps_to_a_non_500_status(cls: type[openai.OpenAIError]) -> None:
    status = {"RateLimitError": 429, "InternalServerError": 500}.get(cls.__name__, 400)
    exc = _instance(cls, status)
    mapped = translate_openai_error(exc)
    assert isinstance(mapped, errors.UpstreamError)
    code = status_for(mapped)
    assert 502 <= code <= 504
    if cls.__name__ in EXPECTED_STATUS:
        assert code == EXPECTED_STATUS[cls.__name__]


def test_rate_limit_carries_retry_after() -> None:
    exc = _instance(openai.RateLimitError, 429, {"retry-after": "12"})
    mapped = translate_openai_error(exc)
    assert isinstance(mapped, errors.UpstreamRateLimitedError)
    assert mapped.retry_after == 12.0


def test_every_domain_error_has_a_status_and_only_the_base_is_500() -> None:
    classes = [
        obj for _, obj in inspect.getmembers(errors) if inspect.isclass(obj) and issubclass(obj, errors.ExtractorError)
    ]
    for cls in classes:
        status = status_for(cls("x"))
        assert status in PROBLEM_STATUS.values()
        assert (status == 500) == (cls is errors.ExtractorError), cls
