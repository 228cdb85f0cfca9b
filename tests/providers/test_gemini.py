"""`kind: gemini`: what only Google's API has."""

from __future__ import annotations

import numpy as np

from tests.fakes.gemini_upstream import FakeGemini
from tests.providers.conftest import embed


def test_task_type_key_header_and_model_names(serve, single):
    fake = FakeGemini()
    router = single({"kind": "gemini", "base_url": f"{serve(fake)}/v1beta", "task_type": "RETRIEVAL_QUERY"},
                    "models/gemini-embedding-001")
    r = embed(router, input=[f"t{i}" for i in range(101)])
    assert r.status_code == 200, r.text
    assert sorted(len(c["body"]["requests"]) for c in fake.requests) == [1, 100]
    call = fake.requests[0]
    assert call["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert {q["taskType"] for q in call["body"]["requests"]} == {"RETRIEVAL_QUERY"}
    assert "authorization" not in call["headers"]


def test_renormalising_can_be_turned_off(serve, single):
    fake = FakeGemini()
    router = single({"kind": "gemini", "base_url": f"{serve(fake)}/v1beta", "normalize": False},
                    "gemini-embedding-001")
    r = embed(router, input="a", dimensions=8)
    norm = np.linalg.norm(r.json()["data"][0]["embedding"])
    assert abs(norm - 3.0) < 1e-4   # the fake's scale, as Gemini's own truncated vectors are not unit length


def test_a_requests_input_type_becomes_its_task_type_and_its_own_cache_entry(serve, single):
    fake = FakeGemini()
    router = single({"kind": "gemini", "base_url": f"{serve(fake)}/v1beta", "task_type": "SEMANTIC_SIMILARITY"},
                    "gemini-embedding-001")
    for input_type, task in (("query", "RETRIEVAL_QUERY"), ("document", "RETRIEVAL_DOCUMENT"), (None, None)):
        body = {"input": "the same text"} | ({"input_type": input_type} if input_type else {})
        r = embed(router, **body)
        assert r.status_code == 200 and r.headers["x-cache-hits"] == "0", r.text  # a vector per task type
        expected = task or "SEMANTIC_SIMILARITY"  # none in the request: the configured one
        assert fake.requests[-1]["body"]["requests"][0]["taskType"] == expected
    assert embed(router, input="the same text", input_type="query").headers["x-cache-hits"] == "1"
    refused = embed(router, input="x", input_type="questions")
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "input_type"
