"""Lookups: merging by index, single-flight, and the invariant that merging never misplaces a vector."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.cache import Cache, cache_keys
from router.cache.memory import MemoryStore
from tests.fakes.openai_upstream import vector_for

MODEL = "text-embedding-3-small"


def test_keys_separate_space_dimensions_and_input_kind():
    keys = {cache_keys(space, dims, [item], tokens)[0]
            for space in ("a", "b") for dims in (None, 8) for item, tokens in (("1", False), ([49], True))}
    assert len(keys) == 8


class Upstream:
    """A compute function that records its calls and can be held or made to fail."""

    def __init__(self) -> None:
        self.calls: list[list] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_first = False

    async def __call__(self, inputs: list) -> tuple[np.ndarray, list[int]]:
        self.calls.append(list(inputs))
        first = len(self.calls) == 1
        await self.release.wait()
        if first and self.fail_first:
            raise RuntimeError("upstream failed")
        return np.stack([vector_for(MODEL, x) for x in inputs]), [len(x) for x in inputs]


def expected(inputs: list[str]) -> np.ndarray:
    return np.stack([vector_for(MODEL, x) for x in inputs])


async def run(cache: Cache, inputs: list[str], upstream: Upstream, read: bool = True) -> tuple[np.ndarray, int]:
    lookup = await cache.lookup(cache_keys("s", None, inputs, False), inputs, read=read)
    return await lookup.finish(upstream)


async def test_lookup_merges_hits_misses_and_repeats_by_index():
    cache, upstream = Cache(MemoryStore(1 << 20, 60)), Upstream()
    await run(cache, ["a", "bb"], upstream)
    lookup = await cache.lookup(cache_keys("s", None, second := ["bb", "xxx", "a", "xxx"], False), second, read=True)
    assert lookup.hits == 2 and lookup.miss_inputs == ["xxx"]
    vectors, tokens = await lookup.finish(upstream)
    np.testing.assert_array_equal(vectors, expected(second))
    assert tokens == 2 + 3 + 1 + 3 and upstream.calls[-1] == ["xxx"]


async def test_concurrent_requests_for_one_input_share_one_call():
    cache, upstream = Cache(MemoryStore(1 << 20, 60)), Upstream()
    upstream.release.clear()
    first = asyncio.create_task(run(cache, ["a", "b"], upstream))
    await asyncio.sleep(0)
    second = asyncio.create_task(run(cache, ["b", "c", "a"], upstream))
    await asyncio.sleep(0.01)
    upstream.release.set()
    (v1, t1), (v2, t2) = await first, await second
    assert upstream.calls == [["a", "b"], ["c"]]
    np.testing.assert_array_equal(v1, expected(["a", "b"]))
    np.testing.assert_array_equal(v2, expected(["b", "c", "a"]))
    assert (t1, t2) == (2, 3) and cache.flights == {}


async def test_single_flight_works_without_a_store():
    cache, upstream = Cache(), Upstream()
    upstream.release.clear()
    tasks = [asyncio.create_task(run(cache, ["same"], upstream)) for _ in range(5)]
    await asyncio.sleep(0.01)
    upstream.release.set()
    for vectors, _ in await asyncio.gather(*tasks):
        np.testing.assert_array_equal(vectors, expected(["same"]))
    assert upstream.calls == [["same"]]


@pytest.mark.parametrize("how", ["fails", "is cancelled"])
async def test_when_the_computing_request_gives_up_the_others_compute_themselves(how):
    cache, upstream = Cache(MemoryStore(1 << 20, 60)), Upstream()
    upstream.release.clear()
    upstream.fail_first = how == "fails"
    first = asyncio.create_task(run(cache, ["a"], upstream))
    await asyncio.sleep(0)
    second = asyncio.create_task(run(cache, ["a", "b"], upstream))
    await asyncio.sleep(0.01)
    if how == "is cancelled":
        first.cancel()
    else:
        upstream.release.set()
        with pytest.raises(RuntimeError):
            await first
    upstream.release.set()
    vectors, _ = await second
    np.testing.assert_array_equal(vectors, expected(["a", "b"]))
    assert upstream.calls == [["a"], ["b"], ["a"]] and cache.flights == {}


async def test_no_cache_requests_neither_read_nor_join():
    cache, upstream = Cache(MemoryStore(1 << 20, 60)), Upstream()
    await run(cache, ["a"], upstream)
    await run(cache, ["a"], upstream, read=False)
    assert upstream.calls == [["a"], ["a"]]


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


async def test_an_all_miss_answer_is_handed_on_without_a_copy_and_repeats_still_merge():
    computed: list[np.ndarray] = []

    async def upstream(inputs: list) -> tuple[np.ndarray, list[int]]:
        computed.append(np.stack([vector_for(MODEL, x) for x in inputs]))
        return computed[-1], [len(x) for x in inputs]

    cache = Cache(MemoryStore(1 << 20, 60))
    vectors, tokens = await run(cache, ["p", "qq", "rrr"], upstream)
    assert vectors is computed[-1] and tokens == 6  # every input computed once, in order: the answer itself
    vectors, _ = await run(Cache(MemoryStore(1 << 20, 60)), ["p", "qq", "p"], upstream)
    assert vectors is not computed[-1]  # a repeat: two computed rows for three inputs, merged into a new array
    np.testing.assert_array_equal(vectors, expected(["p", "qq", "p"]))
