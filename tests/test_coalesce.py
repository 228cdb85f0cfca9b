"""Request coalescing: the Coalescer on its own (random concurrent chunks against a fake
call), and through the router against a fake upstream over HTTP."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.coalesce import Coalescer, _apportion
from router.errors import InvalidRequest, UpstreamError
from router.providers.base import EmbedResult
from tests.conftest import KEY, config_dict
from tests.fakes.api import tokens_of
from tests.fakes.openai_upstream import vector_for

MODEL = "text-embedding-3-small"


def row(text: str) -> np.ndarray:
    return np.frombuffer(text.encode().ljust(8, b"\0")[:8], dtype=np.uint8).astype(np.float32)


class FakeCall:
    """Answers each input with a row derived from it; refuses (400) any call holding a poisoned input."""

    def __init__(self, poison: frozenset = frozenset(), fail_all: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.billed = 0   # tokens of the calls that succeeded
        self.poison, self.fail_all = poison, fail_all

    async def __call__(self, inputs: Sequence) -> EmbedResult:
        self.calls.append(list(inputs))
        await asyncio.sleep(0.001)
        if self.fail_all:
            raise UpstreamError("the upstream is down")
        if bad := [x for x in inputs if x in self.poison]:
            raise InvalidRequest(f"refused: {bad[0]}")
        self.billed += sum(len(x) for x in inputs)
        return EmbedResult(np.stack([row(x) for x in inputs]), sum(len(x) for x in inputs))


async def open_gate(tokens: int) -> None:
    return None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "bb", "ccc", "dddd", "poison", "e" * 9]), min_size=1, max_size=5),
                min_size=1, max_size=12),
       st.integers(1, 8), st.randoms(use_true_random=False))
def test_every_chunk_gets_exactly_its_own_rows_and_poison_stays_with_its_owner(chunks, max_batch, rng):
    async def scenario() -> None:
        coalescer = Coalescer(0.002, max_batch)
        call = FakeCall(poison=frozenset({"poison"}))

        async def one(chunk: list[str]) -> EmbedResult | Exception:
            await asyncio.sleep(rng.random() * 0.003)
            try:
                return await coalescer.embed("options", chunk, open_gate, call)
            except InvalidRequest as exc:
                return exc

        results = await asyncio.gather(*[one(c) for c in chunks if len(c) <= max_batch])
        for chunk, result in zip([c for c in chunks if len(c) <= max_batch], results):
            if "poison" in chunk:
                assert isinstance(result, InvalidRequest)
            else:
                assert isinstance(result, EmbedResult), result
                np.testing.assert_array_equal(result.vectors, np.stack([row(x) for x in chunk]))
        # each call's tokens are shared out by estimate, and the shares add up to what was billed
        assert sum(r.tokens for r in results if isinstance(r, EmbedResult)) == call.billed
        assert all(len(c) <= max_batch for c in call.calls)

    asyncio.run(scenario())


async def test_concurrent_chunks_share_one_call_and_leavers_leave():
    coalescer = Coalescer(0.02, 100)
    call = FakeCall()
    leaver = asyncio.ensure_future(coalescer.embed("o", ["gone"], open_gate, call))
    stayers = [asyncio.ensure_future(coalescer.embed("o", [f"t{i}"], open_gate, call)) for i in range(5)]
    other = asyncio.ensure_future(coalescer.embed("other options", ["x"], open_gate, call))
    await asyncio.sleep(0.005)
    leaver.cancel()
    results = await asyncio.gather(*stayers, other)
    assert sorted(map(sorted, call.calls)) == [["t0", "t1", "t2", "t3", "t4"], ["x"]]
    assert [r.vectors.shape[0] for r in results] == [1] * 6


async def test_a_failed_call_fails_every_chunk_in_it_and_a_batch_nobody_waits_for_is_dropped():
    coalescer = Coalescer(0.01, 100)
    down = FakeCall(fail_all=True)
    results = await asyncio.gather(*[coalescer.embed("o", [f"t{i}"], open_gate, down) for i in range(3)],
                                   return_exceptions=True)
    assert all(isinstance(r, UpstreamError) for r in results) and len(down.calls) == 1
    assert len({id(r) for r in results}) == 3  # each request its own error object

    idle = FakeCall()
    lone = asyncio.ensure_future(coalescer.embed("o", ["alone"], open_gate, idle))
    await asyncio.sleep(0.001)
    lone.cancel()
    await asyncio.sleep(0.03)
    assert idle.calls == [] and not coalescer.filling("o")


async def test_a_chunk_whose_deadline_passes_leaves_without_taking_the_call_down():
    coalescer = Coalescer(0.005, 100)

    async def slow(inputs: Sequence) -> EmbedResult:
        await asyncio.sleep(0.1)
        return EmbedResult(np.stack([row(x) for x in inputs]), len(inputs))

    async def hurried() -> EmbedResult:
        async with asyncio.timeout(0.03):  # as routing bounds each chunk by its request's deadline
            return await coalescer.embed("o", ["hurried"], open_gate, slow)

    results = await asyncio.gather(hurried(), coalescer.embed("o", ["patient"], open_gate, slow),
                                   return_exceptions=True)
    assert isinstance(results[0], TimeoutError)
    assert isinstance(results[1], EmbedResult) and results[1].vectors.shape == (1, 8)


async def test_a_batch_waiting_for_a_slot_keeps_filling():
    coalescer = Coalescer(0.001, 100)
    call, slot = FakeCall(), asyncio.Event()

    async def gate(tokens: int) -> None:
        await slot.wait()

    first = asyncio.ensure_future(coalescer.embed("o", ["a"], gate, call))
    await asyncio.sleep(0.01)  # past the window, waiting for a slot
    assert coalescer.filling("o")
    later = asyncio.ensure_future(coalescer.embed("o", ["b"], gate, call))
    await asyncio.sleep(0)
    slot.set()
    await asyncio.gather(first, later)
    assert call.calls == [["a", "b"]]


@pytest.mark.parametrize(("total", "weights"), [(10, [1, 1, 1]), (7, [5, 0, 2]), (0, [3, 4]), (5, [0, 0])])
def test_token_shares_add_up_to_what_the_upstream_reported(total, weights):
    shares = _apportion(total, weights)
    assert sum(shares) == total and all(s >= 0 for s in shares)


# --- through the router --------------------------------------------------------------------------


def coalescing_config(url: str, provider_ms: float = 20, **deployment: object) -> dict:
    """The fake provider coalescing for `provider_ms`; `deployment`: fields of the model's deployment."""
    config = config_dict(url)
    config["providers"]["fake"]["coalesce_ms"] = provider_ms
    config["models"][MODEL]["deployments"][0].update(deployment)
    config["cache"] = {"backend": "none"}
    return config


