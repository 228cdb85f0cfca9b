from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml

from router.app import create_app
from router.config import parse
from tests.fakes.openai_upstream import API_KEY, FakeUpstream
from tests.fakes.server import ServerThread

KEY = "sk-test-key-abcdef"
LIMITED_KEY = "sk-test-limited-123456"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def config_dict(upstream_url: str, **providers: dict) -> dict:
    """A router config with one OpenAI-compatible upstream (the fake) and two models."""
    return {
        "server": {"max_body_bytes": 1_000_000, "request_timeout_s": 5},
        "providers": {
            "fake": {"kind": "openai", "base_url": f"{upstream_url}/v1", "api_key": API_KEY,
                     "timeout_s": 2, "max_batch": 64},
            **providers,
        },
        "models": {
            "text-embedding-3-small": {"deployments": [{"provider": "fake", "model": "text-embedding-3-small"}]},
            "bge-base-en-v1.5": {"aliases": ["BAAI/bge-base-en-v1.5"],
                                 "deployments": [{"provider": "fake", "model": "BAAI/bge-base-en-v1.5"}]},
        },
        "keys": [
            {"name": "test", "sha256": sha(KEY)},
            {"name": "limited", "sha256": sha(LIMITED_KEY), "models": ["bge-*"]},
        ],
    }


@dataclass
class Router:
    url: str
    logs: io.BytesIO

    def client(self, key: str | None = KEY) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def log_lines(self) -> list[bytes]:
        return [line for line in self.logs.getvalue().splitlines() if line]


class RouterFactory:
    def __init__(self) -> None:
        self._servers: list[ServerThread] = []

    def __call__(self, config: dict) -> Router:
        logs = io.BytesIO()
        server = ServerThread(create_app(parse(yaml.safe_dump(config)), log_stream=logs)).__enter__()
        self._servers.append(server)
        return Router(server.url, logs)

    def close(self) -> None:
        for server in self._servers:
            server.__exit__()


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream()
    with ServerThread(fake.app()) as server:
        yield fake, server.url


@pytest.fixture
def upstream(upstream_server: tuple[FakeUpstream, str]) -> FakeUpstream:
    fake, _ = upstream_server
    fresh = FakeUpstream()
    fake.__dict__.update(fresh.__dict__)  # reset faults and recordings between tests
    return fake


@pytest.fixture
def upstream_url(upstream_server: tuple[FakeUpstream, str]) -> str:
    return upstream_server[1]


@pytest.fixture
def make_router() -> Iterator[RouterFactory]:
    factory = RouterFactory()
    yield factory
    factory.close()


@pytest.fixture
def router(make_router: RouterFactory, upstream: FakeUpstream, upstream_url: str) -> Router:
    return make_router(config_dict(upstream_url))
