"""Every Redis key extractor writes, in one place. All keys start with ``extractor:``.

Redis Cluster runs a script or a transaction only on keys of one hash slot, and a key's slot is that of the part
between its first ``{`` and the next ``}`` when it has one (a hash tag). So the keys that one script or transaction
touches share a tag: a tenant's schema keys ``{<tenant>}`` (a registration writes three of them at once), a batch's
keys ``{<batch id>}`` (each item's transition is a script over the batch's record, items and results), the batch
queue's SAQ keys ``{extractor:batches}``. Everything else is read and written one key at a time and carries no tag,
so the cache spreads over every shard. A tag is only a name: on a single Redis it changes nothing.
"""

from __future__ import annotations

__all__ = [
    "BATCH_CANCELS",
    "BATCH_QUEUE",
    "PREFIX",
    "SHARED_TENANT",
    "STORE_EPOCH",
    "batch",
    "batch_doc_ids",
    "batch_documents",
    "batch_idempotency",
    "batch_items",
    "batch_results",
    "cache",
    "probe",
    "rate",
    "requests_in_flight",
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
    return f"{PREFIX}:{{{tenant}}}:schemas"


def schema_meta(tenant: str, name: str) -> str:
    """Hash: ``latest`` version number, ``retired`` flag."""
    return f"{PREFIX}:{{{tenant}}}:schema:{name}"


def schema_version(tenant: str, name: str, version: int) -> str:
    """String: one immutable schema version as JSON."""
    return f"{PREFIX}:{{{tenant}}}:schema:{name}:v{version}"


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
    return f"{PREFIX}:batch:{{{batch_id}}}"


def batch_items(batch_id: str) -> str:
    """Hash: item index -> item status."""
    return f"{PREFIX}:batch:{{{batch_id}}}:items"


def batch_results(batch_id: str) -> str:
    """Hash: item index -> result JSON."""
    return f"{PREFIX}:batch:{{{batch_id}}}:results"


def batch_documents(batch_id: str) -> str:
    """List: the documents of a batch as JSON ``{"id", "text"}``, in submission order (read by index range)."""
    return f"{PREFIX}:batch:{{{batch_id}}}:docs"


def batch_doc_ids(batch_id: str) -> str:
    """List: the document ids of a batch, in submission order (the results stream reads ids without texts)."""
    return f"{PREFIX}:batch:{{{batch_id}}}:ids"


BATCH_QUEUE = f"{{{PREFIX}:batches}}"
"""Name of the SAQ queue of batch chunks. SAQ's keys are ``saq:<name>:...``, ``saq:job:<name>:<key>`` and
``saq:abort:saq:job:<name>:<key>``, and its scripts and transactions touch several of them: the braces put them all
in one slot of a cluster (the queue holds chunks, not documents: one shard carries it easily)."""

BATCH_CANCELS = f"{PREFIX}:batches:cancelled"
"""Pub/sub channel: the id of each batch as it is cancelled, so that workers stop its items at once."""


def batch_idempotency(tenant: str, key: str) -> str:
    """String: batch id and body digest for one Idempotency-Key."""
    return f"{PREFIX}:{tenant}:idempotency:{key}"


def rate(tenant: str) -> str:
    """String: the tenant's GCRA theoretical arrival time (ms). Tagged with the tenant: one script reads it with
    ``requests_in_flight``."""
    return f"{PREFIX}:{{{tenant}}}:rate"


def requests_in_flight(tenant: str) -> str:
    """Sorted set: the tenant's requests being answered, scored by the time each lease ends (a crashed process's
    leases lapse on their own)."""
    return f"{PREFIX}:{{{tenant}}}:inflight"


STORE_EPOCH = f"{PREFIX}:store:epoch"
"""String: when this Redis's data begins (epoch seconds), set once if absent. A batch id older than it whose data
is missing was lost with the data (a restart without persistence, a flush), not never created."""
