"""Routing over real HTTP: retries, fallback within a space, per-chunk recovery,
cooldowns, hedging, caps, deadlines, client hang-ups, dimensions."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import orjson
import pytest

from tests.conftest import config_dict
from tests.fakes.openai_upstream import API_KEY, vector_for
from tests.test_api import assert_error
from tests.test_metrics import sample

MODEL = "text-embedding-3-small"
ADMIN_KEY = "sk-admin-secret-42"


def pair(primary_url: str, backup_url: str, *, model: dict | None = None, primary: dict | None = None,
         routing: dict | None = None) -> dict:
    """MODEL on two deployments of one space, each its own fake upstream: `fake` first, then `backup`."""
    config = config_dict(primary_url, backup={"kind": "openai", "base_url": f"{backup_url}/v1", "api_key": API_KEY,
                                              "timeout_s": 0.5, "max_batch": 64})
    config["providers"]["fake"]["timeout_s"] = 0.5
    config["models"][MODEL] = {"deployments": [{"provider": "fake", "model": MODEL, **(primary or {})},
                                               {"provider": "backup", "model": MODEL}], **(model or {})}
    config["admin_keys"] = [{"name": "ops", "sha256": hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}]
    config["routing"] = {"backoff_s": 0.01, **(routing or {})}
    return config


def health(router) -> dict[str, dict]:
    """MODEL's deployments' health from /admin/status, by provider."""
    status = httpx.get(f"{router.url}/admin/status", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
    return {d["provider"]: d["health"] for d in status["models"][MODEL]["deployments"]}


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def concurrently(router, inputs: list[str]) -> list[int]:
    def one(text: str) -> int:
        with router.client() as c:
            return c.post("/v1/embeddings", json={"model": MODEL, "input": text}).status_code
    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(one, inputs))


def two_deployments(upstream_url: str, **model: object) -> dict:
    config = config_dict(upstream_url, backup={"kind": "openai", "base_url": f"{upstream_url}/v1",
                                               "api_key": "sk-upstream-secret-0123456789", "max_batch": 10})
    config["models"][MODEL] = {"deployments": [{"provider": "fake", "model": MODEL},
                                               {"provider": "backup", "model": MODEL}], **model}
    return config


def test_retryable_failure_moves_to_the_next_deployment(make_router, upstream, upstream_url):
    router = make_router(two_deployments(upstream_url))
    upstream.fail_next(500, {"error": "primary down"})
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": ["a", "b"]})
    assert r.status_code == 200 and r.headers["x-router-deployment"] == "backup/" + MODEL
    assert r.headers["x-router-attempts"] == "2"
    np.testing.assert_array_equal(np.float32(r.json()["data"][1]["embedding"]), vector_for(MODEL, "b"))


def test_client_errors_do_not_fall_back(make_router, upstream, upstream_url):
    router = make_router(two_deployments(upstream_url))
    upstream.fail_next(400, {"error": {"message": "bad input", "param": "input"}})
    with router.client() as c:
        assert_error(c.post("/v1/embeddings", json={"model": MODEL, "input": "a"}), 400, param="input")
    assert len(upstream.requests) == 1


def test_only_the_failed_chunk_is_retried(make_router, upstream, upstream_url):
    router = make_router(two_deployments(upstream_url))  # chunks of 10: the smaller max_batch
    upstream.fail_next(503, "busy")
    inputs = [f"t{i}" for i in range(30)]
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": inputs})
    assert r.status_code == 200
    assert len(upstream.requests) == 4  # three chunks, one of them twice
    got = np.float32([d["embedding"] for d in r.json()["data"]])
    np.testing.assert_array_equal(got, np.stack([vector_for(MODEL, t) for t in inputs]))


def test_the_same_deployment_is_retried_after_a_backoff(make_router, upstream, upstream_url):
    router = make_router(config_dict(upstream_url))
    upstream.fail_next(503, {"error": {"message": "busy"}}, times=2)
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
    assert r.status_code == 200 and r.headers["x-router-attempts"] == "3" and len(upstream.requests) == 3


def test_retry_after_is_honoured(make_router, upstream, upstream_url):
    router = make_router(config_dict(upstream_url))
    upstream.fail_next(429, {"error": {"message": "slow down"}}, {"retry-after": "1"})
    started = time.monotonic()
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
    assert r.status_code == 200 and r.headers["x-router-attempts"] == "2"
    assert time.monotonic() - started >= 1.0


def test_a_retry_after_past_the_deadline_is_answered_at_once(make_router, upstream, upstream_url):
    router = make_router(config_dict(upstream_url))  # request_timeout_s: 5
    upstream.fail_next(429, {"error": {"message": "slow down"}}, {"retry-after": "30"})
    started = time.monotonic()
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
    assert_error(r, 429, "rate_limit_error")
    assert r.headers["retry-after"] == "30" and time.monotonic() - started < 1 and len(upstream.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_and_credential_errors_are_never_sent_twice(make_router, upstream, upstream_url, status):
    router = make_router(config_dict(upstream_url))
    upstream.fail_next(status, {"error": {"message": "no"}}, times=5)
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
    assert r.status_code in (400, 404, 502) and len(upstream.requests) == 1


def test_refused_credentials_move_to_another_deployment_never_back(make_router, make_upstream, upstream,
                                                                  upstream_url):
    backup, backup_url = make_upstream()
    router = make_router(pair(upstream_url, backup_url))
    upstream.fail_next(401, {"error": {"message": "Incorrect API key provided"}}, times=5)
    backup.fail_next(500, {"error": {"message": "boom"}})
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
    assert r.status_code == 200 and r.headers["x-router-deployment"] == f"backup/{MODEL}"
    assert len(upstream.requests) == 1 and len(backup.requests) == 2


def test_max_attempts_bounds_the_calls(make_router, upstream, upstream_url):
    config = config_dict(upstream_url)
    config["routing"] = {"max_attempts": 3, "backoff_s": 0.01}
    router = make_router(config)
    upstream.fail_next(500, {"error": {"message": "boom"}}, times=10)
    with router.client() as c:
        assert_error(c.post("/v1/embeddings", json={"model": MODEL, "input": "a"}), 502, "upstream_error")
    assert len(upstream.requests) == 3


@pytest.mark.parametrize(("failure", "status"), [("500", 502), ("hang", 504), ("refused", 503)])
def test_every_deployment_down_answers_within_the_deadline(make_router, make_upstream, failure, status):
    primary, primary_url = make_upstream()
    backup, backup_url = make_upstream()
    if failure == "refused":
        primary_url, backup_url = dead_url(), dead_url()
    config = pair(primary_url, backup_url)
    config["server"]["request_timeout_s"] = 2
    for fake in (primary, backup):
        fake.fail_next(500, {"error": {"message": "down"}}, times=50)
        fake.delay_s = 10 if failure == "hang" else 0  # past the providers' 0.5 s timeout
    router = make_router(config)
    started = time.monotonic()
    with router.client() as c:
        assert_error(c.post("/v1/embeddings", json={"model": MODEL, "input": "a"}), status)
    assert time.monotonic() - started < 2.5


def test_a_failing_deployment_cools_down_then_a_probe_heals_it(make_router, make_upstream, upstream,
                                                                upstream_url):
    _backup, backup_url = make_upstream()
    config = pair(upstream_url, backup_url, routing={"cooldown": {"failures": 3, "cooldown_s": 0.5}})
    router = make_router(config)
    upstream.fail_next(500, {"error": {"message": "boom"}}, times=3)
    with router.client() as c:
        for i in range(3):  # each: the primary fails, the backup answers
            r = c.post("/v1/embeddings", json={"model": MODEL, "input": f"a{i}"})
            assert r.status_code == 200 and r.headers["x-router-deployment"] == f"backup/{MODEL}"
        assert health(router)["fake"]["state"] == "cooling_down"
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "b"})
        assert r.headers["x-router-deployment"] == f"backup/{MODEL}" and r.headers["x-router-attempts"] == "1"
        assert len(upstream.requests) == 3  # skipped while cooling down
        time.sleep(0.6)
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "c"})
        assert r.headers["x-router-deployment"] == f"fake/{MODEL}"  # the probe, and it succeeded
    state = health(router)["fake"]
    assert state["state"] == "healthy" and state["cooldowns"] == 1
    events = [orjson.loads(line) for line in router.log_lines()]
    cooling = [e for e in events if e.get("event") == "deployment cooling down"]
    assert len(cooling) == 1 and cooling[0]["deployment"] == f"fake/{MODEL}" and "3 consecutive" in cooling[0]["reason"]
    assert [e["state"] for e in events if e.get("event") == "deployment health"] == ["probing", "healthy"]
    text = httpx.get(f"{router.url}/metrics").text
    assert sample(text, "embeddings_router_deployment_cooldowns_total", deployment=f"fake/{MODEL}") == 1


def test_when_every_deployment_cools_down_requests_fail_fast(make_router, make_upstream, upstream, upstream_url):
    backup, backup_url = make_upstream()
    router = make_router(pair(upstream_url, backup_url, routing={"cooldown": {"failures": 2, "cooldown_s": 30}}))
    for fake in (upstream, backup):
        fake.fail_next(503, {"error": {"message": "busy"}}, times=2)
    with router.client() as c:
        assert_error(c.post("/v1/embeddings", json={"model": MODEL, "input": "a"}), 503)  # 4 attempts, 2 each
        started = time.monotonic()
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "b"})
    assert_error(r, 503, "overloaded_error", code="no_healthy_deployment")
    assert 25 <= int(r.headers["retry-after"]) <= 30 and time.monotonic() - started < 0.5
    assert len(upstream.requests) + len(backup.requests) == 4


def test_one_deployment_is_never_cooled_down_out_of_service(make_router, upstream, upstream_url):
    config = config_dict(upstream_url)
    config["routing"] = {"max_attempts": 1, "cooldown": {"failures": 2, "cooldown_s": 30}}
    router = make_router(config)
    upstream.fail_next(500, {"error": {"message": "boom"}}, times=3)
    with router.client() as c:
        assert [c.post("/v1/embeddings", json={"model": MODEL, "input": f"x{i}"}).status_code
                for i in range(4)] == [502, 502, 502, 200]


def test_hedging_takes_the_first_answer_and_cancels_the_other(make_router, make_upstream):
    slow, slow_url = make_upstream(delay_s=1.0)
    _fast, fast_url = make_upstream()
    router = make_router(pair(slow_url, fast_url, model={"hedge_after_ms": 100}))
    started = time.monotonic()
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
    assert time.monotonic() - started < 0.8
    assert r.status_code == 200 and r.headers["x-router-deployment"] == f"backup/{MODEL}"
    assert r.headers["x-router-attempts"] == "2"
    np.testing.assert_array_equal(np.float32(r.json()["data"][0]["embedding"]), vector_for(MODEL, "a"))
    wait_for(lambda: slow.abandoned == 1)  # the slow call was cancelled, not left running
    assert sample(httpx.get(f"{router.url}/metrics").text, "embeddings_router_hedges_total", model=MODEL) == 1


@pytest.mark.parametrize("server", ["router", "uvicorn"])
def test_a_client_that_hangs_up_cancels_its_upstream_call(make_router, make_upstream, server):
    """Our server tells the request (server.Hangup); under uvicorn's own protocol a task listens."""
    slow, slow_url = make_upstream(delay_s=1.5)
    router = make_router(config_dict(slow_url), **({"http": "httptools"} if server == "uvicorn" else {}))
    with router.client() as c, pytest.raises(httpx.ReadTimeout):
        c.post("/v1/embeddings", json={"model": MODEL, "input": "a"}, timeout=0.3)
    wait_for(lambda: any(b'"status": 499' in line or b'"status":499' in line for line in router.log_lines()),
             timeout=1.0)
    line = orjson.loads(next(x for x in router.log_lines() if b"499" in x))
    assert line["error"] == "client_disconnected" and line["total_ms"] < 1000
    wait_for(lambda: slow.abandoned == 1)


