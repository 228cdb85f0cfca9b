"""Per-key limits over HTTP: 429 bodies, headers, per-model limits, real usage."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import config_dict


def limited_router(make_router, upstream_url: str, model_limits: dict | None = None, **limits: int):
    config = config_dict(upstream_url)
    config["keys"].append({"name": "metered", "sha256": hashlib.sha256(b"sk-metered").hexdigest(),
                           "limits": limits, "model_limits": model_limits or {}})
    return make_router(config)


def test_rpm_over_http(make_router, upstream, upstream_url):
    router = limited_router(make_router, upstream_url, rpm=5, tpm=100000)
    body = {"model": "text-embedding-3-small", "input": "x"}
    with router.client("sk-metered") as c:
        answers = [c.post("/v1/embeddings", json=body) for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    ok, refused = answers[0], answers[5]
    assert ok.headers["x-ratelimit-limit-requests"] == "5"
    assert ok.headers["x-ratelimit-remaining-requests"] == "4"
    assert ok.headers["x-ratelimit-limit-tokens"] == "100000"
    assert refused.json()["error"]["type"] == "requests"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_concurrency_over_http(make_router, upstream, upstream_url):
    router = limited_router(make_router, upstream_url, concurrency=1)
    upstream.delay_s = 0.5
    body = {"model": "text-embedding-3-small", "input": "x"}

    def call(i: int) -> int:
        with router.client("sk-metered") as c:
            return c.post("/v1/embeddings", json={**body, "input": f"x{i}"}).status_code

    with ThreadPoolExecutor(3) as pool:
        statuses = sorted(pool.map(call, range(3)))
    assert statuses[0] == 200 and 429 in statuses


def test_tpm_over_http_charges_real_usage(make_router, upstream, upstream_url):
    router = limited_router(make_router, upstream_url, tpm=10)
    with router.client("sk-metered") as c:
        first = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "y" * 60})
        assert first.status_code == 200 and first.json()["usage"]["prompt_tokens"] == 16  # the fake's count
        refused = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "z"})
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert "Limit 10" in refused.json()["error"]["message"]


def test_model_limits_count_apart_from_the_key(make_router, upstream, upstream_url):
    router = limited_router(make_router, upstream_url, model_limits={"bge-*": {"rpm": 2}}, rpm=100)
    with router.client("sk-metered") as c:
        bge = [c.post("/v1/embeddings", json={"model": "BAAI/bge-base-en-v1.5", "input": f"b{i}"}).status_code
               for i in range(3)]
        other = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "t"})
        refused = c.post("/v1/embeddings", json={"model": "bge-base-en-v1.5", "input": "b9"})
    assert bge == [200, 200, 429] and other.status_code == 200
    assert other.headers["x-ratelimit-limit-requests"] == "100"
    assert "on models 'bge-*'" in refused.json()["error"]["message"]


def test_daily_token_budget(make_router, upstream, upstream_url):
    router = limited_router(make_router, upstream_url, tokens_per_day=5)
    with router.client("sk-metered") as c:
        first = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["abc"] * 4})
        refused = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["abd"] * 2})
    assert first.status_code == 200 and refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "tokens" and "Daily token budget" in error["message"] and "Limit 5" in error["message"]
    assert 0 < int(refused.headers["retry-after"]) <= 86400
