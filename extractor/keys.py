"""Every Redis key extractor writes, in one place. All keys start with ``extractor:``."""

from __future__ import annotations

__all__ = [
    "BATCH_CANCELS",
    "BATCH_QUEUE",
    "PREFIX",
    "SHARED_TENANT",
    "batch",
    "batch_doc_ids",
    "batch_documents",
    "batch_idempotency",
    "batch_items",
    "batch_results",
    "cache",
    "probe",
    "results_log",
    "schema_meta",
    "schema_names",
    "schema_version",
]

PREFIX = "extractor"
SHARED_TENANT = "_shared"
"""Namespace of the bundled schemas: visible to every tenant, shadowed by a tenant's own schema of that name."""


def schema_names(tenant: str) -> str:
    """Set of the schema names a tenant has registered."""
    return f"{PREFIX}:{tenant}:schemas"


def schema_meta(tenant: str, name: str) -> str:
    """Hash: ``latest`` version number, ``retired`` flag."""
    return f"{PREFIX}:{tenant}:schema:{name}"


def schema_version(tenant: str, name: str, version: int) -> str:
    """String: one immutable schema version as JSON."""
    return f"{PREFIX}:{tenant}:schema:{name}:v{version}"


def cache(tenant: str, digest: str) -> str:
    """String: one cached extraction result as JSON."""
    return f"{PREFIX}:{tenant}:cache:{digest}"


def results_log(tenant: str, schema_name: str) -> str:
    """Stream: recent ok results of one schema with their text, for ``extractor export`` (capped in length)."""
    return f"{PREFIX}:{tenant}:results:{schema_name}"


def probe(endpoint_digest: str) -> str:
    """String: the enforcement level probed for one endpoint and model."""
    return f"{PREFIX}:probe:{endpoint_digest}"


def batch(batch_id: str) -> str:
    """Hash: one batch record (schema, tenant, counts by status, times)."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_items(batch_id: str) -> str:
    """Hash: item index -> item status."""
    return f"{PREFIX}:batch:{batch_id}:items"


def batch_results(batch_id: str) -> str:
    """Hash: item index -> result JSON."""
    return f"{PREFIX}:batch:{batch_id}:results"


def batch_documents(batch_id: str) -> str:
    """List: the documents of a batch as JSON ``{"id", "text"}``, in submission order (read by index range)."""
    return f"{PREFIX}:batch:{batch_id}:docs"


def batch_doc_ids(batch_id: str) -> str:
    """List: the document ids of a batch, in submission order (the results stream reads ids without texts)."""
    return f"{PREFIX}:batch:{batch_id}:ids"


BATCH_QUEUE = f"{PREFIX}:batches"
"""Name of the SAQ queue of batch chunks; SAQ prefixes its own keys with ``saq:<name>:`` (and ``saq:job:``)."""

BATCH_CANCELS = f"{PREFIX}:batches:cancelled"
"""Pub/sub channel: the id of each batch as it is cancelled, so that workers stop its items at once."""


def batch_idempotency(tenant: str, key: str) -> str:
    """String: batch id and body digest for one Idempotency-Key."""
    return f"{PREFIX}:{tenant}:idempotency:{key}"
