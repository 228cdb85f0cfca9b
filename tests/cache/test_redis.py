"""The shared store in the real Redis: round trips, TTLs, foreign values, outages."""

from __future__ import annotations

import numpy as np
import pytest
import structlog

from router.cache import Cache, cache_keys
from router.cache.memory import MemoryStore
from router.cache.redis import RedisStore
from router.config import RedisConfig
from router.redis_link import RedisLink
from tests.redis_servers import SHARED_URL, PrivateRedis, delete_prefix, unique_prefix


@pytest.fixture
async def link():
    prefix = unique_prefix()
    lk = RedisLink(RedisConfig(url=SHARED_URL, prefix=prefix), structlog.get_logger())
    yield lk
    await lk.aclose()
    delete_prefix(SHARED_URL, prefix)


async def test_round_trip_exact_with_a_ttl(link):
    store = RedisStore(link, ttl_s=60)
    keys = cache_keys("s", None, ["a", "b", "c"], False)
    vectors = np.random.default_rng(0).standard_normal((3, 384)).astype(np.float32)
    await store.put_many(keys[:2], vectors[:2], [3, 4])
    got = await store.get_many(keys)
    assert got[2] is None
    np.testing.assert_array_equal(np.stack([got[0].vector, got[1].vector]), vectors[:2])
    assert (got[0].tokens, got[1].tokens) == (3, 4)
    ttl = await link.client.pttl(f"{link.prefix}vec:{keys[0].hex()}")
    assert 59_000 < ttl <= 60_000


async def test_a_value_it_did_not_write_is_a_miss(link):
    store = RedisStore(link, ttl_s=60)
    key = cache_keys("s", None, ["a"], False)[0]
    await link.client.set(f"{link.prefix}vec:{key.hex()}", b"garbage")
    assert await store.get_many([key]) == [None]


async def test_second_level_fills_the_first(link):
    shared = RedisStore(link, ttl_s=60)
    keys = cache_keys("s", None, ["a"], False)
    await shared.put_many(keys, np.ones((1, 4), dtype=np.float32), [2])
    memory = MemoryStore(1 << 20, 60)
    cache = Cache(memory, shared)
    assert (await cache.get_many(keys))[0].tokens == 2
    assert memory.get_many(keys)[0].tokens == 2


async def test_an_outage_is_a_miss_not_an_error():
    server = PrivateRedis().start()
    link = RedisLink(RedisConfig(url=server.url, prefix="p:", timeout_s=0.3), structlog.get_logger())
    store = RedisStore(link, ttl_s=60)
    keys = cache_keys("s", None, ["a"], False)
    try:
        await store.put_many(keys, np.ones((1, 4), dtype=np.float32), [1])
        server.stop()
        assert await store.get_many(keys) == [None]
        await store.put_many(keys, np.ones((1, 4), dtype=np.float32), [1])  # dropped, no error
        assert link.down
    finally:
        server.stop()
        await link.aclose()
