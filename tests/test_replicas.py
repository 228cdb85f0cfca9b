"""Three router processes on one Redis, behind round-robin: one set of limits, one cache."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import config_dict
from tests.processes import RouterProcess
from tests.redis_servers import SHARED_URL, delete_prefix, unique_prefix

MODEL = "text-embedding-3-small"


@pytest.fixture(scope="module")
def replicas(upstream_server, tmp_path_factory, log_archive):
    """Started once for the module; each test uses its own key, so they do not share allowances."""
    prefix = unique_prefix()
    config = config_dict(upstream_server[1])
    config["keys"] += [
        {"name": "rpm60", "sha256": hashlib.sha256(b"sk-rpm60").hexdigest(), "limits": {"rpm": 60}},
        {"name": "tpm600", "sha256": hashlib.sha256(b"sk-tpm600").hexdigest(), "limits": {"tpm": 600}},
    ]
    config.update(limits={"backend": "redis"}, cache={"backend": "redis"},
                  redis={"url": SHARED_URL, "prefix": prefix})
    with contextlib.ExitStack() as stack:
        directory = tmp_path_factory.mktemp("replicas")
        processes = [stack.enter_context(RouterProcess(config, directory)) for _ in range(3)]
        for process in processes:
            log_archive.add(process.log_path)
        yield processes
    delete_prefix(SHARED_URL, prefix)


def burst(replicas, key: str, bodies: list[dict]) -> list[httpx.Response]:
    """Every body at once over 12 threads, handed to the replicas round-robin on warm connections
    (so the burst takes well under a second and the buckets barely refill)."""
    clients = [httpx.Client(base_url=r.url, headers={"authorization": f"Bearer {key}"}, timeout=30,
                            limits=httpx.Limits(max_keepalive_connections=12)) for r in replicas]
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda c: c.get("/health"), clients * 4))  # open connections before the burst
        targets = itertools.cycle(clients)
        calls = [(next(targets), body) for body in bodies]
        answers = list(pool.map(lambda call: call[0].post("/v1/embeddings", json=call[1]), calls))
    for client in clients:
        client.close()
    return answers


def test_requests_per_minute_hold_across_replicas(replicas, upstream):
    answers = burst(replicas, "sk-rpm60", [{"model": MODEL, "input": f"r{i}"} for i in range(90)])
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {200, 429}
    assert 60 <= statuses.count(200) <= 61, statuses.count(200)  # 61: one refill during the burst
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["type"] == "requests" and "Limit 60" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 2  # one request a second comes back
    assert refused.headers["x-ratelimit-limit-requests"] == "60"


def test_tokens_per_minute_hold_across_replicas(replicas, upstream):
    # 10 inputs of 7 characters: 20 tokens estimated and 20 reported by the fake, so 30 requests fit.
    bodies = [{"model": MODEL, "input": [f"{i:03d}{j:03d}x" for j in range(10)]} for i in range(45)]
    answers = burst(replicas, "sk-tpm600", bodies)
    assert all(a.json()["usage"]["prompt_tokens"] == 20 for a in answers if a.status_code == 200)
    assert 30 <= sum(a.status_code == 200 for a in answers) <= 31
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["type"] == "tokens" and int(refused.headers["retry-after"]) >= 1


def test_a_vector_cached_by_one_replica_is_a_hit_on_another(replicas, upstream):
    body = {"model": MODEL, "input": ["shared across replicas"]}
    first, second, third = (httpx.post(f"{r.url}/v1/embeddings", json=body,
                                       headers={"authorization": "Bearer sk-test-key-abcdef"}) for r in replicas)
    assert first.headers["x-cache-misses"] == "1"
    assert second.headers["x-cache-hits"] == third.headers["x-cache-hits"] == "1"
    assert second.json()["data"] == first.json()["data"] == third.json()["data"]
    assert len(upstream.requests) == 1


def test_serve_workers_share_limits_through_redis(upstream_server, upstream, tmp_path, log_archive):
    prefix = unique_prefix()
    config = config_dict(upstream_server[1])
    config["keys"].append({"name": "rpm10", "sha256": hashlib.sha256(b"sk-rpm10").hexdigest(), "limits": {"rpm": 10}})
    config.update(limits={"backend": "redis"}, redis={"url": SHARED_URL, "prefix": prefix})
    try:
        with RouterProcess(config, tmp_path, "--workers", "2") as router:
            log_archive.add(router.log_path)
            answers = burst([router], "sk-rpm10", [{"model": MODEL, "input": f"w{i}"} for i in range(20)])
        assert router.log_path.read_text().count('"event":"started"') == 2  # two processes served
        assert 10 <= sum(a.status_code == 200 for a in answers) <= 11
        assert {a.status_code for a in answers} == {200, 429}
    finally:
        delete_prefix(SHARED_URL, prefix)
