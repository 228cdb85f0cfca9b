"""How a config field documents itself, for the generated reference.

    port: int = field(default=8080, metadata=doc("where to listen"))

`router.config_reference` walks the config's dataclasses and renders each
field that carries `doc(...)` as one row: path, type, default, meaning. A
field without it is not read from YAML (a name taken from a mapping key, a
parsed-out value). So the README's table is generated from the same classes
the loader fills, and a test keeps the two equal.
"""

from __future__ import annotations

from typing import Any


def doc(meaning: str, *, name: str = "", kind: str = "", default: str = "") -> dict[str, Any]:
    """`name`: the YAML key when it differs from the field's; `kind`: the type as ops
    should read it (choices, units); `default`: the default in words, when the
    field's own default is not what the YAML default means."""
    return {"doc": meaning, "name": name, "kind": kind, "default": default}


def choices(*values: str) -> str:
    return " \\| ".join(f"`{v}`" for v in values)
