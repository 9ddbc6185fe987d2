"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from extractor.errors import ExtractorError
from extractor.services import Services

__all__ = ["HealthController"]

_CHECK_TIMEOUT_S = 3.0


async def _check_redis(services: NamedDependency[Services]) -> str:
    if (problem := services.store_problem()) is not None:
        return problem
    await services.redis.ping()
    return "ok"


async def _check_model(services: NamedDependency[Services]) -> str:
    await services.model.ping()  # a supervised child that is down fails at once, with the supervisor's sentence
    return "ok"


_CHECKS = {"redis": _check_redis, "model": _check_model}


class HealthController(Controller):
    tags = ["health"]
    include_in_schema = True

    @get("/healthz", summary="Liveness: the process answers")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", summary="Readiness: Redis and the model endpoint answer")
    async def readyz(self, services: NamedDependency[Services]) -> Response[dict[str, object]]:
        results: dict[str, str] = {}
        for name, check in _CHECKS.items():
            try:
                results[name] = await asyncio.wait_for(check(services), _CHECK_TIMEOUT_S)
            except ExtractorError as exc:
                results[name] = exc.detail
            except TimeoutError:
                results[name] = f"no answer within {_CHECK_TIMEOUT_S:.0f} s"
            except Exception as exc:
                results[name] = f"{type(exc).__name__}: {exc}"
        ready = all(v == "ok" for v in results.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": results}
        return Response(body, status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE)
