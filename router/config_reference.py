"""The config reference, generated from the dataclasses the loader fills.

    embeddings-router config-reference     # the markdown table in the README

Each field carrying `router.reader.doc(...)` is one row. Sections are listed
here; provider kinds add their own (`ProviderKind.reference`), so a new wire
format documents itself. tests/test_config_reference.py keeps the README's
copy equal to this and checks that the loader accepts every row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from router.breaker import CooldownPolicy
from router.providers import KINDS
from router.providers.http import HTTPSettings
from router.reader import choices
from router.settings import (
    AdminKeyConfig,
    CacheConfig,
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

REMOTE = "every kind but local"
_TYPES = {"int": "int", "float": "number", "str": "string", "bool": "bool", "dict": "mapping"}


@dataclass(frozen=True)
class Row:
    path: str       # e.g. `models.NAME.deployments[].rpm`
    kind: str       # the type as ops read it
    default: str
    meaning: str
    only_for: str   # "kind: openai" for a provider kind's fields, else ""


def sections() -> list[tuple[str, type, str]]:
    """(path, dataclass, which provider kind it is for) in the order the reference shows them."""

    found: list[tuple[str, type, str]] = [("server", ServerConfig, ""), ("providers.NAME", ProviderConfig, ""),
                                          ("providers.NAME", HTTPSettings, REMOTE)]
    for kind, spec in KINDS.items():
        found += [(f"providers.NAME{suffix}", cls, kind) for suffix, cls in spec.reference]
    return [
        *found,
        ("models.NAME", ModelConfig, ""), ("models.NAME.deployments[]", Deployment, ""),
        ("routing", RoutingConfig, ""), ("routing.cooldown", CooldownPolicy, ""),
        ("keys[]", KeyConfig, ""), ("keys[].limits", KeyLimits, ""), ("admin_keys[]", AdminKeyConfig, ""),
        ("cache", CacheConfig, ""), ("limits", LimitsConfig, ""), ("redis", RedisConfig, ""),
        ("usage", UsageConfig, ""),
    ]


def rows() -> list[Row]:

    registries = {"kind": choices(*KINDS), "strategy": choices(*STRATEGIES)}
    out = []
    for path, cls, only_for in sections():
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if "doc" not in meta or (only_for != REMOTE and _inherited_from(HTTPSettings, cls, f)):
                continue  # not read from YAML, or shown once for every remote kind
            kind = meta["kind"] or _type_of(str(f.type))
            out.append(Row(f"{path}.{meta['name'] or f.name}", registries.get(kind, kind),
                           meta["default"] or _default_of(f), meta["doc"],
                           f"kind: {only_for}" if only_for and only_for != REMOTE else only_for))
    return out


def markdown() -> str:
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for row in rows():
        where = f" ({row.only_for})" if row.only_for else ""
        lines.append(f"| `{row.path}`{where} | {row.kind} | {row.default} | {row.meaning} |")
    return "\n".join(lines) + "\n"


def _inherited_from(base: type, cls: type, f: dataclasses.Field) -> bool:
    """Whether `cls` takes field `f` from `base` as it is (a redefinition is a new Field)."""
    return issubclass(cls, base) and base.__dataclass_fields__.get(f.name) is f  # type: ignore[attr-defined]


def _type_of(annotation: str) -> str:
    base = annotation.replace(" | None", "")
    if base.startswith("tuple"):
        return "list"
    return _TYPES.get(base, base)


def _default_of(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING:
        if f.default_factory is dataclasses.MISSING:
            return "required"
        value = f.default_factory()
        return "`{}`" if value == {} else "see below"
    value = f.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(f'"{v}"' for v in value) + "]`"
    return f"`{value}`"
