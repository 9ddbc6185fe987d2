"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from extractor.answers import Health, Readiness
from extractor.errors import ExtractorError
from extractor.readiness import ReadinessChecks

__all__ = ["HealthController"]

log = logging.getLogger(__name__)

_CHECK_TIMEOUT_S = 3.0


async def _checked(check: Callable[[], Awaitable[str]]) -> str:
    try:
        return await asyncio.wait_for(check(), _CHECK_TIMEOUT_S)
    except ExtractorError as exc:
        return exc.detail
    except TimeoutError:
        return f"no answer within {_CHECK_TIMEOUT_S:.0f} s"
    except Exception as exc:  # its text may name hosts and ports: logged, not answered
        log.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
        return f"did not answer ({type(exc).__name__}); the service log has the details"


class HealthController(Controller):
    tags = ["health"]
    include_in_schema = True

    @get("/healthz", summary="Liveness: the process answers", operation_id="healthz")
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get("/readyz", summary="Readiness: Redis and the model endpoint answer", operation_id="readyz")
    async def readyz(self, readiness: NamedDependency[ReadinessChecks]) -> Response[Readiness]:
        checks = {"redis": readiness.check_store, "model": readiness.check_model}
        results = {name: await _checked(check) for name, check in checks.items()}
        ready = all(v == "ok" for v in results.values())
        body = Readiness(status="ready" if ready else "not ready", checks=results)
        return Response(body, status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE)
