"""The upstream HTTP/1.1 client: keep-alive connections over asyncio protocols, answers
parsed by httptools (llhttp, the parser uvicorn serves with).

Why not aiohttp: the router only ever POSTs a JSON body and reads a whole JSON answer,
and aiohttp's generality (request and response objects, multidicts, cookie jar, tracing,
stream readers, a timer per phase) cost about as much router CPU per call as everything
else the router does for that request. `bench/client.py` measures both against the
same upstream.

What it does: one pool of idle connections per origin (most recently used first, dropped
after `IDLE_S` or when the server closes them); a reused connection that the server had
already closed is retried once on a new one, since nothing reached the upstream; gzip and
deflate answers are inflated; answers over `MAX_ANSWER_BYTES` and header blocks over
`MAX_HEADER_BYTES` are refused. It does not follow redirects, use proxies or keep cookies:
upstream URLs come from config, and an upstream that redirects is misconfigured.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

IDLE_S = 15.0                     # an idle connection older than this is closed rather than reused
MAX_ANSWER_BYTES = 512 * 2**20    # 2,048 vectors of 3,072 dims as JSON are ~130 MB
MAX_HEADER_BYTES = 64 * 2**10
USER_AGENT = "embeddings-router"


class ConnectFailed(Exception):
    """No connection could be opened (refused, unresolvable, TLS handshake failed, timed out)."""


class ConnectionBroken(Exception):
    """The connection failed after the request was sent: reset, closed early, or not HTTP."""

    def __init__(self, why: str, *, before_answer: bool = False) -> None:
        super().__init__(why)
        self.before_answer = before_answer  # closed before a byte of the answer: nothing was read


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int


@dataclass(frozen=True)
class Target:
    """A URL, parsed once: where to connect and the request head up to its content-length."""

    origin: Origin
    head: bytes


class Client:
    """POSTs bodies to URLs and returns (status, headers with lower-case names, body)."""

    def __init__(self, headers: Mapping[str, str], *, timeout_s: float, connect_timeout_s: float,
                 tls: ssl.SSLContext | None = None) -> None:
        """`tls`: for https origins; by default the system's trusted CAs, made on first use."""
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in {
            "user-agent": USER_AGENT, "accept": "application/json", "accept-encoding": "gzip, deflate",
            **headers}.items())
        self._timeout_s, self._connect_timeout_s = timeout_s, connect_timeout_s
        self._targets: dict[str, Target] = {}   # keyed by URL: URLs come from config, so few
        self._idle: dict[Origin, list[Connection]] = {}
        self._tls = tls
        self._closed = False

    async def post(self, url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """One exchange within `timeout_s` (TimeoutError after it); ConnectFailed or
        ConnectionBroken when the network fails it."""
        target = self._targets.get(url) or self._target(url)
        request = b"%scontent-length: %d\r\n\r\n%s" % (target.head, len(body), body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        while True:
            connection, reused = await self._connection(target.origin, deadline)
            try:
                status, headers, answer = await connection.exchange(request, deadline)
            except ConnectionBroken as exc:
                if reused and exc.before_answer:
                    continue  # the server had closed it while idle; nothing reached the upstream
                raise
            finally:
                self._release(target.origin, connection, loop.time())
            return status, headers, inflated(headers, answer)

    def _release(self, origin: Origin, connection: Connection, now: float) -> None:
        if not connection.reusable or self._closed:  # closed: a call that was in flight at close() ends here
            connection.close()
            return
        connection.idle_since = now
        idle = self._idle.setdefault(origin, [])
        idle.append(connection)
        while idle and (idle[0].closed or now - idle[0].idle_since >= IDLE_S):  # the least recently used, gone stale
            idle.pop(0).close()

    async def _connection(self, origin: Origin, deadline: float) -> tuple[Connection, bool]:
        loop = asyncio.get_running_loop()
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed and loop.time() - connection.idle_since < IDLE_S:
                return connection, True
            connection.close()
        tls = origin.scheme == "https"
        if tls and self._tls is None:
            self._tls = ssl.create_default_context()
        try:
            async with asyncio.timeout(min(self._connect_timeout_s, max(deadline - loop.time(), 0))):
                _, connection = await loop.create_connection(
                    lambda: Connection(loop), origin.host, origin.port, ssl=self._tls if tls else None)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectFailed(type(exc).__name__) from exc
        return connection, False

    def _target(self, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if parts.port:
            host = f"{host}:{parts.port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = f"POST {path} HTTP/1.1\r\nhost: {host}\r\n{self._headers}".encode("latin-1")
        target = self._targets[url] = Target(Origin(parts.scheme, parts.hostname, port), head)
        return target

    def close(self) -> None:
        """Close the idle connections now, and each busy one as its call ends (a reload replaces a
        provider while its calls finish)."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


class Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self._status, self._size, self._answering = 0, 0, False
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0

    async def exchange(self, request: bytes, deadline: float) -> tuple[int, dict[str, str], bytes]:
        assert self._transport is not None and self._waiter is None
        self.reusable = False
        self._status, self._headers, self._body, self._size, self._answering = 0, {}, [], 0, False
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_at(deadline, self._timed_out, waiter)
        self._transport.write(request)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        self._body = []  # an error's traceback may keep this object alive: not its (maybe huge) answer
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass, but quacks

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():  # bytes nobody asked for: not a server to keep
            self.close()
            return
        self._answering = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            refused = exc.__context__  # what a callback below raised, which httptools wraps
            self._fail(refused if isinstance(refused, ConnectionBroken) else
                       ConnectionBroken(f"not an HTTP answer ({type(exc).__name__})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        framed = "content-length" in self._headers or "chunked" in self._headers.get("transfer-encoding", "")
        if self._status and not framed and exc is None:  # an answer delimited by the connection's close
            waiter.set_result((self._status, self._headers, b"".join(self._body)))
        else:
            waiter.set_exception(ConnectionBroken("closed before the answer ended" if self._answering else
                                                  "closed before answering", before_answer=not self._answering))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._size += len(name) + len(value)
        if self._size > MAX_HEADER_BYTES:
            raise ConnectionBroken("the answer's headers are too large")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._size = 0

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER_BYTES:
            raise ConnectionBroken(f"the answer is over {MAX_ANSWER_BYTES} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer (100 Continue): the real one follows
            self._status, self._headers, self._body, self._size = 0, {}, [], 0
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self.reusable = self._parser.should_keep_alive() and not self.closed
            waiter.set_result((self._status, self._headers, b"".join(self._body)))

    def _fail(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self.close()

    def _timed_out(self, waiter: asyncio.Future) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())
        self.close()


def inflated(headers: Mapping[str, str], body: bytes) -> bytes:
    """The body, inflated where the server compressed it (bounded: a small bomb stays small)."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise ConnectionBroken(f"the answer's content-encoding {encoding[:40]!r} is not gzip or deflate")
    try:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, told apart by their header
        try:
            out = inflater.decompress(body, MAX_ANSWER_BYTES)
        except zlib.error:
            if encoding != "deflate":
                raise
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, which some servers send
            out = inflater.decompress(body, MAX_ANSWER_BYTES)
    except zlib.error as exc:
        raise ConnectionBroken(f"the answer's {encoding} body is corrupt") from exc
    if inflater.unconsumed_tail:
        raise ConnectionBroken(f"the answer inflates to over {MAX_ANSWER_BYTES} bytes")
    return out
