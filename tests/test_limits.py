"""Per-key limits: buckets on a fake clock, and the 429s and headers over HTTP."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from router.auth import Principal
from router.config import KeyLimits
from router.errors import RateLimited
from router.limits import MemoryLimiter
from tests.conftest import config_dict


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal(**limits: int) -> Principal:
    return Principal("team", ("*",), KeyLimits(**limits))


def test_rpm_bursts_to_the_limit_then_refills():
    clock = Clock()
    limiter, key = MemoryLimiter(clock), principal(rpm=60)
    for _ in range(60):
        with limiter.admit(key, 1):
            pass
    with pytest.raises(RateLimited) as exc:
        limiter.admit(key, 1)
    assert exc.value.type == "requests" and exc.value.code == "rate_limit_exceeded"
    assert 0 < exc.value.retry_after <= 1.0 and "Limit 60" in exc.value.message
    clock.now += 1.0
    with limiter.admit(key, 1) as admission:
        assert admission.headers["x-ratelimit-remaining-requests"] == "0"


def test_tokens_are_reconciled_with_real_usage():
    clock = Clock()
    limiter, key = MemoryLimiter(clock), principal(tpm=100)
    with limiter.admit(key, 10) as admission:
        admission.actual = 90  # the estimate was low: the real count is charged
    with pytest.raises(RateLimited) as exc:
        limiter.admit(key, 20)
    assert exc.value.type == "tokens"
    clock.now += 6  # 10 tokens a second
    with limiter.admit(key, 20):
        pass


def test_concurrency_slots_are_returned_even_on_failure():
    limiter, key = MemoryLimiter(Clock()), principal(concurrency=1)
    with pytest.raises(ZeroDivisionError), limiter.admit(key, 1):
        with pytest.raises(RateLimited):
            limiter.admit(key, 1)
        raise ZeroDivisionError
    with limiter.admit(key, 1):
        pass


def test_changed_limits_take_effect():
    limiter = MemoryLimiter(Clock())
    with limiter.admit(principal(rpm=1), 1):
        pass
    with pytest.raises(RateLimited):
        limiter.admit(principal(rpm=1), 1)
    with limiter.admit(principal(rpm=5), 1):
        pass


def limited_router(make_router, upstream_url: str, **limits: int):
    config = config_dict(upstream_url)
    config["keys"].append({"name": "metered", "sha256": hashlib.sha256(b"sk-metered").hexdigest(),
                           "limits": limits})
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
