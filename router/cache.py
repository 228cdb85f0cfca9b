"""Per-input vector cache: identical inputs never go upstream twice.

Keyed by embedding space, dimensions and the input itself (hashed, so a
long text costs 16 bytes of key), holding the exact vector a miss returned
and its token count. Bounded in bytes, with a TTL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from cachetools import TTLCache

from router.errors import UpstreamError

_ENTRY_OVERHEAD = 200  # key, tuple and array header: keeps max_bytes honest for small vectors


class Entry(NamedTuple):
    vector: np.ndarray
    tokens: int


def _size(entry: Entry) -> int:
    return entry.vector.nbytes + _ENTRY_OVERHEAD


class VectorCache:
    def __init__(self, max_bytes: int, ttl_s: float) -> None:
        self._entries: TTLCache = TTLCache(maxsize=max_bytes, ttl=ttl_s, getsizeof=_size)

    @staticmethod
    def keys(space: str, dimensions: int | None, inputs: Sequence, tokens: bool) -> list[bytes]:
        prefix = f"{space}\x00{dimensions or 0}\x00{'t' if tokens else 's'}\x00".encode()
        if tokens:
            return [_digest(prefix + np.asarray(x, dtype="<u4").tobytes()) for x in inputs]
        return [_digest(prefix + x.encode("utf-8", "surrogatepass")) for x in inputs]

    def get_many(self, keys: Sequence[bytes]) -> list[Entry | None]:
        get = self._entries.get
        return [get(k) for k in keys]

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray, tokens: Sequence[int]) -> None:
        for key, vector, count in zip(keys, vectors, tokens):
            entry = Entry(vector.copy(), int(count))  # a copy: don't pin the whole batch in memory
            if _size(entry) <= self._entries.maxsize:
                self._entries[key] = entry

    @property
    def size_bytes(self) -> int:
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class Lookup:
    """One request's inputs split into cache hits and misses, merged back by index.

    Repeated inputs within the request go upstream once. `merge` puts every
    vector at its input's index and stores the fresh ones.
    """

    def __init__(self, cache: VectorCache | None, keys: list[bytes], inputs: Sequence, *, read: bool) -> None:
        self._cache = cache
        self._entries = cache.get_many(keys) if cache is not None and read else [None] * len(keys)
        self.hits = sum(e is not None for e in self._entries)
        slots: dict[bytes, int] = {}
        self.miss_inputs: list = []
        self._miss_keys: list[bytes] = []
        self._rows: list[int] = []    # output row of each missed position
        self._slots: list[int] = []   # which unique miss answers it
        for row, (key, entry) in enumerate(zip(keys, self._entries)):
            if entry is None:
                slot = slots.get(key)
                if slot is None:
                    slot = slots[key] = len(self.miss_inputs)
                    self.miss_inputs.append(inputs[row])
                    self._miss_keys.append(key)
                self._rows.append(row)
                self._slots.append(slot)

    def merge(self, fresh: np.ndarray | None, fresh_tokens: Sequence[int] = ()) -> tuple[np.ndarray, int]:
        """All vectors in input order, and the request's total tokens."""
        hits = [(row, e) for row, e in enumerate(self._entries) if e is not None]
        width = fresh.shape[1] if fresh is not None else hits[0][1].vector.shape[0]
        out = np.empty((len(self._entries), width), dtype=np.float32)
        tokens = 0
        for row, entry in hits:
            if entry.vector.shape[0] != width:
                raise UpstreamError(f"cached vectors have {entry.vector.shape[0]} dimensions but the deployment "
                                    f"now returns {width}: its model changed; give it a new 'space' in the config")
            out[row] = entry.vector
            tokens += entry.tokens
        if fresh is not None:
            out[self._rows] = fresh[self._slots]
            tokens += int(np.asarray(fresh_tokens, dtype=np.int64)[self._slots].sum())
            if self._cache is not None:
                self._cache.put_many(self._miss_keys, fresh, fresh_tokens)
        return out, tokens