def send_all(url: str, texts: list[str], timeout: float = 30) -> list[httpx.Response]:
    def one(text: str) -> httpx.Response:
        return httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": text},
                          headers={"authorization": f"Bearer {KEY}"}, timeout=timeout)

    with ThreadPoolExecutor(len(texts)) as pool:
        return list(pool.map(one, texts))


def test_concurrent_requests_go_upstream_together(make_router, make_upstream):
    upstream, url = make_upstream()
    router = make_router(coalescing_config(url, max_concurrency=1))
    texts = [f"request number {i}" for i in range(24)]
    answers = send_all(router.url, texts)
    for text, answer in zip(texts, answers):
        assert answer.status_code == 200, answer.text
        np.testing.assert_array_equal(np.float32(answer.json()["data"][0]["embedding"]), vector_for(MODEL, text))
    # The upstream reports each call's total; the requests' shares add up to exactly what it billed.
    assert sum(a.json()["usage"]["prompt_tokens"] for a in answers) == tokens_of(texts)
    assert len(upstream.requests) <= 8 and upstream.max_in_flight == 1
    metrics = httpx.get(f"{router.url}/metrics").text
    labels = f'{{deployment="fake/{MODEL}",model="{MODEL}"}}'
    assert f"embeddings_router_upstream_calls_total{labels} {float(len(upstream.requests))}" in metrics
    assert f"embeddings_router_upstream_inputs_per_call_sum{labels} 24.0" in metrics


