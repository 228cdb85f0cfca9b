"""Routing over real HTTP: fallback within a space, per-chunk recovery, dimensions."""

from __future__ import annotations

import numpy as np

from tests.conftest import config_dict
from tests.fakes.openai_upstream import vector_for
from tests.test_api import assert_error

MODEL = "text-embedding-3-small"


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


def test_all_deployments_down_is_an_error(make_router, upstream, upstream_url):
    router = make_router(two_deployments(upstream_url))
    upstream.fail_next(502, "down", times=2)
    with router.client() as c:
        assert_error(c.post("/v1/embeddings", json={"model": MODEL, "input": "a"}), 502, "upstream_error")


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
