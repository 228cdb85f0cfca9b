"""`kind: tei` over real HTTP against a fake TEI server."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import config_dict
from tests.fakes.openai_upstream import vector_for
from tests.fakes.server import ServerThread
from tests.fakes.tei_upstream import MODEL_ID, FakeTEI
from tests.test_api import assert_error

MODEL = "bge-base-en-v1.5"


@pytest.fixture
def tei():
    fake = FakeTEI(api_key="tei-secret-token")
    with ServerThread(fake.app()) as server:
        yield fake, server.url


@pytest.fixture
def router(make_router, tei):
    _, url = tei
    config = config_dict("http://127.0.0.1:9", tei={"kind": "tei", "base_url": url, "api_key": "tei-secret-token"})
    config["models"][MODEL] = {"deployments": [{"provider": "tei", "model": MODEL_ID}]}
    config["routing"] = {"max_attempts": 1}
    return make_router(config)


def test_chunks_of_32_in_order_with_tei_token_counts(router, tei):
    fake, _ = tei
    inputs = [f"sentence {i}" for i in range(70)]
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": inputs})
    assert r.status_code == 200, r.text
    got = np.float32([d["embedding"] for d in r.json()["data"]])
    np.testing.assert_array_equal(got, np.stack([vector_for(MODEL_ID, x) for x in inputs]))
    assert sorted(len(r["body"]["inputs"]) for r in fake.requests) == [6, 32, 32]
    assert all(r["body"]["normalize"] is True and r["body"]["truncate"] is False for r in fake.requests)
    assert r.json()["usage"]["prompt_tokens"] == sum(len(x) // 4 + 1 for x in inputs)


def test_dimensions_pass_through(router, tei):
    fake, _ = tei
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": "a", "dimensions": 8})
    assert fake.requests[-1]["body"]["dimensions"] == 8
    np.testing.assert_array_equal(np.float32(r.json()["data"][0]["embedding"]), vector_for(MODEL_ID, "a", 8))


def test_token_ids_are_not_forwarded_by_default(router, tei):
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": [[1, 2, 3]]})
    assert_error(r, 400, param="input", code="token_input_unsupported")


@pytest.mark.parametrize(("status", "error_type", "want", "type_"), [
    (429, "overloaded", 429, "rate_limit_error"),
    (503, "unhealthy", 503, "overloaded_error"),
    (424, "backend", 502, "upstream_error"),
    (422, "tokenizer", 400, "invalid_request_error"),
    (413, "validation", 400, "invalid_request_error"),
    (400, "empty", 400, "invalid_request_error"),
])
def test_errors_are_translated_by_error_type(router, tei, status, error_type, want, type_):
    fake, _ = tei
    fake.fail_with(status, error_type, "TEI said no")
    with router.client() as c:
        error = assert_error(c.post("/v1/embeddings", json={"model": MODEL, "input": "a"}), want, type_,
                             param="input" if want == 400 else None)
    assert "TEI said no" in error["message"]


def test_refused_key_is_an_upstream_auth_failure(make_router, tei):
    _, url = tei
    config = config_dict("http://127.0.0.1:9", tei={"kind": "tei", "base_url": url, "api_key": "wrong"})
    config["models"][MODEL] = {"deployments": [{"provider": "tei", "model": MODEL_ID}]}
    router = make_router(config)
    with router.client() as c:
        assert_error(c.post("/v1/embeddings", json={"model": MODEL, "input": "a"}), 502,
                     code="upstream_auth_failed")


def test_usage_is_estimated_without_tei_header(router, tei):
    fake, _ = tei
    fake.report_usage = False
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": ["abcdefgh"]})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 2
