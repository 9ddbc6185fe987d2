"""The OpenAPI document is the contract: schemathesis generates requests for every operation from it (valid and
invalid ones) and runs all its checks against the service under uvicorn, API keys on, the model faked. Any finding
(a 5xx, an undocumented status or media type, a body that does not match its schema, ...) fails the test.

Examples per operation are bounded so the run fits CI (a few minutes on 2 cores)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from redis import Redis as SyncRedis
from schemathesis.config import SchemathesisConfig

from extractor.app import create_app
from tests.support.app import make_settings, serve_app
from tests.support.fake_model import FakeModel, serve_model
from tests.support.redis_db import HOSTILE_URL

API_KEY = "contract-key"
_MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    SyncRedis.from_url(HOSTILE_URL).flushdb()
    model = FakeModel().reply({"merchant": "ACME", "total": 12.5})
    with serve_model(model.handler) as model_url:
        app_settings = make_settings(redis_url=HOSTILE_URL, model_base_url=model_url, api_keys=f"acme:{API_KEY}")
        with serve_app(create_app(app_settings)) as url:
            yield url
    SyncRedis.from_url(HOSTILE_URL).flushdb()


# Schema-valid data may still be refused for what a JSON Schema cannot say: a registered schema whose root is not an
# object, two documents of a batch with one id (422), a schema name already taken by a bundled one (409).
_CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "404", "409", "422", "429"]}}}
)


def _operations(base_url: str) -> list[Any]:
    loaded = schemathesis.openapi.from_url(f"{base_url}/schema/openapi.json", config=_CONFIG)
    return [cast("Any", result).ok() for result in loaded.get_all_operations()]  # an Err raises: a broken document


def _exercise(operation: Any, base_url: str) -> str | None:
    """Run the generated cases of one operation; the first finding, as text, or None."""

    @given(case=operation.as_strategy())
    @settings(max_examples=_MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"})

    try:
        run()
    except (
        Exception,
        BaseExceptionGroup,
    ) as exc:  # schemathesis reports each finding as an exception with its reproduction
        return f"{operation.label}: {exc}"
    return None


def test_every_operation_keeps_the_contract(service: str) -> None:
    operations = _operations(service)
    assert len(operations) >= 12
    findings = [finding for operation in operations if (finding := _exercise(operation, service)) is not None]
    assert findings == [], "\n\n".join(findings)