def test_max_concurrency_caps_calls_in_flight(make_router, make_upstream, upstream, upstream_url):
    slow, slow_url = make_upstream(delay_s=0.2)
    config = config_dict(slow_url)
    config["models"][MODEL]["deployments"][0]["max_concurrency"] = 2
    router = make_router(config)
    statuses = concurrently(router, [f"t{i}" for i in range(6)])
    assert statuses == [200] * 6 and slow.max_in_flight == 2  # the others waited their turn


def test_a_capped_deployment_spills_over_to_the_next(make_router, make_upstream, upstream, upstream_url):
    _backup, backup_url = make_upstream()
    router = make_router(pair(upstream_url, backup_url, primary={"rpm": 2}))
    with router.client() as c:
        served = [c.post("/v1/embeddings", json={"model": MODEL, "input": f"r{i}"}).headers["x-router-deployment"]
                  for i in range(5)]
    assert served == [f"fake/{MODEL}"] * 2 + [f"backup/{MODEL}"] * 3


def test_matryoshka_truncates_and_renormalises_where_the_api_cannot(make_router, upstream, upstream_url):
    config = config_dict(upstream_url)
    config["providers"]["fake"]["supports_dimensions"] = False
    config["models"][MODEL]["matryoshka"] = True
    router = make_router(config)
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "a", "dimensions": 8})
        assert "dimensions" not in upstream.requests[-1]["body"]
        full = vector_for(MODEL, "a")
        np.testing.assert_allclose(np.float32(r.json()["data"][0]["embedding"]),
                                   full[:8] / np.linalg.norm(full[:8]), rtol=1e-6)
        assert_error(c.post("/v1/embeddings", json={"model": MODEL, "input": "a", "dimensions": 99}),
                     400, param="dimensions")
        assert_error(c.post("/v1/embeddings", json={"model": "bge-base-en-v1.5", "input": "a", "dimensions": 8}),
                     400, param="dimensions", code="dimensions_unsupported")


