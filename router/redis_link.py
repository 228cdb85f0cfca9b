"""The Redis connection replicas share their limits and cache through, and
whether it is up.

`redis.url` picks the topology, each through redis-py's own client:
`redis://` / `rediss://` / `unix://` a single server; `redis+cluster://host:port`
(or `rediss+cluster://`) a Redis Cluster, found from that one node;
`redis+sentinel://host:port[,host:port...]/SERVICE[/DB]` the master Sentinel names
for SERVICE, found again on every new connection, so a failover is followed.
Every script and pipeline command touches one key (or one hash tag), so all of
them run on a Cluster.

When a call fails, the outage is logged once, and callers skip Redis for a
second (`usable` is false) instead of each paying a timeout; the next call
after that tries again, so the router recovers by itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry  # the asyncio one: the sync class never retries an awaited call
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from router.settings import RedisConfig

ERRORS = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)
_RETRY_AFTER_S = 0.25   # after a failure, calls skip Redis this long rather than each wait for it
_POOL_SIZE = 32


class RedisLink:
    def __init__(self, config: RedisConfig, log: Any) -> None:
        self.client: Any = _client(config)
        self.cluster = isinstance(self.client, RedisCluster)
        self.prefix = config.prefix
        self.failures = 0  # calls that failed, for metrics
        self._log = log
        self._skip_until = 0.0
        self._down_since: float | None = None

    @property
    def usable(self) -> bool:
        return time.monotonic() >= self._skip_until

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, exc: BaseException, purpose: str) -> None:
        self.failures += 1
        now = time.monotonic()
        self._skip_until = now + _RETRY_AFTER_S
        if self._down_since is None:
            self._down_since = now
            self._log.error("redis unreachable", purpose=purpose, error=type(exc).__name__, detail=str(exc)[:200])

    def succeeded(self) -> None:
        self._skip_until = 0.0  # back: nobody skips it any more
        if self._down_since is not None:
            self._log.warning("redis reachable again", down_s=round(time.monotonic() - self._down_since, 1))
            self._down_since = None

    async def ping(self) -> bool:
        try:
            await self.client.ping()
        except ERRORS as exc:
            self.failed(exc, "ping")
            return False
        self.succeeded()
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
        if not self.cluster:
            await self.client.connection_pool.disconnect()


def _client(config: RedisConfig) -> Any:
    url, timeout = config.url, config.timeout_s
    timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    scheme = url.split("://", 1)[0]
    if scheme in ("redis+cluster", "rediss+cluster"):
        # The cluster client finds every node from one, follows MOVED/ASK and re-reads the slot
        # map after a failover; its own retries cover a master's replacement.
        return RedisCluster.from_url(url.replace("+cluster", "", 1), max_connections=_POOL_SIZE,
                                     health_check_interval=1, **timeouts)
    if scheme == "redis+sentinel":
        parts = urlsplit(url)
        hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]) if ":" in h else 26379)
                 for h in parts.netloc.rsplit("@", 1)[-1].split(",")]
        path = [p for p in parts.path.split("/") if p]
        password = unquote(parts.password) if parts.password else None
        sentinel = Sentinel(hosts, sentinel_kwargs=timeouts, password=password,
                            db=int(path[1]) if len(path) > 1 else 0, **timeouts)
        return sentinel.master_for(path[0], retry=Retry(NoBackoff(), 1), health_check_interval=1)
    # A bounded pool: a burst of requests queues for a connection (each call takes
    # ~0.1 ms) instead of opening hundreds at once and timing out on the connects.
    # After a Redis restart every pooled connection is stale: one that sat idle for a second is
    # checked (PING) before use, and one immediate retry covers the rest.
    pool = BlockingConnectionPool.from_url(
        url, max_connections=_POOL_SIZE, timeout=timeout, retry=Retry(NoBackoff(), 1), health_check_interval=1,
        **timeouts)
    return Redis(connection_pool=pool)
