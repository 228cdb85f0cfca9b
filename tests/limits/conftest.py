from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import structlog

from router.config import RedisConfig
from router.limits.memory import MemoryBackend
from router.limits.redis import RedisBackend
from router.redis_link import RedisLink
from tests.redis_servers import SHARED_URL, delete_prefix, unique_prefix


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[MemoryBackend | RedisBackend]:
    """Each limiter backend in turn: both must answer alike."""
    if request.param == "memory":
        yield MemoryBackend()
        return
    prefix = unique_prefix()
    link = RedisLink(RedisConfig(url=SHARED_URL, prefix=prefix), structlog.get_logger())
    yield RedisBackend(link, on_error="allow", lease_s=30)
    await link.aclose()
    delete_prefix(SHARED_URL, prefix)