def test_every_deployment_capped_past_the_deadline_is_a_fast_503(make_router, upstream, upstream_url):
    config = config_dict(upstream_url)
    config["models"][MODEL]["deployments"][0]["rpm"] = 1
    router = make_router(config)
    with router.client() as c:
        assert c.post("/v1/embeddings", json={"model": MODEL, "input": "a"}).status_code == 200
        started = time.monotonic()
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "b"})
    assert_error(r, 503, "overloaded_error", code="deployments_busy")
    assert 55 <= int(r.headers["retry-after"]) <= 60 and time.monotonic() - started < 0.5
    assert len(upstream.requests) == 1


def test_latency_strategy_measures_each_then_prefers_the_fastest(make_router, make_upstream):
    slow, slow_url = make_upstream(delay_s=0.15)
    fast, fast_url = make_upstream()
    router = make_router(pair(slow_url, fast_url, model={"strategy": "latency"}))
    with router.client() as c:
        served = [c.post("/v1/embeddings", json={"model": MODEL, "input": f"l{i}"}).headers["x-router-deployment"]
                  for i in range(8)]
    assert sorted(served[:2]) == [f"backup/{MODEL}", f"fake/{MODEL}"]  # each measured once, unmeasured first
    assert served[2:] == [f"backup/{MODEL}"] * 6 and len(slow.requests) == 1 and len(fast.requests) == 7


