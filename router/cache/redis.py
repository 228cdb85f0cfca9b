"""The shared vector store: Redis, one key per input, value = uint32 token
count + the vector as little-endian float32, expiring after the TTL.

Bound its memory in Redis itself (`maxmemory` with `allkeys-lru`). A Redis
failure never fails a request: lookups become misses and writes are dropped.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from router.cache.memory import Entry
from router.redis_link import ERRORS, RedisLink

_TOKENS = struct.Struct("<I")


class RedisStore:
    def __init__(self, link: RedisLink, ttl_s: float) -> None:
        self._link, self._ttl_ms = link, max(1, int(ttl_s * 1000))
        self._prefix = f"{link.prefix}vec:".encode()

    async def get_many(self, keys: Sequence[bytes]) -> list[Entry | None]:
        if not self._link.usable:
            return [None] * len(keys)
        try:
            names = [self._prefix + k.hex().encode() for k in keys]
            client = self._link.client  # a Cluster spreads the keys over slots: one MGET per node
            values = await (client.mget_nonatomic(names) if self._link.cluster else client.mget(names))
        except ERRORS as exc:
            self._link.failed(exc, "cache")
            return [None] * len(keys)
        self._link.succeeded()
        return [_decode(v if isinstance(v, bytes) else None) for v in values]

    async def put_many(self, keys: Sequence[bytes], vectors: Sequence[np.ndarray] | np.ndarray,
                       tokens: Sequence[int] | np.ndarray) -> None:
        if not self._link.usable or not keys:
            return
        pipe = self._link.client.pipeline(transaction=False)
        for key, vector, count in zip(keys, vectors, tokens):
            pipe.set(self._prefix + key.hex().encode(),
                     _TOKENS.pack(int(count)) + np.asarray(vector, dtype="<f4").tobytes(), px=self._ttl_ms)
        try:
            await pipe.execute()
        except ERRORS as exc:
            self._link.failed(exc, "cache")


def _decode(value: bytes | None) -> Entry | None:
    if not value or len(value) < 8 or (len(value) - 4) % 4:
        return None  # absent, or not written by this router: a miss
    return Entry(np.frombuffer(value, dtype="<f4", offset=4).astype(np.float32), _TOKENS.unpack_from(value)[0])
