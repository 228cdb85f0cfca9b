"""The in-process vector store: least recently used out first, bounded in bytes, with a TTL.

Two ordered dicts rather than cachetools' TTLCache: the same policy at a third of the cost
per stored vector (14 -> 5 us, measured with 32-vector batches under eviction), and a
batch of 32 misses stores 32 vectors.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

_ENTRY_OVERHEAD = 200  # key, tuple and array header: keeps max_bytes honest for small vectors


class Entry(NamedTuple):
    vector: np.ndarray
    tokens: int


def _size(entry: Entry) -> int:
    return entry.vector.nbytes + _ENTRY_OVERHEAD


class MemoryStore:
    def __init__(self, max_bytes: int, ttl_s: float) -> None:
        self.max_bytes, self.ttl_s = max_bytes, ttl_s
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()   # least recently used first
        self._expiry: OrderedDict[bytes, float] = OrderedDict()    # soonest to expire first (one TTL for all)
        self._bytes = 0

    def get_many(self, keys: Sequence[bytes]) -> list[Entry | None]:
        self._expire(time.monotonic())
        entries, found = self._entries, []
        for key in keys:
            entry = entries.get(key)
            if entry is not None:
                entries.move_to_end(key)
            found.append(entry)
        return found

    def put_many(self, keys: Sequence[bytes], vectors: Sequence[np.ndarray] | np.ndarray,
                 tokens: Sequence[int] | np.ndarray) -> None:
        now = time.monotonic()
        self._expire(now)
        expires = now + self.ttl_s
        for key, vector, count in zip(keys, vectors, tokens):
            entry = Entry(np.array(vector, dtype=np.float32), int(count))  # a copy: don't pin a whole batch
            size = _size(entry)
            if size > self.max_bytes:
                continue
            self._drop(key)
            self._entries[key], self._expiry[key] = entry, expires
            self._bytes += size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry:
            key, at = next(iter(expiry.items()))
            if at > now:
                return
            self._drop(key)

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            del self._expiry[key]
            self._bytes -= _size(entry)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
