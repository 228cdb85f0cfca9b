"""Usage accounting: what /admin/usage (JSON and CSV) and `embeddings-router usage` report
after a scripted mix of requests, in memory and in Redis across processes and restarts."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import time
from collections import defaultdict

import httpx
import pytest

from router.errors import InvalidRequest, Overloaded
from router.outcome import Trace
from router.redis_link import RedisLink
from router.settings import RedisConfig
from router.usage import COUNTS, Usage, parse_group_by, parse_time
from tests.conftest import KEY, LIMITED_KEY, config_dict, sha
from tests.processes import RouterProcess
from tests.redis_servers import SHARED_URL, delete_prefix, free_port, unique_prefix

ADMIN_KEY = "sk-admin-secret-42"
PRICE = 1000.0  # USD per million tokens: a token costs 0.001


def usage_config(upstream_url: str) -> dict:
    config = config_dict(upstream_url)
    config["models"]["text-embedding-3-small"]["price_per_million_tokens"] = PRICE
    config["keys"][1]["limits"] = {"rpm": 2}
    config["admin_keys"] = [{"name": "ops", "sha256": sha(ADMIN_KEY)}]
    config["routing"] = {"max_attempts": 1}
    return config


def scripted_mix(url: str, upstream) -> None:
    """Two keys, two models, a cache hit, an upstream failure, a 429 and an unauthenticated call."""
    def post(key: str | None, model: str, inputs: str | list[str]) -> int:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(f"{url}/v1/embeddings", json={"model": model, "input": inputs}, headers=headers,
                          timeout=30).status_code

    assert post(KEY, "text-embedding-3-small", "hello world") == 200        # 3 tokens at the fake
    assert post(KEY, "text-embedding-3-small", "hello world") == 200        # a cache hit
    assert post(KEY, "bge-base-en-v1.5", ["a b c d", "efgh"]) == 200        # 2 + 2 tokens
    upstream.fail_next(500)
    assert post(KEY, "text-embedding-3-small", "fails upstream") == 502
    assert post(LIMITED_KEY, "bge-base-en-v1.5", "x1") == 200               # 1 token
    assert post(LIMITED_KEY, "bge-base-en-v1.5", "x2") == 200
    assert post(LIMITED_KEY, "bge-base-en-v1.5", "x3") == 429               # rpm 2
    assert post(None, "bge-base-en-v1.5", "nobody") == 401                  # nobody's usage


EXPECTED = {  # (key, model) -> counts, as the scripted mix makes them
    ("test", "text-embedding-3-small"): dict(requests=3, inputs=3, tokens=3, cache_hits=1, cache_saved_tokens=3,
                                             errors_4xx=0, errors_5xx=1, cost_usd=0.003),
    ("test", "bge-base-en-v1.5"): dict(requests=1, inputs=2, tokens=4, cache_hits=0, cache_saved_tokens=0,
                                       errors_4xx=0, errors_5xx=0, cost_usd=0.0),
    ("limited", "bge-base-en-v1.5"): dict(requests=3, inputs=3, tokens=2, cache_hits=0, cache_saved_tokens=0,
                                          errors_4xx=1, errors_5xx=0, cost_usd=0.0),
}


def summed(rows: list[dict], groups: tuple[str, ...] = ("key", "model")) -> dict:
    """Rows summed over hours (a test may straddle an hour), numbers as numbers."""
    out: dict = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    for row in rows:
        target = out[tuple(row[g] or None for g in groups)]
        for name in COUNTS:
            target[name] = round(target[name] + float(row[name]), 6)
    return {k: {n: (v if n == "cost_usd" else int(v)) for n, v in counts.items()} for k, counts in out.items()}


def admin_usage(url: str, **params: str) -> httpx.Response:
    return httpx.get(f"{url}/admin/usage", params=params, headers={"authorization": f"Bearer {ADMIN_KEY}"},
                     timeout=30)


def test_usage_holds_exactly_what_the_requests_did(make_router, upstream, upstream_url):
    router = make_router(usage_config(upstream_url))
    scripted_mix(router.url, upstream)
    answer = admin_usage(router.url)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["backend"] == "memory" and body["group_by"] == ["key", "model"]
    assert summed(body["data"]) == EXPECTED
    assert set(body["data"][0]) == {"hour", "key", "model", *COUNTS}

    as_csv = admin_usage(router.url, format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert summed(list(csv.DictReader(io.StringIO(as_csv.text)))) == EXPECTED
    by_accept = httpx.get(f"{router.url}/admin/usage", timeout=30,
                          headers={"authorization": f"Bearer {ADMIN_KEY}", "accept": "text/csv"})
    assert by_accept.text == as_csv.text

    by_deployment = summed(admin_usage(router.url, group_by="deployment").json()["data"], ("deployment",))
    assert by_deployment[("fake/text-embedding-3-small",)]["tokens"] == 3
    assert by_deployment[("cache",)]["cache_hits"] == 1
    assert by_deployment[(None,)]["requests"] == 2  # the upstream failure and the 429 reached no deployment


def test_usage_refuses_bad_parameters_and_non_admin_keys(make_router, upstream_url):
    router = make_router(usage_config(upstream_url))
    for params, param in (({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"),
                          ({"group_by": "key,colour"}, "group_by"), ({"format": "xml"}, "format")):
        answer = admin_usage(router.url, **params)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param
    refused = httpx.get(f"{router.url}/admin/usage", headers={"authorization": f"Bearer {KEY}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_key_required"
    in_range = admin_usage(router.url, **{"from": "2000-01-01", "to": "2000-01-02"})
    assert in_range.status_code == 200 and in_range.json()["data"] == []


def test_usage_in_redis_adds_up_across_processes_and_survives_a_restart(make_upstream, tmp_path, log_archive):
    upstream, url = make_upstream()
    prefix = unique_prefix()
    config = usage_config(url)
    config.update(usage={"backend": "redis", "flush_s": 0.5}, redis={"url": SHARED_URL, "prefix": prefix})
    try:
        with RouterProcess(config, tmp_path) as first, RouterProcess(config, tmp_path) as second:
            log_archive.add(first.log_path)
            log_archive.add(second.log_path)
            scripted_mix(first.url, upstream)
            scripted_mix(second.url, upstream)
            time.sleep(1.5)  # the second's flush
            both = summed(admin_usage(first.url).json()["data"])
            assert both[("test", "bge-base-en-v1.5")]["requests"] == 2
            # the second process's cache and limits are its own (memory), so its mix repeats the first's
            assert both == {k: {n: round(v * 2, 6) for n, v in counts.items()} for k, counts in EXPECTED.items()}
        with RouterProcess(config, tmp_path) as third:  # a restart: nothing flushed is lost
            log_archive.add(third.log_path)
            assert summed(admin_usage(third.url).json()["data"]) == both
        printed = subprocess.run([sys.executable, "-m", "router.cli", "usage", "--config", str(third.config_path),
                                  "--format", "json"], capture_output=True, text=True, timeout=60)
        assert printed.returncode == 0, printed.stderr
        assert summed(json.loads(printed.stdout)) == both
    finally:
        delete_prefix(SHARED_URL, prefix)


def test_the_cli_reads_a_running_routers_memory(make_upstream, tmp_path, log_archive):
    upstream, url = make_upstream()
    with RouterProcess(usage_config(url), tmp_path) as router:
        log_archive.add(router.log_path)
        scripted_mix(router.url, upstream)
        base = [sys.executable, "-m", "router.cli", "usage", "--config", str(router.config_path), "--url", router.url]
        table = subprocess.run([*base, "--admin-key", ADMIN_KEY, "--group-by", "key"], capture_output=True,
                               text=True, timeout=60)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split()[:3] == ["hour", "key", "requests"]
        total = lines[-1].split()
        assert total[0] == "total" and total[1] == "7" and total[-1] == "0.003"  # requests ... cost_usd
        no_key = subprocess.run(base, capture_output=True, text=True, timeout=60,
                                env={"PATH": "/usr/bin:/bin"})
        assert no_key.returncode == 1 and "--admin-key" in no_key.stderr
        wrong = subprocess.run([*base, "--admin-key", KEY], capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 1 and "not an admin key" in wrong.stderr


def outcome(key: str = "k", status: int = 200, tokens: int = 5, inputs: int = 1):
    trace = Trace("r", key=key, model="m", route="m", inputs=inputs, deployment="p/m", tokens=tokens)
    return trace.finish(status, None if status == 200 else "err", 1.0)


async def test_memory_usage_drops_hours_past_retention():
    now = [1_800_000_000.0]
    usage = Usage(None, retention_days=1, flush_s=1, log=None, clock=lambda: now[0])
    usage.record(outcome())
    now[0] += 86400 + 2 * 3600
    usage.record(outcome(tokens=7))
    await usage.flush()
    rows = await usage.rows(0, now[0] + 1, ("key",))
    assert [r["tokens"] for r in rows] == [7]


async def test_a_range_reaching_far_into_the_future_still_holds_today():
    now = [1_800_000_000.0]
    usage = Usage(None, retention_days=90, flush_s=1, log=None, clock=lambda: now[0])
    usage.record(outcome(tokens=3))
    far = parse_time("9999-12-31T23:59:59Z", 0, "to")
    assert [r["tokens"] for r in await usage.rows(0, far, ("key",))] == [3]


async def test_a_failed_flush_keeps_the_counts_for_the_next():
    link = RedisLink(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2), log=_Quiet())
    usage = Usage(link, retention_days=1, flush_s=1, log=_Quiet())
    usage.record(outcome(tokens=4))
    await usage.flush()   # Redis is not there
    assert link.failures >= 1
    with pytest.raises(Overloaded):
        await usage.rows(0, time.time() + 1, ("key",))
    assert sum(counts[2] for counts in usage._counts.values()) == 4  # still here, for the next flush
    await link.aclose()


def test_time_and_group_parameters():
    assert parse_time("2026-11-30", 0, "from") == parse_time("2026-11-30T00:00:00Z", 0, "from")
    assert parse_time("2026-11-30T01:00:00+01:00", 0, "from") == parse_time("2026-11-30T00:00:00Z", 0, "from")
    assert parse_time(None, 42.0, "from") == 42.0
    with pytest.raises(InvalidRequest):
        parse_time("last tuesday", 0, "from")
    assert parse_group_by("model, key,model") == ("model", "key")
    assert parse_group_by("") == ()
    with pytest.raises(InvalidRequest):
        parse_group_by("tenant")


class _Quiet:
    def __getattr__(self, name: str):
        return lambda *a, **k: None


def test_recording_never_awaits():
    # `record` is called on the request path: it must be a plain function, not a coroutine.
    assert not asyncio.iscoroutinefunction(Usage.record)
