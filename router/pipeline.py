"""POST /v1/embeddings, top to bottom: one named step per line."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from router import protocol
from router.cache import cache_keys
from router.dialects import Context, Dialect
from router.errors import ClientDisconnected, PayloadTooLarge, UnsupportedMediaType, UpstreamTimeout
from router.outcome import Trace
from router.providers.base import Options
from router.routing import Route, cancel_quietly, dispatch
from router.runtime import Runtime, Services
from router.server import HANGUP


async def embeddings(services: Services, request: Request, trace: Trace, dialect: Dialect) -> Response:
    runtime = services.runtime  # one config snapshot for the whole request
    server = runtime.config.server
    principal = runtime.keys.authenticate(request.headers.get("authorization"))
    trace.key = principal.name
    body = await read_body(request, server.max_body_bytes)
    req = dialect.parse(body, Context(principal.limits.max_inputs or server.max_inputs, server.default_model))
    trace.model, trace.inputs = req.model, len(req.inputs)
    route = runtime.routes.resolve(req.model, principal)
    trace.route = route.model.name
    options = route.options(req)
    async with services.limiter.admit(principal, route.model.name, req.inputs) as admission:
        keys = cache_keys(route.model.space, req.dimensions, req.inputs, req.tokens, options)
        with await services.cache.lookup(keys, req.inputs, read=not _no_cache(request)) as lookup:
            trace.cache_hits, trace.shared_inputs = lookup.hits, lookup.shared
            async with _bounded(request, runtime.config.server.request_timeout_s, trace, lookup.waits) as left:
                while misses := await lookup.next_misses():
                    await lookup.store(*await _dispatch(services, route, req, options, misses, left(), trace))
            vectors, admission.actual = lookup.merged()
    trace.tokens, trace.saved_tokens = admission.actual, lookup.saved_tokens
    content = dialect.encode(vectors, req, trace)
    return Response(content, media_type="application/json", headers=_headers(trace, admission.headers, runtime))


async def _dispatch(services: Services, route: Route, req: protocol.EmbeddingRequest, options: Options,
                    inputs: list, timeout_s: float, trace: Trace) -> tuple[np.ndarray, list[int]]:
    """The misses' vectors and tokens, from the route's deployments."""
    result = await dispatch(route, inputs, tokens=req.tokens, dimensions=req.dimensions, timeout_s=timeout_s,
                            observer=services.telemetry, options=options)
    trace.deployment = ",".join(result.served_by)
    trace.attempts += result.attempts
    trace.cost_usd += result.cost_usd
    trace.tokens_estimated = trace.tokens_estimated or result.tokens_estimated
    return result.vectors, result.item_tokens


def _headers(trace: Trace, limits: dict[str, str], runtime: Runtime) -> dict[str, str]:
    return {**limits, "x-cache-hits": str(trace.cache_hits), "x-cache-misses": str(trace.inputs - trace.cache_hits),
            "x-router-deployment": trace.deployment or "cache", "x-router-attempts": str(trace.attempts),
            "x-router-config-version": runtime.config.version}


@contextlib.asynccontextmanager
async def _bounded(request: Request, deadline: float, trace: Trace, waits: bool) -> AsyncIterator[Callable[[], float]]:
    """The request's upstream part: within the deadline (504 after it), and cancelled, its upstream
    calls and queued local inputs with it, if the client closes the connection first (499). Yields
    the seconds left. Nothing to wait for (all cache hits): no deadline, no watcher."""
    started = time.perf_counter()

    def left() -> float:
        return deadline - (time.perf_counter() - started)

    if not waits:
        yield left
        return
    task = asyncio.current_task()
    assert task is not None
    hung_up = False

    def hang_up() -> None:
        nonlocal hung_up
        hung_up = True
        task.cancel()

    async def watch() -> None:  # call only once the body has been read
        while (await request.receive())["type"] != "http.disconnect":
            pass
        hang_up()

    # Our server says when the client hangs up (server.Hangup); under any other, a task waits to hear it.
    hangup = request.scope.get("extensions", {}).get(HANGUP)
    if hangup is None:
        watcher = asyncio.get_running_loop().create_task(watch())
    elif hangup.gone:
        raise ClientDisconnected("the client closed the connection before the answer")
    else:
        hangup.callback = hang_up
    try:
        async with asyncio.timeout(deadline):
            yield left
    except TimeoutError:
        raise UpstreamTimeout(f"no answer within the request deadline ({deadline:g} s)") from None
    except asyncio.CancelledError:
        if not hung_up:
            raise
        task.uncancel()
        raise ClientDisconnected("the client closed the connection before the answer") from None
    finally:
        if hangup is None:
            cancel_quietly([watcher])
        else:
            hangup.callback = None
        trace.upstream_ms = round((time.perf_counter() - started) * 1000, 2)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused early when it is not JSON or is larger than `limit`."""
    content_type = request.headers.get("content-type", "")
    if content_type and "json" not in content_type and not content_type.startswith(
            ("application/x-www-form-urlencoded", "text/plain")):  # curl -d's default
        raise UnsupportedMediaType(f"the body must be application/json, not {content_type.split(';')[0][:80]!r}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientDisconnected("the client closed the connection while sending the body") from None
    return b"".join(chunks)


def _no_cache(request: Request) -> bool:
    return "no-cache" in request.headers.get("cache-control", "").lower()