def test_a_poisoned_input_fails_only_its_own_request(make_router, make_upstream):
    _, url = make_upstream(refuse=frozenset({"poisoned text"}))
    router = make_router(coalescing_config(url))
    texts = [f"fine {i}" for i in range(7)] + ["poisoned text"]
    random.Random(3).shuffle(texts)
    for text, answer in zip(texts, send_all(router.url, texts)):
        if text == "poisoned text":
            assert answer.status_code == 400 and "usage policy" in answer.json()["error"]["message"]
        else:
            assert answer.status_code == 200, answer.text
            np.testing.assert_array_equal(np.float32(answer.json()["data"][0]["embedding"]),
                                          vector_for(MODEL, text))


def test_a_client_that_hangs_up_leaves_the_batch_and_the_rest_are_served(make_router, make_upstream):
    upstream, url = make_upstream(delay_s=0.4)
    # The hang-up must reach the router within the window. At 50 ms, 1 run in 20 here sent "impatient":
    # traced, its request joined 43 ms into the window (the client threads start unevenly) and hung up
    # 13 ms later, after the batch had left.
    router = make_router(coalescing_config(url, provider_ms=150))

    def impatient() -> str:
        try:
            httpx.post(f"{router.url}/v1/embeddings", json={"model": MODEL, "input": "impatient"},
                       headers={"authorization": f"Bearer {KEY}"}, timeout=0.01)
        except httpx.TimeoutException:
            return "hung up"
        return "answered"

    with ThreadPoolExecutor(2) as pool:
        gone = pool.submit(impatient)
        answers = send_all(router.url, [f"patient {i}" for i in range(4)])
    assert gone.result() == "hung up"
    assert all(a.status_code == 200 for a in answers)
    sent = [x for r in upstream.requests for x in upstream.inputs_of(r)]
    assert "impatient" not in sent and len(upstream.requests) <= 2


def test_a_deployment_override_turns_coalescing_off(make_router, make_upstream):
    upstream, url = make_upstream()
    router = make_router(coalescing_config(url, provider_ms=20, coalesce_ms=0))
    send_all(router.url, [f"t{i}" for i in range(6)])
    assert len(upstream.requests) == 6


WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "poison"]


@pytest.fixture
def coalescing_pair(make_router, make_upstream):
    """A model whose primary coalesces (max_batch 4, so requests are chunked too) and whose
    backup does not; both refuse the input "poison"."""
    primary, primary_url = make_upstream(refuse=frozenset({"poison"}), max_batch=4)
    backup, backup_url = make_upstream(refuse=frozenset({"poison"}))
    config = config_dict(primary_url)
    config["providers"]["fake"].update(coalesce_ms=3, max_batch=4)
    config["providers"]["backup"] = {**config["providers"]["fake"], "base_url": f"{backup_url}/v1",
                                     "coalesce_ms": 0, "max_batch": 64}
    config["models"][MODEL]["deployments"].append({"provider": "backup", "model": MODEL})
    config["routing"] = {"backoff_s": 0.01}
    return primary, backup, make_router(config)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=9), min_size=1, max_size=16),
       st.integers(0, 3))
def test_coalesced_answers_are_what_uncoalesced_calls_would_give(coalescing_pair, requests, failures):
    """Concurrent requests, with cache hits (words repeat), chunking, primary failures that fall
    back, and a poisoned input: each answer is exactly its own vectors in order, or its own 400."""
    primary, _, router = coalescing_pair
    primary.faults.clear()
    primary.fail_next(500, times=failures)

    def one(inputs: list[str]) -> tuple[float, httpx.Response]:
        started = time.monotonic()
        answer = httpx.post(f"{router.url}/v1/embeddings", json={"model": MODEL, "input": inputs},
                            headers={"authorization": f"Bearer {KEY}"}, timeout=30)
        return time.monotonic() - started, answer

    with ThreadPoolExecutor(len(requests)) as pool:
        results = list(pool.map(one, requests))
    for inputs, (took, answer) in zip(requests, results):
        assert took < 5 + 1  # the request deadline (config_dict: 5 s), and a margin
        if "poison" in inputs:
            assert answer.status_code == 400, answer.text
            assert "usage policy" in answer.json()["error"]["message"]
        else:
            assert answer.status_code == 200, answer.text
            got = np.float32([d["embedding"] for d in answer.json()["data"]])
            np.testing.assert_array_equal(got, np.stack([vector_for(MODEL, text) for text in inputs]))
