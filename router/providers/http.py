"""The HTTP transport every remote wire format shares: one aiohttp session per
provider, a cap on calls in flight, and transport failures translated into
the router's errors. A wire format module builds the body and reads the
answer; this moves the bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from router.errors import Overloaded, UpstreamError, UpstreamTimeout


class Transport:
    def __init__(self, provider: str, headers: Mapping[str, str], *, timeout_s: float, connect_timeout_s: float,
                 max_concurrency: int) -> None:
        self._provider = provider
        self._headers = {"content-type": "application/json", **headers}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self._max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._session: aiohttp.ClientSession | None = None  # made on first use, inside the event loop

    async def post(self, url: str, content: bytes) -> tuple[int, Mapping[str, str], bytes]:
        """(status, headers, body) of one POST; transport failures raised as router errors."""
        # aiohttp rather than httpx here: measured 3x the requests/s at concurrency 1
        # and 15x at 32 against the same upstream (bench, session 1).
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_concurrency, ttl_dns_cache=300))
        name = self._provider
        async with self._slots:
            try:
                async with self._session.post(url, data=content) as response:
                    return response.status, response.headers, await response.read()
            except TimeoutError as exc:
                raise UpstreamTimeout(f"provider {name!r} did not answer in time") from exc
            except aiohttp.ClientConnectorError as exc:
                raise Overloaded(f"provider {name!r} is unreachable (connection failed)") from exc
            except aiohttp.ClientError as exc:  # reset, protocol error, closed mid-response
                raise UpstreamError(f"provider {name!r} broke the connection ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
