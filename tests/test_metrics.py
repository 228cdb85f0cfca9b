"""/metrics: what Prometheus scrapes after real traffic; names only, never secrets."""

from __future__ import annotations

import hashlib
import re

import httpx

from tests.conftest import KEY, LIMITED_KEY, config_dict
from tests.fakes.openai_upstream import API_KEY


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample, matched by name and every given label."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels}")


def test_requests_tokens_cache_limits_and_upstream_errors(make_router, upstream, upstream_url):
    config = config_dict(upstream_url)
    config["keys"].append({"name": "metered", "sha256": hashlib.sha256(b"sk-metered").hexdigest(),
                           "limits": {"rpm": 1}})
    router = make_router(config)
    body = {"model": "text-embedding-3-small", "input": ["a", "b"]}
    with router.client() as c:
        assert c.post("/v1/embeddings", json=body).status_code == 200
        assert c.post("/v1/embeddings", json=body).status_code == 200  # two cache hits
        assert c.post("/v1/embeddings", json={**body, "model": "no-such-model"}).status_code == 404
        upstream.fail_next(500, {"error": {"message": "boom", "type": "server_error"}})
        retried = c.post("/v1/embeddings", json={**body, "input": "fresh"})  # the same deployment, again
        assert retried.status_code == 200 and retried.headers["x-router-attempts"] == "2"
    with router.client("sk-metered") as c:
        assert [c.post("/v1/embeddings", json=body).status_code for _ in range(2)] == [200, 429]
    with router.client(LIMITED_KEY) as c:
        assert c.post("/v1/embeddings", json=body).status_code == 403
    text = httpx.get(f"{router.url}/metrics").text
    p = "embeddings_router_"
    assert sample(text, f"{p}requests_total", key="test", model="text-embedding-3-small", status="200") == 3
    assert sample(text, f"{p}requests_total", key="test", model="", status="404") == 1  # no label from the client
    assert sample(text, f"{p}requests_total", key="metered", model="text-embedding-3-small", status="429") == 1
    assert sample(text, f"{p}rate_limited_total", key="metered", type="requests") == 1
    assert sample(text, f"{p}upstream_errors_total", provider="fake", code="upstream_error") == 1
    assert sample(text, f"{p}retries_total", model="text-embedding-3-small") == 1
    assert sample(text, f"{p}cache_inputs_total", result="hit") == 2 + 2  # the second request, then metered's
    assert sample(text, f"{p}cache_inputs_total", result="miss") == 3
    assert sample(text, f"{p}tokens_total", key="test", model="text-embedding-3-small") == 4 + 2
    assert sample(text, f"{p}request_duration_seconds_count", part="upstream") == 2
    deployment = {"model": "text-embedding-3-small", "deployment": "fake/text-embedding-3-small"}
    assert sample(text, f"{p}deployment_state", state="healthy", **deployment) == 1
    assert sample(text, f"{p}deployment_state", state="cooling_down", **deployment) == 0
    assert sample(text, f"{p}deployment_in_flight", **deployment) == 0
    assert 0 < sample(text, f"{p}deployment_latency_seconds", **deployment) < 2
    assert sample(text, f"{p}request_duration_seconds_count", part="router") == 7
    assert sample(text, f"{p}cache_entries") == 3 and sample(text, f"{p}cache_bytes") > 0
    assert sample(text, f"{p}config_info") == 1
    assert "no-such-model" not in text
    for secret in (KEY, LIMITED_KEY, "sk-metered", API_KEY):
        assert secret not in text



def test_fallbacks_are_counted_per_model(make_router, upstream, upstream_url):
    config = config_dict(upstream_url)
    config["providers"]["backup"] = dict(config["providers"]["fake"])
    config["models"]["bge-base-en-v1.5"]["deployments"].append({"provider": "backup",
                                                                 "model": "BAAI/bge-base-en-v1.5"})
    router = make_router(config)
    upstream.fail_next(503, {"error": {"message": "busy", "type": "server_error"}})
    with router.client() as c:
        answer = c.post("/v1/embeddings", json={"model": "bge-base-en-v1.5", "input": "x"})
    assert answer.status_code == 200 and answer.headers["x-router-deployment"] == "backup/BAAI/bge-base-en-v1.5"
    text = httpx.get(f"{router.url}/metrics").text
    assert sample(text, "embeddings_router_fallbacks_total", model="bge-base-en-v1.5") == 1
    assert sample(text, "embeddings_router_retries_total", model="bge-base-en-v1.5") == 1
    assert sample(text, "embeddings_router_upstream_errors_total", provider="fake") == 1


def test_the_request_path_families_expose_as_prometheus_client_would():
    from prometheus_client import CollectorRegistry, Histogram

    from router.metrics import Distribution, Metrics

    ours = Metrics(lambda: None)
    for value in (1, 2, 3, 2048, 5000):
        ours.inputs_per_call.observe(("m", "p/m"), value)
    ours.requests.inc(("k", "m", "200"))
    ours.requests.inc(("k", "m", "200"))
    text = ours.exposition().decode()
    reference = CollectorRegistry()
    theirs = Histogram("h", "h", ["model"], buckets=ours.inputs_per_call.bounds, registry=reference)
    for value in (1, 2, 3, 2048, 5000):
        theirs.labels("m").observe(value)
    for le in ("1.0", "2.0", "4.0", "2048.0", "+Inf"):  # a value on a bound counts in that bucket
        assert sample(text, "embeddings_router_upstream_inputs_per_call_bucket", le=le) == \
            reference.get_sample_value("h_bucket", {"model": "m", "le": le})
    assert sample(text, "embeddings_router_upstream_inputs_per_call_sum") == 7054
    assert sample(text, "embeddings_router_upstream_inputs_per_call_count") == 5
    assert sample(text, "embeddings_router_requests_total", key="k", model="m", status="200") == 2
    assert isinstance(ours.inputs_per_call, Distribution)
