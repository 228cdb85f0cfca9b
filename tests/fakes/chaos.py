"""Random upstream faults, drawn from a seeded generator, for the chaos tests.

Each call fails with probability `rate`, in one of the ways real upstreams
fail; the rest answer correctly, some of them slowly or with `data` out of
order (which the router must put back in order, not count as a failure).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from tests.fakes.api import FakeAPI

FAULTS = ("429", "500", "503", "hang", "reset", "malformed", "wrong_count")


@dataclass
class Chaos:
    rate: float = 0.3
    seed: int = 7
    hang_s: float = 2.0          # longer than the provider's timeout in the test's config
    slow_s: float = 0.05
    injected: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def fault(self, api: FakeAPI) -> Response | None:
        """A broken answer, or None to answer correctly (after a delay, sometimes)."""
        if self._rng.random() >= self.rate:
            if self._rng.random() < 0.1:
                self.injected["slow"] += 1
                await asyncio.sleep(self.slow_s)
            return None
        kind = self._rng.choice(FAULTS)
        self.injected[kind] += 1
        if kind == "429":
            return api.error(429, "Rate limit reached for requests", {"retry-after-ms": "100", "retry-after": "1"})
        if kind in ("500", "503"):
            return api.error(int(kind), "The server had an error while processing your request.")
        if kind == "hang":
            await asyncio.sleep(self.hang_s)
            return api.error(500, "hung")
        if kind == "reset":
            return _BrokenMidBody()
        if kind == "malformed":
            return Response(b'{"object": "list", "data": [{"index": 0, "embedd', media_type="application/json")
        return Response(orjson.dumps({"object": "list", "data": [], "usage": {"prompt_tokens": 1}}),
                        media_type="application/json")

    def shuffle(self) -> bool:
        if self._rng.random() < 0.1:
            self.injected["shuffled"] += 1
            return True
        return False


class _BrokenMidBody(Response):
    """Headers promise 1,000 bytes; the connection drops after 20."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"object": "list", "d', "more_body": True})
        raise ConnectionResetError("chaos: connection dropped mid-body")
