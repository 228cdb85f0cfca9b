"""Dynamic batching for the local engine, in the shape of text-embeddings-inference.

One owner task holds the queue and is woken by an event (no polling). It
packs a batch by a token budget and a max size, taking inputs round-robin
across waiting requests so a 2,048-input request cannot starve single-input
ones; each request's inputs are pre-sorted by length so a batch holds inputs
of similar length and little padding. Inference runs on one dedicated
thread, so the event loop stays free; the engine cuts a batch into runs of
like lengths, and each run's requests are answered as soon as it is done. A
failed run fails every request still waiting in its batch; a cancelled
request's inputs are skipped; a full queue answers 503 at once.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from router.errors import Overloaded

# A batch's vectors, run by run: (rows of the batch, their vectors); see Engine.runs.
Runs = Callable[[list[np.ndarray]], Iterable[tuple[list[int], np.ndarray]]]


class _Job:
    """One request: its inputs in length order, and where their vectors go."""

    __slots__ = ("future", "ids", "next", "order", "remaining", "vectors")

    def __init__(self, ids: list[np.ndarray], future: asyncio.Future) -> None:
        self.future = future
        self.ids = ids
        self.order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        self.next = 0
        self.vectors: np.ndarray | None = None
        self.remaining = len(ids)

    @property
    def pending(self) -> int:
        return len(self.order) - self.next


class BatchSizes:
    """Counts of batch sizes in power-of-two buckets, for the batch-size histogram in /metrics."""

    BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BOUNDS) + 1)  # the last: larger than every bound
        self.total = 0

    def record(self, size: int) -> None:
        self.counts[bisect.bisect_left(self.BOUNDS, size)] += 1
        self.total += size


class Batcher:
    def __init__(self, infer: Runs, *, max_batch: int = 32, max_batch_tokens: int = 16384,
                 max_queue: int = 8192, name: str = "local") -> None:
        self._infer = infer
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens
        self.max_queue = max_queue
        self._jobs: deque[_Job] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")
        self._owner: asyncio.Task | None = None
        self.batch_sizes = BatchSizes()

    @property
    def queue_depth(self) -> int:
        return self._queued

    async def embed(self, ids: list[np.ndarray]) -> np.ndarray:
        """Vectors for these token id arrays, in their order."""
        if self._queued + len(ids) > self.max_queue:
            raise Overloaded(f"the local model's queue is full ({self.max_queue} inputs); retry shortly",
                             code="queue_full", retry_after=1)
        if self._owner is None or self._owner.done():
            self._owner = asyncio.get_running_loop().create_task(self._run())
        job = _Job(ids, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._queued += len(ids)
        self._wake.set()
        try:
            return await job.future
        finally:
            if not job.future.done():  # cancelled by our caller: drop what is still queued
                job.future.cancel()

    async def aclose(self) -> None:
        if self._owner is not None:
            self._owner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._owner
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(Overloaded("the local model is shutting down"))
        self._jobs.clear()
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while batch := self._pack():
                self.batch_sizes.record(len(batch))
                try:
                    await loop.run_in_executor(self._thread, self._compute, loop, batch)
                except Exception as exc:
                    for job in {id(j): j for j, _, _ in batch}.values():
                        self._fail(job, exc)

    def _compute(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[_Job, int, np.ndarray]]) -> None:
        """On the inference thread: hand each run's vectors to the loop as soon as it is done,
        so its requests answer (and their clients send the next) while the rest of the batch runs."""
        for rows, vectors in self._infer([ids for _, _, ids in batch]):
            loop.call_soon_threadsafe(self._deliver_rows, [batch[r] for r in rows], vectors)

    def _deliver_rows(self, items: list[tuple[_Job, int, np.ndarray]], vectors: np.ndarray) -> None:
        for (job, index, _), vector in zip(items, vectors):
            self._deliver(job, index, vector)

    def _pack(self) -> list[tuple[_Job, int, np.ndarray]]:
        """Take inputs round-robin across waiting jobs, within the budgets."""
        batch: list[tuple[_Job, int, np.ndarray]] = []
        longest = 0
        while self._jobs and len(batch) < self.max_batch:
            job = self._jobs.popleft()
            if job.future.done():  # cancelled (or failed): skip what it still had queued
                self._queued -= job.pending
                job.next = len(job.order)
                continue
            index = job.order[job.next]
            ids = job.ids[index]
            width = max(longest, len(ids))
            if batch and width * (len(batch) + 1) > self.max_batch_tokens:
                self._jobs.appendleft(job)
                break
            longest = width
            job.next += 1
            self._queued -= 1
            batch.append((job, index, ids))
            if job.pending:
                self._jobs.append(job)
        return batch

    def _deliver(self, job: _Job, index: int, vector: np.ndarray) -> None:
        if job.future.done():
            return
        if job.vectors is None:
            job.vectors = np.empty((len(job.ids), vector.shape[0]), dtype=np.float32)
        job.vectors[index] = vector
        job.remaining -= 1
        if job.remaining == 0:
            job.future.set_result(job.vectors)

    def _fail(self, job: _Job, exc: Exception) -> None:
        if not job.future.done():
            job.future.set_exception(exc)
        self._queued -= job.pending
        job.next = len(job.order)
