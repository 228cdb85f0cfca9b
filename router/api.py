"""Thin HTTP handlers. Each embeddings call logs exactly one line."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from router import errors, pipeline, protocol
from router import usage as usage_rows
from router.admin import status
from router.dialects import Dialect, cohere, nugen, ollama, openai, tei
from router.metrics import CONTENT_TYPE
from router.outcome import Trace
from router.reload import iso
from router.runtime import Services

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _services(request: Request) -> Services:
    return request.app.state.services


def _json(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def embeddings_endpoint(dialect: Dialect) -> Callable[[Request], Awaitable[Response]]:
    """The handler of a dialect's embeddings route: the pipeline, one log line, the metrics."""

    async def endpoint(request: Request) -> Response:
        services = _services(request)
        started = time.perf_counter()
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else services.request_ids()
        trace, error = Trace(request_id), None
        try:
            response = await pipeline.embeddings(services, request, trace, dialect)
        except errors.RouterError as exc:
            error = exc.code
            services.metrics.refused(trace.key, exc)
            response = errors.render(exc, detail=dialect.error_detail)
            errors.forget_frames(exc)
        except Exception:
            services.log.exception("unhandled error", request_id=request_id)
            error = errors.InternalError.code
            response = errors.render(errors.InternalError(f"internal error (request id {request_id})"),
                                     detail=dialect.error_detail)
        response.headers["x-request-id"] = request_id
        outcome = trace.finish(response.status_code, error, round((time.perf_counter() - started) * 1000, 2))
        services.log.info("embeddings", dialect=dialect.name, **outcome.log_fields())
        services.metrics.request(outcome)
        services.usage.record(outcome)
        services.traffic.record(outcome)
        return response

    return endpoint


create_embeddings = embeddings_endpoint(openai.DIALECT)
tei_embed = embeddings_endpoint(tei.DIALECT)
ollama_embed = embeddings_endpoint(ollama.DIALECT)
ollama_embeddings = embeddings_endpoint(ollama.LEGACY)
cohere_v2_embed = embeddings_endpoint(cohere.V2)
cohere_v1_embed = embeddings_endpoint(cohere.V1)
nugen_embed = embeddings_endpoint(nugen.DIALECT)


async def tei_info(request: Request) -> Response:
    """TEI's `GET /info`: the model `/embed` serves (`server.default_model`) and the batch limit."""
    runtime = _services(request).runtime
    runtime.keys.authenticate(request.headers.get("authorization"))
    server = runtime.config.server
    return _json({"model_id": server.default_model, "model_type": {"embedding": {}},
                  "max_client_batch_size": server.max_inputs, "max_input_length": None,
                  "router": "embeddings-router"})


async def ollama_tags(request: Request) -> Response:
    runtime = _services(request).runtime
    principal = runtime.keys.authenticate(request.headers.get("authorization"))
    names = [name for model in runtime.routes.visible(principal) for name in (model.name, *model.aliases)]
    return Response(ollama.tags(names), media_type="application/json")


async def list_models(request: Request) -> Response:
    runtime = _services(request).runtime
    principal = runtime.keys.authenticate(request.headers.get("authorization"))
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "embeddings-router"}
            for model in runtime.routes.visible(principal) for name in (model.name, *model.aliases)]
    return _json({"object": "list", "data": data})


async def retrieve_model(request: Request) -> Response:
    runtime = _services(request).runtime
    principal = runtime.keys.authenticate(request.headers.get("authorization"))
    name = protocol.check_name(request.path_params["model"])
    runtime.routes.resolve(name, principal)
    return _json({"id": name, "object": "model", "created": 0, "owned_by": "embeddings-router"})


async def health(request: Request) -> Response:
    """Alive: the process answers."""
    return _json({"status": "ok"})


async def ready(request: Request) -> Response:
    """Ready for traffic: config loaded, local models warm (both before the app serves), Redis reachable."""
    services = _services(request)
    ok, why = await services.ready()
    if not ok:
        raise errors.Overloaded(f"not ready: {why}", code="not_ready")
    return _json({"status": "ready", "config_version": services.runtime.config.version})


