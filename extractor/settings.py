"""All configuration, read once from the environment (prefix ``EXTRACTOR_``) and injected, never imported as a global.

Flat names for what every deployment sets (``EXTRACTOR_REDIS_URL``, ``EXTRACTOR_MODEL_BASE_URL``,
``EXTRACTOR_MODEL_API_KEY``, ``EXTRACTOR_API_KEYS``); nested sections for tuning, set with a double underscore
(``EXTRACTOR_EXTRACTION__MAX_ATTEMPTS=2``, ``EXTRACTOR_JOBS__CONCURRENCY=64``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from extractor.limit_settings import LimitSettings
from extractor.vocabulary import EnforcementLevel, GroundingMode

__all__ = [
    "CacheSettings",
    "ExtractionSettings",
    "JobsSettings",
    "MetricsSettings",
    "ModelPrice",
    "RegistrySettings",
    "Settings",
    "api_key_table",
    "hash_api_key",
]

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def hash_api_key(key: str) -> str:
    """The form in which API keys are kept and compared: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def api_key_table(value: str) -> dict[str, str]:
    """``tenant:key,tenant2:sha256:<hex>`` as {hashed key: tenant}; anything that would silently change meaning
    (an empty entry, a space around a tenant or key, a key or tenant given twice) is a start-up error."""
    table: dict[str, str] = {}
    entries = [part.strip() for part in value.split(",")] if value.strip() else []
    for number, entry in enumerate(entries, start=1):
        tenant, sep, key = entry.partition(":")
        if not entry or not sep or not tenant or not key:
            raise ValueError(f"api key entry {number} ({entry[:12]!r}...) is not `tenant:key`")
        if tenant != tenant.strip() or key != key.strip():
            raise ValueError(f"api key entry {number} (tenant {tenant.strip()!r}): remove the spaces around `:`")
        if not _TENANT.match(tenant):
            raise ValueError(f"tenant {tenant!r}: letters, digits, `-` and `_`, not starting with `_` (reserved)")
        hashed = key if key.startswith("sha256:") else hash_api_key(key)
        if hashed in table:
            raise ValueError(f"tenants {table[hashed]!r} and {tenant!r} have the same API key: give each its own")
        if tenant in table.values():
            raise ValueError(f"tenant {tenant!r} is listed twice in EXTRACTOR_API_KEYS: one key per tenant")
        table[hashed] = tenant
    return table


class ExtractionSettings(BaseModel):
    max_attempts: int = Field(3, ge=1, le=10, description="Model calls per extraction, re-asks included.")
    token_budget: int = Field(16_000, ge=100, description="Prompt + completion tokens one extraction may spend.")
    max_tokens: int = Field(1024, ge=16, description="Completion tokens per model call.")
    max_text_chars: int = Field(200_000, ge=1, description="Longest document accepted (413 beyond).")
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int | None = 0
    grounding: GroundingMode = GroundingMode.ANNOTATE
    chunk_tokens: int | None = Field(
        None,
        ge=64,
        description="Most document tokens per model call; unset: as many as the model's context window leaves. "
        "A longer document is split into parts, extracted in parallel and merged.",
    )
    chunk_overlap_chars: int = Field(200, ge=0, description="Characters consecutive parts of a document share.")
    part_concurrency: int = Field(4, ge=1, le=64, description="Parts of one document extracted at a time.")
    logprobs: bool = Field(
        False,
        description="Ask the model endpoint for token log-probabilities, the main input of each value's "
        "`confidence` (OpenAI, vLLM and llama.cpp give them; with it the bundled model server keeps its logits).",
    )


class CacheSettings(BaseModel):
    ttl_s: int = Field(7 * 24 * 3600, ge=0, description="Lifetime of a cached `ok` result; 0 disables caching.")
    empty_ttl_s: int = Field(24 * 3600, ge=0, description="Lifetime of a cached `empty` result; 0 disables.")
    keep_results: int = Field(
        0, ge=0, description="Recent ok results (with their text) kept per schema for `extractor export`; 0: none."
    )


class RegistrySettings(BaseModel):
    max_schema_bytes: int = Field(64 * 1024, ge=256)
    max_depth: int = Field(32, ge=1, description="Deepest JSON nesting of a schema document.")
    max_properties: int = Field(500, ge=1, description="Most properties over the whole schema.")
    latest_ttl_s: float = Field(
        2.0,
        ge=0,
        description="How long an extraction may reuse which version `name` means (other processes' "
        "new versions show within this time).",
    )
    bundled_dir: Path | None = Field(None, description="Folder of bundled schemas; default: the package's own.")


