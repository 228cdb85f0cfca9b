"""POST /v1/embeddings, top to bottom: one named step per line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from router import protocol
from router.cache import Lookup, cache_keys
from router.errors import ClientDisconnected, PayloadTooLarge, UnsupportedMediaType, UpstreamTimeout
from router.routing import Route, cancel_quietly, dispatch
from router.runtime import Runtime, Services

T = TypeVar("T")


async def embeddings(services: Services, request: Request, log: dict) -> Response:
    runtime = services.runtime  # one config snapshot for the whole request
    principal = runtime.keys.authenticate(request.headers.get("authorization"))
    log["key"] = principal.name
    body = await read_body(request, runtime.config.server.max_body_bytes)
    req = protocol.parse(body, max_inputs=principal.limits.max_inputs or runtime.config.server.max_inputs)
    log.update(model=req.model, inputs=len(req.inputs))
    route = runtime.routes.resolve(req.model, principal)
    log["route"] = route.model.name
    async with services.limiter.admit(principal, route.model.name, req.inputs) as admission:
        keys = cache_keys(route.model.space, req.dimensions, req.inputs, req.tokens)
        lookup = await services.cache.lookup(keys, req.inputs, read=not _no_cache(request))
        vectors, admission.actual = await _compute(services, runtime, route, req, lookup, log, request)
    log.update(tokens=admission.actual, cache_hits=lookup.hits)
    if lookup.shared:
        log["shared_inputs"] = lookup.shared
    headers = {**admission.headers, "x-cache-hits": str(lookup.hits),
               "x-cache-misses": str(len(req.inputs) - lookup.hits),
               "x-router-deployment": log.get("deployment", "cache"),
               "x-router-attempts": str(log.get("attempts", 0)),
               "x-router-config-version": runtime.config.version}
    content = protocol.encode(vectors, model=req.model, tokens=admission.actual, encoding_format=req.encoding_format)
    return Response(content, media_type="application/json", headers=headers)


async def _compute(services: Services, runtime: Runtime, route: Route, req: protocol.EmbeddingRequest,
                   lookup: Lookup, log: dict, request: Request) -> tuple:
    """Every vector, in input order, and the tokens, within the request deadline,
    unless the client hangs up first."""

    deadline = runtime.config.server.request_timeout_s
    started = time.perf_counter()

    async def upstream(inputs: list) -> tuple:
        left = deadline - (time.perf_counter() - started)
        result = await dispatch(route, inputs, tokens=req.tokens, dimensions=req.dimensions,
                                timeout_s=left, observer=services.telemetry)
        log.update(deployment=",".join(result.served_by), attempts=result.attempts,
                   tokens_estimated=result.tokens_estimated)
        return result.vectors, result.item_tokens

    if not lookup.miss_inputs and not lookup.shared:
        return await lookup.finish(upstream)  # all cache hits: no deadline to keep
    try:
        async with asyncio.timeout(deadline):
            return await _unless_disconnected(request, lookup.finish(upstream))
    except TimeoutError:
        raise UpstreamTimeout(f"no answer within the request deadline ({deadline:g} s)") from None
    finally:
        log["upstream_ms"] = round((time.perf_counter() - started) * 1000, 2)


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """`work`, cancelled (its upstream calls and queued local inputs with it) if the
    client closes the connection first. Call only once the body has been read."""
    task = asyncio.current_task()
    assert task is not None
    hung_up = False

    async def watch() -> None:
        nonlocal hung_up
        while (await request.receive())["type"] != "http.disconnect":
            pass
        hung_up = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not hung_up:
            raise
        task.uncancel()
        raise ClientDisconnected("the client closed the connection before the answer") from None
    finally:
        cancel_quietly([watcher])


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
