"""Per-input vector cache: identical inputs never go upstream twice.

    lookup = await cache.lookup(keys, inputs, read=True)   # hits, and what this request must compute
    with lookup:                                           # on failure, joiners compute for themselves
        while todo := await lookup.next_misses():          # its misses; then inputs a failed joinee had
            await lookup.store(*await compute(todo))
        vectors, tokens = lookup.merged()                  # every vector, by input index

Keyed by embedding space, dimensions and the input itself (hashed, so a long
text costs 16 bytes of key). Two levels: the in-process `MemoryStore` in
front of an optional shared `RedisStore`. Single-flight: an input another
request of this process is already computing is awaited, not sent again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from router.cache.memory import Entry, MemoryStore
from router.cache.redis import RedisStore
from router.errors import UpstreamError
from router.providers.base import DEFAULT_OPTIONS, Options

Compute = Callable[[list], Awaitable[tuple[np.ndarray, Sequence[int]]]]
# A key being computed -> (the computing request's future, the key's row in its result).
# The future resolves to (vectors, tokens), or None when that request gave up.
Flights = dict[bytes, tuple[asyncio.Future, int]]


def cache_keys(space: str, dimensions: int | None, inputs: Sequence, tokens: bool,
               options: Options = DEFAULT_OPTIONS) -> list[bytes]:
    """Each input's key: its vector (or its refusal) depends on the space, `dimensions`, the input's
    kind and the upstream options (`input_type`; truncation off, which must not find a cut input's vector)."""
    text_prefix = f"{space}\x00{dimensions or 0}\x00{'t' if tokens else 's'}\x00"
    if options != DEFAULT_OPTIONS:  # the default's keys stay what they always were
        cut = "" if options.truncate else "no-truncate"
        text_prefix += f"{options.input_type or ''}\x00{cut}\x00{options.dtype}\x00"
    prefix = text_prefix.encode()
    if tokens:
        return [_digest(prefix + np.asarray(x, dtype="<u4").tobytes()) for x in inputs]
    return [_digest(prefix + x.encode("utf-8", "surrogatepass")) for x in inputs]


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class Cache:
    def __init__(self, memory: MemoryStore | None = None, shared: RedisStore | None = None) -> None:
        self.memory, self.shared = memory, shared
        self.flights: Flights = {}

    async def get_many(self, keys: Sequence[bytes]) -> list[Entry | None]:
        entries: list[Entry | None] = self.memory.get_many(keys) if self.memory is not None else [None] * len(keys)
        if self.shared is not None and (missing := [i for i, e in enumerate(entries) if e is None]):
            found = await self.shared.get_many([keys[i] for i in missing])
            filled = [(i, e) for i, e in zip(missing, found) if e is not None]
            for i, entry in filled:
                entries[i] = entry
            if filled and self.memory is not None:
                self.memory.put_many([keys[i] for i, _ in filled], [e.vector for _, e in filled],
                                     [e.tokens for _, e in filled])
        return entries

    async def put_many(self, keys: Sequence[bytes], vectors: Sequence[np.ndarray] | np.ndarray,
                       tokens: Sequence[int] | np.ndarray) -> None:
        if self.memory is not None:
            self.memory.put_many(keys, vectors, tokens)
        if self.shared is not None:
            await self.shared.put_many(keys, vectors, tokens)

    async def lookup(self, keys: list[bytes], inputs: Sequence, *, read: bool) -> Lookup:
        stored = self.memory is not None or self.shared is not None
        entries: list[Entry | None] = await self.get_many(keys) if read and stored else [None] * len(keys)
        return Lookup(self, keys, inputs, entries, join=read)


class Lookup:
    """One request's inputs: cache hits, inputs other requests are computing,
    and the misses this request computes itself (`miss_inputs`, each once)."""

    def __init__(self, cache: Cache, keys: list[bytes], inputs: Sequence, entries: list[Entry | None],
                 *, join: bool) -> None:
        self._cache, self._inputs, self._entries = cache, inputs, entries
        self.hits = sum(e is not None for e in entries)
        self._flight: asyncio.Future = asyncio.get_running_loop().create_future()
        flights = cache.flights
        own: dict[bytes, int] = {}
        self.miss_inputs: list = []
        self._own_keys: list[bytes] = []
        self._rows: list[int] = []   # output row of each position this request computes
        self._slots: list[int] = []  # its row in the computed result
        self._joined: dict[bytes, tuple[asyncio.Future, int]] = {}
        self._joined_rows: list[tuple[int, bytes]] = []
        for row, (key, entry) in enumerate(zip(keys, entries)):
            if entry is not None:
                continue
            slot = own.get(key)
            if slot is None and join and (flight := flights.get(key)) is not None:
                self._joined[key] = flight
                self._joined_rows.append((row, key))
                continue
            if slot is None:
                slot = own[key] = len(self.miss_inputs)
                self.miss_inputs.append(inputs[row])
                self._own_keys.append(key)
                flights.setdefault(key, (self._flight, slot))
            self._rows.append(row)
            self._slots.append(slot)
        self.shared = len(self._joined_rows)  # inputs answered by another request's call
        self._stage = 0   # 0: own misses next; 1: then wait for joined ones; 2: retrying failed joins; 3: done
        self._fresh: np.ndarray | None = None
        self._fresh_tokens = np.zeros(0, dtype=np.int64)
        self._joined_entries: dict[bytes, Entry] = {}
        self._retry: list[bytes] = []
        self.saved_tokens = 0  # of the inputs it got without computing them, once merged

    # The request computes what `next_misses` gives it, hands each result to `store`, and asks
    # again until nothing is left: first its own misses, then (once) any input another request
    # was computing but failed to. `merged` then has every vector in input order.

    async def next_misses(self) -> list:
        """The inputs this request must compute now; empty when it has all it needs."""
        if self._stage == 0:
            self._stage = 1
            if self.miss_inputs:
                return self.miss_inputs
            self._land(None)  # nothing of its own to compute (its future has no joiners)
        if self._stage == 1:
            self._stage = 3
            if self._joined:
                await asyncio.wait({future for future, _ in self._joined.values()})  # never cancels another's call
                for key, (future, slot) in self._joined.items():
                    result = future.result()
                    if result is None:  # the computing request failed or was cancelled: compute it here
                        self._retry.append(key)
                    else:
                        self._joined_entries[key] = Entry(result[0][slot], int(result[1][slot]))
                if self._retry:
                    self._stage = 2
                    rows = {key: row for row, key in reversed(self._joined_rows)}  # first row of each key
                    return [self._inputs[rows[key]] for key in self._retry]
        return []

    async def store(self, vectors: np.ndarray, tokens: Sequence[int]) -> None:
        """The vectors (and tokens) of the inputs `next_misses` gave: cached, and handed to joiners."""
        item_tokens = np.asarray(tokens, dtype=np.int64)
        if self._stage == 1:  # its own misses
            self._fresh, self._fresh_tokens = vectors, item_tokens
            self._land((vectors, item_tokens))
            await self._cache.put_many(self._own_keys, vectors, item_tokens)
        else:
            await self._cache.put_many(self._retry, vectors, item_tokens)
            self._joined_entries.update({k: Entry(v, int(t)) for k, v, t in zip(self._retry, vectors, item_tokens)})

    def merged(self) -> tuple[np.ndarray, int]:
        """All vectors in input order, and the request's total tokens."""
        return self._assemble(self._fresh, self._fresh_tokens, self._joined_entries)

    def __enter__(self) -> Lookup:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None and not self._flight.done():
            self._land(None)  # failed: the requests that joined compute for themselves

    @property
    def waits(self) -> bool:
        """Whether anything is left to compute or to wait for (else no deadline to keep)."""
        return bool(self.miss_inputs or self._joined)

    async def finish(self, compute: Compute) -> tuple[np.ndarray, int]:
        """The whole exchange with one compute function (for callers that are not the pipeline)."""
        with self:
            while todo := await self.next_misses():
                await self.store(*await compute(todo))
            return self.merged()

    def _land(self, result: tuple | None) -> None:
        """Hand this request's result (None: it failed) to the requests that joined it."""
        self._flight.set_result(result)
        flights = self._cache.flights
        for key in self._own_keys:
            if flights.get(key, (None,))[0] is self._flight:
                del flights[key]

    def _assemble(self, fresh: np.ndarray | None, fresh_tokens: np.ndarray,
                  joined: dict[bytes, Entry]) -> tuple[np.ndarray, int]:
        if fresh is not None and len(fresh) == len(self._entries):
            # As many computed rows as inputs: no hits, joins or repeats, so row i is input i; no copy.
            return fresh, int(fresh_tokens.sum())
        known = [(row, e) for row, e in enumerate(self._entries) if e is not None]
        known += [(row, joined[key]) for row, key in self._joined_rows]
        width = fresh.shape[1] if fresh is not None else known[0][1].vector.shape[0]
        out = np.empty((len(self._entries), width), dtype=np.float32)
        tokens, retried = 0, set(self._retry)
        self.saved_tokens = sum(e.tokens for _, e in known[:self.hits]) + sum(
            joined[key].tokens for _, key in self._joined_rows if key not in retried)
        for row, entry in known:
            if entry.vector.shape[0] != width:
                raise UpstreamError(f"cached vectors have {entry.vector.shape[0]} dimensions but the deployment "
                                    f"now returns {width}: its model changed; give it a new 'space' in the config")
            out[row] = entry.vector
            tokens += entry.tokens
        if fresh is not None:
            out[self._rows] = fresh[self._slots]
            tokens += int(fresh_tokens[self._slots].sum())
        return out, tokens
