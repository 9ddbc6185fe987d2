"""The ``limits`` section of the settings (``EXTRACTOR_LIMITS__...``): what one request, one tenant and one
process may take, and how fast the service gives up on a dependency that does not answer.

Its own module because several parts read it (the edge middleware, the model client, the rate limiter); it is
one nested section of ``Settings`` like the others.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["LimitSettings", "TenantLimits"]


class TenantLimits(BaseModel):
    """One tenant's request rate and requests in flight; unset (null): unlimited."""

    rate_per_s: float | None = Field(None, gt=0, description="Sustained requests per second (GCRA).")
    burst: int = Field(20, ge=1, description="Requests allowed at once above the sustained rate.")
    max_in_flight: int | None = Field(None, ge=1, description="Requests of the tenant being answered at once.")


class LimitSettings(BaseModel):
    request_deadline_s: float = Field(
        60.0,
        gt=0,
        description="Longest one HTTP request may take, model retries and re-asks included (504 after). Batch "
        "items are not bounded by it: they have their own retry policy.",
    )
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="Request line and headers together (431 beyond).")
    max_headers: int = Field(100, ge=8, description="Most request headers (431 beyond).")
    max_json_depth: int = Field(
        128, ge=8, le=512, description="Deepest nesting of any JSON a request carries (room for `registry.max_depth`)."
    )
    default: TenantLimits = Field(
        default_factory=TenantLimits, description="Every tenant's limits, unless `tenants` names it."
    )
    tenants: dict[str, TenantLimits] = Field(
        default_factory=dict,
        description='Per-tenant limits as JSON: `{"acme": {"rate_per_s": 5, "burst": 10, "max_in_flight": 4}}`.',
    )
    upstream_concurrency: int = Field(64, ge=1, description="Model calls in flight at once per process.")
    breaker_failures: int = Field(
        5,
        ge=1,
        description="Consecutive failed model calls (timeouts, refused connections, 5xx) that open the breaker.",
    )
    breaker_cooldown_s: float = Field(
        10.0, gt=0, description="While open, model calls fail at once (503); then one probe call is let through."
    )

    def for_tenant(self, tenant: str) -> TenantLimits:
        return self.tenants.get(tenant, self.default)
