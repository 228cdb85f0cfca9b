"""What /admin/status shows: the config being served, the last reload, routes
with each deployment's health (cooldowns, error rate, latency, calls in flight),
providers, local model queues, cache, limits and Redis. No secrets: keys are
counted, providers show their kind and model names only; keys by name with
their limits (names are what logs and metrics show too)."""

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
            "price_per_million_tokens": d.price_per_million_tokens,
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
        "last_applied_reload": None if reloader is None or reloader.last_applied is None else {
            **reloader.last_applied.as_dict(), "diff": reloader.last_diff},
        "models": {
            m.name: {"aliases": list(m.aliases), "space": m.space, "strategy": m.strategy, "matryoshka": m.matryoshka,
                     "hedge_after_ms": round(m.hedge_after_s * 1000) if m.hedge_after_s is not None else None,
                     "unsafe_mixed_spaces": m.unsafe_mixed_spaces,
                     "deployments": [_deployment(runtime, m.name, d, now) for d in m.deployments]}
            for m in config.models.values()},
        "providers": {name: {"kind": p.kind} for name, p in config.providers.items()},
        "local_models": {f"{name}/{model}": {"queue_inputs": queue.queue_inputs,
                                             "batch_bounds": list(queue.batch_bounds),
                                             "batch_sizes": list(queue.batch_sizes),
                                             "batched_inputs": queue.batched_inputs}
                         for name, provider in runtime.providers.items()
                         for model, queue in provider.stats().items()},
        "keys": {"count": len(config.keys), "admin": len(config.admin_keys),
                 "limits": {k.name: {"rpm": k.limits.rpm, "tpm": k.limits.tpm, "concurrency": k.limits.concurrency,
                                     "tokens_per_day": k.limits.tokens_per_day, "max_inputs": k.limits.max_inputs}
                            for k in config.keys}},
        "usage": {"backend": services.usage.backend, "flush_s": services.usage.flush_s},
        "cache": {"backend": services.started_with.cache.backend, "entries": len(memory) if memory else 0,
                  "bytes": memory.size_bytes if memory else 0, "max_bytes": services.started_with.cache.max_bytes,
                  "in_flight_inputs": len(services.cache.flights)},
        "limits": {"backend": services.started_with.limits.backend,
                   "on_redis_error": services.started_with.limits.on_redis_error},
        "redis": None if services.redis is None else {"up": not services.redis.down,
                                                      "failures": services.redis.failures},
    }

