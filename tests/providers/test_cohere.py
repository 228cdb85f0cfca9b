"""`kind: cohere`: what only Cohere's API has."""

from __future__ import annotations

import pytest

from tests.fakes.cohere_upstream import FakeCohere
from tests.providers.conftest import embed
from tests.test_api import assert_error


def test_input_type_truncate_and_chunks_of_96(serve, single):
    fake = FakeCohere()
    router = single({"kind": "cohere", "base_url": serve(fake), "input_type": "search_query",
                     "truncate": "NONE"}, "embed-english-v3.0")
    assert embed(router, input=[f"q{i}" for i in range(100)]).status_code == 200
    assert sorted(len(r["body"]["texts"]) for r in fake.requests) == [4, 96]
    assert {(r["body"]["input_type"], r["body"]["truncate"]) for r in fake.requests} == {("search_query", "NONE")}
    assert all(r["body"]["embedding_types"] == ["float"] for r in fake.requests)


def test_498_is_a_refused_key(serve, single):
    fake = FakeCohere()
    fake.fail_next(498, {"id": "x", "message": "invalid api token"})
    router = single({"kind": "cohere", "base_url": serve(fake)}, "embed-english-v3.0")
    error = assert_error(embed(router, input="a"), 502, code="upstream_auth_failed")
    assert "invalid api token" not in error["message"]


def test_a_requests_input_type_wins_over_the_configured_one(serve, single):
    fake = FakeCohere()
    router = single({"kind": "cohere", "base_url": serve(fake), "input_type": "search_document"},
                    "embed-english-v3.0")
    assert embed(router, input="q", input_type="query").status_code == 200
    assert fake.requests[-1]["body"]["input_type"] == "search_query"
    assert embed(router, input="d").status_code == 200
    assert fake.requests[-1]["body"]["input_type"] == "search_document"


def test_truncation_off_asks_cohere_to_refuse_long_texts(serve, single):
    fake = FakeCohere()
    router = single({"kind": "cohere", "base_url": serve(fake)}, "embed-english-v3.0")
    assert embed(router, input="a text", truncation=False).status_code == 200
    assert fake.requests[-1]["body"]["truncate"] == "NONE"
    assert embed(router, input="a text").status_code == 200  # not a cache hit: truncation off is another answer
    assert fake.requests[-1]["body"]["truncate"] == "END"


def test_int8_and_uint8_come_from_cohere_itself_and_are_cached_apart(serve, single):
    from tests.fakes.api import quantized
    from tests.fakes.openai_upstream import vector_for

    fake = FakeCohere()
    router = single({"kind": "cohere", "base_url": serve(fake)}, "embed-english-v3.0")
    want = vector_for("embed-english-v3.0", "a text")
    for dtype in ("int8", "uint8"):
        r = embed(router, input="a text", output_dtype=dtype)
        assert r.status_code == 200, r.text
        assert fake.requests[-1]["body"]["embedding_types"] == [dtype]
        assert r.json()["data"][0]["embedding"] == quantized(want, dtype)
        assert r.headers["x-cache-hits"] == "0"  # each type is its own answer, never the floats retyped
    again = embed(router, input="a text", output_dtype="int8")
    assert again.headers["x-cache-hits"] == "1" and again.json()["data"][0]["embedding"] == quantized(want, "int8")
    floats = embed(router, input="a text")
    assert floats.headers["x-cache-hits"] == "0" and fake.requests[-1]["body"]["embedding_types"] == ["float"]


def test_cohere_sdk_int8_through_the_router(serve, single):
    import cohere

    from tests.conftest import KEY
    from tests.fakes.api import quantized
    from tests.fakes.openai_upstream import vector_for

    fake = FakeCohere()
    router = single({"kind": "cohere", "base_url": serve(fake)}, "embed-english-v3.0")
    client = cohere.ClientV2(base_url=router.url, api_key=KEY)
    answer = client.embed(model="m", texts=["a", "b"], input_type="search_document", embedding_types=["int8"])
    assert answer.embeddings.int8 == [quantized(vector_for("embed-english-v3.0", t), "int8") for t in ("a", "b")]
    with pytest.raises(cohere.errors.BadRequestError, match="alone"):
        client.embed(model="m", texts=["a"], input_type="search_document", embedding_types=["float", "int8"])
