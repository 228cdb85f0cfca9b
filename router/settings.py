"""The config's shape: frozen dataclasses, each field's default and its doc in one place.

`router.config` fills them from YAML; `router.config_reference` renders them as the
README's table. Nothing here reads files or knows a provider's wire format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from router.breaker import CooldownPolicy
from router.reader import choices, doc, not_negative, one_of, positive
from router.redact import secrets_in


def redis_url(value: str) -> str | None:
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        return None
    if scheme == "redis+sentinel":
        parts = urlsplit(value)
        if not parts.netloc or not [p for p in parts.path.split("/") if p]:
            return "a Sentinel URL is redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]"
        return None
    return "must be a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL"


def sha256_hex(value: str) -> str | None:
    return None if re.fullmatch(r"[0-9a-f]{64}", value) else "must be 64 lowercase hex characters (sha256 of the key)"


CACHE_BACKENDS = ("memory", "redis", "none")
LIMIT_BACKENDS = ("memory", "redis")
ON_REDIS_ERROR = ("allow", "deny")


@dataclass(frozen=True)
class ServerConfig:
    host: str = field(default="127.0.0.1", metadata=doc("where to listen (`serve --host` overrides)",
                                                        restart="server.host/port"))
    port: int = field(default=8080, metadata=doc("where to listen (`serve --port` overrides)",
                                                 restart="server.host/port",
                                                 check=lambda p: None if 0 <= p < 65536 else "must be 0-65535"))
    max_body_bytes: int = field(default=16 * 1024 * 1024, metadata=doc("larger bodies get 413", check=positive))
    max_inputs: int = field(default=2048, metadata=doc("items per request (a key's `limits.max_inputs` "
                                                       "may lower it)", check=positive))
    request_timeout_s: float = field(default=30.0, metadata=doc(
        "the deadline for a request's upstream part, retries included: the client gets its vectors or an "
        "ErrorData before it (504 when it passes)", check=positive))
    default_model: str | None = field(default=None, metadata=doc(
        "the model (a name or alias under `models`) that serves requests naming none: TEI's `/embed` and `/`",
        default="none: those get a 400"))
    header_timeout_s: float = field(default=10.0, metadata=doc(
        "a connection that has not sent a request's complete headers within this is closed", check=positive,
        restart=True))
    keepalive_timeout_s: float = field(default=5.0, metadata=doc(
        "an idle keep-alive connection is closed after this", check=positive, restart=True))
    max_connections: int = field(default=1024, metadata=doc(
        "open connections; a request on one more gets a fast 503 `too_many_connections` and is closed "
        "(keep it under the process's file-descriptor limit, `ulimit -n`)", check=positive, restart=True))


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: str = field(metadata=doc("the wire format; the fields below it depend on it", kind="kind"))
    settings: Any = None  # the provider module's own frozen settings


@dataclass(frozen=True)
class Deployment:
    provider: str = field(metadata=doc("a name under `providers`"))
    model: str = field(metadata=doc("the model's name at that provider"))
    weight: float = field(default=1.0, metadata=doc("share of calls under `strategy: weighted`", check=positive))
    space: str = field(default="", metadata=doc(
        "the embedding space its vectors live in; must be the model's", default="the model's `space`"))
    max_concurrency: int | None = field(default=None, metadata=doc(
        "calls in flight to this deployment (across replicas with `limits.backend: redis`, else per process); "
        "more wait for a slot or go to another deployment",
        check=positive))
    rpm: int | None = field(default=None, metadata=doc(
        "calls per minute to this deployment (across replicas with `limits.backend: redis`, else per process)",
        check=positive))
    tpm: int | None = field(default=None, metadata=doc("tokens per minute to this deployment (counted as `rpm`)",
                                                       check=positive))
    price_per_million_tokens: float | None = field(default=None, metadata=doc(
        "USD per million tokens it computes, for `/admin/usage`'s `cost_usd`", kind="number",
        default="the model's", check=not_negative))
    coalesce_ms: float | None = field(default=None, metadata=doc(
        "share upstream calls among concurrent requests (see the provider's `coalesce_ms`); 0 turns it off "
        "for this deployment", kind="number (ms)", default="the provider's", check=not_negative))


@dataclass(frozen=True)
class ModelConfig:
    name: str
    space: str = field(metadata=doc(
        "the embedding space of its deployments' vectors; the cache is keyed by it", default="the model's name"))
    strategy: str = field(metadata=doc("how a call picks a deployment: in order; at random by `weight`; "
                                       "fewest calls in flight; lowest recent latency",
                                       kind="strategy", default="`priority`"))
    deployments: tuple[Deployment, ...] = field(metadata=doc(
        "where the model is served, all of one space; see `deployments[]` below", kind="list"))
    aliases: tuple[str, ...] = field(default=(), metadata=doc("other names clients may send", kind="list"))
    matryoshka: bool = field(default=False, metadata=doc(
        "serve `dimensions` by truncating and renormalising where the API lacks the parameter"))
    max_attempts: int | None = field(default=None, metadata=doc(
        "calls per chunk for this model", default="`routing.max_attempts`", check=positive))
    hedge_after_s: float | None = field(default=None, metadata=doc(
        "after this many ms without an answer, send the chunk to a second deployment too; the first answer "
        "wins and the other call is cancelled", name="hedge_after_ms", kind="int (ms)", default="off"))
    unsafe_mixed_spaces: bool = field(default=False, metadata=doc(
        "allow deployments of different `space`s under one name: their vectors are not comparable, so "
        "mixing them corrupts vector stores; logged and warned about at every load"))
    price_per_million_tokens: float | None = field(default=None, metadata=doc(
        "USD per million tokens computed by its deployments (a deployment may set its own); cache hits cost 0",
        kind="number", default="none (cost 0)", check=not_negative))


@dataclass(frozen=True)
class RoutingConfig:
    max_attempts: int = field(default=4, metadata=doc(
        "calls per chunk, over all deployments, within the request deadline; retried on 429, 5xx, "
        "timeouts and broken connections, never on 400/401/403/404", check=positive))
    backoff_s: float = field(default=0.1, metadata=doc(
        "before a chunk goes back to a deployment that failed it: a random wait up to this, doubling with "
        "each attempt (full jitter), never shorter than the upstream's Retry-After; another deployment is "
        "tried at once", check=positive))
    backoff_max_s: float = field(default=5.0, metadata=doc("the cap of that doubling", check=positive))
    max_retry_after_s: float = field(default=60.0, metadata=doc(
        "the longest pause an upstream's Retry-After (or x-ratelimit-reset) can put on a deployment; a "
        "reload that changes the deployment or its provider ends the pause", check=positive))
    cooldown: CooldownPolicy = field(default_factory=CooldownPolicy, metadata=doc(
        "the circuit breaker; see `routing.cooldown` below", kind="mapping"))


@dataclass(frozen=True)
class KeyLimits:
    rpm: int | None = field(default=None, metadata=doc(
        "requests per minute (a token bucket: bursts to the limit, then refills evenly)", check=positive))
    tpm: int | None = field(default=None, metadata=doc(
        "tokens per minute: estimated before the call, settled with the real count after", check=positive))
    concurrency: int | None = field(default=None, metadata=doc("requests in flight", check=positive))
    max_inputs: int | None = field(default=None, metadata=doc(
        "items per request for this key (not in `model_limits`)", default="`server.max_inputs`", check=positive))
    tokens_per_day: int | None = field(default=None, metadata=doc(
        "a token budget per UTC day; the 429's Retry-After runs to midnight UTC", check=positive))


@dataclass(frozen=True)
class KeyConfig:
    name: str = field(metadata=doc("shown in logs and metrics instead of the key"))
    sha256: str = field(metadata=doc("sha256 of the key, 64 lowercase hex; `embeddings-router keys new NAME` "
                                     "makes a key and its entry", kind="hex", check=sha256_hex))
    models: tuple[str, ...] = field(default=("*",), metadata=doc("the model names or globs the key may use",
                                                                 kind="list"))
    limits: KeyLimits = field(default_factory=KeyLimits, metadata=doc(
        "429 with Retry-After and OpenAI's x-ratelimit-* headers; see `keys[].limits` below", kind="mapping"))
    # (model glob, limits): counted per matching model, on top of the key's own limits
    model_limits: tuple[tuple[str, KeyLimits], ...] = field(default=(), metadata=doc(
        "`GLOB: {rpm, tpm, concurrency, tokens_per_day}`: limits per model, counted on top of the key's own; "
        "the first matching glob applies", kind="mapping", default="none"))


@dataclass(frozen=True)
class AdminKeyConfig:
    """A key for /admin/*; it cannot call the embeddings API (and a user key cannot call /admin)."""

    name: str = field(metadata=doc("shown in logs"))
    sha256: str = field(metadata=doc("sha256 of the key; an admin key cannot call the API and an API key "
                                     "cannot call `/admin/*`", kind="hex", check=sha256_hex))


@dataclass(frozen=True)
class CacheConfig:
    backend: str = field(default="memory", metadata=doc(
        "the per-input vector cache: this process; Redis (shared by replicas) behind this process's memory; "
        "off", kind=choices(*CACHE_BACKENDS), check=one_of(*CACHE_BACKENDS)))
    max_bytes: int = field(default=256 * 1024 * 1024, metadata=doc(
        "the in-process level's bound (bound Redis with its own `maxmemory` + `allkeys-lru`)", check=positive))
    ttl_s: float = field(default=86400.0, metadata=doc("an entry's lifetime, in both levels", check=positive))


@dataclass(frozen=True)
class LimitsConfig:
    backend: str = field(default="memory", metadata=doc(
        "where keys' limits are counted: this process, or Redis, exact across replicas "
        "(`serve --workers N` needs `redis`)", kind=choices(*LIMIT_BACKENDS), check=one_of(*LIMIT_BACKENDS)))
    on_redis_error: str = field(default="allow", metadata=doc(
        "while Redis is unreachable: serve unchecked, or answer 503 `limiter_unavailable`",
        kind=choices(*ON_REDIS_ERROR), check=one_of(*ON_REDIS_ERROR)))


@dataclass(frozen=True)
class RedisConfig:
    url: str = field(default="redis://127.0.0.1:6379/0", metadata=doc(
        "the shared Redis, for `cache`, `limits` or `usage` in Redis: `redis://` (or `rediss://`, `unix://`) "
        "one server; `redis+cluster://HOST:PORT` a Redis Cluster, from any one node; "
        "`redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]` the master Sentinel names",
        kind="Redis URL", check=redis_url))
    prefix: str = field(default="embeddings-router:", metadata=doc("of every key the router writes"))
    timeout_s: float = field(default=0.5, metadata=doc("per Redis call; a slower Redis counts as down",
                                                       check=positive))


USAGE_BACKENDS = ("auto", "memory", "redis")


@dataclass(frozen=True)
class UsageConfig:
    backend: str = field(default="auto", metadata=doc(
        "where per-key usage is counted: Redis where `cache` or `limits` use it (every replica adds up, a "
        "restart keeps what was flushed), else this process's memory", kind=choices(*USAGE_BACKENDS),
        check=one_of(*USAGE_BACKENDS)))
    flush_s: float = field(default=2.0, metadata=doc(
        "how often counts go to Redis: a crash loses at most this much of one process's usage",
        check=lambda v: None if 0 < v <= 5 else "must be over 0 and at most 5"))
    retention_days: int = field(default=90, metadata=doc("hourly rows older than this are dropped",
                                                         check=positive))


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, ModelConfig]
    keys: tuple[KeyConfig, ...]
    # Built once per process (the cache, the limiter, the Redis pool): a reload cannot swap them.
    cache: CacheConfig = field(default=CacheConfig(), metadata={"restart": True})
    limits: LimitsConfig = field(default=LimitsConfig(), metadata={"restart": True})
    redis: RedisConfig = field(default=RedisConfig(), metadata={"restart": True})
    usage: UsageConfig = field(default=UsageConfig(), metadata={"restart": True})
    admin_keys: tuple[AdminKeyConfig, ...] = ()
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    version: str = field(default="", compare=False)

    @property
    def uses_redis(self) -> bool:
        return "redis" in (self.cache.backend, self.limits.backend, self.usage.backend)

    @property
    def usage_in_redis(self) -> bool:
        return self.usage.backend == "redis" or (self.usage.backend == "auto" and self.uses_redis)

    @property
    def secrets(self) -> list[str]:
        """Every secret this config holds: providers' credentials, key hashes, the Redis URL's password."""
        found = [s for p in self.providers.values() for s in secrets_in(p.settings)]
        found += [k.sha256 for k in self.keys] + [k.sha256 for k in self.admin_keys]
        if password := urlsplit(self.redis.url).password:
            found.append(password)
        return found
