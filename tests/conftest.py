from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from router.app import create_app
from router.auth import DEV_KEY
from router.config import parse
from router.server import uvicorn_options
from tests.fakes.openai_upstream import API_KEY, FakeUpstream
from tests.fakes.server import ServerThread

KEY = "sk-test-key-abcdef"
LIMITED_KEY = "sk-test-limited-123456"
# Every secret a test configures (keys clients send, the upstream's key): none may appear in any
# router's logs over the whole run (see `log_archive`).
SECRETS = (KEY, LIMITED_KEY, API_KEY, DEV_KEY, "sk-admin-secret-42", "sk-metered", "sk-rpm60", "sk-tpm600",
           "sk-rpm10", "sk-temp-", "sk-rotated-upstream-secret-99", "tei-secret-token", "sk-wrong-key-for-the-fake")


class LogArchive:
    """Every router log of the test run: in-process streams and router processes' files."""

    def __init__(self) -> None:
        self.streams: list[io.BytesIO] = []
        self.files: list[Path] = []

    def add(self, source: io.BytesIO | Path) -> None:
        (self.files if isinstance(source, Path) else self.streams).append(source)

    def contents(self) -> Iterator[tuple[str, bytes]]:
        for i, stream in enumerate(self.streams):
            yield f"in-process router {i}", stream.getvalue()
        for path in self.files:
            if path.exists():
                yield str(path), path.read_bytes()


@pytest.fixture(scope="session", autouse=True)
def log_archive() -> Iterator[LogArchive]:
    """After the whole run, grep every router log for every secret the tests configured."""
    archive = LogArchive()
    yield archive
    lines = 0
    for source, data in archive.contents():
        lines += data.count(b"\n")
        for secret in SECRETS:
            assert secret.encode() not in data, f"a secret ({secret[:6]}...) appears in the logs of {source}"
    if archive.streams or archive.files:
        assert lines > 0, "the archive holds no log lines: the scan would prove nothing"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def config_dict(upstream_url: str, **providers: dict) -> dict:
    """A router config with one OpenAI-compatible upstream (the fake) and two models."""
    return {
        "server": {"max_body_bytes": 1_000_000, "request_timeout_s": 5},
        "providers": {
            # The fake plays OpenAI itself, which reads token ids as its clients encode them.
            "fake": {"kind": "openai", "base_url": f"{upstream_url}/v1", "api_key": API_KEY,
                     "timeout_s": 2, "max_batch": 64, "accepts_tokens": True},
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
    def __init__(self, archive: LogArchive) -> None:
        self._servers: list[ServerThread] = []
        self._archive = archive

    def __call__(self, config: dict, **server_options: object) -> Router:
        """`server_options`: uvicorn settings over the router's own (`http="httptools"`: uvicorn's protocol)."""
        logs = io.BytesIO()
        self._archive.add(logs)
        parsed = parse(yaml.safe_dump(config))
        options = {**uvicorn_options(parsed.server), **server_options}
        server = ServerThread(create_app(parsed, log_stream=logs), **options).__enter__()
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
def make_upstream() -> Iterator[Callable[..., tuple[FakeUpstream, str]]]:
    """More fake upstreams, each on its own server, for tests that need them to differ."""
    servers: list[ServerThread] = []

    def start(**settings: object) -> tuple[FakeUpstream, str]:
        fake = FakeUpstream(**settings)
        servers.append(ServerThread(fake.app()).__enter__())
        return fake, servers[-1].url

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def make_router(log_archive: LogArchive) -> Iterator[RouterFactory]:
    factory = RouterFactory(log_archive)
    yield factory
    factory.close()


@pytest.fixture
def router(make_router: RouterFactory, upstream: FakeUpstream, upstream_url: str) -> Router:
    return make_router(config_dict(upstream_url))
