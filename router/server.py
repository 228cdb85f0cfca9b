"""The HTTP server: uvicorn (httptools), with the guards it lacks.

Uvicorn closes an idle keep-alive connection, but not one that never
finishes its request headers: 500 such sockets would hold 500 file
descriptors forever, without ever authenticating. `GuardedProtocol` closes
a connection that has not sent complete headers within `header_timeout_s`
(from its opening, or from the first byte of each next request), and
answers connections beyond `max_connections` with a fast ErrorData 503
(`connection: close`) instead of uvicorn's plain-text one.

It also tells a request its client hung up (`scope["extensions"]["router.hangup"]`,
a `Hangup`), so the pipeline need not keep a task waiting in `receive()` per
request to find out.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, cast

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from router.errors import Overloaded
from router.settings import ServerConfig


class Hangup:
    """Set on a request's scope by `GuardedProtocol`: `gone` once its connection closed, and then
    `callback` (where the app set one) called."""

    __slots__ = ("callback", "gone")

    def __init__(self) -> None:
        self.gone = False
        self.callback: Callable[[], None] | None = None

    def hung_up(self) -> None:
        self.gone = True
        if self.callback is not None:
            self.callback()


HANGUP = "router.hangup"


class GuardedProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, header_timeout_s: float = 10.0, max_connections: int = 1024,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s, self.max_connections = header_timeout_s, max_connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._expect_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {HANGUP: Hangup()}  # type: ignore[dict-item]
        if self._header_timer is None:  # the next request on a kept-alive connection
            self._expect_headers()

    def on_headers_complete(self) -> None:
        self._headers_arrived()
        if len(self.connections) <= self.max_connections:
            super().on_headers_complete()
            return
        app, self.app = self.app, _over_capacity  # this request only: super() starts the app it finds here
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._headers_arrived()  # until the next request's first byte, the keep-alive timeout rules

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        cycles = [self.cycle, *(cycle for cycle, _ in self.pipeline)]
        super().connection_lost(exc)
        for cycle in cycles:
            if cycle is not None and not cycle.response_complete:
                cast(Hangup, cycle.scope["extensions"][HANGUP]).hung_up()

    def _expect_headers(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_timed_out)

    def _headers_arrived(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    error = Overloaded("the router has too many open connections; retry shortly", code="too_many_connections",
                       retry_after=1)
    body = orjson.dumps(error.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *((k.encode(), v.encode()) for k, v in error.headers().items())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def protocol_for(server: ServerConfig) -> Callable[..., GuardedProtocol]:
    """The protocol factory with this config's limits (a partial: `--workers` pickles it)."""
    return functools.partial(GuardedProtocol, header_timeout_s=server.header_timeout_s,
                             max_connections=server.max_connections)


def uvicorn_options(server: ServerConfig) -> dict[str, Any]:
    """What `serve` (and the tests' servers) give uvicorn."""
    # No proxy-headers middleware: nothing reads the client's address, and it cost ~4% of a request's CPU.
    return {"http": protocol_for(server), "timeout_keep_alive": server.keepalive_timeout_s,
            "access_log": False, "server_header": False, "timeout_graceful_shutdown": 10, "proxy_headers": False}
