"""One config snapshot made live: its providers, keys and routes.

A request reads `Services.runtime` once and uses that snapshot throughout,
so swapping in a new one (a reload) never mixes two configs in one request.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.auth import KeyStore
from router.cache import VectorCache
from router.config import Config
from router.limits import MemoryLimiter
from router.providers import KINDS, Provider
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
    """What the app holds for its lifetime: the live runtime, the cache and the limiter."""

    runtime: Runtime
    cache: VectorCache | None
    limiter: MemoryLimiter
    log: object

    @classmethod
    async def start(cls, config: Config, log: object) -> Services:
        cache = (VectorCache(config.cache.max_bytes, config.cache.ttl_s)
                 if config.cache.backend == "memory" else None)
        return cls(await Runtime.start(config), cache, MemoryLimiter(), log)

    async def aclose(self) -> None:
        await self.runtime.aclose()
