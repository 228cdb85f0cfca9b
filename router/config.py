"""YAML -> validated, immutable Config (the dataclasses of `router.settings`).

Validation happens once, at load, and every message names the exact path of
the offending field (`models.bge.deployments[1].provider: unknown provider
'togther'`). Provider-specific fields are validated by the provider's own
module (see `router.providers.KINDS`), so this file knows no wire format.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from router.breaker import CooldownPolicy
from router.providers import KINDS
from router.reader import ConfigError, Section, http_url, one_of, positive
from router.settings import (
    CACHE_BACKENDS,
    LIMIT_BACKENDS,
    ON_REDIS_ERROR,
    AdminKeyConfig,
    CacheConfig,
    Config,
    Deployment,
    KeyConfig,
    KeyLimits,
    LimitsConfig,
    ModelConfig,
    ProviderConfig,
    RedisConfig,
    RoutingConfig,
    ServerConfig,
)
from router.strategies import STRATEGIES

__all__ = ["DEFAULT_CONFIG", "AdminKeyConfig", "CacheConfig", "Config", "ConfigError", "Deployment", "KeyConfig",
           "KeyLimits", "LimitsConfig", "ModelConfig", "ProviderConfig", "RedisConfig", "RoutingConfig", "Section",
           "ServerConfig", "http_url", "load", "one_of", "parse", "positive", "read_text", "version_of"]

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "router.yaml"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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
    deployments: list[Deployment] = []
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
