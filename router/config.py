"""YAML -> validated, immutable Config.

Validation happens once, at load, and every message names the exact path of
the offending field (`models.bge.deployments[1].provider: unknown provider
'togther'`). Provider-specific fields are validated by the provider's own
module (see `router.providers.KINDS`), so this file knows no wire format.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from router.breaker import CooldownPolicy
from router.redact import secrets_in
from router.schema import choices, doc

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "router.yaml"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_REQUIRED = object()


class ConfigError(ValueError):
    """A config that cannot be served; the message names the field's path."""


class Section:
    """A YAML mapping read field by field, each error naming its path."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path or 'config'}: expected a mapping, got {_kind(raw)}")
        self.raw, self.path, self._seen = raw, path, set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: type | tuple, default: Any = _REQUIRED,
            check: Callable[[Any], str | None] | None = None) -> Any:
        self._seen.add(key)
        if key not in self.raw or self.raw[key] is None:
            if default is _REQUIRED:
                raise ConfigError(f"{self.at(key)}: required field is missing")
            return default
        value = self.raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError(f"{self.at(key)}: expected {_NAMES.get(want, want)}, got {_kind(value)}")
        if check is not None and (problem := check(value)):
            raise ConfigError(f"{self.at(key)}: {problem}")
        return value

    def section(self, key: str, default: Any = _REQUIRED) -> Section:
        raw = self.get(key, Mapping, {} if default is _REQUIRED else default)
        return Section(raw, self.at(key))

    def strings(self, key: str, default: tuple = ()) -> tuple[str, ...]:
        values = self.get(key, list, list(default))
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{self.at(key)}[{i}]: expected a non-empty string, got {_kind(value)}")
        return tuple(values)

    def done(self) -> None:
        unknown = sorted(str(k) for k in self.raw if k not in self._seen)
        if unknown:
            raise ConfigError(f"{self.at(unknown[0])}: unknown field")


_NAMES = {"Mapping": "a mapping", "list": "a list", "str": "a string", "int": "an integer",
          "float": "a number", "bool": "true or false"}


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}; got {value!r}"
    return check


def http_url(value: str) -> str | None:
    return None if re.match(r"^https?://[^/\s]+", value) else "must be an http:// or https:// URL"


CACHE_BACKENDS = ("memory", "redis", "none")
LIMIT_BACKENDS = ("memory", "redis")
ON_REDIS_ERROR = ("allow", "deny")


@dataclass(frozen=True)
class ServerConfig:
    host: str = field(default="127.0.0.1", metadata=doc("where to listen (`serve --host` overrides)"))
    port: int = field(default=8080, metadata=doc("where to listen (`serve --port` overrides)"))
    max_body_bytes: int = field(default=16 * 1024 * 1024, metadata=doc("larger bodies get 413"))
    max_inputs: int = field(default=2048, metadata=doc("items per request (a key's `limits.max_inputs` "
                                                       "may lower it)"))
    request_timeout_s: float = field(default=30.0, metadata=doc(
        "the deadline for a request's upstream part, retries included: the client gets its vectors or an "
        "ErrorData before it (504 when it passes)"))
    header_timeout_s: float = field(default=10.0, metadata=doc(
        "a connection that has not sent a request's complete headers within this is closed"))
    keepalive_timeout_s: float = field(default=5.0, metadata=doc("an idle keep-alive connection is closed after "
                                                                 "this"))
    max_connections: int = field(default=1024, metadata=doc(
        "open connections; a request on one more gets a fast 503 `too_many_connections` and is closed "
        "(keep it under the process's file-descriptor limit, `ulimit -n`)"))


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: str = field(metadata=doc("the wire format; the fields below it depend on it", kind="kind"))
    settings: Any = None  # the provider module's own frozen settings


@dataclass(frozen=True)
class Deployment:
    provider: str = field(metadata=doc("a name under `providers`"))
    model: str = field(metadata=doc("the model's name at that provider"))
    weight: float = field(default=1.0, metadata=doc("share of calls under `strategy: weighted`"))
    space: str = field(default="", metadata=doc(
        "the embedding space its vectors live in; must be the model's", default="the model's `space`"))
    max_concurrency: int | None = field(default=None, metadata=doc(
        "calls in flight to this deployment; more wait for a slot or go to another deployment"))
    rpm: int | None = field(default=None, metadata=doc(
        "calls per minute to this deployment (counted per router process: with N replicas give each 1/N)"))
    tpm: int | None = field(default=None, metadata=doc("tokens per minute to this deployment (per process)"))


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
        "calls per chunk for this model", default="`routing.max_attempts`"))
    hedge_after_s: float | None = field(default=None, metadata=doc(
        "after this many ms without an answer, send the chunk to a second deployment too; the first answer "
        "wins and the other call is cancelled", name="hedge_after_ms", kind="int (ms)", default="off"))
    unsafe_mixed_spaces: bool = field(default=False, metadata=doc(
        "allow deployments of different `space`s under one name: their vectors are not comparable, so "
        "mixing them corrupts vector stores; logged and warned about at every load"))


@dataclass(frozen=True)
class RoutingConfig:
    max_attempts: int = field(default=4, metadata=doc(
        "calls per chunk, over all deployments, within the request deadline; retried on 429, 5xx, "
        "timeouts and broken connections, never on 400/401/403/404"))
    backoff_s: float = field(default=0.1, metadata=doc(
        "before a chunk goes back to a deployment that failed it: a random wait up to this, doubling with "
        "each attempt (full jitter), never shorter than the upstream's Retry-After; another deployment is "
        "tried at once"))
    backoff_max_s: float = field(default=5.0, metadata=doc("the cap of that doubling"))
    max_retry_after_s: float = field(default=60.0, metadata=doc(
        "the longest pause an upstream's Retry-After (or x-ratelimit-reset) can put on a deployment; a "
        "reload that changes the deployment or its provider ends the pause"))
    cooldown: CooldownPolicy = field(default_factory=CooldownPolicy, metadata=doc(
        "the circuit breaker; see `routing.cooldown` below", kind="mapping"))


@dataclass(frozen=True)
class KeyLimits:
    rpm: int | None = field(default=None, metadata=doc(
        "requests per minute (a token bucket: bursts to the limit, then refills evenly)"))
    tpm: int | None = field(default=None, metadata=doc(
        "tokens per minute: estimated before the call, settled with the real count after"))
    concurrency: int | None = field(default=None, metadata=doc("requests in flight"))
    max_inputs: int | None = field(default=None, metadata=doc(
        "items per request for this key (not in `model_limits`)", default="`server.max_inputs`"))
    tokens_per_day: int | None = field(default=None, metadata=doc(
        "a token budget per UTC day; the 429's Retry-After runs to midnight UTC"))


@dataclass(frozen=True)
class KeyConfig:
    name: str = field(metadata=doc("shown in logs and metrics instead of the key"))
    sha256: str = field(metadata=doc("sha256 of the key, 64 lowercase hex; `embeddings-router keys new NAME` "
                                     "makes a key and its entry", kind="hex"))
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
                                     "cannot call `/admin/*`", kind="hex"))


@dataclass(frozen=True)
class CacheConfig:
    backend: str = field(default="memory", metadata=doc(
        "the per-input vector cache: this process; Redis (shared by replicas) behind this process's memory; "
        "off", kind=choices(*CACHE_BACKENDS)))
    max_bytes: int = field(default=256 * 1024 * 1024, metadata=doc(
        "the in-process level's bound (bound Redis with its own `maxmemory` + `allkeys-lru`)"))
    ttl_s: float = field(default=86400.0, metadata=doc("an entry's lifetime, in both levels"))


@dataclass(frozen=True)
class LimitsConfig:
    backend: str = field(default="memory", metadata=doc(
        "where keys' limits are counted: this process, or Redis, exact across replicas "
        "(`serve --workers N` needs `redis`)", kind=choices(*LIMIT_BACKENDS)))
    on_redis_error: str = field(default="allow", metadata=doc(
        "while Redis is unreachable: serve unchecked, or answer 503 `limiter_unavailable`",
        kind=choices(*ON_REDIS_ERROR)))


@dataclass(frozen=True)
class RedisConfig:
    url: str = field(default="redis://127.0.0.1:6379/0", metadata=doc(
        "the shared Redis, for `cache.backend` or `limits.backend: redis`", kind="redis:// URL"))
    prefix: str = field(default="embeddings-router:", metadata=doc("of every key the router writes"))
    timeout_s: float = field(default=0.5, metadata=doc("per Redis call; a slower Redis counts as down"))


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, ModelConfig]
    keys: tuple[KeyConfig, ...]
    cache: CacheConfig = CacheConfig()
    limits: LimitsConfig = LimitsConfig()
    redis: RedisConfig = RedisConfig()
    admin_keys: tuple[AdminKeyConfig, ...] = ()
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    version: str = field(default="", compare=False)

    @property
    def uses_redis(self) -> bool:
        return "redis" in (self.cache.backend, self.limits.backend)

    @property
    def secrets(self) -> list[str]:
        """Every secret this config holds: providers' credentials, key hashes, the Redis URL's password."""
        found = [s for p in self.providers.values() for s in secrets_in(p.settings)]
        found += [k.sha256 for k in (*self.keys, *self.admin_keys)]
        if password := urlsplit(self.redis.url).password:
            found.append(password)
        return found


def load(path: str | os.PathLike, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a config file."""
    return parse(read_text(path), env=env)


