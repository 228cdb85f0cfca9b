"""Snapshots: a reload takes over unchanged providers and closes only the replaced ones."""

from __future__ import annotations

import copy

import yaml

from router.config import parse
from router.runtime import Runtime
from tests.conftest import config_dict


async def test_unchanged_providers_are_taken_over_and_replaced_ones_closed():
    raw = config_dict("http://127.0.0.1:9")
    raw["providers"]["other"] = {"kind": "openai", "base_url": "http://127.0.0.1:8/v1"}
    first = await Runtime.start(parse(yaml.safe_dump(raw)))
    changed = copy.deepcopy(raw)
    changed["providers"]["other"]["timeout_s"] = 3
    second = await Runtime.start(parse(yaml.safe_dump(changed)), previous=first)
    assert second.providers["fake"] is first.providers["fake"]
    assert second.providers["other"] is not first.providers["other"]
    closed = []
    for name, provider in first.providers.items():
        provider.aclose = (lambda n: (lambda: _record(closed, n)))(name)
    await first.aclose(keep=second)
    assert closed == ["other"]
    await second.aclose()


async def _record(closed: list, name: str) -> None:
    closed.append(name)
