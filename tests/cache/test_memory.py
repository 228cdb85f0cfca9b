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
