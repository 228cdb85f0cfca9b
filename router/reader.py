"""The leaf every config reader stands on: `Section` (a YAML mapping read field by field,
each error naming its path), `ConfigError`, the common checks, and how a field documents
itself for the generated reference.

    port: int = field(default=8080, metadata=doc("where to listen"))

`router.config_reference` walks the config's dataclasses and renders each field that
carries `doc(...)` as one row: path, type, default, meaning. A field without it is not
read from YAML (a name taken from a mapping key, a parsed-out value).

Providers read their own settings with this module and import nothing above it, so the
loader (`router.config`) can hold the provider registry without an import circle.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

_REQUIRED = object()


class ConfigError(ValueError):
    """A config that cannot be served; the message names the field's path."""


class Section:
    """A YAML mapping read field by field, each error naming its path."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path or 'config'}: expected a mapping, got {_kind(raw)}")
        self.raw, self.path = raw, path
        self._seen: set[str] = set()

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

    def strings(self, key: str, default: tuple = (),
                check: Callable[[Any], str | None] | None = None) -> tuple[str, ...]:
        values = self.get(key, list, list(default))
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{self.at(key)}[{i}]: expected a non-empty string, got {_kind(value)}")
        if check is not None and (problem := check(tuple(values))):
            raise ConfigError(f"{self.at(key)}: {problem}")
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


def not_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}; got {value!r}"
    return check


def http_url(value: str) -> str | None:
    return None if re.match(r"^https?://[^/\s]+", value) else "must be an http:// or https:// URL"


def doc(meaning: str, *, name: str = "", kind: str = "", default: str = "",
        check: Callable[[Any], str | None] | None = None, restart: bool | str = False) -> dict[str, Any]:
    """A field's declaration for the loader and the reference, beside its type and default.

    `name`: the YAML key when it differs from the field's; `kind`: the type as ops should read it
    (choices, units); `default`: the default in words, when the field's own default is not what
    the YAML default means; `check`: a value's problem, or None; `restart`: a running process
    cannot apply a change (a reload names it under `restart_required`, by this label if it is one)."""
    return {"doc": meaning, "name": name, "kind": kind, "default": default, "check": check, "restart": restart}


T = TypeVar("T")


def read(cls: type[T], section: Section, **given: Any) -> T:
    """`cls` filled from `section`: every field declared with `doc(...)` is read under its YAML name,
    as its annotated type, with its default and its check; a nested dataclass is read from its own
    sub-section. `given` fields (a name from a mapping key, values read by hand) are taken as they
    are. Unknown keys in `section` are refused."""
    hints = typing.get_type_hints(cls)
    values = dict(given)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in given or "doc" not in f.metadata:
            continue
        key, kind = f.metadata["name"] or f.name, hints[f.name]
        default: Any = _REQUIRED
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if dataclasses.is_dataclass(kind):
            values[f.name] = read(kind, section.section(key, None if default is _REQUIRED else {}))  # type: ignore[arg-type]
        elif typing.get_origin(kind) is tuple:
            values[f.name] = section.strings(key, () if default is _REQUIRED else default,
                                             check=_check_of(cls, f.name))
        else:
            values[f.name] = section.get(key, _python_type(kind), default, check=_check_of(cls, f.name))
    section.done()
    return cls(**values)


def _check_of(cls: type, name: str) -> Callable[[Any], str | None] | None:
    """A field's check, declared once: a subclass redefining a field (for another default or doc)
    keeps the check of the class it extends."""
    for base in cls.__mro__:
        declared = getattr(base, "__dataclass_fields__", {}).get(name)
        if declared is not None and declared.metadata.get("check"):
            return declared.metadata["check"]
    return None


def _python_type(hint: Any) -> type | tuple[type, ...]:
    """`int | None` -> int: None is a default, never a value ops write."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = tuple(k for k in typing.get_args(hint) if k is not type(None))
        return kinds[0] if len(kinds) == 1 else kinds
    return dict if typing.get_origin(hint) is dict or hint is dict else hint


def restart_required(running: Any, new: Any, path: str = "") -> list[str]:
    """The `restart=True` fields (or sections) of two configs that differ, as YAML paths."""
    changed = []
    for f in dataclasses.fields(running):
        mine, theirs = getattr(running, f.name), getattr(new, f.name)
        where = f"{path}.{f.name}" if path else f.name
        if restart := f.metadata.get("restart"):
            label = restart if isinstance(restart, str) else where
            if mine != theirs and label not in changed:
                changed.append(label)
        elif dataclasses.is_dataclass(mine) and not isinstance(mine, type):
            changed += restart_required(mine, theirs, where)
    return changed


def choices(*values: str) -> str:
    return " \\| ".join(f"`{v}`" for v in values)
