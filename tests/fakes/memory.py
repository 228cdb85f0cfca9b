"""An in-memory transport for provider tests, like httpx's MockTransport: a handler gets each
call's URL and JSON body and returns (status, headers, body); no socket, no server."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

Handler = Callable[[str, Any], tuple[int, Mapping[str, str], Any]]


class MemoryTransport:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[tuple[str, Any]] = []

    async def post(self, url: str, content: bytes) -> tuple[int, Mapping[str, str], bytes]:
        body = orjson.loads(content)
        self.calls.append((url, body))
        status, headers, answer = self.handler(url, body)
        return status, headers, answer if isinstance(answer, bytes) else orjson.dumps(answer)

    async def aclose(self) -> None:
        return None
