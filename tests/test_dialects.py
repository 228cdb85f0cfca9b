"""Inbound dialects through their own SDKs: TEI (huggingface_hub) and Ollama (ollama). The same
vectors, order, usage, cache and keys as /v1/embeddings; errors as each SDK's own error class."""

from __future__ import annotations

import httpx
import numpy as np
import ollama
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from tests.conftest import KEY, config_dict
from tests.fakes.openai_upstream import vector_for

MODEL = "text-embedding-3-small"


@pytest.fixture
def served(make_router, upstream, upstream_url):
    config = config_dict(upstream_url)
    config["server"]["default_model"] = MODEL
    return make_router(config)


def openai_vectors(router, texts) -> tuple[np.ndarray, httpx.Response]:
    with router.client(KEY) as c:
        r = c.post("/v1/embeddings", json={"model": MODEL, "input": texts})
    return np.asarray([d["embedding"] for d in r.json()["data"]]), r


def test_tei_through_huggingface_hub(served, upstream):
    client = InferenceClient(base_url=served.url, api_key=KEY)
    texts = ["one", "two", "three"]
    got = client.feature_extraction(texts)
    np.testing.assert_allclose(got, [vector_for(MODEL, t) for t in texts], atol=1e-6)
    single = client.feature_extraction("one")
    np.testing.assert_allclose(np.asarray(single).reshape(-1), vector_for(MODEL, "one"), atol=1e-6)
    again, response = openai_vectors(served, texts)  # the same texts through another dialect: cache hits
    assert response.headers["x-cache-hits"] == "3"
    np.testing.assert_allclose(again, got, atol=1e-6)
    with pytest.raises(HfHubHTTPError, match="normalize"):
        client.feature_extraction("x", normalize=False)
    with pytest.raises(HfHubHTTPError) as refused:
        InferenceClient(base_url=served.url, api_key="sk-wrong-key-for-the-fake").feature_extraction("x")
    assert refused.value.response.status_code == 401


def test_tei_routes_and_refusals(served, router):
    headers = {"authorization": f"Bearer {KEY}"}
    for path in ("/embed", "/"):
        r = httpx.post(f"{served.url}{path}", json={"inputs": ["a", "b"], "truncate": True}, headers=headers)
        assert r.status_code == 200 and np.asarray(r.json()).shape == (2, 16)
    info = httpx.get(f"{served.url}/info", headers=headers).json()
    assert info["model_id"] == MODEL and info["max_client_batch_size"] == 2048
    for body, param in [({"inputs": []}, "inputs"), ({"inputs": "a", "truncate": False}, "truncate"),
                        ({"inputs": "a", "truncation_direction": "left"}, "truncation_direction")]:
        r = httpx.post(f"{served.url}/embed", json=body, headers=headers)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    unset = httpx.post(f"{router.url}/embed", json={"inputs": "a"}, headers=headers)  # no default_model
    assert unset.status_code == 400 and unset.json()["error"]["code"] == "default_model_unset"
    assert "server.default_model" in unset.json()["error"]["message"]


def test_ollama_through_its_client(served, upstream):
    client = ollama.Client(host=served.url, headers={"Authorization": f"Bearer {KEY}"})
    texts = ["alpha", "beta"]
    answer = client.embed(model=MODEL, input=texts)
    np.testing.assert_allclose(answer.embeddings, [vector_for(MODEL, t) for t in texts], atol=1e-6)
    assert answer.model == MODEL and answer.prompt_eval_count > 0 and answer.total_duration > 0
    legacy = client.embeddings(model=MODEL, prompt="alpha")
    np.testing.assert_allclose(legacy.embedding, vector_for(MODEL, "alpha"), atol=1e-6)
    assert MODEL in [m.model for m in client.list().models]
    _, response = openai_vectors(served, texts)
    assert response.headers["x-cache-hits"] == "2"
    with pytest.raises(ollama.ResponseError) as unknown:
        client.embed(model="no-such-model", input="x")
    assert unknown.value.status_code == 404 and "no-such-model" in str(unknown.value)
    with pytest.raises(ollama.ResponseError) as wrong_key:
        ollama.Client(host=served.url, headers={"Authorization": "Bearer sk-wrong-key-for-the-fake"}).embed(
            model=MODEL, input="x")
    assert wrong_key.value.status_code == 401
    with pytest.raises(ollama.ResponseError, match="truncate"):
        client.embed(model=MODEL, input="x", truncate=False)


def test_limits_count_across_dialects(make_router, upstream, upstream_url):
    import hashlib

    config = config_dict(upstream_url)
    config["server"]["default_model"] = MODEL
    config["keys"].append({"name": "metered", "sha256": hashlib.sha256(b"sk-rpm10").hexdigest(),
                           "limits": {"rpm": 3}})
    router = make_router(config)
    headers = {"authorization": "Bearer sk-rpm10"}
    calls = [("/v1/embeddings", {"model": MODEL, "input": "a"}), ("/embed", {"inputs": "a"}),
             ("/api/embed", {"model": MODEL, "input": "a"}), ("/api/embed", {"model": MODEL, "input": "a"})]
    statuses = [httpx.post(f"{router.url}{path}", json=body, headers=headers).status_code for path, body in calls]
    assert statuses == [200, 200, 200, 429]
