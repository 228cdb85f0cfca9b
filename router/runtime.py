"""One config snapshot made live: its providers, keys and routes.

A request reads `Services.runtime` once and uses that snapshot throughout,
so swapping in a new one (a reload) never mixes two configs in one request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from router.auth import KeyStore
from router.cache import Cache, MemoryStore, RedisStore
from router.deployment_caps import SharedCaps
from router.limits import Limiter
from router.limits.memory import MemoryBackend
from router.limits.redis import RedisBackend
from router.outcome import RequestIds
from router.providers import KINDS, Provider
from router.providers.base import estimate_tokens
from router.redis_link import RedisLink
from router.routing import Observer, Routes
from router.settings import Config, KeyConfig
from router.traffic import Traffic
from router.usage import Usage

if TYPE_CHECKING:
    from router.metrics import Metrics
    from router.observability import ScrubSecrets
    from router.reload import Reloader


@dataclass(frozen=True)
class Runtime:
    config: Config
    keys: KeyStore
    admins: KeyStore
    routes: Routes
    providers: dict[str, Provider]
    loaded_at: float = field(default_factory=time.time)

    @classmethod
    async def start(cls, config: Config, previous: Runtime | None = None,
                    shared_caps: SharedCaps | None = None) -> Runtime:
        """Build a snapshot; a provider whose settings did not change is taken over from `previous`
        (its HTTP connections and loaded models with it). New local models are warmed here, before
        the snapshot can serve."""
        providers: dict[str, Provider] = {}
        fresh: list[Provider] = []
        try:
            for name, p in config.providers.items():
                if previous is not None and previous.config.providers.get(name) == p:
                    providers[name] = previous.providers[name]
                else:
                    providers[name] = KINDS[p.kind].create(name, p.settings)
                    fresh.append(providers[name])
            for provider in fresh:
                await provider.warm()  # load and run local models before the first request
        except BaseException:
            for provider in fresh:
                await provider.aclose()
            raise
        admins = KeyStore(KeyConfig(k.name, k.sha256, models=()) for k in config.admin_keys)
        routes = Routes(config, providers, previous.routes if previous is not None else None,
                        shared_caps=shared_caps)
        return cls(config, KeyStore(config.keys), admins, routes, providers)

    async def aclose(self, keep: Runtime | None = None) -> None:
        """Close the providers that `keep` (the snapshot replacing this one) does not use."""
        kept = {id(p) for p in keep.providers.values()} if keep is not None else set()
        for provider in self.providers.values():
            if id(provider) not in kept:
                await provider.aclose()


@dataclass
class Services:
    """What the app holds for its lifetime: the live runtime (swapped on reload), the cache,
    the limiter, Redis, metrics and the log. Cache, limiter and Redis come from the config
    the process started with (`started_with`); changing them takes a restart."""

    runtime: Runtime
    cache: Cache
    limiter: Limiter
    redis: RedisLink | None
    log: Any
    metrics: Metrics
    started_with: Config
    telemetry: Observer
    usage: Usage
    traffic: Traffic = field(default_factory=Traffic)
    request_ids: RequestIds = field(default_factory=RequestIds)
    reloader: Reloader | None = None
    scrub: ScrubSecrets | None = None   # the log's secret scrubber, told the secrets of each new config

    @classmethod
    async def start(cls, config: Config, log: Any, metrics: Metrics, telemetry: Observer) -> Services:
        redis = RedisLink(config.redis, log) if config.uses_redis else None
        if redis is not None and not await redis.ping():
            log.warning("redis is not reachable at start; the router serves and keeps trying",
                        on_redis_error=config.limits.on_redis_error)
        memory = (MemoryStore(config.cache.max_bytes, config.cache.ttl_s)
                  if config.cache.backend in ("memory", "redis") else None)
        shared = RedisStore(redis, config.cache.ttl_s) if config.cache.backend == "redis" and redis else None
        shared_caps = None
        if config.limits.backend == "redis" and redis is not None:
            # A lease outlives the longest request, so a crashed replica's concurrency slots come back.
            backend: RedisBackend | MemoryBackend = RedisBackend(redis, on_error=config.limits.on_redis_error,
                                   lease_s=config.server.request_timeout_s + 30)
            shared_caps = SharedCaps(redis, lease_s=config.server.request_timeout_s + 30)
        else:
            backend = MemoryBackend()
        try:
            runtime = await Runtime.start(config, shared_caps=shared_caps)
        except BaseException:
            if redis is not None:
                await redis.aclose()
            raise
        usage = Usage(redis if config.usage_in_redis else None, retention_days=config.usage.retention_days,
                      flush_s=config.usage.flush_s, log=log)
        return cls(runtime, Cache(memory, shared), Limiter(backend, estimate_tokens), redis, log, metrics, config,
                   telemetry, usage)

    async def ready(self) -> tuple[bool, str]:
        """Whether this process should get traffic, and if not why."""
        if self.redis is not None and not await self.redis.ping():
            return False, "Redis is unreachable"
        return True, "ok"

    async def aclose(self) -> None:
        if self.reloader is not None:
            await self.reloader.aclose()
        await self.runtime.aclose()
        await self.usage.aclose()  # what was counted since the last flush
        if self.redis is not None:
            await self.redis.aclose()
