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


def test_cohere_through_its_sdk_v2_and_v1(served, upstream):
    import cohere
    import cohere.errors

    from router import quantize

    texts = ["red", "green", "blue"]
    want = np.stack([vector_for(MODEL, t) for t in texts])
    v2 = cohere.ClientV2(base_url=served.url, api_key=KEY)
    answer = v2.embed(model=MODEL, texts=texts, input_type="search_document", embedding_types=["float", "ubinary"])
    np.testing.assert_allclose(answer.embeddings.float_, want, atol=1e-6)
    assert answer.embeddings.ubinary == quantize.ubinary(want).tolist()
    assert answer.meta.billed_units.input_tokens > 0 and answer.texts == texts
    short = v2.embed(model=MODEL, texts=["red"], input_type="search_query", embedding_types=["float"],
                     output_dimension=8)
    assert len(short.embeddings.float_[0]) == 8
    v1 = cohere.Client(base_url=served.url, api_key=KEY)
    floats = v1.embed(model=MODEL, texts=texts, input_type="search_document")
    assert floats.response_type == "embeddings_floats"
    np.testing.assert_allclose(floats.embeddings, want, atol=1e-6)
    _, response = openai_vectors(served, texts)  # all three computed once, through Cohere's route
    assert response.headers["x-cache-hits"] == "3"
    with pytest.raises(cohere.errors.BadRequestError, match="int8"):
        v2.embed(model=MODEL, texts=texts, input_type="search_document", embedding_types=["int8"])
    with pytest.raises(cohere.errors.BadRequestError, match="truncate"):
        v2.embed(model=MODEL, texts=texts, input_type="search_document", embedding_types=["float"],
                 truncate="NONE")
    with pytest.raises(cohere.errors.NotFoundError):
        v2.embed(model="no-such-model", texts=texts, input_type="search_document", embedding_types=["float"])
    with pytest.raises(cohere.errors.UnauthorizedError):
        cohere.ClientV2(base_url=served.url, api_key="sk-wrong-key-for-the-fake").embed(
            model=MODEL, texts=texts, input_type="search_document", embedding_types=["float"])


def test_cohere_v2_inputs_and_refusals(served):
    headers = {"authorization": f"Bearer {KEY}"}
    body = {"model": MODEL, "inputs": [{"content": [{"type": "text", "text": "red"}]}], "embedding_types": ["float"]}
    r = httpx.post(f"{served.url}/v2/embed", json=body, headers=headers)
    assert r.status_code == 200 and r.json()["texts"] == ["red"]
    np.testing.assert_allclose(r.json()["embeddings"]["float"], [vector_for(MODEL, "red")], atol=1e-6)
    image = {"model": MODEL, "inputs": [{"content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    for bad, param in [(image, "inputs"), ({"model": MODEL, "texts": ["a"], "input_type": "nonsense"}, "input_type"),
                       ({"model": MODEL, "texts": ["a"], "embedding_types": ["fp16"]}, "embedding_types")]:
        r = httpx.post(f"{served.url}/v2/embed", json=bad, headers=headers)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


@pytest.mark.parametrize(("path", "body"), [("/v1/embeddings", {"model": MODEL, "input": "a"}),
                                            ("/embed", {"inputs": "a"}),
                                            ("/api/embed", {"model": MODEL, "input": "a"})])
def test_a_dimensions_too_large_to_serialise_is_a_400_not_a_500(served, path, body):
    """Found by the fuzz: 2**64 went to the upstream call, where JSON encoding raised."""
    r = httpx.post(f"{served.url}{path}", json={**body, "dimensions": 2**64},
                   headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "dimensions"


def test_nugen_shape(served, upstream):
    texts = ["one", "two"]
    r = httpx.post(f"{served.url}/api/v3/inference/embeddings", json={"model": MODEL, "input": texts, "dimensions": 8},
                   headers={"authorization": f"Bearer {KEY}"})
    body = r.json()
    assert r.status_code == 200 and body["object"] == "embedding" and body["model"] == MODEL
    assert isinstance(body["created"], float) and body["id"].startswith("embed-") and body["usage"]["total_tokens"] > 0
    assert [d["index"] for d in body["data"]] == [0, 1]
    np.testing.assert_allclose([d["embedding"] for d in body["data"]], [vector_for(MODEL, t, 8) for t in texts],
                               atol=1e-6)
    refused = httpx.post(f"{served.url}/api/v3/inference/embeddings", json={"model": MODEL, "input": ""},
                         headers={"authorization": f"Bearer {KEY}"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "input"


def test_input_type_reaches_an_upstream_that_takes_it(make_router):
    import cohere

    from tests.fakes.cohere_upstream import FakeCohere
    from tests.fakes.server import ServerThread

    fake = FakeCohere()
    with ServerThread(fake.app()) as server:
        config = config_dict("http://127.0.0.1:9", co={"kind": "cohere", "base_url": server.url,
                                                       "api_key": fake.api_key})
        config["models"] = {"embed-english-v3.0": {"deployments": [{"provider": "co",
                                                                     "model": "embed-english-v3.0"}]}}
        router = make_router(config)
        client = cohere.ClientV2(base_url=router.url, api_key=KEY)
        client.embed(model="embed-english-v3.0", texts=["how tall is it"], input_type="search_query",
                     embedding_types=["float"])
        assert fake.requests[-1]["body"]["input_type"] == "search_query"
        with router.client(KEY) as c:  # Voyage's words on /v1/embeddings
            r = c.post("/v1/embeddings", json={"model": "embed-english-v3.0", "input": "how tall is it",
                                               "input_type": "document"})
        assert r.status_code == 200 and r.headers["x-cache-hits"] == "0"  # a document's vector is another
        assert fake.requests[-1]["body"]["input_type"] == "search_document"


def test_langchain_ollama_embeddings(served, upstream):
    from langchain_ollama import OllamaEmbeddings

    embeddings = OllamaEmbeddings(model=MODEL, base_url=served.url,
                                  client_kwargs={"headers": {"Authorization": f"Bearer {KEY}"}})
    documents = embeddings.embed_documents(["red", "green"])
    np.testing.assert_allclose(documents, [vector_for(MODEL, "red"), vector_for(MODEL, "green")], atol=1e-6)
    np.testing.assert_allclose(embeddings.embed_query("red"), vector_for(MODEL, "red"), atol=1e-6)
