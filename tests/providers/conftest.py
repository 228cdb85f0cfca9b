from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import config_dict
from tests.fakes.api import API_KEY, FakeAPI
from tests.fakes.server import ServerThread


@pytest.fixture
def serve() -> Iterator[Callable[[FakeAPI], str]]:
    """Start a fake API on its own server; its URL."""
    servers: list[ServerThread] = []

    def start(fake: FakeAPI) -> str:
        servers.append(ServerThread(fake.app()).__enter__())
        return servers[-1].url

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def single(make_router) -> Callable:
    """A router whose model `m` has one deployment: `model` at a provider with these settings."""

    def start(provider: dict, model: str, **model_settings: object):
        config = config_dict("http://127.0.0.1:9", up={"api_key": API_KEY, "timeout_s": 2, **provider})
        config["models"] = {"m": {**model_settings, "deployments": [{"provider": "up", "model": model}]}}
        config["routing"] = {"max_attempts": 1}
        return make_router(config)

    return start


def embed(router, **body: object):
    with router.client() as c:
        return c.post("/v1/embeddings", json={"model": "m", **body})