class JobsSettings(BaseModel):
    concurrency: int = Field(16, ge=1, description="Concurrent model calls per worker.")
    max_documents: int = Field(10_000, ge=1)
    max_document_bytes: int = Field(1_000_000, ge=1)
    run_in_serve: bool = Field(True, description="Run a batch worker inside `extractor serve`.")
    chunk_size: int = Field(16, ge=1, le=256, description="Documents per queue job (fewer queue round trips).")
    transient_attempts: int = Field(5, ge=1, description="Tries per document on transient upstream errors.")
    retry_base_s: float = Field(0.5, ge=0, description="First backoff delay; doubles per try, or `Retry-After`.")
    retry_max_s: float = Field(30.0, ge=0, description="Longest backoff delay between tries of one document.")
    heartbeat_s: int = Field(10, ge=1, description="A job silent this long belongs to a dead worker: re-queued.")
    sweep_s: int = Field(5, ge=1, description="How often workers look for jobs of dead workers.")
    redeliveries: int = Field(10, ge=1, description="Times a job may be handed out again after a worker died.")
    ttl_s: int = Field(7 * 24 * 3600, ge=60, description="Lifetime of a batch's documents, state and results.")
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="`extractor worker` serves Prometheus metrics on this port (on `host`)."
    )


class ModelPrice(BaseModel):
    """What a model's tokens cost, per million, in the currency the dashboard should show."""

    input: float = Field(ge=0, description="Price of a million prompt (input) tokens.")
    output: float = Field(ge=0, description="Price of a million completion (output) tokens.")


class MetricsSettings(BaseModel):
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Model id -> price per million tokens, as JSON: "
        '`{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}`. A model not listed gets no cost metric.',
    )
    tenants: list[str] = Field(
        default_factory=list,
        description="The tenants that get a label of their own; others count as `other`. "
        "Empty: the first `max_label_values` tenants this process sees.",
    )
    schemas: list[str] = Field(
        default_factory=list,
        description="The schema names that get a label of their own (as for `tenants`).",
    )
    max_label_values: int = Field(
        20, ge=1, le=1000, description="Distinct tenants, schemas and models kept as labels when no list is given."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EXTRACTOR_", env_nested_delimiter="__", extra="ignore", protected_namespaces=()
    )

    redis_url: str | None = Field(None, description="Shared Redis; unset: `extractor serve` starts a bundled one.")
    data_dir: Path = Field(Path(".extractor"), description="Bundled Redis data and logs.")
    model_base_url: str | None = Field(None, description="OpenAI-compatible endpoint; unset: the bundled model.")
    model_identity: str | None = Field(
        None,
        description="What the result cache knows the endpoint by; unset: its base URL. Set it when the URL changes "
        "and the model behind it does not (a new port, a proxy); the bundled model's is its weights file.",
    )
    model_api_key: SecretStr = SecretStr("not-needed")
    model_name: str | None = Field(None, description="Model id; unset: the first one the endpoint lists.")
    model_timeout_s: float = Field(60.0, gt=0)
    model_idle_timeout_s: float = Field(
        30.0, gt=0, description="A streamed answer silent this long (the wait for its first piece included) fails."
    )
    stream_heartbeat_s: float = Field(
        10.0, gt=0, description="A streamed extraction with no event this long sends a comment line (`: ping`)."
    )
    model_max_retries: int = Field(2, ge=0, description="Network retries, owned by the model client alone.")
    redis_timeout_s: float = Field(
        2.0, gt=0, description="Longest wait for one Redis command or connection before answering 503."
    )
    model_enforcement: EnforcementLevel | None = Field(None, description="Skip probing and use this level.")
    model_context_tokens: int | None = Field(
        None,
        ge=256,
        description="The model's context window (prompt and answer); unset: the bundled server's, else what the "
        "endpoint reports, else 8192.",
    )
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="`tenant:key` pairs, comma-separated; a key may be given hashed as `sha256:<hex>`.",
    )
    host: str = "127.0.0.1"
    access_log: bool = Field(False, description="Log every request (costs ~10% of throughput; /metrics counts them).")
    port: int = 8000
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="`json`: one JSON object a line; `text`: for people; `auto`: text on a terminal, else json."
    )
    log_documents: bool = Field(
        False, description="Put each document's text in its request or batch item log line (debugging only)."
    )
    shutdown_grace_s: float = Field(
        25.0,
        ge=0,
        description="On SIGTERM, how long `extractor serve` finishes the requests in flight, and `extractor worker` "
        "the chunks it holds, before cancelling the rest (a worker hands its unfinished chunks back to the queue). "
        "Keep it under the orchestrator's kill timeout (Kubernetes' terminationGracePeriodSeconds, Compose's "
        "stop_grace_period). A worker inside `serve` hands its chunks back at once.",
    )

    extraction: ExtractionSettings = ExtractionSettings()
    cache: CacheSettings = CacheSettings()
    registry: RegistrySettings = RegistrySettings()
    jobs: JobsSettings = JobsSettings()
    metrics: MetricsSettings = MetricsSettings()
    limits: LimitSettings = LimitSettings()

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        """Accept ``tenant:key,tenant2:sha256:<hex>`` and keep only hashes, keyed by hash."""
        if isinstance(value, dict):
            return {k if k.startswith("sha256:") else hash_api_key(k): v for k, v in value.items()}
        if not isinstance(value, str):
            return value
        return api_key_table(value)
