"""Build the Starlette app: routes, error rendering, and the lifespan that
starts and stops the runtime (providers, local models)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import AsyncIterator
from typing import BinaryIO

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from router import api, console, openapi
from router.config import Config, load
from router.errors import RouterError
from router.metrics import Metrics, Telemetry
from router.observability import ScrubSecrets, configure_logging
from router.redact import Redactor
from router.reload import Reloader, warn_unsafe
from router.runtime import Services

# Every dialect's embeddings route: the hot path, served by `RouterApp` without Starlette's layers.
EMBEDDINGS = {
    "/v1/embeddings": api.create_embeddings, "/embeddings": api.create_embeddings,
    "/embed": api.tei_embed, "/": api.tei_embed,
    "/api/embed": api.ollama_embed, "/api/embeddings": api.ollama_embeddings,
    "/v2/embed": api.cohere_v2_embed, "/v1/embed": api.cohere_v1_embed,
    "/api/v3/inference/embeddings": api.nugen_embed,
}


class RouterApp(Starlette):
    """Starlette, with the embeddings routes taken straight to their handler. The handler renders
    every error itself, so the exception middleware, the route table's regexes and the wrappers
    around each handler do nothing for them but cost ~5% of a request's CPU (bench/profile.py)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = EMBEDDINGS.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(config: Config, *, config_path: str | None = None, log_format: str = "json",
               log_level: str = "info", log_stream: BinaryIO | None = None, watch: bool = True) -> Starlette:
    """The app serving `config`. With `config_path`, it reloads that file on SIGHUP, on
    POST /admin/reload and (with `watch`) whenever the file changes."""
    scrub = ScrubSecrets(Redactor(config.secrets))
    log = configure_logging(log_format, log_level, log_stream, scrub)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await Services.start(config, log, metrics, Telemetry(metrics, log))
        app.state.services = services
        services.scrub = scrub
        background = [asyncio.get_running_loop().create_task(services.usage.run())]
        if config_path is not None:
            services.reloader = reloader = Reloader(services, config_path)
            if watch:
                background.append(asyncio.get_running_loop().create_task(reloader.watch()))
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # only in the main thread
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.spawn, "signal")
        log.info("started", config_version=config.version, models=sorted(config.models),
                 providers=sorted(config.providers), reload=config_path is not None)
        warn_unsafe(config, log)
        # What start-up built (modules, config, loaded models) lives as long as the process; out of
        # the collector's sight, a full collection scans only what requests allocate instead of
        # stalling the event loop ~60 ms on the whole heap.
        gc.freeze()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await services.aclose()

    app = RouterApp(
        routes=[
            *(Route(path, endpoint, methods=["POST"]) for path, endpoint in EMBEDDINGS.items()),
            Route("/info", api.tei_info, methods=["GET"]),
            Route("/api/tags", api.ollama_tags, methods=["GET"]),
            Route("/v1/models", api.list_models, methods=["GET"]),
            Route("/models", api.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", api.retrieve_model, methods=["GET"]),
            Route("/health", api.health, methods=["GET"]),
            Route("/ready", api.ready, methods=["GET"]),
            Route("/metrics", api.metrics, methods=["GET"]),
            Route("/openapi.json", api.openapi, methods=["GET"]),
            Route("/admin/status", api.admin_status, methods=["GET"]),
            Route("/admin/reload", api.admin_reload, methods=["POST"]),
            Route("/admin/usage", api.admin_usage, methods=["GET"]),
            Route("/admin/traffic", api.admin_traffic, methods=["GET"]),
            Route("/console", api.console, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={RouterError: api.on_router_error, HTTPException: api.on_http_error,
                            Exception: api.on_unhandled},
    )
    # `/v1/embeddings/` is a 404, not a redirect whose Location is built from the client's Host header.
    app.router.redirect_slashes = False
    app.state.openapi = openapi.document()
    app.state.console = console.page()
    metrics = Metrics(lambda: getattr(app.state, "services", None))
    return app


def app_from_environment() -> Starlette:
    """The app of one `serve --workers N` process: uvicorn imports this in each worker."""
    path = os.environ["EMBEDDINGS_ROUTER_CONFIG"]
    return create_app(load(path), config_path=path,
                      log_format=os.environ.get("EMBEDDINGS_ROUTER_LOG_FORMAT", "json"),
                      log_level=os.environ.get("EMBEDDINGS_ROUTER_LOG_LEVEL", "info"),
                      watch=os.environ.get("EMBEDDINGS_ROUTER_WATCH", "1") == "1")
