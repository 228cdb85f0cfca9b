"""The in-process store: bounded in bytes, entries expire, copies not views."""

from __future__ import annotations

import time

import numpy as np

from router.cache import cache_keys
from router.cache.memory import MemoryStore


def test_bounded_in_bytes():
    store = MemoryStore(max_bytes=10 * (64 + 200), ttl_s=60)
    keys = cache_keys("s", None, [str(i) for i in range(50)], False)
    store.put_many(keys, np.ones((50, 16), dtype=np.float32), [1] * 50)
    assert len(store) == 10 and store.size_bytes <= 10 * (64 + 200)


def test_entries_expire():
    store = MemoryStore(max_bytes=1 << 20, ttl_s=0.01)
    keys = cache_keys("s", None, ["x"], False)
    store.put_many(keys, np.ones((1, 4), dtype=np.float32), [1])
    time.sleep(0.02)
    assert store.get_many(keys) == [None]


def test_stores_a_copy_of_each_row():
    store = MemoryStore(max_bytes=1 << 20, ttl_s=60)
    batch = np.ones((2, 4), dtype=np.float32)
    keys = cache_keys("s", None, ["a", "b"], False)
    store.put_many(keys, batch, [1, 1])
    batch[:] = 0
    assert store.get_many(keys)[0].vector.tolist() == [1.0] * 4
    assert store.get_many(keys)[0].vector.base is None  # holds its own 16 bytes, not the batch


def test_the_least_recently_used_goes_first():
    store = MemoryStore(max_bytes=3 * (64 + 200), ttl_s=60)
    a, b, c, d = cache_keys("s", None, ["a", "b", "c", "d"], False)
    store.put_many([a, b, c], np.ones((3, 16), dtype=np.float32), [1, 1, 1])
    store.get_many([a])  # read: now the most recently used
    store.put_many([d], np.ones((1, 16), dtype=np.float32), [1])
    assert [e is not None for e in store.get_many([a, b, c, d])] == [True, False, True, True]


def test_a_stored_again_key_is_counted_once_and_lives_on():
    store = MemoryStore(max_bytes=1 << 20, ttl_s=0.2)
    keys = cache_keys("s", None, ["x"], False)
    store.put_many(keys, np.ones((1, 16), dtype=np.float32), [1])
    time.sleep(0.15)
    store.put_many(keys, np.full((1, 16), 2, dtype=np.float32), [2])
    time.sleep(0.1)  # past the first put's expiry, not the second's
    entry = store.get_many(keys)[0]
    assert entry is not None and entry.tokens == 2 and entry.vector[0] == 2
    assert len(store) == 1 and store.size_bytes == 64 + 200


def test_expired_entries_leave_the_counts():
    store = MemoryStore(max_bytes=1 << 20, ttl_s=0.01)
    store.put_many(cache_keys("s", None, ["x", "y"], False), np.ones((2, 16), dtype=np.float32), [1, 1])
    time.sleep(0.02)
    store.get_many([])
    assert len(store) == 0 and store.size_bytes == 0


def test_a_vector_larger_than_the_store_is_not_kept():
    store = MemoryStore(max_bytes=100, ttl_s=60)
    keys = cache_keys("s", None, ["x"], False)
    store.put_many(keys, np.ones((1, 64), dtype=np.float32), [1])
    assert store.get_many(keys) == [None] and store.size_bytes == 0
