"""The Redis backend: exact across clients, Cluster-safe keys, leases, and outages."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import structlog

from router.config import RedisConfig
from router.errors import Overloaded
from router.limits.redis import RedisBackend
from router.limits.rules import Rule
from router.redis_link import RedisLink
from tests.conftest import config_dict
from tests.redis_servers import SHARED_URL, PrivateRedis, delete_prefix, unique_prefix
from tests.test_metrics import sample


@pytest.fixture
def prefix():
    prefix = unique_prefix()
    yield prefix
    delete_prefix(SHARED_URL, prefix)


def link(prefix: str, url: str = SHARED_URL, timeout_s: float = 0.5) -> RedisLink:
    return RedisLink(RedisConfig(url=url, prefix=prefix, timeout_s=timeout_s), structlog.get_logger())


def test_every_key_of_one_api_key_shares_one_hash_tag():
    backend = RedisBackend(link("p:"), on_error="allow", lease_s=30)
    rules = (Rule("rpm", 1, ""), Rule("tpm", 1, "bge-*"), Rule("tokens_per_day", 1, ""), Rule("concurrency", 1, ""))
    keys = backend.keys("search-team", rules)
    assert {re.search(r"\{(.*?)\}", k).group(1) for k in keys} == {"search-team"}
    assert len(set(keys)) == 4 and all(k.startswith("p:limits:") for k in keys)
    odd = backend.keys("team {a}", rules)
    assert len({re.search(r"\{(.*?)\}", k).group(1) for k in odd}) == 1 and "team" not in odd[0]


async def test_exact_across_many_clients(prefix):
    """Three clients (as if three replicas) race 200 requests at a limit of 50: exactly 50 pass."""
    links = [link(prefix) for _ in range(3)]
    backends = [RedisBackend(lk, on_error="deny", lease_s=30) for lk in links]  # deny: an outage would show
    rules = (Rule("rpm", 50, ""),)
    verdicts = await asyncio.gather(*(backends[i % 3].acquire("team", rules, 1, str(i)) for i in range(200)))
    assert sum(v.refused is None for v in verdicts) in (50, 51)  # 51: a refill during the burst
    for lk in links:
        await lk.aclose()


async def test_a_crashed_replicas_concurrency_lease_expires(prefix):
    lk = link(prefix)
    backend = RedisBackend(lk, on_error="allow", lease_s=0.3)
    rules = (Rule("concurrency", 1, ""),)
    assert (await backend.acquire("team", rules, 0, "a")).refused is None  # never released
    assert (await backend.acquire("team", rules, 0, "b")).refused == 0
    await asyncio.sleep(0.4)
    assert (await backend.acquire("team", rules, 0, "c")).refused is None
    await lk.aclose()


@pytest.mark.parametrize("policy", ["allow", "deny"])
async def test_redis_down_follows_the_policy_then_recovers(policy):
    server = PrivateRedis().start()
    lk = link("p:", server.url, timeout_s=0.3)
    backend = RedisBackend(lk, on_error=policy, lease_s=30)
    rules = (Rule("rpm", 1, ""),)
    try:
        assert (await backend.acquire("team", rules, 0, "a")).refused is None
        assert (await backend.acquire("team", rules, 0, "a")).refused == 0
        server.stop()
        started = time.monotonic()
        for _ in range(3):
            if policy == "allow":
                assert (await backend.acquire("team", rules, 0, "a")).remaining == ()  # admitted, unchecked
            else:
                with pytest.raises(Overloaded) as exc:
                    await backend.acquire("team", rules, 0, "a")
                assert exc.value.code == "limiter_unavailable"
        assert time.monotonic() - started < 1.0 and lk.down and backend.unchecked == 3
        server.start()  # an empty Redis: the allowance starts full again
        await asyncio.sleep(1.1)
        assert (await backend.acquire("team", rules, 0, "a")).refused is None
        assert (await backend.acquire("team", rules, 0, "a")).refused == 0
        assert not lk.down
    finally:
        server.stop()
        await lk.aclose()


def test_outage_over_http_never_500s(make_router, upstream, upstream_url):
    server = PrivateRedis().start()
    try:
        routers = {}
        for policy in ("allow", "deny"):
            config = config_dict(upstream_url)
            config["keys"].append({"name": "metered", "sha256": hashlib.sha256(b"sk-metered").hexdigest(),
                                   "limits": {"rpm": 1000}})
            config.update(limits={"backend": "redis", "on_redis_error": policy},
                          redis={"url": server.url, "prefix": f"{policy}:", "timeout_s": 0.3})
            routers[policy] = make_router(config)

        def statuses(policy: str) -> list[int]:
            with routers[policy].client("sk-metered") as c:
                return [c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": f"x{i}"})
                        .status_code for i in range(5)]

        assert statuses("allow") == statuses("deny") == [200] * 5
        server.stop()
        assert statuses("allow") == [200] * 5
        assert statuses("deny") == [503] * 5
        with routers["deny"].client("sk-metered") as c:
            body = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "y"}).json()
        assert body["error"]["code"] == "limiter_unavailable"
        server.start()
        time.sleep(1.1)
        assert statuses("allow") == statuses("deny") == [200] * 5
        logs = b"".join(r.logs.getvalue() for r in routers.values())
        assert logs.count(b"redis unreachable") == 2 and logs.count(b"redis reachable again") == 2
        metrics = httpx.get(f"{routers['allow'].url}/metrics").text
        assert sample(metrics, "embeddings_router_limiter_unchecked_total") == 5
        assert sample(metrics, "embeddings_router_redis_up") == 1  # back
        assert sample(metrics, "embeddings_router_redis_errors_total") >= 1
    finally:
        server.stop()


def test_recovery_after_a_redis_restart_is_clean(make_router, upstream, upstream_url):
    """With on_redis_error: deny, a restarted Redis is in use within 1 s of answering, and stays
    in use: no stale pooled connection fails a request after the first success."""
    server = PrivateRedis().start()
    try:
        config = config_dict(upstream_url)
        config["keys"].append({"name": "metered", "sha256": hashlib.sha256(b"sk-metered").hexdigest(),
                               "limits": {"rpm": 100000}})
        config.update(limits={"backend": "redis", "on_redis_error": "deny"},
                      redis={"url": server.url, "prefix": "restart:", "timeout_s": 0.3})
        router = make_router(config)
        with router.client("sk-metered") as c:
            def status() -> int:
                return c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "r"}).status_code

            with ThreadPoolExecutor(16) as pool:  # fill the pool with connections that will go stale
                assert set(pool.map(lambda _: status(), range(64))) == {200}
            server.stop()
            assert status() == 503
            server.start()
            answering = time.monotonic()
            seen = []
            while time.monotonic() - answering < 2.5:
                with ThreadPoolExecutor(8) as pool:
                    seen.append((time.monotonic() - answering, list(pool.map(lambda _: status(), range(8)))))
            first_ok = next(t for t, statuses in seen if 200 in statuses)
            assert first_ok < 1.0, seen
            after = [s for t, statuses in seen if t > first_ok for s in statuses]  # the batches after it
            assert set(after) == {200}, " ".join(f"{t:.2f}:{sum(x == 200 for x in s)}" for t, s in seen)
    finally:
        server.stop()
