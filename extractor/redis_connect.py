"""Redis clients from a URL: the one place that knows how extractor connects to Redis.

``EXTRACTOR_REDIS_URL`` takes three forms:

- ``redis://host:6379/0`` (``rediss://`` for TLS, ``unix:///path.sock``): one Redis. A TCP URL may name any node
  of a **Redis Cluster**: the node is asked once, at start (``INFO cluster``), and a cluster client seeded from it is
  built instead. ``redis+cluster://host:6379`` (``rediss+cluster://``) says so without asking.
- ``redis+sentinel://[[user]:password@]host:26379[,host2:26379...]/<master name>[/<db>]``: the master that the
  Sentinels name, found again after a failover. The password is the master's; ``?sentinel_password=`` is the
  Sentinels' own, if they have one.

Every client reconnects and sends a command again when a pooled connection was closed under it (a restart, a
failover), twice, with a short backoff; past that the command fails and the caller answers 503.

The client is typed as ``Redis`` whatever it is. redis-py's ``RedisCluster`` has the same command methods (the same
command mixins), pipelines, transactions with WATCH, scripts and pub/sub, and extractor uses nothing else; the
cluster suite (tests/integration/test_redis_cluster.py) runs the registry, the cache and batches on a real cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.typing import EncodableT, KeyT, ScriptTextT

from extractor.errors import InvalidInputError

__all__ = ["connect", "is_cluster", "reconnecting"]

log = logging.getLogger(__name__)

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_SENTINEL_SCHEME = "redis+sentinel"
_ASK_TIMEOUT_S = 2.0
_DEFAULT_SENTINEL_PORT = 26379


def reconnecting() -> dict[str, Any]:
    """Client options: a pooled connection that Redis closed (a restart, a failover) is reopened and the command
    sent again, rather than the request failing; redis-py's asyncio client retries nothing unless told to."""
    return {"retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2), "retry_on_error": [RedisConnectionError]}


def connect(
    url: str,
    *,
    decode_responses: bool = True,
    socket_timeout: float | None = 2,
    socket_connect_timeout: float | None = 2,
) -> Redis:
    """A client of the Redis, cluster or Sentinel-managed master that ``url`` names (see the module's doc).

    The defaults are the service's client: strings in and out, short timeouts. The writes are idempotent (SET, Lua
    scripts guarded by the item's status, WATCHed registrations), except the export log's XADD, which a retry can at
    worst append twice. The queue asks for bytes and no socket timeout (it blocks on BLMOVE)."""
    options: dict[str, Any] = {
        "decode_responses": decode_responses,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        **reconnecting(),
    }
    scheme = urlsplit(url).scheme
    if scheme == _SENTINEL_SCHEME:
        return _sentinel_master(url, options)
    if scheme in _CLUSTER_SCHEMES:
        return _cluster(_CLUSTER_SCHEMES[scheme] + url[len(scheme) :], options)
    if scheme in ("redis", "rediss") and is_cluster(url):
        return _cluster(url, options)
    return Redis.from_url(url, **options)


def is_cluster(url: str) -> bool:
    """Whether the node at ``url`` is part of a Redis Cluster (it says so in ``INFO cluster``).

    Asked once per client, at start, with a short timeout. A node that does not answer is taken for a single Redis
    (the service starts anyway and answers 503 until Redis is back; a cluster should then be named with
    ``redis+cluster://``), and so is one that refuses INFO to this user."""
    try:
        with SyncRedis.from_url(url, socket_timeout=_ASK_TIMEOUT_S, socket_connect_timeout=_ASK_TIMEOUT_S) as node:
            info = cast("dict[str, Any]", node.info("cluster"))
    except RedisError as exc:
        log.warning("could not ask %s whether it is a cluster node (%s): taking it for a single Redis", _safe(url), exc)
        return False
    return bool(int(info.get("cluster_enabled", 0)))


def _cluster(url: str, options: dict[str, Any]) -> Redis:
    parts = urlsplit(url)
    if parts.path.strip("/") not in ("", "0"):
        raise InvalidInputError(f"{_safe(url)} names database {parts.path.strip('/')}; a Redis Cluster has only 0")
    client = _Cluster.from_url(url, **options)
    return cast("Redis", client)  # the same command API: see the module's doc


class _Cluster(RedisCluster):
    """redis-py's cluster client, with scripts that a cluster pipeline can carry (``_ClusterScript``)."""

    def register_script(self, script: ScriptTextT) -> AsyncScript:  # type: ignore[override]  # typeshed: sync Script
        return _ClusterScript(self, script)


class _ClusterScript(AsyncScript):
    """In a cluster pipeline a script goes as EVAL with its body. redis-py's single-node pipeline loads the scripts it
    carries before sending them; its cluster pipeline does not, so an EVALSHA would fail the whole pipeline on a
    node that never saw the script (every node at first, and a replica just promoted). Redis caches an EVAL's
    compiled body too: what this costs is the script's bytes on the wire."""

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Redis | RedisCluster | None = None,
    ) -> Any:
        if isinstance(client, ClusterPipeline):
            names = list(keys or [])
            # Queued, not awaited: awaiting a cluster pipeline (re)initialises it and empties its queue.
            return client.eval(self.script, len(names), *names, *(args or ()))
        return await super().__call__(keys, args, client)


def _sentinel_master(url: str, options: dict[str, Any]) -> Redis:
    """``redis+sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/<db>][?sentinel_password=]``."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    path = [segment for segment in parts.path.split("/") if segment]
    if not hosts or not 1 <= len(path) <= 2 or (len(path) == 2 and not path[1].isdigit()):
        raise InvalidInputError(
            f"{_safe(url)}: a Sentinel URL is redis+sentinel://[:password@]host:26379[,host2:26379]/<master name>[/db]"
        )
    sentinel_password = parse_qs(parts.query).get("sentinel_password", [None])[0]
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        [_host_port(host) for host in hosts.split(",")],
        sentinel_kwargs={
            "socket_timeout": _ASK_TIMEOUT_S,
            "socket_connect_timeout": _ASK_TIMEOUT_S,
            "password": sentinel_password,
            "decode_responses": True,
        },
        username=unquote(username) or None,
        password=unquote(password) or None,
        db=int(path[1]) if len(path) == 2 else 0,
        **options,
    )
    return cast("Redis", sentinels.master_for(path[0], redis_class=_SentinelMaster))


class _SentinelMaster(Redis):
    """The master's client; closing it closes the connections to the Sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager: Sentinel = self.connection_pool.sentinel_manager  # type: ignore[attr-defined]
        for sentinel in manager.sentinels:
            await sentinel.aclose()


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    return (host, int(port)) if colon else (text, _DEFAULT_SENTINEL_PORT)


def _safe(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
