"""Cache keys cover everything that changes an answer; settings parse the documented environment."""

from __future__ import annotations

import json

import pytest

from extractor.extraction.cache import cache_digest
from extractor.settings import Settings, hash_api_key

BASE = {
    "schema_hash": "sha256:a",
    "endpoint": "http://a.test/v1/",
    "model": "m",
    "prompt_version": "p1",
    "options": {"grounding": "annotate"},
    "text": "t",
}


@pytest.mark.parametrize(
    "change",
    [
        {"schema_hash": "sha256:b"},
        {"endpoint": "http://b.test/v1/"},
        {"model": "m2"},
        {"prompt_version": "p2"},
        {"options": {"grounding": "strict"}},
        {"text": "t "},
    ],
)
def test_every_part_changes_the_digest(change: dict[str, object]) -> None:
    assert cache_digest(**BASE) != cache_digest(**(BASE | change))  # type: ignore[arg-type]


def test_digest_is_stable_and_ignores_option_order() -> None:
    a = cache_digest(**(BASE | {"options": {"a": 1, "b": 2}}))  # type: ignore[arg-type]
    b = cache_digest(**(BASE | {"options": {"b": 2, "a": 1}}))  # type: ignore[arg-type]
    assert a == b
    assert len(a) == 64


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRACTOR_MODEL_BASE_URL", "http://m/v1")
    monkeypatch.setenv("EXTRACTOR_EXTRACTION__MAX_ATTEMPTS", "2")
    monkeypatch.setenv("EXTRACTOR_JOBS__CONCURRENCY", "64")
    monkeypatch.setenv("EXTRACTOR_API_KEYS", f"acme:secret, beta:{hash_api_key('b')}")
    settings = Settings()
    assert settings.model_base_url == "http://m/v1"
    assert settings.extraction.max_attempts == 2
    assert settings.jobs.concurrency == 64
    assert settings.api_keys == {hash_api_key("secret"): "acme", hash_api_key("b"): "beta"}
    assert "secret" not in repr(settings.api_keys)


def test_bad_api_key_entry_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRACTOR_API_KEYS", "no-colon-here")
    with pytest.raises(ValueError, match="tenant:key"):
        Settings()


@pytest.mark.parametrize("entry", ["_shared:key", "bad/tenant:key", "with space:key"])
def test_reserved_or_odd_tenant_names_are_refused(monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    monkeypatch.setenv("EXTRACTOR_API_KEYS", entry)
    with pytest.raises(ValueError, match="tenant"):
        Settings()


def test_a_hit_is_the_stored_json_with_what_this_request_cost() -> None:
    from extractor.extraction.cache import PER_REQUEST, hit_json
    from extractor.extraction.grounding import FieldGrounding
    from extractor.extraction.result import ExtractionResult, Usage
    from extractor.vocabulary import MatchKind

    fresh = ExtractionResult(
        status="ok",
        data={"name": 'Dana "D" Whitfield', "tags": ["a"]},
        schema_ref="contact@1",
        model="m",
        enforcement="json_schema",
        attempts=2,
        repairs=["fenced"],
        fields={"/name": FieldGrounding(span=(0, 4), grounded=True, match=MatchKind.EXACT)},
        usage=Usage(prompt_tokens=90, completion_tokens=12),
        timings_ms={"model": 5.0, "total": 7.5},
    )
    stored = fresh.model_dump_json(exclude=set(PER_REQUEST))
    assert not any(f'"{name}"' in stored for name in PER_REQUEST)
    hit = ExtractionResult.model_validate_json(hit_json(stored, {"schema": 0.1, "cache": 0.2, "total": 0.3}))
    assert hit.model_dump(exclude=set(PER_REQUEST)) == fresh.model_dump(exclude=set(PER_REQUEST))
    assert (hit.cached, hit.attempts, hit.usage.total_tokens) == (True, 0, 0)
    assert hit.timings_ms == {"schema": 0.1, "cache": 0.2, "total": 0.3}
    assert json.loads(hit_json(stored, {}))["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
