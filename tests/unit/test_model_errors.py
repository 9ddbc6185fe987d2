"""Every answer of a model endpoint maps to a domain error, and every domain error to a status (httpx's
map_httpcore_exceptions test, applied here); the retry policy is the openai SDK's."""

from __future__ import annotations

import email.utils
import inspect
import time

import pytest

from extractor import errors
from extractor.api.problems import PROBLEM_STATUS, problems, status_for
from extractor.errors import PROBLEM_TABLE
from extractor.extraction.model import retry_after_s, should_retry, status_error

BODY = b'{"error": {"message": "scripted", "type": "server_error"}}'


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529])
def test_every_error_status_maps_to_a_5xx_never_500(status: int) -> None:
    mapped = status_error(status, {}, BODY)
    assert isinstance(mapped, errors.UpstreamError)
    assert "scripted" not in mapped.detail  # the endpoint's own text is logged, not passed on to callers
    assert str(status) in mapped.detail
    code = status_for(mapped)
    assert code in (502, 503)
    assert code == (503 if status == 429 else 502)


@pytest.mark.parametrize(
    ("body", "window"),
    [
        # OpenAI, vLLM, and llama-cpp-python's server (which words llama.cpp's refusal the same way)
        (
            b'{"error": {"message": "This model\'s maximum context length is 4096 tokens. However, you requested '
            b'10713 tokens (9689 in the messages, 1024 in the completion).", "type": "invalid_request_error"}}',
            4096,
        ),
        # llama.cpp's own server
        (
            b'{"error": {"code": 400, "message": "the request exceeds the available context size, try increasing '
            b'it", "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 2048}}',
            2048,
        ),
        (b'{"error": {"message": "Invalid value for temperature", "type": "invalid_request_error"}}', None),
        (b"maximum context length is many tokens", None),
    ],
)
def test_a_refusal_of_a_long_prompt_names_the_window(body: bytes, window: int | None) -> None:
    mapped = status_error(400, {}, body)
    if window is None:
        assert type(mapped) is errors.UpstreamError
        return
    assert isinstance(mapped, errors.ContextOverflowError)
    assert mapped.window == window
    assert mapped.problem().document()["window"] == window
    assert f"EXTRACTOR_MODEL_CONTEXT_TOKENS={window}" in mapped.detail
    assert status_for(mapped) == 502


def test_transport_faults_map_to_503_and_504() -> None:
    assert status_for(errors.ModelUnavailableError("x")) == 503
    assert status_for(errors.UpstreamTimeoutError("x")) == 504


def test_rate_limit_carries_retry_after() -> None:
    mapped = status_error(429, {"retry-after": "12"}, BODY)
    assert isinstance(mapped, errors.UpstreamRateLimitedError)
    assert mapped.retry_after == 12.0
    assert status_error(429, {}, b"").retry_after == 1.0, "a 429 without the header still says when to retry"


def test_the_endpoints_message_is_logged_with_the_body_text_as_fallback(caplog: pytest.LogCaptureFixture) -> None:
    assert "gateway down" not in status_error(502, {}, b"<html>gateway down</html>").detail
    status_error(502, {}, b"")
    assert "gateway down" in caplog.text
    assert "(empty body)" in caplog.text


def test_retry_after_forms() -> None:
    assert retry_after_s({"retry-after-ms": "250"}) == 0.25
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after": "1.5"}) == 1.5
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert retry_after_s({"retry-after": in_ten}) == pytest.approx(10, abs=1.5)
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


@pytest.mark.parametrize(
    ("status", "headers", "retried"),
    [
        (400, {}, False),
        (401, {}, False),
        (404, {}, False),
        (408, {}, True),
        (409, {}, True),
        (429, {}, True),
        (500, {}, True),
        (503, {}, True),
        (429, {"retry-after": "600"}, False),  # longer than two minutes: give up now, say so
        (400, {"x-should-retry": "true"}, True),
        (503, {"x-should-retry": "false"}, False),
    ],
)
def test_retry_policy_is_the_sdks(status: int, headers: dict[str, str], retried: bool) -> None:
    assert should_retry(status, headers) is retried


def test_every_domain_error_has_a_status_and_only_the_base_is_500() -> None:
    classes = [
        obj for _, obj in inspect.getmembers(errors) if inspect.isclass(obj) and issubclass(obj, errors.ExtractorError)
    ]
    for cls in classes:
        status = status_for(cls() if cls is errors.InternalError else cls("x"))
        assert status in PROBLEM_STATUS.values()
        assert (status == 500) == (cls in (errors.ExtractorError, errors.InternalError)), cls


def _subclasses(cls: type[errors.ExtractorError]) -> set[type[errors.ExtractorError]]:
    return {cls, *(sub for direct in cls.__subclasses__() for sub in _subclasses(direct))}


def test_every_error_class_has_its_own_entry_in_the_one_table() -> None:
    """Not inherited from a parent: a new class must say its status and when it happens, or this fails."""
    missing = {cls.__name__ for cls in _subclasses(errors.ExtractorError)} - {cls.__name__ for cls in PROBLEM_TABLE}
    assert missing == set()
    codes = [cls.code for cls in PROBLEM_TABLE]
    assert len(codes) == len(set(codes)), "each kind of problem has a code of its own"


def test_the_openapi_descriptions_come_from_the_table() -> None:
    described = problems(404, 422)
    assert "Unknown batch" in str(described[404].description)
    assert "cut off at its token limit" in str(described[422].description)
    assert set(described) == {400, 401, 404, 422, 429, 431, 503}  # 400, 401, 429, 431 and 503: any API route


def test_a_problem_document_is_built_from_the_table() -> None:
    exc = errors.ExtractionFailedError("no valid output", attempts=3)
    assert exc.problem(tries=2).document() == {
        "type": "extraction-failed",
        "title": "Extraction failed",
        "status": 422,
        "detail": "no valid output",
        "attempts": 3,
        "tries": 2,
    }


def test_proxy_comes_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from extractor.extraction.model import proxy_for

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,.corp")
    assert proxy_for("https://api.example.com/v1") == "http://proxy.internal:3128"
    assert proxy_for("http://127.0.0.1:8080/v1") is None
    assert proxy_for("https://llm.corp/v1") is None
