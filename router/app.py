"""Build the Starlette app: routes, error rendering, and the lifespan that
starts and stops the runtime (providers, local models)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import BinaryIO

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from router import api
from router.config import Config, load
from router.errors import RouterError
from router.observability import configure_logging
from router.runtime import Services


def create_app(config: Config, *, log_format: str = "json", log_level: str = "info",
               log_stream: BinaryIO | None = None) -> Starlette:
    log = configure_logging(log_format, log_level, log_stream)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.services = await Services.start(config, log)
        log.info("started", config_version=config.version, models=sorted(config.models),
                 providers=sorted(config.providers))
        try:
            yield
        finally:
            await app.state.services.aclose()

    routes = [
        Route("/v1/embeddings", api.create_embeddings, methods=["POST"]),
        Route("/embeddings", api.create_embeddings, methods=["POST"]),
        Route("/v1/models", api.list_models, methods=["GET"]),
        Route("/models", api.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", api.retrieve_model, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={RouterError: api.on_router_error, HTTPException: api.on_http_error,
                            Exception: api.on_unhandled},
    )


def app_from_environment() -> Starlette:
    """The app of one `serve --workers N` process: uvicorn imports this in each worker."""
    return create_app(load(os.environ["EMBEDDINGS_ROUTER_CONFIG"]),
                      log_format=os.environ.get("EMBEDDINGS_ROUTER_LOG_FORMAT", "json"),
                      log_level=os.environ.get("EMBEDDINGS_ROUTER_LOG_LEVEL", "info"))