async def openapi(request: Request) -> Response:
    return _json(request.app.state.openapi)


async def metrics(request: Request) -> Response:
    return Response(_services(request).metrics.exposition(), media_type=CONTENT_TYPE)


def _admin(request: Request) -> None:
    runtime = _services(request).runtime
    authorization = request.headers.get("authorization")
    try:
        runtime.admins.authenticate(authorization)
    except errors.AuthenticationError:
        runtime.keys.authenticate(authorization)  # unknown key: 401 as anywhere else
        raise errors.PermissionDenied("This key is not an admin key; /admin needs one listed in admin_keys.",
                                      code="admin_key_required") from None


async def admin_status(request: Request) -> Response:
    _admin(request)
    services = _services(request)
    return _json(status(services))


async def admin_usage(request: Request) -> Response:
    """Usage rows by hour, grouped as asked; JSON, or CSV with `format=csv` or `Accept: text/csv`."""
    _admin(request)
    usage = _services(request).usage
    params = request.query_params
    now = time.time()
    start = usage_rows.parse_time(params.get("from"), now - 86400, "from")
    end = usage_rows.parse_time(params.get("to"), now, "to")
    group_by = usage_rows.parse_group_by(params.get("group_by"))
    form = params.get("format") or ("csv" if "text/csv" in request.headers.get("accept", "") else "json")
    if form not in ("json", "csv"):
        raise errors.InvalidRequest(f"'format' is json or csv; got {form[:20]!r}", param="format")
    rows = await usage.rows(start, end, group_by)
    if form == "csv":
        return Response(usage_rows.as_csv(rows, group_by), media_type="text/csv; charset=utf-8")
    return _json({"object": "list", "data": rows, "from": iso(start), "to": iso(end),
                  "group_by": list(group_by), "backend": usage.backend})


async def admin_traffic(request: Request) -> Response:
    """The console's chart data: per-second figures after `after` (epoch seconds), at most the last hour."""
    _admin(request)
    after = request.query_params.get("after", "")
    if after and not (after.isdigit() and len(after) <= 12):
        raise errors.InvalidRequest("'after' is epoch seconds", param="after")
    return _json(_services(request).traffic.since(int(after) if after else None))


async def console(request: Request) -> Response:
    """The ops console: one static page; it asks for an admin key and reads /admin/* itself."""
    page = request.app.state.console
    return Response(page.body, media_type="text/html; charset=utf-8",
                    headers={"cache-control": "no-cache", "x-frame-options": "DENY", "referrer-policy": "no-referrer",
                             "content-security-policy": page.policy, "x-content-type-options": "nosniff"})


async def admin_reload(request: Request) -> Response:
    _admin(request)
    reloader = _services(request).reloader
    if reloader is None:
        raise errors.InvalidRequest("This router was started without a config file to reload.",
                                    code="reload_unavailable")
    outcome = await reloader.reload("admin")
    if outcome.result == "rejected":
        raise errors.InvalidRequest(f"config rejected, the running config keeps serving: {outcome.error}",
                                    code="config_rejected")
    return _json(outcome.as_dict())


async def on_router_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.RouterError)
    return errors.render(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    method, path = protocol.clip(request.method, 20), protocol.clip(request.url.path)
    if exc.status_code == 404:
        error: errors.RouterError = errors.NotFound(f"No route for {method} {path}.")
    elif exc.status_code == 405:
        error = errors.MethodNotAllowed(f"{method} is not allowed on {path}.")
    else:
        error = errors.for_status(exc.status_code)(str(exc.detail))
    return errors.render(error, headers=dict(exc.headers or {}))


async def on_unhandled(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ClientDisconnect):  # nobody is listening: a 499 in the log, no traceback
        _services(request).log.info("client disconnected", path=protocol.clip(request.url.path), status=499)
        return errors.render(errors.ClientDisconnected("the client closed the connection"))
    _services(request).log.exception("unhandled error", path=protocol.clip(request.url.path))
    return errors.render(errors.InternalError("internal error"))
