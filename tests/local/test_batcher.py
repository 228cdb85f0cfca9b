"""The dynamic batcher with a fake engine: a function of the ids, no weights."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from router.errors import Overloaded
from router.local.batcher import Batcher


def ids(*lengths: int) -> list[np.ndarray]:
    return [np.arange(1, n + 1, dtype=np.int64) * (i + 1) for i, n in enumerate(lengths)]


class FakeEngine:
    """Vector = (first id, length); records every batch it ran."""

    def __init__(self, fail_when: int | None = None, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_when, self.gate = fail_when, gate

    def __call__(self, batch: list[np.ndarray]) -> list[tuple[list[int], np.ndarray]]:
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append([len(x) for x in batch])
        if self.fail_when is not None and any(len(x) == self.fail_when for x in batch):
            raise RuntimeError("engine failed")
        return [(list(range(len(batch))), np.array([[x[0], len(x)] for x in batch], dtype=np.float32))]


async def test_results_in_input_order_and_sorted_batches():
    engine = FakeEngine()
    batcher = Batcher(engine, max_batch=4)
    inputs = ids(9, 1, 5, 3, 7, 2)
    out = await batcher.embed(inputs)
    np.testing.assert_array_equal(out, [[x[0], len(x)] for x in inputs])
    assert engine.batches == [[1, 2, 3, 5], [7, 9]]  # length-sorted: little padding
    await batcher.aclose()


async def test_token_budget_limits_batch_width():
    engine = FakeEngine()
    batcher = Batcher(engine, max_batch=32, max_batch_tokens=20)
    await batcher.embed(ids(10, 10, 10, 4, 4))
    assert all(len(b) * max(b) <= 20 for b in engine.batches)
    await batcher.aclose()


async def test_a_failed_batch_fails_every_waiter_and_others_go_on():
    gate = threading.Event()
    engine = FakeEngine(fail_when=6, gate=gate)
    batcher = Batcher(engine, max_batch=8)
    blocker = asyncio.create_task(batcher.embed(ids(1)))  # occupies the engine while the rest queue
    await asyncio.sleep(0.05)
    doomed = [asyncio.create_task(batcher.embed(ids(6))), asyncio.create_task(batcher.embed(ids(2)))]
    await asyncio.sleep(0.05)
    gate.set()
    await blocker
    results = await asyncio.wait_for(asyncio.gather(*doomed, return_exceptions=True), 5)
    assert all(isinstance(r, RuntimeError) for r in results)  # same batch, same fate
    np.testing.assert_array_equal(await batcher.embed(ids(3)), [[1, 3]])  # the batcher lives on
    await batcher.aclose()


def two_runs(gate: threading.Event, fail_second: bool = False):
    """An engine that answers the first input in a run of its own, then waits on `gate`."""
    def runs(batch: list[np.ndarray]):
        yield [0], np.array([[batch[0][0], len(batch[0])]], dtype=np.float32)
        gate.wait(5)
        if fail_second:
            raise RuntimeError("second run failed")
        yield list(range(1, len(batch))), np.array([[x[0], len(x)] for x in batch[1:]], dtype=np.float32)
    return runs


async def test_each_run_answers_its_requests_while_the_batch_goes_on():
    gate = threading.Event()
    batcher = Batcher(two_runs(gate), max_batch=2)
    first, second = asyncio.create_task(batcher.embed(ids(1))), asyncio.create_task(batcher.embed(ids(2)))
    np.testing.assert_array_equal(await asyncio.wait_for(first, 5), [[1, 1]])
    assert not second.done()
    gate.set()
    np.testing.assert_array_equal(await asyncio.wait_for(second, 5), [[1, 2]])
    await batcher.aclose()


async def test_a_run_that_fails_fails_only_what_is_still_unanswered():
    gate = threading.Event()
    gate.set()
    batcher = Batcher(two_runs(gate, fail_second=True), max_batch=2)
    results = await asyncio.wait_for(asyncio.gather(batcher.embed(ids(1)), batcher.embed(ids(2)),
                                                    return_exceptions=True), 5)
    np.testing.assert_array_equal(results[0], [[1, 1]])
    assert isinstance(results[1], RuntimeError)
    await batcher.aclose()


async def test_cancelled_requests_are_skipped():
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    batcher = Batcher(engine, max_batch=2)
    first = asyncio.create_task(batcher.embed(ids(1)))
    await asyncio.sleep(0.05)
    cancelled = asyncio.create_task(batcher.embed(ids(*[5] * 10)))
    kept = asyncio.create_task(batcher.embed(ids(3)))
    await asyncio.sleep(0.05)
    cancelled.cancel()
    gate.set()
    await first
    assert (await kept)[0][1] == 3
    assert sum(len(b) for b in engine.batches) == 2  # none of the cancelled ten ran
    assert batcher.queue_depth == 0
    await batcher.aclose()


async def test_full_queue_is_a_fast_503():
    gate = threading.Event()
    batcher = Batcher(FakeEngine(gate=gate), max_batch=2, max_queue=4)
    running = asyncio.create_task(batcher.embed(ids(1, 1, 1, 1)))
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded):
        await batcher.embed(ids(1, 1, 1))
    gate.set()
    await running
    await batcher.aclose()


async def test_big_request_and_small_ones_interleave():
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    batcher = Batcher(engine, max_batch=32)
    big = asyncio.create_task(batcher.embed(ids(*[4] * 2048)))
    await asyncio.sleep(0.02)
    smalls = [asyncio.create_task(batcher.embed(ids(4))) for _ in range(64)]
    await asyncio.sleep(0.02)
    gate.set()
    await asyncio.gather(*smalls)
    # every small request was served while most of the big one still waited
    assert len(engine.batches) <= 6, len(engine.batches)
    assert not big.done()
    await big
    await batcher.aclose()

