"""Request coalescing: the chunks of concurrent requests bound for one deployment, with the
same upstream options, go upstream as one call.

Upstream APIs cap requests per minute as well as tokens, and take up to thousands of
inputs per call for the price of one; an application that sends one text per request
spends a call (and a round trip) on each. A deployment with `coalesce_ms` set keeps
one open batch per set of upstream options: a chunk joins it, and the batch goes when
`coalesce_ms` has passed and the deployment can take a call (its caps count this one
call and its inputs), or as soon as it holds `max_batch` inputs. While it waits for
a free slot it keeps filling, so a busy deployment gets fewer, fuller calls.

Each chunk gets its own vectors back in its own order, and its share of the call's
tokens (exact where the upstream counts per input, else by estimate, scaled so the
shares add up to what the upstream reported). A chunk that leaves (its client hung
up, its deadline passed) leaves the batch; a call whose every chunk left is
cancelled. When a combined call is refused as bad input (400), it is split in two
and each half sent again, so only the chunks whose own inputs are refused get the
upstream's 400. Retries, fallback and hedging stay per chunk, in `routing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field

from router.errors import RouterError
from router.providers.base import EmbedResult, estimate_tokens

# The deployment's side, given by routing: wait until a call may start, and make it.
Gate = Callable[[int], Awaitable[None]]            # (estimated tokens) -> returns when the caps allow a call
Send = Callable[[Sequence], Awaitable[EmbedResult]]


@dataclass(eq=False)
class _Member:
    inputs: Sequence
    estimate: list[int]
    future: asyncio.Future


@dataclass(eq=False)
class _Batch:
    members: list[_Member] = field(default_factory=list)
    size: int = 0
    closed: bool = False
    full: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


class Coalescer:
    def __init__(self, wait_s: float, max_batch: int) -> None:
        self.wait_s, self.max_batch = wait_s, max_batch
        self._open: dict[Hashable, _Batch] = {}

    def filling(self, options: Hashable) -> bool:
        """Whether a batch for `options` is open to one more chunk."""
        batch = self._open.get(options)
        return batch is not None and not batch.closed and batch.size < self.max_batch

    async def embed(self, options: Hashable, inputs: Sequence, gate: Gate, send: Send) -> EmbedResult:
        """This chunk's result, from a call it shares with whatever else joins within the window."""
        batch = self._open.get(options)
        if batch is None or batch.closed or batch.size + len(inputs) > self.max_batch:
            if batch is not None and not batch.closed:
                self._close(options, batch)  # a full one goes now; this chunk starts the next
            batch = self._open[options] = _Batch()
            batch.task = asyncio.get_running_loop().create_task(self._run(options, batch, gate, send))
        member = _Member(inputs, estimate_tokens(inputs), asyncio.get_running_loop().create_future())
        batch.members.append(member)
        batch.size += len(inputs)
        if batch.size >= self.max_batch:
            self._close(options, batch)
        try:
            return await member.future
        except asyncio.CancelledError:
            if not batch.closed:  # not sent yet: leave it
                batch.members.remove(member)
                batch.size -= len(inputs)
                if not batch.members and batch.task is not None:
                    self._close(options, batch)
                    batch.task.cancel()
            elif batch.task is not None and all(m.future.done() for m in batch.members):
                batch.task.cancel()  # nobody is waiting for this call any more
            raise

    def _close(self, options: Hashable, batch: _Batch) -> None:
        batch.closed = True
        batch.full.set()
        if self._open.get(options) is batch:
            del self._open[options]

    async def _run(self, options: Hashable, batch: _Batch, gate: Gate, send: Send) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch.full.wait(), self.wait_s)
            # Still open while it waits for a free slot: more chunks may join.
            await gate(sum(sum(m.estimate) for m in batch.members))
            self._close(options, batch)
            await self._send([m for m in batch.members if not m.future.done()], send)
        except BaseException as exc:
            self._close(options, batch)
            for m in batch.members:
                if not m.future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        m.future.cancel()
                    else:
                        m.future.set_exception(copy.copy(exc))
            if not isinstance(exc, Exception):
                raise

    async def _send(self, members: list[_Member], send: Send) -> None:
        if not members:
            return
        inputs = [x for m in members for x in m.inputs]
        try:
            result = await send(inputs)
        except RouterError as exc:
            if exc.status == 400 and len(members) > 1:  # whose input is it? ask each half
                half = len(members) // 2
                await asyncio.gather(self._send(members[:half], send), self._send(members[half:], send))
                return
            for m in members:
                if not m.future.done():
                    m.future.set_exception(copy.copy(exc))
            return
        for m, share in zip(members, _shares(result, members)):
            if not m.future.done():
                m.future.set_result(share)


def _shares(result: EmbedResult, members: list[_Member]) -> list[EmbedResult]:
    """Each member's rows of the combined result, and its part of the tokens."""
    shares = _apportion(result.tokens, [sum(m.estimate) for m in members])
    out, start = [], 0
    for m, share in zip(members, shares):
        end = start + len(m.inputs)
        items = list(result.item_tokens[start:end]) if result.item_tokens is not None else None
        out.append(EmbedResult(result.vectors[start:end], sum(items) if items is not None else share, items,
                               result.tokens_estimated))
        start = end
    return out


def _apportion(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights`, in whole numbers that add up to it (largest remainder)."""
    weight = sum(weights)
    if weight <= 0:
        weights, weight = [1] * len(weights), len(weights)
    exact = [total * w / weight for w in weights]
    shares = [int(x) for x in exact]
    for i in sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)[:total - sum(shares)]:
        shares[i] += 1
    return shares
