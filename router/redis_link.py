"""The Redis connection replicas share their limits and cache through, and
whether it is up.

When a call fails, the outage is logged once, and callers skip Redis for a
second (`usable` is false) instead of each paying a timeout; the next call
after that tries again, so the router recovers by itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry  # the asyncio one: the sync class never retries an awaited call
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from router.settings import RedisConfig

ERRORS = (RedisError, OSError, asyncio.TimeoutError)
_RETRY_AFTER_S = 0.25   # after a failure, calls skip Redis this long rather than each wait for it
_POOL_SIZE = 32


class RedisLink:
    def __init__(self, config: RedisConfig, log: Any) -> None:
        # A bounded pool: a burst of requests queues for a connection (each call takes
        # ~0.1 ms) instead of opening hundreds at once and timing out on the connects.
        # After a Redis restart every pooled connection is stale: one that sat idle for a second is
        # checked (PING) before use, and one immediate retry covers the rest.
        pool = BlockingConnectionPool.from_url(
            config.url, max_connections=_POOL_SIZE, timeout=config.timeout_s, socket_timeout=config.timeout_s,
            socket_connect_timeout=config.timeout_s, retry=Retry(NoBackoff(), 1), health_check_interval=1)
        self.client = Redis(connection_pool=pool)
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
        await self.client.connection_pool.disconnect()
