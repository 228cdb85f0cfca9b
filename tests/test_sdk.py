"""The official openai SDK, unchanged but for base_url, against the router."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from tests.conftest import KEY
from tests.fakes.openai_upstream import vector_for


def test_openai_sdk_default_base64_and_float(router, upstream):
    client = openai.OpenAI(base_url=f"{router.url}/v1", api_key=KEY, max_retries=0)
    texts = ["The food was delicious", "and the waiter..."]
    default = client.embeddings.create(model="text-embedding-3-small", input=texts)
    assert upstream.requests[-1]["body"]["input"] == texts
    as_float = client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    for got_default, got_float, text in zip(default.data, as_float.data, texts):
        want = vector_for("text-embedding-3-small", text)
        np.testing.assert_array_equal(np.float32(got_default.embedding), want)
        np.testing.assert_array_equal(np.float32(got_float.embedding), want)
    assert default.usage.prompt_tokens > 0 and default.model == "text-embedding-3-small"


def test_openai_sdk_token_arrays_like_langchain(router, upstream):
    client = openai.OpenAI(base_url=f"{router.url}/v1", api_key=KEY, max_retries=0)
    ids = [[9906, 1917], [1820, 4062, 14198]]
    result = client.embeddings.create(model="text-embedding-3-small", input=ids)
    assert upstream.requests[-1]["body"]["input"] == ids
    for item, tokens in zip(result.data, ids):
        np.testing.assert_array_equal(np.float32(item.embedding), vector_for("text-embedding-3-small", tokens))


def test_openai_sdk_sees_typed_errors(router):
    client = openai.OpenAI(base_url=f"{router.url}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as exc:
        client.embeddings.create(model="no-such-model", input="x")
    assert exc.value.body["code"] == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{router.url}/v1", api_key="nope", max_retries=0).embeddings.create(
            model="text-embedding-3-small", input="x")


def test_together_sdk_with_the_router_root_as_base_url(router, upstream):
    from together import NotFoundError as TogetherNotFound
    from together import Together

    # together 3.x appends /v1/embeddings to its base URL itself: the router's root is the base.
    client = Together(base_url=router.url, api_key=KEY)
    result = client.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    got = np.float32([d.embedding for d in result.data])
    np.testing.assert_array_equal(got, np.stack([vector_for("text-embedding-3-small", t) for t in ("hello", "world")]))
    with pytest.raises(TogetherNotFound, match="no-such-model"):
        client.embeddings.create(model="no-such-model", input="x")
