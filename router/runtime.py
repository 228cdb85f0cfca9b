"""One config snapshot made live: its providers, keys and routes.

A request reads `Services.runtime` once and uses that snapshot throughout,
so swapping in a new one (a reload) never mixes two configs in one request.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.auth import KeyStore
from router.cache import Cache, MemoryStore, RedisStore
from router.config import Config
from router.limits import Limiter
from router.limits.memory import MemoryBackend
from router.limits.redis import RedisBackend
from router.providers import KINDS, Provider
from router.providers.base import estimate_tokens
from router.redis_link import RedisLink
from router.routing import Routes


@dataclass(frozen=True)
class Runtime:
    config: Config
    keys: KeyStore
    routes: Routes
    providers: dict[str, Provider]

    @classmethod
    async def start(cls, config: Config) -> Runtime:
        providers: dict[str, Provider] = {}
        try:
            for name, p in config.providers.items():
                providers[name] = KINDS[p.kind].create(name, p.settings)
            for provider in providers.values():
                if warm := getattr(provider, "warm", None):
                    await warm()  # load and run local models before the first request
        except BaseException:
            for provider in providers.values():
                await provider.aclose()
            raise
        return cls(config, KeyStore(config.keys), Routes(config, providers), providers)

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


@dataclass
class Services:
    """What the app holds for its lifetime: the live runtime, the cache, the limiter and Redis."""

    runtime: Runtime
    cache: Cache
    limiter: Limiter
    redis: RedisLink | None
    log: object

    @classmethod
    async def start(cls, config: Config, log: object) -> Services:
        redis = RedisLink(config.redis, log) if config.uses_redis else None
        if redis is not None and not await redis.ping():
            log.warning("redis is not reachable at start; the router serves and keeps trying",
                        on_redis_error=config.limits.on_redis_error)
        memory = (MemoryStore(config.cache.max_bytes, config.cache.ttl_s)
                  if config.cache.backend in ("memory", "redis") else None)
        shared = RedisStore(redis, config.cache.ttl_s) if config.cache.backend == "redis" and redis else None
        if config.limits.backend == "redis" and redis is not None:
            # A lease outlives the longest request, so a crashed replica's concurrency slots come back.
            backend = RedisBackend(redis, on_error=config.limits.on_redis_error,
                                   lease_s=config.server.request_timeout_s + 30)
        else:
            backend = MemoryBackend()
        try:
            runtime = await Runtime.start(config)
        except BaseException:
            if redis is not None:
                await redis.aclose()
            raise
        return cls(runtime, Cache(memory, shared), Limiter(backend, estimate_tokens), redis, log)

    async def aclose(self) -> None:
        await self.runtime.aclose()
        if self.redis is not None:
            await self.redis.aclose()
