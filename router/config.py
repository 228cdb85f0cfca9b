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

from router.providers import KINDS
from router.reader import ConfigError, Section, http_url, not_negative, one_of, positive, read
from router.settings import (
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
    UsageConfig,
)
from router.strategies import STRATEGIES

__all__ = [
    "DEFAULT_CONFIG",
    "AdminKeyConfig",
    "CacheConfig",
    "Config",
    "ConfigError",
    "Deployment",
    "KeyConfig",
    "KeyLimits",
    "LimitsConfig",
    "ModelConfig",
    "ProviderConfig",
    "RedisConfig",
    "RoutingConfig",
    "Section",
    "ServerConfig",
    "UsageConfig",
    "http_url",
    "load",
    "one_of",
    "parse",
    "positive",
    "read_text",
    "version_of",
]

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
    server = read(ServerConfig, root.section("server"))
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
        model = _model(models_raw.section(str(name)), str(name), providers)
        for alias in (model.name, *model.aliases):
            if alias in public_names:
                raise ConfigError(f"{models_raw.at(str(name))}: name {alias!r} is already used by "
                                  f"model {public_names[alias]!r}")
            public_names[alias] = model.name
        models[model.name] = model
    models_raw.done()

    if not models:
        raise ConfigError("models: at least one model is required (a config without models serves nothing)")
    if server.default_model is not None and server.default_model not in public_names:
        raise ConfigError(f"server.default_model: unknown model {server.default_model!r}")
    keys = _keys(root)
    if not keys:
        raise ConfigError("keys: at least one key is required (a config without keys refuses every request)")
    admin_keys = _admin_keys(root, {k.sha256 for k in keys})
    config = Config(server, providers, models, keys, read(CacheConfig, root.section("cache")),
                    read(LimitsConfig, root.section("limits")), read(RedisConfig, root.section("redis")),
                    read(UsageConfig, root.section("usage")), admin_keys,
                    read(RoutingConfig, root.section("routing")))
    root.done()
    return config


def _model(section: Section, name: str, providers: Mapping[str, ProviderConfig]) -> ModelConfig:
    space = section.get("space", str, name)
    unsafe = section.get("unsafe_mixed_spaces", bool, False)
    price = section.get("price_per_million_tokens", (int, float), None, check=not_negative)
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
        if problem := KINDS[providers[provider].kind].check_model(providers[provider].settings, upstream_model):
            raise ConfigError(f"{d.at('model')}: {problem}")
        deployment = read(Deployment, d, provider=provider, model=upstream_model, space=d.get("space", str, space),
                          price_per_million_tokens=d.get("price_per_million_tokens", (int, float), price,
                                                         check=not_negative))
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
    hedge_ms = section.get("hedge_after_ms", int, None, check=positive)
    return read(ModelConfig, section, name=name, space=space, unsafe_mixed_spaces=unsafe,
                price_per_million_tokens=price, deployments=tuple(deployments),
                hedge_after_s=hedge_ms / 1000 if hedge_ms is not None else None,
                strategy=section.get("strategy", str, "priority", check=one_of(*STRATEGIES)))


def _keys(root: Section) -> tuple[KeyConfig, ...]:
    keys: list[KeyConfig] = []
    for i, raw in enumerate(root.get("keys", list, [])):
        k = Section(raw, f"keys[{i}]")
        per_model = k.section("model_limits")
        model_limits = tuple((str(glob), read(KeyLimits, per_model.section(str(glob)), max_inputs=None))
                             for glob in per_model.raw)
        per_model.done()
        key = read(KeyConfig, k, model_limits=model_limits)
        if any(key.name == other.name for other in keys):
            raise ConfigError(f"{k.at('name')}: duplicate key name {key.name!r}")
        if any(key.sha256 == other.sha256 for other in keys):
            raise ConfigError(f"{k.at('sha256')}: the same key hash appears twice")
        keys.append(key)
    return tuple(keys)


def _admin_keys(root: Section, user_hashes: set[str]) -> tuple[AdminKeyConfig, ...]:
    keys: list[AdminKeyConfig] = []
    for i, raw in enumerate(root.get("admin_keys", list, [])):
        k = Section(raw, f"admin_keys[{i}]")
        key = read(AdminKeyConfig, k)
        if key.sha256 in user_hashes or any(key.sha256 == other.sha256 for other in keys):
            raise ConfigError(f"{k.at('sha256')}: this key hash is already used; an admin key must be its own key")
        keys.append(key)
    return tuple(keys)
