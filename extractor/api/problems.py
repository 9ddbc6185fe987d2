"""The problem documents (RFC 9457) a route can answer, for its OpenAPI entry. ``app.py`` maps errors to them."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Problem", "problems"]

_WHEN = {
    400: "Malformed request",
    401: "Missing or unknown API key (when API keys are configured)",
    404: "Unknown schema, version or batch",
    409: "Conflict with a bundled schema's name",
    413: "Over a size limit",
    422: "Invalid schema, mismatched Idempotency-Key, duplicate document id, or no valid output",
    502: "The model endpoint failed or refused the request",
    503: "Model or Redis unavailable, or the model is rate-limited; see Retry-After",
    504: "The model endpoint did not answer in time",
}


class Problem(BaseModel):
    """An RFC 9457 problem document. Members beside these carry details: ``pointer``, ``errors``, ``output``..."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Stable, one per kind of problem.", examples=["schema-not-found"])
    title: str = Field(examples=["Schema not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["no schema named 'recept'"])


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for the problem documents of ``statuses`` (401 and 503 are always possible)."""
    return {
        status: ResponseSpec(
            Problem, description=_WHEN[status], media_type="application/problem+json", generate_examples=False
        )
        for status in sorted({401, 503, *statuses})
    }
