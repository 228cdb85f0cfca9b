"""The per-input cache, and the invariant that merging never misplaces a vector."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.cache import Lookup, VectorCache
from tests.fakes.openai_upstream import vector_for

MODEL = "text-embedding-3-small"


def test_keys_separate_space_dimensions_and_input_kind():
    keys = {VectorCache.keys(space, dims, [item], tokens)[0]
            for space in ("a", "b") for dims in (None, 8) for item, tokens in (("1", False), ([49], True))}
    assert len(keys) == 8


def test_bounded_in_bytes():
    cache = VectorCache(max_bytes=10 * (64 + 200), ttl_s=60)
    keys = VectorCache.keys("s", None, [str(i) for i in range(50)], False)
    cache.put_many(keys, np.ones((50, 16), dtype=np.float32), [1] * 50)
    assert len(cache) == 10 and cache.size_bytes <= 10 * (64 + 200)


def test_entries_expire():
    cache = VectorCache(max_bytes=1 << 20, ttl_s=0.01)
    keys = VectorCache.keys("s", None, ["x"], False)
    cache.put_many(keys, np.ones((1, 4), dtype=np.float32), [1])
    import time
    time.sleep(0.02)
    assert cache.get_many(keys) == [None]


def test_lookup_merges_by_index():
    cache = VectorCache(1 << 20, 60)
    first = ["a", "b"]
    keys = VectorCache.keys("s", None, first, False)
    lookup = Lookup(cache, keys, first, read=True)
    lookup.merge(np.stack([vector_for(MODEL, t) for t in first]), [1, 2])
    second = ["b", "x", "a", "x"]
    lookup = Lookup(cache, VectorCache.keys("s", None, second, False), second, read=True)
    assert lookup.hits == 2 and lookup.miss_inputs == ["x"]
    vectors, tokens = lookup.merge(vector_for(MODEL, "x")[None], [5])
    np.testing.assert_array_equal(vectors, np.stack([vector_for(MODEL, t) for t in second]))
    assert tokens == 2 + 5 + 1 + 5


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.sampled_from([f"t{i}" for i in range(12)] + ["ü", "日本"]), min_size=1,
                                 max_size=20), min_size=1, max_size=6))
def test_random_mixes_of_repeats_return_uncached_vectors_in_order(router, upstream, batches):
    """Through HTTP: whatever mix of hits, misses and repeats, data[i] is the uncached vector of input i."""
    with router.client() as c:
        for inputs in batches:
            r = c.post("/v1/embeddings", json={"model": MODEL, "input": inputs})
            assert r.status_code == 200
            got = np.float32([d["embedding"] for d in r.json()["data"]])
            np.testing.assert_array_equal(got, np.stack([vector_for(MODEL, t) for t in inputs]))
