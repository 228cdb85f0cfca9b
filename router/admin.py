"""What /admin/status shows: the config being served, the last reload, routes
with each deployment's health (cooldowns, error rate, latency, calls in flight),
providers, local model queues, cache, limits and Redis. No secrets: keys are
counted, providers show their kind and model names only."""

from __future__ import annotations

import asyncio

from router.reload import iso
from router.runtime import Runtime, Services
from router.settings import Deployment


def _deployment(runtime: Runtime, model: str, d: Deployment, now: float) -> dict:
    state = runtime.routes.states[(model, d.provider, d.model)]
    return {"provider": d.provider, "kind": runtime.config.providers[d.provider].kind, "model": d.model,
            "space": d.space, "weight": d.weight,
            "caps": {"max_concurrency": d.max_concurrency, "rpm": d.rpm, "tpm": d.tpm},
            "health": state.health(now)}


def status(services: Services) -> dict:
    runtime, reloader = services.runtime, services.reloader
    config = runtime.config
    now = asyncio.get_running_loop().time()
    memory = services.cache.memory
    return {
        "config": {"version": config.version, "loaded_at": iso(runtime.loaded_at),
                   "path": str(reloader.path) if reloader else None},
        "last_reload": reloader.last.as_dict() if reloader and reloader.last else None,
        "models": {
            m.name: {"aliases": list(m.aliases), "space": m.space, "strategy": m.strategy, "matryoshka": m.matryoshka,
                     "hedge_after_ms": round(m.hedge_after_s * 1000) if m.hedge_after_s is not None else None,
                     "unsafe_mixed_spaces": m.unsafe_mixed_spaces,
                     "deployments": [_deployment(runtime, m.name, d, now) for d in m.deployments]}
            for m in config.models.values()},
        "providers": {name: {"kind": p.kind} for name, p in config.providers.items()},
        "local_models": {f"{name}/{model}": {"queue_inputs": queue.queue_inputs}
                         for name, provider in runtime.providers.items()
                         for model, queue in provider.stats().items()},
        "keys": {"count": len(config.keys), "admin": len(config.admin_keys)},
        "cache": {"backend": services.started_with.cache.backend, "entries": len(memory) if memory else 0,
                  "bytes": memory.size_bytes if memory else 0, "max_bytes": services.started_with.cache.max_bytes,
                  "in_flight_inputs": len(services.cache.flights)},
        "limits": {"backend": services.started_with.limits.backend,
                   "on_redis_error": services.started_with.limits.on_redis_error},
        "redis": None if services.redis is None else {"up": not services.redis.down,
                                                      "failures": services.redis.failures},
    }