def test_a_model_mixing_spaces_is_warned_about_at_start(make_router, upstream_url):
    config = config_dict(upstream_url)
    config["models"][MODEL]["deployments"].append({"provider": "fake", "model": "BAAI/bge-base-en-v1.5",
                                                   "space": "BAAI/bge-base-en-v1.5"})
    config["models"][MODEL]["unsafe_mixed_spaces"] = True
    router = make_router(config)
    warnings = [orjson.loads(line) for line in router.log_lines() if b"mixes embedding spaces" in line]
    assert len(warnings) == 1 and warnings[0]["model"] == MODEL and warnings[0]["level"] == "warning"
    assert warnings[0]["spaces"] == ["BAAI/bge-base-en-v1.5", MODEL]


async def test_cancelled_siblings_failures_are_retrieved(caplog):
    """A chunk cancelled after a sibling failed may still end with its own error (its deadline
    passing as it is cancelled turns the cancel into a timeout, say); that error is retrieved,
    never logged as "Task exception was never retrieved" with an upstream's words in it."""
    import gc
    import logging

    from router.errors import UpstreamError
    from router.routing import cancel_quietly

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise UpstreamError("sibling failed: Bearer sk-echoed-secret-123") from None

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        cancel_quietly([task])
        await asyncio.sleep(0.01)
        del task
        gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_an_upstreams_day_long_retry_after_is_capped(make_router, upstream, upstream_url):
    config = config_dict(upstream_url)
    config["routing"] = {"max_retry_after_s": 1}
    config["admin_keys"] = [{"name": "ops", "sha256": hashlib.sha256(b"sk-admin-secret-42").hexdigest()}]
    router = make_router(config)
    upstream.fail_next(429, {"error": {"message": "come back tomorrow"}}, {"retry-after": "86400"})
    started = time.monotonic()
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
    assert r.status_code == 200 and r.headers["x-router-attempts"] == "2"  # waited 1 s, not a day
    assert 1.0 <= time.monotonic() - started < 3


def test_a_reload_that_changes_a_deployment_ends_its_pause(tmp_path, upstream, upstream_url):
    from tests.test_reload import ADMIN_KEY, ReloadableRouter, base_config

    r = ReloadableRouter(tmp_path / "router.yaml", base_config(upstream_url), watch=False)
    try:
        upstream.fail_next(429, {"error": {"message": "come back tomorrow"}}, {"retry-after": "86400"})
        with r.router.client() as c:
            refused = c.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
            assert_error(refused, 429, "rate_limit_error")
            assert refused.headers["retry-after"] == "60"  # routing.max_retry_after_s's default
            status = r.admin("GET", "/admin/status").json()
            health = status["models"][MODEL]["deployments"][0]["health"]
            assert 55 < health["paused_for_s"] <= 60
            assert c.post("/v1/embeddings", json={"model": MODEL, "input": "b"}).status_code == 503
            changed = base_config(upstream_url)
            changed["providers"]["fake"]["timeout_s"] = 3  # the deployment's provider changed
            r.write(changed)
            assert r.admin("POST", "/admin/reload", key=ADMIN_KEY).json()["result"] == "applied"
            assert c.post("/v1/embeddings", json={"model": MODEL, "input": "c"}).status_code == 200
            health = r.admin("GET", "/admin/status").json()["models"][MODEL]["deployments"][0]["health"]
            assert health["paused_for_s"] == 0
    finally:
        r.close()
