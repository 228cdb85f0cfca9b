"""The in-process vector store: cachetools, bounded in bytes, with a TTL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from cachetools import TTLCache

_ENTRY_OVERHEAD = 200  # key, tuple and array header: keeps max_bytes honest for small vectors


class Entry(NamedTuple):
    vector: np.ndarray
    tokens: int


def _size(entry: Entry) -> int:
    return entry.vector.nbytes + _ENTRY_OVERHEAD


class MemoryStore:
    def __init__(self, max_bytes: int, ttl_s: float) -> None:
        self._entries: TTLCache = TTLCache(maxsize=max_bytes, ttl=ttl_s, getsizeof=_size)

    def get_many(self, keys: Sequence[bytes]) -> list[Entry | None]:
        get = self._entries.get
        return [get(k) for k in keys]

    def put_many(self, keys: Sequence[bytes], vectors: Sequence[np.ndarray] | np.ndarray,
                       tokens: Sequence[int] | np.ndarray) -> None:
        for key, vector, count in zip(keys, vectors, tokens):
            entry = Entry(np.array(vector, dtype=np.float32), int(count))  # a copy: don't pin a whole batch
            if _size(entry) <= self._entries.maxsize:
                self._entries[key] = entry

    @property
    def size_bytes(self) -> int:
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)