def read_text(path: str | os.PathLike) -> str:
    """A config file's text; unreadable or non-UTF-8 files are a ConfigError, never another exception."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: not UTF-8: byte 0x{data[exc.start]:02x} at line {line} "
                          f"(offset {exc.start})") from None


def parse(text: str, env: Mapping[str, str] | None = None) -> Config:
    """Validate a config's text. Besides each field's own checks, a config that could only
    refuse every request (empty, no models, no keys) is refused: a half-written save must
    never replace a working config."""
    if not text.strip():
        raise ConfigError("the config is empty")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"YAML syntax error: {where}{getattr(exc, 'problem', None) or exc}") from exc
    raw = _interpolate(raw if raw is not None else {}, "", os.environ if env is None else env)
    config = _build(Section(raw, ""))
    return Config(**{**config.__dict__, "version": version_of(text)})


def version_of(text: str) -> str:
    """A config's version: the start of its text's sha256, shown in logs, headers and /admin/status."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _interpolate(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        def sub(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path or 'config'}: environment variable {name} is not set")
        result = _ENV.sub(sub, value)
        if result != value and _ENV.fullmatch(value):
            return _scalar(result)  # `rpm: ${RPM:-600}` is the number 600
        return result
    if isinstance(value, Mapping):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def _scalar(text: str) -> Any:
    """A whole-value substitution typed as YAML would type it; only numbers and booleans."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, int | float | bool) else text


def _build(root: Section) -> Config:
    from router.providers import KINDS  # the registry validates its own settings
    from router.strategies import STRATEGIES

    server_raw = root.section("server")
    server = ServerConfig(
        host=server_raw.get("host", str, "127.0.0.1"),
        port=server_raw.get("port", int, 8080, check=lambda p: None if 0 <= p < 65536 else "must be 0-65535"),
        max_body_bytes=server_raw.get("max_body_bytes", int, 16 * 1024 * 1024, check=positive),
        max_inputs=server_raw.get("max_inputs", int, 2048, check=positive),
        request_timeout_s=server_raw.get("request_timeout_s", float, 30.0, check=positive),
        header_timeout_s=server_raw.get("header_timeout_s", float, 10.0, check=positive),
        keepalive_timeout_s=server_raw.get("keepalive_timeout_s", float, 5.0, check=positive),
        max_connections=server_raw.get("max_connections", int, 1024, check=positive),
    )
    server_raw.done()

    providers: dict[str, ProviderConfig] = {}
    providers_raw = root.section("providers")
    for name in providers_raw.raw:
        section = providers_raw.section(str(name))
        kind = section.get("kind", str, check=one_of(*KINDS))
        providers[str(name)] = ProviderConfig(str(name), kind, KINDS[kind].parse_settings(section))
        section.done()
    providers_raw.done()

    models: dict[str, ModelConfig] = {}
    models_raw = root.section("models")
    public_names: dict[str, str] = {}
    for name in models_raw.raw:
        model = _model(models_raw.section(str(name)), str(name), providers, KINDS, tuple(STRATEGIES))
        for alias in (model.name, *model.aliases):
            if alias in public_names:
                raise ConfigError(f"{models_raw.at(str(name))}: name {alias!r} is already used by "
                                  f"model {public_names[alias]!r}")
            public_names[alias] = model.name
        models[model.name] = model
    models_raw.done()

    if not models:
        raise ConfigError("models: at least one model is required (a config without models serves nothing)")
    keys = _keys(root, models)
    if not keys:
        raise ConfigError("keys: at least one key is required (a config without keys refuses every request)")
    admin_keys = _admin_keys(root, {k.sha256 for k in keys})
    cache_raw = root.section("cache")
    cache = CacheConfig(
        backend=cache_raw.get("backend", str, "memory", check=one_of(*CACHE_BACKENDS)),
        max_bytes=cache_raw.get("max_bytes", int, 256 * 1024 * 1024, check=positive),
        ttl_s=cache_raw.get("ttl_s", float, 86400.0, check=positive),
    )
    cache_raw.done()
    limits_raw = root.section("limits")
    limits = LimitsConfig(
        backend=limits_raw.get("backend", str, "memory", check=one_of(*LIMIT_BACKENDS)),
        on_redis_error=limits_raw.get("on_redis_error", str, "allow", check=one_of(*ON_REDIS_ERROR)),
    )
    limits_raw.done()
    redis_raw = root.section("redis")
    redis = RedisConfig(
        url=redis_raw.get("url", str, "redis://127.0.0.1:6379/0", check=lambda u: None if u.startswith(
            ("redis://", "rediss://", "unix://")) else "must be a redis://, rediss:// or unix:// URL"),
        prefix=redis_raw.get("prefix", str, "embeddings-router:"),
        timeout_s=redis_raw.get("timeout_s", float, 0.5, check=positive),
    )
    redis_raw.done()
    routing = _routing(root.section("routing"))
    root.done()
    return Config(server, providers, models, keys, cache, limits, redis, admin_keys, routing)


def _routing(section: Section) -> RoutingConfig:
    d, c = RoutingConfig(), CooldownPolicy()
    raw = section.section("cooldown")
    cooldown = CooldownPolicy(
        failures=raw.get("failures", int, c.failures, check=positive),
        error_rate=raw.get("error_rate", float, c.error_rate,
                           check=lambda r: None if 0 < r <= 1 else "must be over 0 and at most 1"),
        min_calls=raw.get("min_calls", int, c.min_calls, check=positive),
        window_s=raw.get("window_s", float, c.window_s, check=positive),
        cooldown_s=raw.get("cooldown_s", float, c.cooldown_s, check=positive),
    )
    raw.done()
    routing = RoutingConfig(
        max_attempts=section.get("max_attempts", int, d.max_attempts, check=positive),
        backoff_s=section.get("backoff_s", float, d.backoff_s, check=positive),
        backoff_max_s=section.get("backoff_max_s", float, d.backoff_max_s, check=positive),
        max_retry_after_s=section.get("max_retry_after_s", float, d.max_retry_after_s, check=positive),
        cooldown=cooldown,
    )
    section.done()
    return routing


def _model(section: Section, name: str, providers: Mapping[str, ProviderConfig], kinds: Mapping,
           strategies: tuple[str, ...]) -> ModelConfig:
    space = section.get("space", str, name)
    unsafe = section.get("unsafe_mixed_spaces", bool, False)
    deployments = []
    raw_deployments = section.get("deployments", list)
    if not raw_deployments:
        raise ConfigError(f"{section.at('deployments')}: at least one deployment is required")
    for i, raw in enumerate(raw_deployments):
        d = Section(raw, f"{section.at('deployments')}[{i}]")
        provider = d.get("provider", str)
        if provider not in providers:
            raise ConfigError(f"{d.at('provider')}: unknown provider {provider!r}")
        upstream_model = d.get("model", str)
        if problem := kinds[providers[provider].kind].check_model(providers[provider].settings, upstream_model):
            raise ConfigError(f"{d.at('model')}: {problem}")
        deployment = Deployment(
            provider, upstream_model,
            weight=d.get("weight", float, 1.0, check=positive),
            space=d.get("space", str, space),
            max_concurrency=d.get("max_concurrency", int, None, check=positive),
            rpm=d.get("rpm", int, None, check=positive),
            tpm=d.get("tpm", int, None, check=positive),
        )
        if deployment.space != space and not unsafe:
            # Vectors of different models are not interchangeable: falling back or balancing
            # across spaces would silently corrupt every vector store behind this name.
            raise ConfigError(f"{d.at('space')}: {deployment.space!r} is not the model's embedding space "
                              f"{space!r}; the deployments of one model must serve one space, because "
                              "vectors of different models cannot be mixed (set unsafe_mixed_spaces: true "
                              "on the model only if you really mean to mix them)")
        if any((o.provider, o.model) == (provider, upstream_model) for o in deployments):
            raise ConfigError(f"{d.at('model')}: {provider}/{upstream_model} is already a deployment "
                              "of this model")
        deployments.append(deployment)
        d.done()
    hedge_ms = section.get("hedge_after_ms", int, None, check=positive)
    model = ModelConfig(
        name=name,
        space=space,
        strategy=section.get("strategy", str, "priority", check=one_of(*strategies)),
        deployments=tuple(deployments),
        aliases=section.strings("aliases"),
        matryoshka=section.get("matryoshka", bool, False),
        max_attempts=section.get("max_attempts", int, None, check=positive),
        hedge_after_s=hedge_ms / 1000 if hedge_ms is not None else None,
        unsafe_mixed_spaces=unsafe,
    )
    section.done()
    return model


def _keys(root: Section, models: Mapping[str, ModelConfig]) -> tuple[KeyConfig, ...]:
    keys, names, hashes = [], set(), set()
    for i, raw in enumerate(root.get("keys", list, [])):
        k = Section(raw, f"keys[{i}]")
        name = k.get("name", str)
        digest = k.get("sha256", str, check=_sha256)
        if name in names:
            raise ConfigError(f"{k.at('name')}: duplicate key name {name!r}")
        if digest in hashes:
            raise ConfigError(f"{k.at('sha256')}: the same key hash appears twice")
        names.add(name)
        hashes.add(digest)
        limits = _limits(k.section("limits"), ("rpm", "tpm", "concurrency", "max_inputs", "tokens_per_day"))
        per_model = k.section("model_limits")
        model_limits = tuple((str(pattern), _limits(per_model.section(str(pattern)), ("rpm", "tpm", "concurrency",
                                                                                        "tokens_per_day")))
                             for pattern in per_model.raw)
        per_model.done()
        keys.append(KeyConfig(name, digest, k.strings("models", ("*",)), limits, model_limits))
        k.done()
    return tuple(keys)


def _admin_keys(root: Section, user_hashes: set[str]) -> tuple[AdminKeyConfig, ...]:
    keys: list[AdminKeyConfig] = []
    for i, raw in enumerate(root.get("admin_keys", list, [])):
        k = Section(raw, f"admin_keys[{i}]")
        key = AdminKeyConfig(k.get("name", str), k.get("sha256", str, check=_sha256))
        if key.sha256 in user_hashes or any(key.sha256 == other.sha256 for other in keys):
            raise ConfigError(f"{k.at('sha256')}: this key hash is already used; an admin key must be its own key")
        keys.append(key)
        k.done()
    return tuple(keys)


def _sha256(value: str) -> str | None:
    return None if re.fullmatch(r"[0-9a-f]{64}", value) else "must be 64 lowercase hex characters (sha256 of the key)"


def _limits(section: Section, fields: tuple[str, ...]) -> KeyLimits:
    limits = KeyLimits(**{f: section.get(f, int, None, check=positive) for f in fields})
    section.done()
    return limits
