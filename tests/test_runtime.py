"""Snapshots: a reload takes over unchanged providers and deployment states, and closes
only the replaced providers."""

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


async def test_deployment_health_survives_a_reload_while_its_settings_hold():
    raw = config_dict("http://127.0.0.1:9")
    first = await Runtime.start(parse(yaml.safe_dump(raw)))
    key = ("bge-base-en-v1.5", "fake", "BAAI/bge-base-en-v1.5")
    sick = first.routes.states[key]
    for t in range(5):
        sick.begin(t, 0)
        sick.failed(t, None)
    assert sick.breaker.state == "cooling_down"
    renamed_key = copy.deepcopy(raw)
    renamed_key["keys"][0]["name"] = "renamed"
    second = await Runtime.start(parse(yaml.safe_dump(renamed_key)), previous=first)
    assert second.routes.states[key] is sick  # a reload does not forget a sick upstream
    capped = copy.deepcopy(renamed_key)
    capped["models"]["bge-base-en-v1.5"]["deployments"][0]["rpm"] = 100
    third = await Runtime.start(parse(yaml.safe_dump(capped)), previous=second)
    assert third.routes.states[key] is not sick and third.routes.states[key].breaker.state == "healthy"
    for runtime in (first, second, third):
        await runtime.aclose()
